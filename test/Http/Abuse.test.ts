// HTTP abuse: slow bodies, floods, too many sessions, missing tokens. Each gets the right 4xx/503 with
// a clear JSON message, and none leaves a session or record behind.
import { assert, describe } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as net from "node:net"
import { parseTrustedProxies } from "../../src/Http/ClientAddress.js"
import { fakeSrsApi } from "../support/fakeSrsApi.js"
import { httpRequest } from "../support/http.js"
import { minimalOffer } from "../support/offers.js"
import { startProxy } from "../support/proxy.js"
import { live } from "../support/live.js"


const proxyWithOrigin = (overrides: Parameters<typeof startProxy>[0] = {}) =>
  Effect.gen(function*() {
    const proxy = yield* startProxy(overrides)
    const origin = yield* fakeSrsApi()
    assert.strictEqual((yield* origin.register(proxy.systemUrl)).status, 200)
    return { proxy, origin }
  })

const whip = (url: string, headers: Record<string, string> = {}) =>
  httpRequest(url, { method: "POST", headers: { "content-type": "application/sdp", ...headers }, body: minimalOffer() })

const jsonCode = (body: string) => (JSON.parse(body) as { code: string }).code

/**
 * Sends headers promising a body, then only part of it, and reads whatever the proxy answers, and
 * whether the proxy ended the connection (else the client gives up after 5 s).
 */
const slowBody = (port: number) =>
  Effect.async<{ readonly answer: string; readonly endedByProxy: boolean }>((resume) => {
    let endedByProxy = false
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.write(
        "POST /rtc/v1/whip/?app=live&stream=slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/sdp\r\n" +
          "Content-Length: 1000\r\n\r\nv=0\r\n"
      )
    })
    let answer = ""
    socket.on("data", (chunk) => (answer += chunk.toString()))
    socket.on("end", () => (endedByProxy = true))
    socket.on("close", () => resume(Effect.succeed({ answer, endedByProxy })))
    socket.on("error", () => resume(Effect.succeed({ answer, endedByProxy })))
    socket.setTimeout(5000, () => socket.destroy())
  })

/** Writes `text` on a new connection and reads the answer until the proxy closes it (5 s at most). */
const rawExchange = (port: number, text: string) =>
  Effect.async<string>((resume) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.write(text))
    let answer = ""
    socket.on("data", (chunk) => (answer += chunk.toString()))
    socket.on("close", () => resume(Effect.succeed(answer)))
    socket.on("error", () => resume(Effect.succeed(answer)))
    socket.setTimeout(5000, () => socket.destroy())
  })

/** The status line and the JSON body of a raw answer. */
const statusAndBody = (answer: string) => {
  const [head, body] = answer.split("\r\n\r\n", 2) as [string, string | undefined]
  return { status: head.split("\r\n")[0]!, head, json: JSON.parse(body ?? "null") as { code: string; message: string } }
}

