// RFC 9725 (WHIP) and draft-ietf-wish-whep where a proxy is involved: one row per requirement, each
// run against the real proxy in front of an SRS-shaped HTTP origin (test/support/fakeSrsApi.ts),
// which a row may teach another answer. README.md shows the same table.
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import type * as Scope from "effect/Scope"
import { fakeSrsApi, type FakeSrsApi, srsAnswer } from "../support/fakeSrsApi.ts"
import { type HttpResult, httpRequest } from "../support/http.ts"
import { minimalOffer } from "../support/offers.ts"
import { startProxy, type TestProxy } from "../support/proxy.ts"

interface Row {
  readonly requirement: string
  readonly run: (ctx: { readonly proxy: TestProxy; readonly origin: FakeSrsApi }) => Effect.Effect<void, unknown, Scope.Scope>
  readonly proxyOptions?: Parameters<typeof startProxy>[0]
  /** No origin registers with the proxy. */
  readonly noOrigin?: boolean
}

const SDP = { "content-type": "application/sdp" }
const FRAG = { "content-type": "application/trickle-ice-sdpfrag" }
const TRICKLE = "a=ice-ufrag:cliA\r\na=ice-pwd:clientIcePassword0123456789\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n" +
  "a=candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host\r\n"
const RESTART = "a=ice-options:trickle\r\na=group:BUNDLE 0\r\na=ice-ufrag:cliB\r\na=ice-pwd:clientPasswordAfterRestart01\r\n" +
  "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:1 1 udp 2122260223 192.0.2.10 50002 typ host\r\n"
/** A strong entity-tag (RFC 9110 section 8.8.3): quoted, no W/ prefix. */
const STRONG_ETAG = /^"[^"]+"$/

const offer = (proxy: TestProxy, kind: "whip" | "whep", stream = "s") =>
  httpRequest(proxy.endpoint(kind, stream), { method: "POST", headers: SDP, body: minimalOffer("cliA") })

/** A session through the proxy: its URL and the 201. */
const session = (proxy: TestProxy, kind: "whip" | "whep" = "whip") =>
  Effect.map(offer(proxy, kind), (created) => {
    assert.strictEqual(created.status, 201, created.body)
    return { created, url: `${proxy.mediaUrl}${created.headers["location"]}` }
  })

const patch = (url: string, body: string, headers: Record<string, string>) =>
  httpRequest(url, { method: "PATCH", headers: { ...FRAG, ...headers }, body })

const candidatesAtProxy = (sdp: string, proxy: TestProxy) => {
  const candidates = sdp.split(/\r?\n/).filter((line) => line.startsWith("a=candidate:"))
  assert.isAtLeast(candidates.length, 1, sdp)
  for (const line of candidates) assert.match(line, new RegExp(` udp \\d+ 127\\.0\\.0\\.1 ${proxy.udpPort} typ host`), line)
}

const assertJsonError = (response: HttpResult, status: number) => {
  assert.strictEqual(response.status, status, response.body)
  assert.isString(JSON.parse(response.body).message)
}

/** The origin answers PATCH as one that restarts ICE: new server credentials and its own ETag. */
const patchCapable = (origin: FakeSrsApi) => {
  origin.handler = (request, res, req) => {
    if (request.method !== "PATCH") return origin.srs(request, res, req)
    res.writeHead(200, { "Content-Type": "application/trickle-ice-sdpfrag", ETag: "\"origin-restart-1\"" })
    res.end(`a=ice-ufrag:srvR\r\na=ice-pwd:serverPasswordAfterRestart01\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n` +
      `a=candidate:0 1 udp 2130706431 127.0.0.1 ${origin.mediaPort} typ host\r\n`)
  }
}

