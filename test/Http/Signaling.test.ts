// WHIP/WHEP signaling, session URLs, errors and origin registration through the whole proxy, in front
// of a fake SRS HTTP API (node:http on 127.0.0.1).
import { assert, describe } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { eventually } from "../support/eventually.js"
import { fakeSrsApi, type FakeSrsApi, type SeenRequest } from "../support/fakeSrsApi.js"
import { type HttpResult, httpRequest } from "../support/http.js"
import { startProxy, type TestProxy } from "../support/proxy.js"
import { OriginId } from "../../src/Domain/Origin.js"
import { SessionId } from "../../src/Domain/Session.js"
import { StreamKey } from "../../src/Domain/StreamUrl.js"
import { live } from "../support/live.js"

const OFFER = [
  "v=0",
  "o=- 4215775240449105457 2 IN IP4 127.0.0.1",
  "s=-",
  "t=0 0",
  "a=group:BUNDLE 0",
  "a=extmap-allow-mixed",
  "a=msid-semantic: WMS stream",
  "m=video 9 UDP/TLS/RTP/SAVPF 96",
  "c=IN IP4 0.0.0.0",
  "a=rtcp:9 IN IP4 0.0.0.0",
  "a=ice-ufrag:cli1",
  "a=ice-pwd:clientIcePassword012345678",
  "a=ice-options:trickle",
  "a=fingerprint:sha-256 1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7:F8:09:1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7:F8:09",
  "a=setup:actpass",
  "a=mid:0",
  "a=sendonly",
  "a=msid:stream video",
  "a=rtcp-mux",
  "a=rtpmap:96 H264/90000",
  "a=candidate:1 1 udp 2122260223 192.168.1.10 50000 typ host generation 0",
  "a=candidate:2 1 udp 1686052607 203.0.113.5 50000 typ srflx raddr 192.168.1.10 rport 50000 generation 0",
  "a=end-of-candidates",
  ""
].join("\r\n")

const OFFER_WITHOUT_CANDIDATES = OFFER.split("\r\n").filter((line) => !/^a=(candidate|end-of-candidates)/.test(line))
  .join("\r\n")

const SDP = { "content-type": "application/sdp" }

/** A proxy with one registered fake origin. */
const proxyWithOrigin = (overrides: Parameters<typeof startProxy>[0] = {}) =>
  Effect.gen(function*() {
    const proxy = yield* startProxy(overrides)
    const origin = yield* fakeSrsApi()
    const registered = yield* origin.register(proxy.systemUrl)
    assert.strictEqual(registered.status, 200, registered.body)
    return { proxy, origin }
  })

const post = (proxy: TestProxy, kind: "whip" | "whep", stream: string, headers: Record<string, string> = {}, body = OFFER) =>
  httpRequest(proxy.endpoint(kind, stream), { method: "POST", headers: { ...SDP, ...headers }, body })

const candidatesOf = (sdp: string) => sdp.split(/\r?\n/).filter((line) => line.startsWith("a=candidate:"))

/** Every candidate is the proxy's UDP port on 127.0.0.1. */
const assertProxyCandidates = (sdp: string, proxy: TestProxy) => {
  const candidates = candidatesOf(sdp)
  assert.isAtLeast(candidates.length, 1, sdp)
  for (const line of candidates) {
    const fields = line.slice("a=candidate:".length).split(" ")
    assert.strictEqual(fields[2]?.toLowerCase(), "udp", line)
    assert.strictEqual(fields[4], "127.0.0.1", line)
    assert.strictEqual(fields[5], String(proxy.udpPort), line)
    assert.strictEqual(fields[7], "host", line)
  }
  assert.notMatch(sdp, /tcptype|origin\.example\.com/)
}

/** The proxy's session id from a 201's Location, checked to be the proxy's own session URL. */
const sessionIdOf = (response: HttpResult, proxy: TestProxy, endpoint: "whip" | "whep") => {
  const location = response.headers.location
  assert.isString(location, "the 201 has a Location")
  const url = new URL(location!, proxy.mediaUrl)
  assert.strictEqual(url.origin, proxy.mediaUrl)
  const match = new RegExp(`^/rtc/v1/${endpoint}/sessions/([A-Za-z0-9_-]{20,})$`).exec(url.pathname)
  assert.isNotNull(match, location)
  return match![1]!
}

/** A JSON error answer `{code, message}` with the status, and no internals in it. */
const assertJsonError = (response: HttpResult, status: number) => {
  assert.strictEqual(response.status, status, response.body)
  assert.match(String(response.headers["content-type"]), /^application\/json/)
  const body = JSON.parse(response.body) as { code?: unknown; message?: unknown }
  assert.isString(body.code)
  assert.isString(body.message)
  assert.isAbove((body.message as string).length, 0)
  assert.notMatch(response.body, /\bat .+:\d+:\d+|node_modules|\bEOF\b|Error:/)
  return body as { code: string; message: string }
}

/** Nothing leaked: no relay session, no stored record. */
const assertNoSession = (proxy: TestProxy) =>
  Effect.gen(function*() {
    assert.strictEqual((yield* proxy.relay.stats).sessions, 0)
    assert.deepStrictEqual(yield* proxy.store.list, [])
  })

const posts = (origin: FakeSrsApi): Array<SeenRequest> => origin.requests.filter((r) => r.method === "POST")

