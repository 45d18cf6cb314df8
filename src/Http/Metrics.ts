/**
 * The proxy's metrics as Effect `Metric`s, all named `rtc_proxy_*`. Signaling and origin requests
 * are measured as they happen (one histogram update each); relay, origin and process figures are
 * read from their plain counters when `/metrics` is scraped, so the data path never touches a metric.
 * `Prometheus.ts` exports them.
 *
 * @since 0.1.0
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import { monitorEventLoopDelay } from "node:perf_hooks"
import type { OriginFailed, OriginTimeout } from "../Domain/Errors.js"
import { LoadBalancer } from "../LoadBalancer/LoadBalancer.js"
import { IceTcpServer } from "../Tcp/IceTcpServer.js"
import { Relay } from "../Udp/Relay.js"
import type { OriginRequest, OriginResponse } from "./OriginClient.js"

// From 1 ms to 10 s: an offer through a healthy origin takes a few ms, a timeout 5 s or more.
const SECONDS = MetricBoundaries.fromIterable([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])

const signalingDuration = Metric.histogram(
  "rtc_proxy_signaling_request_duration_seconds",
  SECONDS,
  "Requests to the media API (WHIP, WHEP, legacy), by route, method and status"
)
const originDuration = Metric.histogram(
  "rtc_proxy_origin_request_duration_seconds",
  SECONDS,
  "Requests to origins' HTTP APIs, by method and outcome (2xx, 4xx, 5xx, failed, timeout)"
)

const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })

const sessionsActive = Metric.gauge("rtc_proxy_sessions_active", { description: "Relay sessions now, by kind" })
const packets = counter("rtc_proxy_packets_total", "Datagrams relayed, by direction (from_client, from_origin)")
const bytes = counter("rtc_proxy_bytes_total", "Bytes relayed, by direction (from_client, from_origin)")
const drops = counter("rtc_proxy_drops_total", "Datagrams dropped, by reason")
const iceTcpConnections = Metric.gauge("rtc_proxy_ice_tcp_connections", { description: "ICE-TCP connections open now" })
const iceTcpClosed = counter(
  "rtc_proxy_ice_tcp_connections_closed_total",
  "ICE-TCP connections closed, by reason (refused: past the connection cap)"
)
const originsRegistered = Metric.gauge("rtc_proxy_origins", { description: "Origins known to the load balancer" })
const originsHealthy = Metric.gauge("rtc_proxy_origins_healthy", { description: "Origins that can take streams now" })
const loadBalancerUp = Metric.gauge("rtc_proxy_load_balancer_up", {
  description: "1 when the load balancer's state (Redis) could be read at the last scrape"
})
const rss = Metric.gauge("rtc_proxy_process_resident_memory_bytes", { description: "Resident set size" })
const heapUsed = Metric.gauge("rtc_proxy_process_heap_used_bytes", { description: "JavaScript heap in use" })
const cpuSeconds = counter("rtc_proxy_process_cpu_seconds_total", "CPU time, user and system")
const eventLoopDelay = Metric.gauge("rtc_proxy_event_loop_delay_seconds", {
  description: "Event loop delay since the previous scrape: p50, p99 and max"
})

// With PROXY_RTC_WORKERS above 1, each data-plane worker's share of the sums above.
const workerUp = Metric.gauge("rtc_proxy_worker_up", { description: "1 while the data-plane worker runs, by worker" })
const workerSessions = Metric.gauge("rtc_proxy_worker_sessions", { description: "Relay sessions on the data-plane worker, by worker" })
const workerPackets = counter("rtc_proxy_worker_packets_total", "Datagrams relayed by the data-plane worker, by worker")
const workerDrops = counter("rtc_proxy_worker_drops_total", "Datagrams dropped by the data-plane worker, by worker")
const workerHeapUsed = Metric.gauge("rtc_proxy_worker_heap_used_bytes", {
  description: "JavaScript heap in use by the data-plane worker thread, by worker"
})
const workerRestarts = counter("rtc_proxy_worker_restarts_total", "Times the data-plane worker died and was replaced, by worker")

const iceRestarts = counter("rtc_proxy_ice_restarts_total", "ICE restarts, by who carried them out (origin, proxy)")
// Tagged once: tagging builds a new metric key each time.
const iceRestartsBy = { origin: Metric.tagged(iceRestarts, "by", "origin"), proxy: Metric.tagged(iceRestarts, "by", "proxy") }

/** One ICE restart, carried out by the origin (PATCH forwarded) or by the proxy (the origin cannot). */
export const countIceRestart = (by: "origin" | "proxy"): Effect.Effect<void> => Metric.increment(iceRestartsBy[by])

