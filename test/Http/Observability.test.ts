// /metrics, /healthz and /readyz through the whole proxy: series that move with a WHIP session through
// a fake origin, the system token, both ports, and readiness with Redis gone and back.
import { assert, describe } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { eventually } from "../support/eventually.js"
import { fakeSrsApi } from "../support/fakeSrsApi.js"
import { httpRequest } from "../support/http.js"
import { live } from "../support/live.js"
import { minimalOffer } from "../support/offers.js"
import { startProxy, type TestProxy } from "../support/proxy.js"
import { tcpPeer } from "../support/tcpPeer.js"
import { REDIS_SERVER, redisServer } from "../support/redisServer.js"

/** Every sample of a scrape, by series (name and labels, minus the OpenTelemetry scope label). */
const samples = (text: string): Map<string, number> => {
  const found = new Map<string, number>()
  for (const line of text.split("\n")) {
    const match = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null) continue
    const labels = (match[2] ?? "").split(/,(?=\w+=)/).filter((label) => label !== "" && !label.startsWith("otel_scope"))
    found.set(labels.length === 0 ? match[1]! : `${match[1]}{${labels.join(",")}}`, Number(match[3]))
  }
  return found
}

const scrape = (proxy: TestProxy, headers: Record<string, string> = {}) =>
  Effect.map(httpRequest(`${proxy.systemUrl}/metrics`, { headers }), (result) => {
    assert.strictEqual(result.status, 200, result.body)
    assert.match(String(result.headers["content-type"]), /^text\/plain/)
    return samples(result.body)
  })

const value = (series: Map<string, number>, name: string) => series.get(name) ?? 0