describe("WHIP and WHEP through the proxy", () => {
  live("ICE-TCP on: the answer carries a passive TCP candidate at the ICE-TCP port after the UDP one, and /api/v1/stats counts its connections", () =>
    Effect.gen(function*() {
      const { proxy } = yield* proxyWithOrigin({ iceTcp: Option.some({ host: Option.none(), port: 0 }) })
      const response = yield* post(proxy, "whip", "tcp")
      assert.strictEqual(response.status, 201, response.body)
      const candidates = candidatesOf(response.body).map((line) => line.split(" "))
      assert.deepStrictEqual(candidates.map((fields) => [fields[1], fields[2], fields[4], fields[5], fields[7], fields[8], fields[9]].join(" ")), [
        `1 udp 127.0.0.1 ${proxy.udpPort} host generation 0`,
        `1 tcp 127.0.0.1 ${proxy.tcpPort} host tcptype passive`
      ])
      assert.isBelow(Number(candidates[1]![3]), Number(candidates[0]![3]))
      const stats = yield* httpRequest(`${proxy.systemUrl}/api/v1/stats`)
      const iceTcp = (JSON.parse(stats.body) as { iceTcp: { connections: number; refused: number } | null }).iceTcp
      assert.deepInclude(iceTcp, { connections: 0, refused: 0 })
    }))

  live("ICE-TCP off (the default): no TCP candidate, and iceTcp is null in /api/v1/stats", () =>
    Effect.gen(function*() {
      const { proxy } = yield* proxyWithOrigin()
      const response = yield* post(proxy, "whip", "no-tcp")
      assertProxyCandidates(response.body, proxy)
      assert.isUndefined(proxy.tcpPort)
      const stats = yield* httpRequest(`${proxy.systemUrl}/api/v1/stats`)
      assert.isNull((JSON.parse(stats.body) as { iceTcp: unknown }).iceTcp)
    }))

  live("without PROXY_CANDIDATE_IP a host name in Host resolves in the family the request came over (IPv6 for [::1])", () =>
    Effect.gen(function*() {
      const { proxy } = yield* proxyWithOrigin({ listenHost: "::" })
      const overIpv6 = yield* httpRequest(`http://[::1]:${proxy.mediaPort}/rtc/v1/whip/?app=live&stream=v6`, {
        method: "POST",
        headers: { ...SDP, host: `localhost:${proxy.mediaPort}` },
        body: OFFER
      })
      assert.strictEqual(overIpv6.status, 201, overIpv6.body)
      assert.deepStrictEqual(candidatesOf(overIpv6.body).map((line) => line.split(" ")[4]), ["::1"])
      const overIpv4 = yield* post(proxy, "whep", "v6", { host: `localhost:${proxy.mediaPort}` })
      assert.deepStrictEqual(candidatesOf(overIpv4.body).map((line) => line.split(" ")[4]), ["127.0.0.1"])
    }))

  live("WHIP: 201 with the proxy's session URL and candidates; the origin gets the offer without candidates", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin()
      const response = yield* post(proxy, "whip", "s", { authorization: "Bearer pub-token", origin: "https://app.example" })
      assert.strictEqual(response.status, 201, response.body)
      assert.match(String(response.headers["content-type"]), /^application\/sdp/)
      const id = sessionIdOf(response, proxy, "whip")
      assertProxyCandidates(response.body, proxy)
      assert.match(response.body, /^a=ice-ufrag:srv1\r$/m)
      assert.match(response.body, /^a=ice-pwd:srsServerIcePassword0123456789ab\r$/m)
      const exposed = String(response.headers["access-control-expose-headers"]).toLowerCase().split(/\s*,\s*/)
      assert.include(exposed, "location")
      assert.include(exposed, "etag")
      assert.include(exposed, "link")
      assert.strictEqual(response.headers["access-control-allow-origin"], "*")

      const [forwarded] = posts(origin)
      assert.strictEqual(forwarded?.url, "/rtc/v1/whip/?app=live&stream=s")
      assert.strictEqual(forwarded?.headers["authorization"], "Bearer pub-token")
      assert.strictEqual(forwarded?.headers["x-forwarded-for"], "127.0.0.1")
      assert.match(String(forwarded?.headers["content-type"]), /^application\/sdp/)
      assert.notMatch(forwarded!.body, /^a=(candidate|end-of-candidates)/m)
      assert.strictEqual(forwarded!.body, OFFER_WITHOUT_CANDIDATES)

      const [view] = yield* proxy.relay.sessions
      assert.strictEqual(view?.id, id)
      assert.strictEqual(view?.kind, "publish")
      assert.strictEqual(view?.streamUrl, "__defaultVhost__/live/s")
      assert.strictEqual(view?.originMedia, `127.0.0.1:${origin.mediaPort}`)
      assert.deepStrictEqual(view?.ufragPairs, ["srv1:cli1"])
      const record = yield* proxy.store.get(SessionId.make(id))
      assert.strictEqual(
        Option.getOrUndefined(record)?.originLocation,
        `${origin.apiUrl}/rtc/v1/whip/?action=delete&token=T&app=live&stream=s&session=srv1:cli1`
      )
    }))

  live("WHEP: the same at /rtc/v1/whep/, query passed through, X-Forwarded-For appended", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin()
      const response = yield* httpRequest(`${proxy.endpoint("whep", "s2")}&vcodec=h264&eip=198.51.100.7`, {
        method: "POST",
        headers: { ...SDP, authorization: "Bearer play-token", "x-forwarded-for": "203.0.113.9" },
        body: OFFER
      })
      assert.strictEqual(response.status, 201, response.body)
      assert.match(String(response.headers["content-type"]), /^application\/sdp/)
      sessionIdOf(response, proxy, "whep")
      assertProxyCandidates(response.body, proxy)
      const [forwarded] = posts(origin)
      assert.strictEqual(forwarded?.url, "/rtc/v1/whep/?app=live&stream=s2&vcodec=h264&eip=198.51.100.7")
      assert.strictEqual(forwarded?.headers["authorization"], "Bearer play-token")
      assert.strictEqual(forwarded?.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1")
      assert.strictEqual(forwarded!.body, OFFER_WITHOUT_CANDIDATES)
      const [view] = yield* proxy.relay.sessions
      assert.strictEqual(view?.kind, "play")
    }))

  live("Go bug 2: the origin's ETag, Link and Accept-Patch are kept on the 201", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin()
      origin.handler = (request, res, req) => {
        const writeHead = res.writeHead.bind(res)
        res.writeHead = ((status: number, headers: Record<string, string>) =>
          writeHead(status, {
            ...headers,
            ETag: "\"origin-etag-1\"",
            Link: "<stun:stun.example.net:3478>; rel=\"ice-server\"",
            "Accept-Patch": "application/trickle-ice-sdpfrag"
          })) as typeof res.writeHead
        origin.srs(request, res, req)
      }
      const response = yield* post(proxy, "whip", "s")
      assert.strictEqual(response.status, 201, response.body)
      assert.strictEqual(response.headers["etag"], "\"origin-etag-1\"")
      assert.strictEqual(response.headers["link"], "<stun:stun.example.net:3478>; rel=\"ice-server\"")
      assert.strictEqual(response.headers["accept-patch"], "application/trickle-ice-sdpfrag")
      sessionIdOf(response, proxy, "whip") // the proxy's Location, not the origin's
    }))

  live("OPTIONS preflight allows PATCH, DELETE and the Authorization and If-Match headers", () =>
    Effect.gen(function*() {
      const { proxy } = yield* proxyWithOrigin()
      for (const path of ["/rtc/v1/whip/?app=live&stream=s", "/rtc/v1/whep/sessions/AAAAAAAAAAAAAAAAAAAAAA"]) {
        const response = yield* httpRequest(`${proxy.mediaUrl}${path}`, {
          method: "OPTIONS",
          headers: {
            origin: "https://app.example",
            "access-control-request-method": "PATCH",
            "access-control-request-headers": "authorization, if-match, content-type"
          }
        })
        assert.strictEqual(response.status, 204, path)
        assert.strictEqual(response.headers["access-control-allow-origin"], "*")
        const methods = String(response.headers["access-control-allow-methods"]).split(/\s*,\s*/)
        for (const method of ["POST", "PATCH", "DELETE"]) assert.include(methods, method)
        assert.strictEqual(response.headers["access-control-allow-headers"], "authorization, if-match, content-type")
      }
    }))

  live("DELETE on the session URL tells the origin at its own Location and frees the relay session", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin()
      const created = yield* post(proxy, "whip", "s")
      assert.strictEqual(created.status, 201, created.body)
      const id = sessionIdOf(created, proxy, "whip")
      assert.strictEqual((yield* proxy.relay.stats).sessions, 1)

      const sessionUrl = new URL(created.headers.location!, proxy.mediaUrl).href
      const deleted = yield* httpRequest(sessionUrl, { method: "DELETE", headers: { authorization: "Bearer pub-token" } })
      assert.strictEqual(deleted.status, 200, deleted.body)
      const originDelete = origin.requests.filter((r) => r.method === "DELETE")
      assert.strictEqual(originDelete.length, 1)
      assert.strictEqual(originDelete[0]!.url, "/rtc/v1/whip/?action=delete&token=T&app=live&stream=s&session=srv1:cli1")
      assert.strictEqual(originDelete[0]!.headers["authorization"], "Bearer pub-token")
      yield* assertNoSession(proxy)
      assert.strictEqual((yield* proxy.relay.stats).ended.deleted, 1)
      assert.isTrue(Option.isNone(yield* proxy.store.get(SessionId.make(id))))

      const again = yield* httpRequest(sessionUrl, { method: "DELETE" })
      assertJsonError(again, 404)
      assert.strictEqual(origin.requests.filter((r) => r.method === "DELETE").length, 1)
    }))
})