const DELAY_RESOLUTION_MS = 20
// The histogram records each interval of its timer (nanoseconds), the timer's own period included.
const lag = (nanos: number) => Number.isFinite(nanos) ? Math.max(0, nanos / 1e9 - DELAY_RESOLUTION_MS / 1000) : 0

/** The `route` label of a media API path: the router's pattern, so a session id never becomes a label. */
const routeOf = (url: string): string => {
  const query = url.indexOf("?")
  const path = query === -1 ? url : url.slice(0, query)
  const trimmed = path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path
  switch (trimmed) {
    case "/rtc/v1/whip":
    case "/rtc/v1/whep":
    case "/rtc/v1/publish":
    case "/rtc/v1/play":
    case "/rtc/v1/streams":
    case "/api/v1/versions":
    case "/healthz":
    case "/readyz":
    case "/":
    case "/index.html":
    case "/favicon.ico":
      return trimmed
  }
  const session = /^\/rtc\/v1\/(whip|whep)\/sessions\/[^/]+$/.exec(trimmed)
  return session === null ? "other" : `/rtc/v1/${session[1]}/sessions/:id`
}

/**
 * Tagging a metric builds and hashes a new key: each combination of label values is tagged once and
 * kept (a handful of routes, methods, statuses and outcomes).
 */
const seriesOf = <M extends Metric.Metric<any, any, any>>(metric: M, labelNames: ReadonlyArray<string>) => {
  const made = new Map<string, M>()
  return (...values: ReadonlyArray<string>): M => {
    const key = values.join(" ")
    let series = made.get(key)
    if (series === undefined) {
      series = Metric.taggedWithLabels(metric, values.map((value, i) => MetricLabel.make(labelNames[i]!, value))) as M
      made.set(key, series)
    }
    return series
  }
}

const signalingSeries = seriesOf(signalingDuration, ["route", "method", "status"])
const originSeries = seriesOf(originDuration, ["method", "outcome"])
const workerSeries = {
  up: seriesOf(workerUp, ["worker"]),
  sessions: seriesOf(workerSessions, ["worker"]),
  packets: seriesOf(workerPackets, ["worker"]),
  drops: seriesOf(workerDrops, ["worker"]),
  restarts: seriesOf(workerRestarts, ["worker"]),
  heapUsed: seriesOf(workerHeapUsed, ["worker"])
}

/**
 * Starts timing a media API request into `rtc_proxy_signaling_request_duration_seconds`; the returned
 * function records it once it ended (see `Health.track`).
 */
export const timeSignaling = (request: HttpServerRequest.HttpServerRequest) => {
  const started = performance.now()
  return (exit: Exit.Exit<HttpServerResponse.HttpServerResponse, unknown>): void =>
    signalingSeries(routeOf(request.url), request.method, Exit.isSuccess(exit) ? String(exit.value.status) : "500")
      .unsafeUpdate((performance.now() - started) / 1000, [])
}

/** What became of an origin request, as `rtc_proxy_origin_request_duration_seconds` labels it. */
export type OriginOutcome = "1xx" | "2xx" | "3xx" | "4xx" | "5xx" | "interrupted" | "timeout" | "failed"

/** The outcome label of an origin's answer. */
export const answeredOutcome = (status: number): OriginOutcome => `${Math.floor(status / 100)}xx` as OriginOutcome

/** Records one origin request that took `millis`. */
export const recordOrigin = (method: OriginRequest["method"], outcome: OriginOutcome, millis: number): void =>
  originSeries(method, outcome).unsafeUpdate(millis / 1000, [])

/** Times an origin request into `rtc_proxy_origin_request_duration_seconds`, by method and outcome. */
export const measureOrigin = (
  request: OriginRequest,
  send: Effect.Effect<OriginResponse, OriginFailed | OriginTimeout>
): Effect.Effect<OriginResponse, OriginFailed | OriginTimeout> =>
  Effect.suspend(() => {
    const started = performance.now()
    return Effect.onExit(send, (exit) =>
      Effect.sync(() =>
        recordOrigin(
          request.method,
          Exit.isSuccess(exit)
            ? answeredOutcome(exit.value.status)
            : Exit.isInterrupted(exit)
            ? "interrupted"
            : exit.cause._tag === "Fail" && exit.cause.error._tag === "OriginTimeout"
            ? "timeout"
            : "failed",
          performance.now() - started
        )
      ))
  })

/**
 * What brings the scrape-time series up to date: counters that the relay and the process keep
 * themselves are turned into Effect counters by adding what grew since the last scrape.
 */
