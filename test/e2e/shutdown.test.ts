// The proxy as an operator runs it (npm start's entry in a child process): SIGTERM with live relay
// sessions drains them and exits 0 well within the grace period; a bad setting stops start-up with
// one line naming it.
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { binding, SERVER_PWD } from "../support/relay.js"
import { fakeSrsApi } from "../support/fakeSrsApi.js"
import { httpRequest } from "../support/http.js"
import { minimalOffer } from "../support/offers.js"
import { defaultBackendEnv, exitedWithin, freeTcpPort, freeUdpPort, startMain } from "../support/process.js"
import { udpPeer } from "../support/udpPeer.js"
import { waitUntil } from "../support/wait.ts"

describe("the proxy process", () => {
  it.scopedLive("SIGTERM with live sessions: every session ends, exit code 0, within the grace period", () =>
    Effect.gen(function*() {
      const origin = yield* fakeSrsApi()
      const [http, system, udp] = yield* Effect.promise(() => Promise.all([freeTcpPort(), freeTcpPort(), freeUdpPort()]))
      const running = yield* Effect.acquireRelease(
        Effect.sync(() =>
          startMain(defaultBackendEnv({ http, system, udp }, origin))
        ),
        (running) => Effect.sync(() => running.child.kill("SIGKILL"))
      )
      yield* Effect.promise(() => waitUntil("the proxy listening", () => running.output().includes("WHIP/WHEP on"), 15_000))

      const SESSIONS = 5
      const client = yield* udpPeer()
      for (let n = 0; n < SESSIONS; n++) {
        const answer = yield* httpRequest(`http://127.0.0.1:${http}/rtc/v1/whip/?app=live&stream=s${n}`, {
          method: "POST",
          headers: { "content-type": "application/sdp" },
          body: minimalOffer()
        })
        assert.strictEqual(answer.status, 201, answer.body)
        const serverUfrag = /a=ice-ufrag:(\S+)/.exec(answer.body)![1]!
        client.send(binding(`${serverUfrag}:cli1`, SERVER_PWD), udp)
      }

      const started = Date.now()
      running.child.kill("SIGTERM")
      const code = yield* Effect.promise(() => running.exited)
      const tookMs = Date.now() - started
      assert.strictEqual(code, 0, running.output())
      assert.isBelow(tookMs, 20_000)
      assert.strictEqual(running.output().match(/relay session ended \(shutdown/g)?.length, SESSIONS, running.output())
    }), { timeout: 60_000 })

  it.scopedLive("SIGTERM turns /readyz 503 on both ports at once; a request in flight still gets its answer", () =>
    Effect.gen(function*() {
      const origin = yield* fakeSrsApi()
      // The origin holds the offer for a while: the proxy must keep serving until it is answered.
      origin.handler = (request, res, req) => setTimeout(() => origin.srs(request, res, req), 1500)
      const [http, system, udp] = yield* Effect.promise(() => Promise.all([freeTcpPort(), freeTcpPort(), freeUdpPort()]))
      const running = yield* Effect.acquireRelease(
        Effect.sync(() => startMain(defaultBackendEnv({ http, system, udp }, origin))),
        (running) => Effect.sync(() => running.child.kill("SIGKILL"))
      )
      yield* Effect.promise(() => waitUntil("the proxy listening", () => running.output().includes("WHIP/WHEP on"), 15_000))
      for (const port of [http, system]) {
        assert.strictEqual((yield* httpRequest(`http://127.0.0.1:${port}/readyz`)).status, 200)
      }

      const offer = yield* Effect.fork(httpRequest(`http://127.0.0.1:${http}/rtc/v1/whip/?app=live&stream=drain`, {
        method: "POST",
        headers: { "content-type": "application/sdp" },
        body: minimalOffer()
      }))
      yield* Effect.promise(() => waitUntil("the offer at the origin", () => origin.requests.length > 0, 5000))
      running.child.kill("SIGTERM")
      yield* Effect.promise(() => waitUntil("the signal handled", () => running.output().includes("draining"), 5000))
      for (const port of [http, system]) {
        const ready = yield* httpRequest(`http://127.0.0.1:${port}/readyz`)
        assert.strictEqual(ready.status, 503, ready.body)
        assert.strictEqual(JSON.parse(ready.body).checks.draining, "shutting down")
        assert.strictEqual((yield* httpRequest(`http://127.0.0.1:${port}/healthz`)).status, 200)
      }
      const answer = yield* Fiber.join(offer)
      assert.strictEqual(answer.status, 201, answer.body)
      assert.strictEqual(yield* Effect.promise(() => running.exited), 0, running.output())
    }), { timeout: 60_000 })

  it.live("a bad setting stops start-up with one line that names it, exit code 1", () =>
    Effect.gen(function*() {
      const running = startMain({ PROXY_HTTP_API: "eleven", PROXY_LISTEN_HOST: "127.0.0.1" })
      const code = yield* Effect.promise(() => running.exited)
      assert.strictEqual(code, 1)
      const lines = running.output().trim().split("\n")
      assert.lengthOf(lines, 1, running.output())
      assert.match(lines[0]!, /^rtc-proxy cannot start: .*PROXY_HTTP_API/)
    }), { timeout: 30_000 })

  it.live("HTTPS half configured, or a certificate that cannot be read: start-up stops, its last line naming the variable", () =>
    Effect.gen(function*() {
      for (
        const [env, expected] of [
          [{ PROXY_HTTPS_CERT: "/etc/ssl/certs/proxy.pem" }, /^rtc-proxy cannot start: .*PROXY_HTTPS_KEY.*HTTPS needs both/],
          [
            { PROXY_HTTPS_CERT: "/nonexistent/proxy.pem", PROXY_HTTPS_KEY: "/nonexistent/proxy.key" },
            /^rtc-proxy cannot start: cannot read PROXY_HTTPS_CERT \(\/nonexistent\/proxy\.pem\): ENOENT/
          ]
        ] as const
      ) {
        const [http, system, udp, https] = yield* Effect.promise(() => Promise.all([freeTcpPort(), freeTcpPort(), freeUdpPort(), freeTcpPort()]))
        const running = startMain({
          PROXY_LISTEN_HOST: "127.0.0.1",
          PROXY_HTTP_API: String(http),
          PROXY_SYSTEM_API: String(system),
          PROXY_WEBRTC_SERVER: String(udp),
          PROXY_HTTPS_API: String(https),
          ...env
        })
        const code = yield* Effect.tryPromise({ try: () => exitedWithin(running, 20_000), catch: (error) => error as Error }).pipe(Effect.orDie)
        assert.strictEqual(code, 1, running.output())
        // The certificate is read when the listeners bind: the UDP port's info line may come first.
        const lines = running.output().trim().split("\n")
        assert.lengthOf(lines.filter((line) => line.includes("cannot start")), 1, running.output())
        assert.match(lines.at(-1)!, expected)
      }
    }), { timeout: 30_000 })
})