describe("signaling errors: a JSON {code, message}, the right status, nothing leaked", () => {
  live("415 for a wrong content type; 400 for an empty body, a body that is not SDP, an SDP without ice-ufrag", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin()
      assertJsonError(yield* post(proxy, "whip", "s", { "content-type": "text/plain" }), 415)
      assertJsonError(
        yield* httpRequest(proxy.endpoint("whip", "s"), { method: "POST", body: OFFER }),
        415
      )
      assertJsonError(yield* post(proxy, "whip", "s", {}, ""), 400)
      assertJsonError(yield* post(proxy, "whip", "s", {}, "hello, this is not an offer"), 400)
      assertJsonError(yield* post(proxy, "whip", "s", {}, "{\"sdp\":\"v=0\"}"), 400)
      const noUfrag = OFFER.split("\r\n").filter((line) => !line.startsWith("a=ice-ufrag")).join("\r\n")
      const error = assertJsonError(yield* post(proxy, "whep", "s", {}, noUfrag), 400)
      assert.match(error.message, /ice-ufrag/)
      assert.deepStrictEqual(origin.requests, [], "nothing reached the origin")
      yield* assertNoSession(proxy)
    }))

  live("413 for a body over maxBodyBytes, with or without Content-Length", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin({ maxBodyBytes: 2048 })
      const big = OFFER + `a=x-padding:${"p".repeat(4096)}\r\n`
      assertJsonError(yield* post(proxy, "whip", "s", {}, big), 413)
      assertJsonError(
        yield* httpRequest(proxy.endpoint("whip", "s"), { method: "POST", headers: SDP, body: big, chunked: true }),
        413
      )
      // Under the limit still works.
      assert.strictEqual((yield* post(proxy, "whip", "s")).status, 201)
      assert.strictEqual(posts(origin).length, 1)
    }))

  live("503 with Retry-After when no origin is registered", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy()
      const response = yield* post(proxy, "whip", "s")
      assertJsonError(response, 503)
      assert.match(String(response.headers["retry-after"]), /^\d+$/)
      assert.isAtLeast(Number(response.headers["retry-after"]), 1)
      yield* assertNoSession(proxy)
    }))

  live("Go bug 6: 502 naming the origin when it hangs up without answering, and for a WHIP the likely causes", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin()
      origin.handler = (_request, _res, req) => req.socket.destroy()
      const publish = assertJsonError(yield* post(proxy, "whip", "s"), 502)
      assert.strictEqual(publish.code, "origin-failed")
      assert.strictEqual(
        publish.message,
        `origin 127.0.0.1:${origin.apiPort} closed the connection without answering: the stream may already have a ` +
          "publisher there, or the origin rejected the offer (check its log)"
      )
      const legacy = yield* httpRequest(`${proxy.mediaUrl}/rtc/v1/publish/`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ streamurl: "webrtc://127.0.0.1/live/s", sdp: OFFER })
      })
      assert.strictEqual(assertJsonError(legacy, 502).message, publish.message)
      // A play has no publisher to clash with: the plain account.
      const play = assertJsonError(yield* post(proxy, "whep", "s"), 502)
      assert.strictEqual(play.message, `origin 127.0.0.1:${origin.apiPort} closed the connection without answering`)
      yield* assertNoSession(proxy)
    }))

  live("Go bug 6: 502 naming the origin when it answers 500", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin()
      origin.handler = (_request, res) => {
        res.writeHead(500, { "Content-Type": "application/json" })
        res.end(JSON.stringify({ code: 5000, message: "internal origin failure" }))
      }
      const error = assertJsonError(yield* post(proxy, "whip", "s"), 502)
      assert.include(error.message, "srv-a-svc1-4242")
      assert.include(error.message, "500")
      yield* assertNoSession(proxy)
    }))

  live("Go bug 6: 502 when the origin answers 201 with garbage instead of SDP; the origin is told to drop its session", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin()
      origin.handler = (request, res) => {
        if (request.method === "DELETE") {
          res.writeHead(200)
          res.end()
          return
        }
        res.writeHead(201, { "Content-Type": "application/sdp", Location: "/rtc/v1/whip/?action=delete&token=G&session=x:y" })
        res.end("<html>definitely not SDP</html>")
      }
      const error = assertJsonError(yield* post(proxy, "whip", "s"), 502)
      assert.include(error.message, "srv-a-svc1-4242")
      assert.match(error.message, /SDP/)
      yield* assertNoSession(proxy)
      yield* eventually(() =>
        assert.deepStrictEqual(
          origin.requests.filter((r) => r.method === "DELETE").map((r) => r.url),
          ["/rtc/v1/whip/?action=delete&token=G&session=x:y"]
        )
      )
    }))

  live("Go bug 6: 504 naming the origin when it does not answer within originTimeout", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin({ originTimeout: Duration.millis(300) })
      // Never answers; the connection is cut after 1 s only so that this test ends even while the
      // timeout cannot interrupt the request (see the next test).
      origin.handler = (_request, _res, req) => void setTimeout(() => req.socket.destroy(), 1000).unref()
      const error = assertJsonError(yield* post(proxy, "whip", "s"), 504)
      assert.include(error.message, `origin 127.0.0.1:${origin.apiPort}`)
      assert.match(error.message, /did not answer within 300ms/)
      yield* assertNoSession(proxy)
    }))

  // src bug: HttpApp.toHandled runs an app uninterruptibly, and Routes.ts never makes its handlers
  // interruptible again (HttpRouter would), so Effect.timeoutFail in OriginClient.send cannot interrupt
  // the origin request: the 504 only comes when the origin finally closes or answers.
  live("Go bug 6: the 504 comes at originTimeout, not when the silent origin finally hangs up", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin({ originTimeout: Duration.millis(300) })
      origin.handler = (_request, _res, req) => void setTimeout(() => req.socket.destroy(), 1500).unref()
      const started = Date.now()
      const response = yield* post(proxy, "whip", "s")
      const took = Date.now() - started
      assert.strictEqual(response.status, 504)
      assert.isAtLeast(took, 250)
      assert.isBelow(took, 1000, `the 504 took ${took} ms with originTimeout 300 ms`)
    }))

  live("an origin request that times out is abandoned: its connection is closed at the timeout", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin({ originTimeout: Duration.millis(300) })
      let closedAt: number | undefined
      origin.handler = (_request, _res, req) => {
        req.socket.once("close", () => closedAt = Date.now())
        setTimeout(() => req.socket.destroy(), 3000).unref()
      }
      const started = Date.now()
      assert.strictEqual((yield* post(proxy, "whip", "s")).status, 504)
      yield* eventually(() => assert.isDefined(closedAt), 2000)
      assert.isBelow(closedAt! - started, 1500, "the proxy closed it, not the origin")
      yield* assertNoSession(proxy)
    }))

  live("404 JSON for an unknown path and an unknown session id", () =>
    Effect.gen(function*() {
      const { proxy } = yield* proxyWithOrigin()
      assertJsonError(yield* httpRequest(`${proxy.mediaUrl}/nothing/here`), 404)
      assertJsonError(yield* httpRequest(`${proxy.mediaUrl}/rtc/v1/whip/sessions/AAAAAAAAAAAAAAAAAAAAAA`, { method: "DELETE" }), 404)
      assertJsonError(
        yield* httpRequest(`${proxy.mediaUrl}/rtc/v1/whep/sessions/AAAAAAAAAAAAAAAAAAAAAA`, {
          method: "PATCH",
          headers: { "content-type": "application/trickle-ice-sdpfrag" },
          body: "a=ice-ufrag:x\r\n"
        }),
        404
      )
      assertJsonError(yield* httpRequest(`${proxy.systemUrl}/nothing/here`), 404)
    }))

  live("405 with Allow for a wrong method on a legacy path and on the endpoint", () =>
    Effect.gen(function*() {
      const { proxy } = yield* proxyWithOrigin()
      const legacy = yield* httpRequest(`${proxy.mediaUrl}/rtc/v1/publish/`)
      assertJsonError(legacy, 405)
      assert.strictEqual(legacy.headers["allow"], "POST")
      const put = yield* httpRequest(proxy.endpoint("whip", "s"), { method: "PUT", headers: SDP, body: OFFER })
      assertJsonError(put, 405)
      assert.include(String(put.headers["allow"]).split(/\s*,\s*/), "POST")
      const register = yield* httpRequest(`${proxy.systemUrl}/api/v1/srs/register`)
      assertJsonError(register, 405)
      assert.strictEqual(register.headers["allow"], "POST")
      yield* assertNoSession(proxy)
    }))

  live("a 4xx from the origin is passed through with its status and body", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin()
      const refusal = JSON.stringify({ code: 5012, message: "stream busy" })
      origin.handler = (_request, res) => {
        res.writeHead(400, { "Content-Type": "application/json" })
        res.end(refusal)
      }
      const response = yield* post(proxy, "whip", "s")
      assert.strictEqual(response.status, 400)
      assert.strictEqual(response.body, refusal)
      assert.match(String(response.headers["content-type"]), /^application\/json/)
      yield* assertNoSession(proxy)
    }))

  live("a 4xx from the origin without a body keeps its status and headers, and says whose refusal it is", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin()
      origin.handler = (_request, res) => {
        res.writeHead(404, { "Content-Type": "text/plain", "Retry-After": "3" })
        res.end()
      }
      const response = yield* post(proxy, "whep", "gone")
      assert.strictEqual(response.status, 404)
      assert.strictEqual(response.headers["retry-after"], "3")
      assert.match(String(response.headers["content-type"]), /^application\/json/)
      const refusal = JSON.parse(response.body) as { code: string; message: string }
      assert.strictEqual(refusal.code, "origin-refused")
      assert.match(refusal.message, /^origin \S+ answered 404 without a body$/)
      yield* assertNoSession(proxy)
    }))
})