export const makeScrapeUpdate = Effect.gen(function*() {
  const delay = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const histogram = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS })
      histogram.enable()
      return histogram
    }),
    (histogram) => Effect.sync(() => histogram.disable())
  )
  const last = new Map<string, number>()
  const advance = (metric: Metric.Metric.Counter<number>, key: string, value: number) => {
    const grown = value - (last.get(key) ?? 0)
    last.set(key, value)
    // Adding 0 still shows the series, so that rate() has a start.
    return Metric.incrementBy(metric, Math.max(0, grown))
  }
  const lock = yield* Effect.makeSemaphore(1)

  return Effect.gen(function*() {
    const relay = yield* Relay
    const balancer = yield* LoadBalancer
    const stats = yield* relay.stats
    const sessions = yield* relay.sessions
    const byKind = { publish: 0, play: 0 }
    for (const session of sessions) byKind[session.kind]++
    const updates: Array<Effect.Effect<void>> = [
      Metric.set(Metric.tagged(sessionsActive, "kind", "publish"), byKind.publish),
      Metric.set(Metric.tagged(sessionsActive, "kind", "play"), byKind.play),
      advance(Metric.tagged(packets, "direction", "from_client"), "packets client", stats.relayed.packetsFromClient),
      advance(Metric.tagged(packets, "direction", "from_origin"), "packets origin", stats.relayed.packetsFromOrigin),
      advance(Metric.tagged(bytes, "direction", "from_client"), "bytes client", stats.relayed.bytesFromClient),
      advance(Metric.tagged(bytes, "direction", "from_origin"), "bytes origin", stats.relayed.bytesFromOrigin)
    ]
    for (const [reason, count] of Object.entries(stats.drops)) {
      updates.push(advance(Metric.tagged(drops, "reason", reason), `drop ${reason}`, count))
    }
    for (const worker of stats.workers ?? []) {
      const label = String(worker.worker)
      updates.push(
        Metric.set(workerSeries.up(label), worker.up ? 1 : 0),
        Metric.set(workerSeries.sessions(label), worker.sessions),
        Metric.set(workerSeries.heapUsed(label), worker.heapUsed),
        advance(workerSeries.packets(label), `worker packets ${label}`, worker.packetsRelayed),
        advance(workerSeries.drops(label), `worker drops ${label}`, worker.drops),
        advance(workerSeries.restarts(label), `worker restarts ${label}`, worker.restarts)
      )
    }
    const iceTcp = yield* Effect.serviceOption(IceTcpServer)
    if (Option.isSome(iceTcp) && Option.isSome(iceTcp.value.port)) {
      const tcp = yield* iceTcp.value.stats
      updates.push(
        Metric.set(iceTcpConnections, tcp.connections),
        advance(Metric.tagged(iceTcpClosed, "reason", "refused"), "ice-tcp refused", tcp.refused),
        advance(Metric.tagged(drops, "reason", "ice-tcp-backpressure"), "drop ice-tcp-backpressure", tcp.backpressureDrops)
      )
      for (const [reason, count] of Object.entries(tcp.closed)) {
        updates.push(advance(Metric.tagged(iceTcpClosed, "reason", reason), `ice-tcp ${reason}`, count))
      }
    }
    // With Redis down, the origin gauges keep their last values and the up gauge says so.
    const origins = yield* Effect.either(Effect.timeoutOption(balancer.origins, "1 second"))
    const known = Either.isRight(origins) && origins.right._tag === "Some" ? origins.right.value : undefined
    updates.push(Metric.set(loadBalancerUp, known === undefined ? 0 : 1))
    if (known !== undefined) {
      updates.push(
        Metric.set(originsRegistered, known.length),
        Metric.set(originsHealthy, known.filter((status) => status.healthy).length)
      )
    }
    const memory = process.memoryUsage()
    const cpu = process.cpuUsage()
    updates.push(
      Metric.set(rss, memory.rss),
      Metric.set(heapUsed, memory.heapUsed),
      advance(cpuSeconds, "cpu", (cpu.user + cpu.system) / 1e6),
      Metric.set(Metric.tagged(eventLoopDelay, "stat", "p50"), lag(delay.percentile(50))),
      Metric.set(Metric.tagged(eventLoopDelay, "stat", "p99"), lag(delay.percentile(99))),
      Metric.set(Metric.tagged(eventLoopDelay, "stat", "max"), lag(delay.max))
    )
    delay.reset()
    yield* Effect.all(updates, { discard: true })
  }).pipe(lock.withPermits(1))
})
