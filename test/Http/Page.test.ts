// The try-it page, its icon and GET /rtc/v1/streams on the media API of a real proxy, with a fake SRS
// origin behind it.
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { fromSessions } from "../../src/Http/LiveStreams.js"
import type { RelaySessionView } from "../../src/Udp/Relay.js"
import { fakeSrsApi } from "../support/fakeSrsApi.js"
import { httpRequest } from "../support/http.js"
import { minimalOffer } from "../support/offers.js"
import { startProxy, type TestProxy } from "../support/proxy.js"

const PAGE_IDS = [
  "app",
  "stream",
  "token",
  "publish",
  "stop-publish",
  "play",
  "stop-play",
  "publish-status",
  "play-status",
  "local",
  "remote",
  "camera",
  "microphone",
  "share",
  "streams"
]

const offer = (proxy: TestProxy, kind: "whip" | "whep", stream: string, clientUfrag: string) =>
  httpRequest(proxy.endpoint(kind, stream), {
    method: "POST",
    headers: { "content-type": "application/sdp" },
    body: minimalOffer(clientUfrag)
  })

const liveStreams = (proxy: TestProxy) =>
  Effect.map(httpRequest(`${proxy.mediaUrl}/rtc/v1/streams`), (response) => {
    assert.strictEqual(response.status, 200, response.body)
    assert.match(String(response.headers["content-type"]), /^application\/json/)
    return JSON.parse(response.body) as { streams: Array<Record<string, unknown>> }
  })

describe("the try-it page", () => {
  it.scopedLive("GET / is the page with every element id the tests and users rely on, and an inline icon", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy()
      const response = yield* httpRequest(`${proxy.mediaUrl}/`)
      assert.strictEqual(response.status, 200)
      assert.match(String(response.headers["content-type"]), /^text\/html/)
      for (const id of PAGE_IDS) assert.include(response.body, `id="${id}"`)
      assert.match(response.body, /<link rel="icon" type="image\/svg\+xml" href="data:image\/svg\+xml,%3Csvg/)
      assert.include(response.body, "window.playerFramesDecoded =")
      assert.include(response.body, "window.playerStats =")
    }))

  it.scopedLive("/favicon.ico is a small SVG, not a 404", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy()
      const response = yield* httpRequest(`${proxy.mediaUrl}/favicon.ico`)
      assert.strictEqual(response.status, 200)
      assert.match(String(response.headers["content-type"]), /^image\/svg\+xml/)
      assert.match(response.body, /^<svg /)
      const head = yield* httpRequest(`${proxy.mediaUrl}/favicon.ico`, { method: "HEAD" })
      assert.strictEqual(head.status, 200)
    }))
})

describe("GET /rtc/v1/streams", () => {
  it.scopedLive("lists each relayed stream with its publishers and players, and forgets it when its sessions end", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy()
      const origin = yield* fakeSrsApi()
      assert.strictEqual((yield* origin.register(proxy.systemUrl)).status, 200)
      assert.deepStrictEqual(yield* liveStreams(proxy), { streams: [] })

      const published = yield* offer(proxy, "whip", "cam", "cli1")
      assert.strictEqual(published.status, 201, published.body)
      for (const ufrag of ["cli2", "cli3"]) assert.strictEqual((yield* offer(proxy, "whep", "cam", ufrag)).status, 201)
      assert.strictEqual((yield* offer(proxy, "whep", "other", "cli4")).status, 201)

      assert.deepStrictEqual(yield* liveStreams(proxy), {
        streams: [
          { stream: "__defaultVhost__/live/cam", vhost: "__defaultVhost__", app: "live", name: "cam", publishers: 1, players: 2 },
          { stream: "__defaultVhost__/live/other", vhost: "__defaultVhost__", app: "live", name: "other", publishers: 0, players: 1 }
        ]
      })

      const deleted = yield* httpRequest(new URL(published.headers.location!, proxy.mediaUrl).toString(), { method: "DELETE" })
      assert.strictEqual(deleted.status, 200, deleted.body)
      const [cam] = (yield* liveStreams(proxy)).streams
      assert.deepInclude(cam, { stream: "__defaultVhost__/live/cam", publishers: 0, players: 2 })
    }))

  it.scopedLive("with mediaApiToken, listing the streams needs the bearer token", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy({ mediaApiToken: Option.some("t0ken") })
      const refused = yield* httpRequest(`${proxy.mediaUrl}/rtc/v1/streams`)
      assert.strictEqual(refused.status, 401, refused.body)
      const listed = yield* httpRequest(`${proxy.mediaUrl}/rtc/v1/streams`, { headers: { authorization: "Bearer t0ken" } })
      assert.strictEqual(listed.status, 200, listed.body)
      assert.deepStrictEqual(JSON.parse(listed.body), { streams: [] })
      // The page itself stays open: it is where the token is typed in.
      assert.strictEqual((yield* httpRequest(`${proxy.mediaUrl}/`)).status, 200)
    }))

  it.scopedLive("GET and HEAD only: POST is a 405 with Allow", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy()
      const head = yield* httpRequest(`${proxy.mediaUrl}/rtc/v1/streams/`, { method: "HEAD" })
      assert.strictEqual(head.status, 200)
      const response = yield* httpRequest(`${proxy.mediaUrl}/rtc/v1/streams`, { method: "POST", body: "{}" })
      assert.strictEqual(response.status, 405, response.body)
      assert.strictEqual(response.headers["allow"], "GET, HEAD")
      assert.match((JSON.parse(response.body) as { message: string }).message, /; use GET$/)
      assert.strictEqual((JSON.parse(response.body) as { code: string }).code, "method-not-allowed")
    }))
})

describe("LiveStreams.fromSessions", () => {
  const view = (kind: RelaySessionView["kind"], streamUrl: string) => ({ kind, streamUrl }) as RelaySessionView

  it("reads a name with slashes as the legacy API builds it: the last segment is the stream", () => {
    assert.deepStrictEqual(fromSessions([view("publish", "example.com/live/sub/cam"), view("play", "example.com/live/sub/cam")]), [
      { stream: "example.com/live/sub/cam", vhost: "example.com", app: "live/sub", name: "cam", publishers: 1, players: 1 }
    ])
  })
})