describe("one publisher per stream", () => {
  const CONFLICT =
    "stream __defaultVhost__/live/s already has a publisher; end it with DELETE on its session URL, or wait for it to end (a publisher gone without DELETE ends after 30s without packets)"
  const legacyPublish = (proxy: TestProxy, stream: string) =>
    httpRequest(`${proxy.mediaUrl}/rtc/v1/publish/`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ streamurl: `webrtc://127.0.0.1/live/${stream}`, sdp: OFFER })
    })

  live("a second WHIP (or legacy publish) for a published stream is a 409 that the origin never sees", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin()
      const first = yield* post(proxy, "whip", "s")
      assert.strictEqual(first.status, 201, first.body)

      const second = assertJsonError(yield* post(proxy, "whip", "s"), 409)
      assert.deepStrictEqual(second, { code: "conflict", message: CONFLICT })
      assert.deepStrictEqual(assertJsonError(yield* legacyPublish(proxy, "s"), 409), second)
      assert.strictEqual(posts(origin).length, 1, "only the first offer reached the origin")
      assert.strictEqual((yield* proxy.relay.stats).sessions, 1)

      // Other streams are not concerned.
      assert.strictEqual((yield* post(proxy, "whip", "other")).status, 201)
    }))

  live("players join a published stream as usual", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin()
      assert.strictEqual((yield* post(proxy, "whip", "s")).status, 201)
      for (let i = 0; i < 2; i++) {
        const played = yield* post(proxy, "whep", "s")
        assert.strictEqual(played.status, 201, played.body)
      }
      assert.strictEqual(posts(origin).length, 3)
      assert.strictEqual((yield* proxy.relay.stats).sessions, 3)
    }))

  live("once the publisher is deleted, or its relay session ends, a new WHIP is accepted", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin()
      const first = yield* post(proxy, "whip", "s")
      assert.strictEqual(first.status, 201, first.body)
      const deleted = yield* httpRequest(new URL(first.headers.location!, proxy.mediaUrl).href, { method: "DELETE" })
      assert.strictEqual(deleted.status, 200, deleted.body)

      const second = yield* post(proxy, "whip", "s")
      assert.strictEqual(second.status, 201, second.body)
      assertJsonError(yield* post(proxy, "whip", "s"), 409)
      // Idle (the client went away without DELETE): the same.
      assert.isTrue(yield* proxy.relay.close(sessionIdOf(second, proxy, "whip"), "idle"))
      assert.strictEqual((yield* post(proxy, "whip", "s")).status, 201)
      assert.strictEqual(posts(origin).length, 3)
    }))
})