describe("observability", () => {
  live("a WHIP session moves sessions, signaling and origin series; relay and process series are there", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy()
      const origin = yield* fakeSrsApi()
      yield* origin.register(proxy.systemUrl)
      const before = yield* scrape(proxy)

      const answer = yield* httpRequest(proxy.endpoint("whip", "metrics"), {
        method: "POST",
        headers: { "content-type": "application/sdp" },
        body: minimalOffer()
      })
      assert.strictEqual(answer.status, 201, answer.body)
      const after = yield* scrape(proxy)

      const whip = `rtc_proxy_signaling_request_duration_seconds_count{route="/rtc/v1/whip",method="POST",status="201"}`
      assert.strictEqual(value(after, whip) - value(before, whip), 1)
      const offers = `rtc_proxy_origin_request_duration_seconds_count{method="POST",outcome="2xx"}`
      assert.strictEqual(value(after, offers) - value(before, offers), 1)
      const opened = `rtc_proxy_sessions_opened_total{kind="publish"}`
      assert.strictEqual(value(after, opened) - value(before, opened), 1)
      assert.strictEqual(value(after, `rtc_proxy_sessions_active{kind="publish"}`), 1)
      assert.strictEqual(value(after, "rtc_proxy_origins"), 1)
      assert.strictEqual(value(after, "rtc_proxy_origins_healthy"), 1)
      assert.strictEqual(value(after, "rtc_proxy_load_balancer_up"), 1)
      for (
        const name of [
          `rtc_proxy_packets_total{direction="from_client"}`,
          `rtc_proxy_bytes_total{direction="from_origin"}`,
          `rtc_proxy_drops_total{reason="unknown-ufrag"}`,
          "rtc_proxy_process_cpu_seconds_total",
          `rtc_proxy_event_loop_delay_seconds{stat="p99"}`
        ]
      ) assert.isTrue(after.has(name), name)
      assert.isAbove(value(after, "rtc_proxy_process_resident_memory_bytes"), 10_000_000)

      const location = answer.headers["location"]!
      const deleted = yield* httpRequest(`${proxy.mediaUrl}${location}`, { method: "DELETE" })
      assert.strictEqual(deleted.status, 200)
      const ended = yield* scrape(proxy)
      const byDelete = `rtc_proxy_sessions_ended_total{reason="deleted",kind="publish"}`
      assert.strictEqual(value(ended, byDelete) - value(before, byDelete), 1)
      assert.strictEqual(value(ended, `rtc_proxy_sessions_active{kind="publish"}`), 0)
      const session = `rtc_proxy_signaling_request_duration_seconds_count{route="/rtc/v1/whip/sessions/:id",method="DELETE",status="200"}`
      assert.strictEqual(value(ended, session), 1)
    }))

  live("with ICE-TCP on, its connections and closes by reason are series too", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy({ iceTcp: Option.some({ host: Option.none(), port: 0 }) })
      const open = yield* tcpPeer(proxy.tcpPort!)
      const junk = yield* tcpPeer(proxy.tcpPort!)
      junk.sendRaw(Buffer.from([0xff, 0xff]))
      yield* Effect.promise(() => junk.closed)
      yield* eventually(Effect.map(proxy.iceTcp.stats, (stats) => assert.strictEqual(stats.connections, 1)))
      const series = yield* scrape(proxy)
      assert.strictEqual(value(series, "rtc_proxy_ice_tcp_connections"), 1)
      assert.strictEqual(value(series, `rtc_proxy_ice_tcp_connections_closed_total{reason="oversized"}`), 1)
      assert.isTrue(series.has(`rtc_proxy_ice_tcp_connections_closed_total{reason="refused"}`))
      assert.isTrue(series.has(`rtc_proxy_drops_total{reason="ice-tcp-backpressure"}`))
      assert.isFalse(open.isClosed())
    }))

  live("ICE restarts are counted by who carried them out", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy()
      const origin = yield* fakeSrsApi()
      yield* origin.register(proxy.systemUrl)
      const created = yield* httpRequest(proxy.endpoint("whip", "restarts"), {
        method: "POST",
        headers: { "content-type": "application/sdp" },
        body: minimalOffer()
      })
      assert.strictEqual(created.status, 201, created.body)
      const before = yield* scrape(proxy)
      const restart = yield* httpRequest(`${proxy.mediaUrl}${created.headers["location"]}`, {
        method: "PATCH",
        headers: { "content-type": "application/trickle-ice-sdpfrag", "if-match": "*" },
        body: "a=ice-ufrag:cli2\r\na=ice-pwd:clientPasswordAfterRestart1\r\n"
      })
      assert.strictEqual(restart.status, 200, restart.body)
      const after = yield* scrape(proxy)
      const byProxy = `rtc_proxy_ice_restarts_total{by="proxy"}`
      assert.strictEqual(value(after, byProxy) - value(before, byProxy), 1)
    }))

  live("/metrics needs the system token when it is set, and is not on the media port", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy({ systemApiToken: Option.some("s3cret") })
      assert.strictEqual((yield* httpRequest(`${proxy.systemUrl}/metrics`)).status, 401)
      assert.strictEqual((yield* httpRequest(`${proxy.systemUrl}/metrics`, { headers: { authorization: "Bearer nope" } })).status, 401)
      const allowed = yield* scrape(proxy, { authorization: "Bearer s3cret" })
      assert.isTrue(allowed.has("rtc_proxy_process_resident_memory_bytes"))
      assert.strictEqual((yield* httpRequest(`${proxy.mediaUrl}/metrics`)).status, 404)
      // Health needs no token, on either port.
      assert.strictEqual((yield* httpRequest(`${proxy.systemUrl}/readyz`)).status, 200)
    }))

  live("/healthz and /readyz answer on both ports", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy()
      for (const base of [proxy.mediaUrl, proxy.systemUrl]) {
        const alive = yield* httpRequest(`${base}/healthz`)
        assert.strictEqual(alive.status, 200)
        assert.deepStrictEqual(JSON.parse(alive.body), { status: "ok" })
        const ready = yield* httpRequest(`${base}/readyz`)
        assert.strictEqual(ready.status, 200, ready.body)
        assert.deepStrictEqual(JSON.parse(ready.body), {
          status: "ok",
          checks: { udp: "ok", http: "ok", loadBalancer: "ok", draining: "ok" }
        })
      }
    }))

  describe.skipIf(REDIS_SERVER === undefined)("with Redis", () => {
    live("/readyz is 503 naming the load balancer while Redis is gone, and 200 once it is back", () =>
      Effect.gen(function*() {
        const server = yield* redisServer()
        const proxy = yield* startProxy({ loadBalancer: "redis", redis: server.config("ready") })
        assert.strictEqual((yield* httpRequest(`${proxy.systemUrl}/readyz`)).status, 200)
        yield* server.kill
        const down = yield* httpRequest(`${proxy.mediaUrl}/readyz`)
        assert.strictEqual(down.status, 503, down.body)
        const body = JSON.parse(down.body)
        assert.strictEqual(body.status, "unavailable")
        assert.notStrictEqual(body.checks.loadBalancer, "ok")
        assert.strictEqual(body.checks.udp, "ok")
        assert.strictEqual((yield* httpRequest(`${proxy.mediaUrl}/healthz`)).status, 200)
        const metrics = yield* scrape(proxy)
        assert.strictEqual(value(metrics, "rtc_proxy_load_balancer_up"), 0)

        yield* redisServer({ port: server.port })
        yield* eventually(
          Effect.flatMap(httpRequest(`${proxy.mediaUrl}/readyz`), (result) =>
            result.status === 200 ? Effect.void : Effect.fail(result.body)),
          15_000,
          200
        )
      }), 40_000)
  })
})