export const ROWS: ReadonlyArray<Row> = [
  {
    requirement: "POST: 201 with the answer (application/sdp), Location of the session and a strong ETag",
    run: ({ proxy }) =>
      Effect.gen(function*() {
        const { created } = yield* session(proxy)
        assert.match(String(created.headers["content-type"]), /^application\/sdp/)
        assert.match(String(created.headers["location"]), /^\/rtc\/v1\/whip\/sessions\/[\w-]{20,}$/)
        assert.match(String(created.headers["etag"]), STRONG_ETAG)
        candidatesAtProxy(created.body, proxy)
      })
  },
  {
    requirement: "trickle ICE PATCH: 204 without ETag and without body (the origin is not asked)",
    run: ({ proxy, origin }) =>
      Effect.gen(function*() {
        const { created, url } = yield* session(proxy)
        const trickle = yield* patch(url, TRICKLE, { "if-match": String(created.headers["etag"]) })
        assert.strictEqual(trickle.status, 204)
        assert.isUndefined(trickle.headers["etag"])
        assert.strictEqual(trickle.body, "")
        assert.isEmpty(origin.requests.filter((r) => r.method === "PATCH"))
      })
  },
  {
    requirement: "trickle ICE PATCH with an If-Match that is not the session's entity-tag: 412",
    run: ({ proxy }) =>
      Effect.gen(function*() {
        const { url } = yield* session(proxy)
        assertJsonError(yield* patch(url, TRICKLE, { "if-match": "\"not-this-one\"" }), 412)
      })
  },
  {
    requirement: "ICE restart without If-Match: 428",
    run: ({ proxy, origin }) =>
      Effect.gen(function*() {
        const { url } = yield* session(proxy)
        assertJsonError(yield* patch(url, RESTART, {}), 428)
        assert.isEmpty(origin.requests.filter((r) => r.method === "PATCH"))
      })
  },
  {
    requirement: "ICE restart with an If-Match that is not the session's entity-tag: 412",
    run: ({ proxy, origin }) =>
      Effect.gen(function*() {
        const { url } = yield* session(proxy)
        assertJsonError(yield* patch(url, RESTART, { "if-match": "\"stale\"" }), 412)
        assert.isEmpty(origin.requests.filter((r) => r.method === "PATCH"))
      })
  },
  {
    requirement: "ICE restart, origin with PATCH: forwarded (If-Match: *, no client candidates); 200 fragment with the proxy's candidate and a new strong ETag",
    run: ({ proxy, origin }) =>
      Effect.gen(function*() {
        patchCapable(origin)
        const { created, url } = yield* session(proxy)
        const restart = yield* patch(url, RESTART, { "if-match": String(created.headers["etag"]) })
        assert.strictEqual(restart.status, 200, restart.body)
        assert.match(String(restart.headers["content-type"]), /^application\/trickle-ice-sdpfrag/)
        assert.strictEqual(restart.headers["etag"], "\"origin-restart-1\"")
        assert.notStrictEqual(restart.headers["etag"], created.headers["etag"])
        candidatesAtProxy(restart.body, proxy)
        const [forwarded] = origin.requests.filter((r) => r.method === "PATCH")
        assert.strictEqual(forwarded?.headers["if-match"], "*")
        assert.notInclude(forwarded!.body, "a=candidate")
      })
  },
  {
    requirement: "ICE restart, origin without PATCH (404, as SRS): the proxy answers 200 with its own fragment (ice-lite, ice-options, candidate) and a new strong ETag",
    run: ({ proxy, origin }) =>
      Effect.gen(function*() {
        const { created, url } = yield* session(proxy)
        const restart = yield* patch(url, RESTART, { "if-match": "*" })
        assert.strictEqual(restart.status, 200, restart.body)
        assert.match(String(restart.headers["content-type"]), /^application\/trickle-ice-sdpfrag/)
        assert.match(String(restart.headers["etag"]), STRONG_ETAG)
        assert.notStrictEqual(restart.headers["etag"], created.headers["etag"])
        assert.match(restart.body, /^a=ice-lite\r\na=group:BUNDLE 0\r\nm=audio 9 UDP\/TLS\/RTP\/SAVPF 111\r\na=mid:0\r\n/)
        assert.match(restart.body, /^a=ice-ufrag:[A-Za-z0-9+/]{4,}\r$/m)
        assert.match(restart.body, /^a=ice-pwd:[A-Za-z0-9+/]{22,}\r$/m)
        assert.match(restart.body, /a=end-of-candidates\r\n$/)
        candidatesAtProxy(restart.body, proxy)
        assert.lengthOf(origin.requests.filter((r) => r.method === "PATCH"), 1, "the origin was asked first")
      })
  },
  {
    requirement: "ICE restart, origin hangs up on PATCH: carried out by the proxy the same way",
    run: ({ proxy, origin }) =>
      Effect.gen(function*() {
        origin.handler = (request, res, req) => request.method === "PATCH" ? req.socket.destroy() : origin.srs(request, res, req)
        const { url } = yield* session(proxy)
        const restart = yield* patch(url, RESTART, { "if-match": "*" })
        assert.strictEqual(restart.status, 200, restart.body)
        candidatesAtProxy(restart.body, proxy)
      })
  },
  {
    requirement: "every restart gives a new ETag: If-Match with it works, the previous one gets 412",
    run: ({ proxy }) =>
      Effect.gen(function*() {
        const { created, url } = yield* session(proxy)
        const first = yield* patch(url, RESTART, { "if-match": String(created.headers["etag"]) })
        assert.strictEqual(first.status, 200, first.body)
        const again = RESTART.replace("cliB", "cliC")
        assertJsonError(yield* patch(url, again, { "if-match": String(created.headers["etag"]) }), 412)
        const second = yield* patch(url, again, { "if-match": String(first.headers["etag"]) })
        assert.strictEqual(second.status, 200, second.body)
        assert.notStrictEqual(second.headers["etag"], first.headers["etag"])
      })
  },
  {
    requirement: "a PATCH kind the session does not support: 422 (PROXY_ICE_RESTART=off, origin without PATCH: trickle only)",
    proxyOptions: { iceRestart: false },
    run: ({ proxy }) =>
      Effect.gen(function*() {
        const { url } = yield* session(proxy)
        assertJsonError(yield* patch(url, RESTART, { "if-match": "*" }), 422)
        assert.strictEqual((yield* patch(url, TRICKLE, {})).status, 204)
      })
  },
  {
    requirement: "PATCH with another media type: 415",
    run: ({ proxy }) =>
      Effect.gen(function*() {
        const { url } = yield* session(proxy)
        assertJsonError(yield* httpRequest(url, { method: "PATCH", headers: { "content-type": "text/plain" }, body: "x" }), 415)
      })
  },
  {
    requirement: "GET on the endpoint and on the session: 2xx with no content",
    run: ({ proxy }) =>
      Effect.gen(function*() {
        const { url } = yield* session(proxy)
        for (const target of [proxy.endpoint("whip", "s"), proxy.endpoint("whep", "s"), url]) {
          const got = yield* httpRequest(target)
          assert.isTrue(got.status >= 200 && got.status < 300, `${target}: ${got.status}`)
          assert.strictEqual(got.body, "")
        }
      })
  },
  {
    requirement: "WHEP HEAD on the endpoint: 200 with Content-Type: application/sdp",
    run: ({ proxy }) =>
      Effect.gen(function*() {
        const head = yield* httpRequest(proxy.endpoint("whep", "s"), { method: "HEAD" })
        assert.strictEqual(head.status, 200)
        assert.match(String(head.headers["content-type"]), /^application\/sdp/)
      })
  },
  {
    requirement: "OPTIONS (not a CORS preflight): Accept-Post: application/sdp",
    run: ({ proxy }) =>
      Effect.gen(function*() {
        for (const kind of ["whip", "whep"] as const) {
          const options = yield* httpRequest(proxy.endpoint(kind, "s"), { method: "OPTIONS" })
          assert.isTrue(options.status >= 200 && options.status < 300, String(options.status))
          assert.strictEqual(options.headers["accept-post"], "application/sdp")
        }
      })
  },
  {
    requirement: "WHEP 406 counter-offer: passed on with candidates rewritten and the proxy's Location; the player's application/sdp PATCH goes to the origin",
    run: ({ proxy, origin }) =>
      Effect.gen(function*() {
        origin.handler = (request, res, req) => {
          const url = new URL(request.url, "http://origin")
          if (request.method === "POST" && url.pathname === "/rtc/v1/whep/") {
            res.writeHead(406, {
              "Content-Type": "application/sdp",
              Location: "/rtc/v1/whep/?action=delete&token=T&app=live&stream=s&session=srvC:cliA",
              Link: "<stun:stun.example.net>; rel=\"ice-server\""
            })
            return res.end(srsAnswer({ ufrag: "srvC", mediaPort: origin.mediaPort }))
          }
          if (request.method === "PATCH") {
            res.writeHead(204)
            return res.end()
          }
          origin.srs(request, res, req)
        }
        const counter = yield* offer(proxy, "whep")
        assert.strictEqual(counter.status, 406, counter.body)
        assert.match(String(counter.headers["content-type"]), /^application\/sdp/)
        assert.match(String(counter.headers["location"]), /^\/rtc\/v1\/whep\/sessions\/[\w-]{20,}$/)
        assert.strictEqual(counter.headers["link"], "<stun:stun.example.net>; rel=\"ice-server\"")
        candidatesAtProxy(counter.body, proxy)
        assert.notInclude(counter.body, "origin.example.com")
        const answer = minimalOffer("cliA") + "a=candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host\r\n"
        const answered = yield* httpRequest(`${proxy.mediaUrl}${counter.headers["location"]}`, {
          method: "PATCH",
          headers: SDP,
          body: answer
        })
        assert.strictEqual(answered.status, 204, answered.body)
        const [forwarded] = origin.requests.filter((r) => r.method === "PATCH")
        assert.match(String(forwarded?.headers["content-type"]), /^application\/sdp/)
        assert.match(forwarded!.url, /^\/rtc\/v1\/whep\/\?action=delete/)
        assert.notInclude(forwarded!.body, "a=candidate")
      })
  },
  {
    requirement: "WHEP 409 (stream not live yet) with Retry-After: passed on with its headers",
    run: ({ proxy, origin }) =>
      Effect.gen(function*() {
        origin.handler = (_request, res) => {
          res.writeHead(409, { "Content-Type": "application/json", "Retry-After": "3" })
          res.end(JSON.stringify({ code: 409, desc: "not live yet" }))
        }
        const refused = yield* offer(proxy, "whep")
        assert.strictEqual(refused.status, 409)
        assert.strictEqual(refused.headers["retry-after"], "3")
        assert.deepStrictEqual(JSON.parse(refused.body), { code: 409, desc: "not live yet" })
        assert.deepStrictEqual(yield* proxy.relay.sessions, [])
      })
  },
  {
    requirement: "307 from an origin (load balancing by redirect): passed on with its Location",
    run: ({ proxy, origin }) =>
      Effect.gen(function*() {
        origin.handler = (_request, res) => {
          res.writeHead(307, { Location: "https://edge2.example.net/rtc/v1/whip/?app=live&stream=s" })
          res.end()
        }
        const redirected = yield* offer(proxy, "whip")
        assert.strictEqual(redirected.status, 307)
        assert.strictEqual(redirected.headers["location"], "https://edge2.example.net/rtc/v1/whip/?app=live&stream=s")
        assert.deepStrictEqual(yield* proxy.relay.sessions, [])
      })
  },
  {
    requirement: "no origin to take the offer: 503 with Retry-After",
    noOrigin: true,
    run: ({ proxy }) =>
      Effect.gen(function*() {
        const refused = yield* offer(proxy, "whip", "nowhere")
        assertJsonError(refused, 503)
        assert.match(String(refused.headers["retry-after"]), /^\d+$/)
      })
  }
]

const level = process.env["RTC_PROXY_TEST_LOGS"] ? LogLevel.Debug : LogLevel.Error

describe("RFC 9725 / WHEP conformance through the proxy", () => {
  it.scopedLive.each(ROWS.map((row) => [row.requirement, row] as const))("%s", ([, row]) =>
    Effect.gen(function*() {
      const proxy = yield* startProxy(row.proxyOptions ?? {})
      const origin = yield* fakeSrsApi()
      if (row.noOrigin !== true) {
        const registered = yield* origin.register(proxy.systemUrl)
        assert.strictEqual(registered.status, 200, registered.body)
      }
      yield* row.run({ proxy, origin })
    }).pipe(Logger.withMinimumLogLevel(level)))
})