describe("origin registration (system API)", () => {
  // The example heartbeat of srs.md, as SRS posts it.
  const SRS_HEARTBEAT =
    "{\"device_id\":\"origin2\",\"ip\":\"10.0.0.7\",\"server\":\"vid-46p14mm\",\"service\":\"z2s3w865\",\"pid\":\"42583\",\"rtmp\":[\"19352\"],\"http\":[\"8082\"],\"api\":[\"19853\"],\"rtc\":[\"udp://8001\"]}"
  const register = (proxy: TestProxy, body: string, headers: Record<string, string> = {}) =>
    httpRequest(`${proxy.systemUrl}/api/v1/srs/register`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body
    })

  live("SRS's exact heartbeat is accepted: 200 {code: 0, pid}", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy()
      const response = yield* register(proxy, SRS_HEARTBEAT)
      assert.strictEqual(response.status, 200, response.body)
      assert.deepStrictEqual(JSON.parse(response.body), { code: 0, pid: String(process.pid) })
      const origin = Option.getOrUndefined(yield* proxy.balancer.find(OriginId.make("vid-46p14mm-z2s3w865-42583")))
      assert.strictEqual(origin?.ip, "10.0.0.7")
      assert.strictEqual(origin?.apiPort, 19853)
      assert.deepStrictEqual(origin?.rtc, [{ protocol: "udp", host: undefined, port: 8001 }])
    }))

  live("an invalid heartbeat is a 400 that says why", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy()
      const heartbeat = JSON.parse(SRS_HEARTBEAT) as Record<string, unknown>
      const { ip: _ip, ...withoutIp } = heartbeat
      assert.match(assertJsonError(yield* register(proxy, JSON.stringify(withoutIp)), 400).message, /\bip\b/)
      assert.match(assertJsonError(yield* register(proxy, JSON.stringify({ ...heartbeat, rtmp: [] })), 400).message, /rtmp/)
      assertJsonError(yield* register(proxy, "{\"ip\": \"10.0.0.7\", "), 400)
      assertJsonError(yield* register(proxy, "not json at all"), 400)
      assert.deepStrictEqual(yield* proxy.balancer.origins, [])
    }))

  live("with systemApiToken, a heartbeat needs the bearer token", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy({ systemApiToken: Option.some("s3cret") })
      assertJsonError(yield* register(proxy, SRS_HEARTBEAT), 401)
      assertJsonError(yield* register(proxy, SRS_HEARTBEAT, { authorization: "Bearer wrong" }), 401)
      assert.deepStrictEqual(yield* proxy.balancer.origins, [])
      const accepted = yield* register(proxy, SRS_HEARTBEAT, { authorization: "Bearer s3cret" })
      assert.strictEqual(accepted.status, 200, accepted.body)
      assert.strictEqual((yield* proxy.balancer.origins).length, 1)
    }))
})