describe("HTTP abuse", () => {
  live("what Node's parser refuses gets a JSON error and a closed connection, on both ports", () =>
    Effect.gen(function*() {
      const { proxy } = yield* proxyWithOrigin()
      for (const port of [Number(new URL(proxy.mediaUrl).port), Number(new URL(proxy.systemUrl).port)]) {
        for (const junk of ["GARBAGE\r\n\r\n", "FOO / HTTP/1.1\r\nHost: x\r\n\r\n", "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"]) {
          const answer = statusAndBody(yield* rawExchange(port, junk))
          assert.strictEqual(answer.status, "HTTP/1.1 400 Bad Request", JSON.stringify(junk))
          assert.deepStrictEqual(answer.json, { code: "bad-request", message: "the request is not valid HTTP/1.1" })
          assert.match(answer.head, /^connection: close$/im)
          assert.match(answer.head, /^content-type: application\/json$/im)
        }
        const huge = statusAndBody(
          yield* rawExchange(port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`)
        )
        assert.strictEqual(huge.status, "HTTP/1.1 431 Request Header Fields Too Large")
        assert.strictEqual(huge.json.code, "request-header-fields-too-large")
      }
      // The proxy serves on.
      assert.strictEqual((yield* httpRequest(`${proxy.mediaUrl}/healthz`)).status, 200)
      assert.strictEqual((yield* whip(proxy.endpoint("whip", "after-junk"))).status, 201)
    }))


  live("a body that trickles in too slowly gets 408 and the connection closed, and nothing is left behind", () =>
    Effect.gen(function*() {
      const { proxy, origin } = yield* proxyWithOrigin({ bodyTimeout: Duration.millis(300) })
      const { answer, endedByProxy } = yield* slowBody(Number(new URL(proxy.mediaUrl).port))
      assert.match(answer, /^HTTP\/1\.1 408 /)
      assert.include(answer, "\"request-timeout\"")
      // The rest of that body may still arrive: the connection cannot serve another request.
      assert.match(answer, /^connection: close\r$/im)
      assert.isTrue(endedByProxy, answer)
      assert.strictEqual((yield* proxy.relay.stats).sessions, 0)
      assert.isEmpty(origin.requests.filter((r) => r.method === "POST"))
    }))

  live("POST floods from one address get 429 with Retry-After; reads are not limited", () =>
    Effect.gen(function*() {
      const { proxy } = yield* proxyWithOrigin({ rateLimit: { perSecond: 1, burst: 3 } })
      const statuses: Array<number> = []
      for (let n = 0; n < 5; n++) statuses.push((yield* whip(proxy.endpoint("whip", `flood${n}`))).status)
      assert.deepStrictEqual(statuses, [201, 201, 201, 429, 429])
      const limited = yield* whip(proxy.endpoint("whip", "again"))
      assert.strictEqual(jsonCode(limited.body), "too-many-requests")
      assert.isAtLeast(Number(limited.headers["retry-after"]), 1)
      assert.strictEqual((yield* httpRequest(`${proxy.mediaUrl}/api/v1/versions`)).status, 200)
      assert.strictEqual((yield* proxy.relay.stats).sessions, 3)
    }))

  live("behind a trusted proxy two clients are limited separately, and the origin learns each client", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin({
        rateLimit: { perSecond: 1, burst: 2 },
        trustedProxies: Either.getOrThrow(parseTrustedProxies("127.0.0.0/8"))
      })
      const from = (client: string, n: number) => whip(proxy.endpoint("whip", `${client}-${n}`), { "x-forwarded-for": client })
      const statuses: Array<number> = []
      for (let n = 0; n < 3; n++) statuses.push((yield* from("198.51.100.1", n)).status)
      statuses.push((yield* from("198.51.100.2", 0)).status)
      statuses.push((yield* whip(proxy.endpoint("whip", "fwd"), { forwarded: "for=\"[2001:db8::7]:1234\"" })).status)
      assert.deepStrictEqual(statuses, [201, 201, 429, 201, 201])
      const posts = origin.requests.filter((r) => r.method === "POST")
      assert.strictEqual(posts[2]!.headers["x-real-ip"], "198.51.100.2")
      assert.strictEqual(posts[2]!.headers["x-forwarded-for"], "198.51.100.2, 127.0.0.1")
      assert.strictEqual(posts[3]!.headers["x-real-ip"], "2001:db8::7")
      assert.strictEqual(posts[3]!.headers["x-forwarded-for"], "2001:db8::7, 127.0.0.1")
    }))

  live("an untrusted peer's X-Forwarded-For is not believed: every address it claims shares its bucket", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin({
        rateLimit: { perSecond: 1, burst: 2 },
        trustedProxies: Either.getOrThrow(parseTrustedProxies("10.0.0.0/8"))
      })
      const statuses: Array<number> = []
      for (let n = 0; n < 3; n++) statuses.push((yield* whip(proxy.endpoint("whip", `spoof${n}`), { "x-forwarded-for": `198.51.100.${n}` })).status)
      assert.deepStrictEqual(statuses, [201, 201, 429])
      const [first] = origin.requests.filter((r) => r.method === "POST")
      assert.strictEqual(first!.headers["x-real-ip"], "127.0.0.1")
      assert.strictEqual(first!.headers["x-forwarded-for"], "198.51.100.0, 127.0.0.1", "passed on, as any hop would")
    }))

  live("a DELETE of a session is never refused by the rate limiter, even with the bucket drained", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin({ rateLimit: { perSecond: 0.01, burst: 1 } })
      const created = yield* whip(proxy.endpoint("whip", "drained"))
      assert.strictEqual(created.status, 201)
      assert.strictEqual((yield* whip(proxy.endpoint("whip", "more"))).status, 429)
      const deleted = yield* httpRequest(`${proxy.mediaUrl}${created.headers["location"]}`, { method: "DELETE" })
      assert.strictEqual(deleted.status, 200, deleted.body)
      assert.strictEqual((yield* proxy.relay.stats).sessions, 0)
      assert.isTrue(origin.requests.some((r) => r.method === "DELETE"))
      // Other state changes are still limited.
      assert.strictEqual((yield* httpRequest(`${proxy.mediaUrl}${created.headers["location"]}`, { method: "PATCH" })).status, 429)
    }))

  live("past PROXY_MAX_SESSIONS new offers get 503 with Retry-After, before the origin is asked", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin({ maxSessions: 2 })
      assert.strictEqual((yield* whip(proxy.endpoint("whip", "a"))).status, 201)
      assert.strictEqual((yield* whip(proxy.endpoint("whep", "a"))).status, 201)
      const full = yield* whip(proxy.endpoint("whep", "a"))
      assert.strictEqual(full.status, 503)
      assert.strictEqual(jsonCode(full.body), "unavailable")
      assert.isAtLeast(Number(full.headers["retry-after"]), 1)
      assert.lengthOf(origin.requests.filter((r) => r.method === "POST"), 2)
      assert.strictEqual((yield* proxy.relay.stats).sessions, 2)
    }))

  live("with PROXY_HTTP_API_TOKEN, signaling needs the bearer token, which still reaches the origin", () =>
    Effect.gen(function*() {
      const { origin, proxy } = yield* proxyWithOrigin({ mediaApiToken: Option.some("t0ken") })
      const refused = yield* whip(proxy.endpoint("whip", "guarded"))
      assert.strictEqual(refused.status, 401)
      assert.strictEqual(jsonCode(refused.body), "unauthorized")
      assert.strictEqual(refused.headers["www-authenticate"], "Bearer realm=\"rtc-proxy\"")
      assert.match((JSON.parse(refused.body) as { message: string }).message, /needs Authorization: Bearer/)
      const wrong = yield* whip(proxy.endpoint("whip", "guarded"), { authorization: "Bearer nope" })
      assert.strictEqual(wrong.status, 401)
      assert.strictEqual(wrong.headers["www-authenticate"], "Bearer realm=\"rtc-proxy\"")
      assert.match((JSON.parse(wrong.body) as { message: string }).message, /token is not the one this proxy takes/)
      assert.strictEqual((yield* proxy.relay.stats).sessions, 0)
      const accepted = yield* whip(proxy.endpoint("whip", "guarded"), { authorization: "Bearer t0ken" })
      assert.strictEqual(accepted.status, 201, accepted.body)
      const forwarded = origin.requests.filter((r) => r.method === "POST")
      assert.lengthOf(forwarded, 1)
      assert.strictEqual(forwarded[0]!.headers["authorization"], "Bearer t0ken")
      // DELETE needs it too: without it the session stays.
      const location = String(accepted.headers["location"])
      assert.strictEqual((yield* httpRequest(`${proxy.mediaUrl}${location}`, { method: "DELETE" })).status, 401)
      assert.strictEqual((yield* proxy.relay.stats).sessions, 1)
      const deleted = yield* httpRequest(`${proxy.mediaUrl}${location}`, { method: "DELETE", headers: { authorization: "Bearer t0ken" } })
      assert.strictEqual(deleted.status, 200)
      assert.strictEqual((yield* proxy.relay.stats).sessions, 0)
    }))

  live("garbage on the system API gets 400 and registers nothing", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy()
      for (const body of ["{", "null", "[]", "\"x\"", JSON.stringify({ ip: "1.2.3.4" }), "\u0000\u0001"]) {
        const response = yield* httpRequest(`${proxy.systemUrl}/api/v1/srs/register`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body
        })
        assert.strictEqual(response.status, 400, body)
        assert.strictEqual(jsonCode(response.body), "bad-request")
      }
      assert.lengthOf(yield* proxy.balancer.origins, 0)
    }))
})