describe("sticky origin per stream", () => {
  /** Which of the origins got the last POST for `stream`. */
  const servedBy = (origins: ReadonlyArray<FakeSrsApi>, stream: string) =>
    origins.filter((origin) => posts(origin).some((r) => new URL(r.url, "http://o").searchParams.get("stream") === stream))

  live("streams spread over two origins, and every request for one stream goes to one origin", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy()
      const a = yield* fakeSrsApi({ name: "a", ufragPrefix: "a" })
      const b = yield* fakeSrsApi({ name: "b", ufragPrefix: "b" })
      assert.strictEqual((yield* a.register(proxy.systemUrl)).status, 200)
      assert.strictEqual((yield* b.register(proxy.systemUrl)).status, 200)
      const streams = Array.from({ length: 24 }, (_, i) => `spread${i}`)
      for (const stream of streams) assert.strictEqual((yield* post(proxy, "whip", stream)).status, 201)
      assert.isAbove(posts(a).length, 0, "origin a got streams")
      assert.isAbove(posts(b).length, 0, "origin b got streams")

      // Players: a second publisher of a stream would be refused (409) before any origin sees it.
      for (const stream of streams.slice(0, 4)) {
        const [owner] = servedBy([a, b], stream)
        for (let i = 0; i < 3; i++) assert.strictEqual((yield* post(proxy, "whep", stream)).status, 201)
        assert.deepStrictEqual(servedBy([a, b], stream), [owner!], `${stream} stays on one origin`)
        assert.strictEqual(posts(owner!).filter((r) => r.url.includes(`stream=${stream}&`) || r.url.endsWith(`stream=${stream}`)).length, 4)
      }
    }))

  live("a stream whose origin stopped its heartbeat past originTtl moves to a live origin", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy({ originTtl: Duration.millis(500) })
      const a = yield* fakeSrsApi({ name: "a", ufragPrefix: "a" })
      const b = yield* fakeSrsApi({ name: "b", ufragPrefix: "b" })
      assert.strictEqual((yield* a.register(proxy.systemUrl)).status, 200)
      assert.strictEqual((yield* post(proxy, "whip", "moving")).status, 201)
      assert.strictEqual(posts(a).length, 1)
      // b comes up and keeps beating; a falls silent.
      yield* b.register(proxy.systemUrl).pipe(
        Effect.zipRight(Effect.sleep(Duration.millis(100))),
        Effect.forever,
        Effect.forkScoped
      )
      yield* eventually(Effect.map(proxy.balancer.origins, (origins) => assert.strictEqual(origins.length, 2)))
      assert.strictEqual((yield* post(proxy, "whep", "moving")).status, 201)
      assert.strictEqual(posts(a).length, 2, "still sticky while a is healthy")
      assert.strictEqual(posts(b).length, 0)

      yield* Effect.sleep(Duration.millis(600))
      assert.strictEqual((yield* post(proxy, "whep", "moving")).status, 201)
      assert.strictEqual(posts(b).length, 1, "moved to b")
      assert.strictEqual(posts(a).length, 2)
      assert.deepStrictEqual(yield* proxy.balancer.streams, [
        { streamUrl: StreamKey.make("__defaultVhost__/live/moving"), originId: OriginId.make("srv-b-svc1-4242") }
      ])
    }))
})

describe("legacy JSON API", () => {
  live("/rtc/v1/publish/: JSON to the origin's /rtc/v1/publish/, 200 JSON back with the rewritten sdp", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin()
      const request = {
        api: `${proxy.mediaUrl}/rtc/v1/publish/`,
        tid: "7e1a2b",
        streamurl: "webrtc://127.0.0.1/live/s",
        clientip: null,
        sdp: OFFER
      }
      const response = yield* httpRequest(`${proxy.mediaUrl}/rtc/v1/publish/`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(request)
      })
      assert.strictEqual(response.status, 200, response.body)
      assert.match(String(response.headers["content-type"]), /^application\/json/)
      const answer = JSON.parse(response.body) as { code: number; sdp: string; sessionid: string }
      assert.strictEqual(answer.code, 0)
      assert.strictEqual(answer.sessionid, "srv1:cli1")
      assertProxyCandidates(answer.sdp, proxy)
      assert.match(answer.sdp, /^a=ice-ufrag:srv1\r$/m)

      const [forwarded] = posts(origin)
      assert.strictEqual(forwarded?.url, "/rtc/v1/publish/")
      assert.match(String(forwarded?.headers["content-type"]), /^application\/json/)
      const body = JSON.parse(forwarded!.body) as Record<string, unknown>
      assert.strictEqual(body["streamurl"], request.streamurl)
      assert.strictEqual(body["tid"], request.tid)
      assert.strictEqual(body["api"], request.api)
      assert.strictEqual(body["clientip"], "127.0.0.1")
      assert.strictEqual(body["sdp"], OFFER_WITHOUT_CANDIDATES)

      const [view] = yield* proxy.relay.sessions
      assert.strictEqual(view?.kind, "publish")
      assert.strictEqual(view?.streamUrl, "__defaultVhost__/live/s")
      assert.deepStrictEqual(view?.ufragPairs, ["srv1:cli1"])
    }))

  live("GET /api/v1/stats on the system API shows origins, streams, sessions and drops (token-protected)", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy({ systemApiToken: Option.some("s3cret") })
      const origin = yield* fakeSrsApi()
      // SRS cannot send headers: its heartbeat URL carries the token.
      const registered = yield* httpRequest(`${proxy.systemUrl}/api/v1/srs/register?token=s3cret`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(origin.heartbeatBody)
      })
      assert.strictEqual(registered.status, 200, registered.body)
      const created = yield* post(proxy, "whip", "watched")
      assert.strictEqual(created.status, 201, created.body)
      assertJsonError(yield* httpRequest(`${proxy.systemUrl}/api/v1/stats`), 401)
      const response = yield* httpRequest(`${proxy.systemUrl}/api/v1/stats`, { headers: { authorization: "Bearer s3cret" } })
      assert.strictEqual(response.status, 200, response.body)
      const stats = JSON.parse(response.body) as {
        origins: Array<{ healthy: boolean }>
        streams: Array<{ streamUrl: string }>
        relay: { sessions: number; drops: Record<string, number>; ended: Record<string, number> }
        process: { uptimeSeconds: number; memory: { rss: number; heapUsed: number } }
      }
      assert.lengthOf(stats.origins, 1)
      assert.isTrue(stats.origins[0]!.healthy)
      assert.deepStrictEqual(stats.streams.map((s) => s.streamUrl), ["__defaultVhost__/live/watched"])
      assert.strictEqual(stats.relay.sessions, 1)
      assert.strictEqual(stats.relay.drops["bad-integrity"], 0)
      assert.strictEqual(stats.relay.ended["idle"], 0)
      assert.isAbove(stats.process.memory.rss, stats.process.memory.heapUsed)
      assert.isAtLeast(stats.process.uptimeSeconds, 0)
    }))

  live("PATCH: trickled candidates are answered 204 by the proxy; an ICE restart goes to the origin and adds the new ufrag pair", () =>
    Effect.gen(function*() {
      const { proxy, origin } = yield* proxyWithOrigin()
      const created = yield* post(proxy, "whip", "restart")
      assert.strictEqual(created.status, 201, created.body)
      const id = sessionIdOf(created, proxy, "whip")
      const sessionUrl = `${proxy.mediaUrl}/rtc/v1/whip/sessions/${id}`
      const fragment = { "content-type": "application/trickle-ice-sdpfrag" }

      // Trickle ICE: the same client ufrag with a candidate; the origin only ever talks to the proxy.
      const trickle = yield* httpRequest(sessionUrl, {
        method: "PATCH",
        headers: fragment,
        body: "a=ice-ufrag:cli1\r\na=ice-pwd:clientIcePassword012345678\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 1 192.168.1.10 50001 typ host\r\n"
      })
      assert.strictEqual(trickle.status, 204)
      assert.isEmpty(origin.requests.filter((r) => r.method === "PATCH"))

      // ICE restart: new client credentials; the origin answers with new server credentials.
      origin.handler = (request, res, req) => {
        if (request.method !== "PATCH") return origin.srs(request, res, req)
        res.writeHead(200, { "Content-Type": "application/trickle-ice-sdpfrag", ETag: "\"restart-2\"" })
        res.end(
          "a=ice-ufrag:srv9\r\na=ice-pwd:serverPasswordAfterRestart01\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
            `a=candidate:0 1 udp 2130706431 127.0.0.1 ${origin.mediaPort} typ host generation 0\r\n`
        )
      }
      const restart = yield* httpRequest(sessionUrl, {
        method: "PATCH",
        headers: { ...fragment, "if-match": "*" },
        body: "a=ice-ufrag:cli2\r\na=ice-pwd:clientPasswordAfterRestart1\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 1 192.168.1.10 50002 typ host\r\n"
      })
      assert.strictEqual(restart.status, 200, restart.body)
      assert.strictEqual(restart.headers["etag"], "\"restart-2\"")
      assertProxyCandidates(restart.body, proxy)
      const [forwarded] = origin.requests.filter((r) => r.method === "PATCH")
      assert.match(forwarded!.url, /^\/rtc\/v1\/whip\/\?action=delete/)
      assert.strictEqual(forwarded!.headers["if-match"], "*")
      assert.notInclude(forwarded!.body, "a=candidate")
      // Both pairs work until the client switches to the new one.
      const [view] = yield* proxy.relay.sessions
      assert.deepStrictEqual(view?.ufragPairs, ["srv1:cli1", "srv9:cli2"])
    }))
  live("PATCH application/sdp: 415 on a WHIP session, 400 on a WHEP one when it is no SDP; a binary fragment 400; OPTIONS says what each takes; the origin is not asked", () =>
    Effect.gen(function*() {
      const { proxy, origin } = yield* proxyWithOrigin()
      const publish = yield* post(proxy, "whip", "sdp-patch")
      assert.strictEqual(publish.status, 201, publish.body)
      const onPublish = yield* httpRequest(`${proxy.mediaUrl}${publish.headers["location"]}`, {
        method: "PATCH",
        headers: SDP,
        body: "hello"
      })
      assert.match(assertJsonError(onPublish, 415).message, /trickle-ice-sdpfrag/)
      const play = yield* post(proxy, "whep", "sdp-patch")
      assert.strictEqual(play.status, 201, play.body)
      const notSdp = yield* httpRequest(`${proxy.mediaUrl}${play.headers["location"]}`, { method: "PATCH", headers: SDP, body: "hello" })
      assert.match(assertJsonError(notSdp, 400).message, /not an SDP answer/)
      const binaryTrickle = yield* httpRequest(`${proxy.mediaUrl}${publish.headers["location"]}`, {
        method: "PATCH",
        headers: { "content-type": "application/trickle-ice-sdpfrag" },
        body: "\u0000\u0001\u0002junk"
      })
      assert.match(assertJsonError(binaryTrickle, 400).message, /not an SDP fragment/)
      // Discovery (OPTIONS, not a preflight) says what each resource takes.
      const atSession = yield* httpRequest(`${proxy.mediaUrl}${publish.headers["location"]}`, { method: "OPTIONS" })
      assert.strictEqual(atSession.status, 204)
      assert.strictEqual(atSession.headers["accept-patch"], "application/trickle-ice-sdpfrag")
      assert.isUndefined(atSession.headers["accept-post"])
      const elsewhere = yield* httpRequest(`${proxy.mediaUrl}/api/v1/versions`, { method: "OPTIONS" })
      assert.isUndefined(elsewhere.headers["accept-post"])
      assert.strictEqual((yield* httpRequest(proxy.endpoint("whep", "x"), { method: "OPTIONS" })).headers["accept-post"], "application/sdp")
      assert.isEmpty(origin.requests.filter((r) => r.method === "PATCH"))
    }))
  live("PATCH ICE restart: without a usable ice-pwd 400; an origin's other refusal (500) passed on; a session restarted by the proxy stays with it", () =>
    Effect.gen(function*() {
      const { proxy, origin } = yield* proxyWithOrigin()
      const created = yield* post(proxy, "whip", "restart-edges")
      assert.strictEqual(created.status, 201, created.body)
      const sessionUrl = `${proxy.mediaUrl}${created.headers["location"]}`
      const restart = (body: string) =>
        httpRequest(sessionUrl, { method: "PATCH", headers: { "content-type": "application/trickle-ice-sdpfrag", "if-match": "*" }, body })
      assertJsonError(yield* restart("a=ice-ufrag:cli2\r\n"), 400)
      assertJsonError(yield* restart("a=ice-ufrag:cli2\r\na=ice-pwd:not valid\r\n"), 400)
      assert.isEmpty(origin.requests.filter((r) => r.method === "PATCH"))

      origin.handler = (request, res, req) => {
        if (request.method !== "PATCH") return origin.srs(request, res, req)
        res.writeHead(500, { "Content-Type": "application/json" })
        res.end(JSON.stringify({ code: 500 }))
      }
      const failed = yield* restart("a=ice-ufrag:cli2\r\na=ice-pwd:clientPasswordAfterRestart1\r\n")
      assert.strictEqual(failed.status, 500)
      assert.deepStrictEqual((yield* proxy.relay.sessions)[0]?.ufragPairs, ["srv1:cli1"], "nothing learnt")

      origin.handler = origin.srs // 404 for PATCH, as SRS
      const byProxy = yield* restart("a=ice-ufrag:cli2\r\na=ice-pwd:clientPasswordAfterRestart1\r\n")
      assert.strictEqual(byProxy.status, 200, byProxy.body)
      assert.lengthOf(origin.requests.filter((r) => r.method === "PATCH"), 2)
      // The origin still holds the credentials of the offer: later restarts are the proxy's alone.
      const again = yield* restart("a=ice-ufrag:cli3\r\na=ice-pwd:clientPasswordAfterRestart2\r\n")
      assert.strictEqual(again.status, 200, again.body)
      assert.lengthOf(origin.requests.filter((r) => r.method === "PATCH"), 2)
      const pairs = (yield* proxy.relay.sessions)[0]?.ufragPairs ?? []
      assert.lengthOf(pairs, 3, "the offer's pair and both restarts' until the client checks with the newest")
      assert.match(pairs[2]!, /:cli3$/)
    }))
})
