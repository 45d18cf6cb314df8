/**
 * The system API, where origins register: SRS's heartbeat to `/api/v1/srs/register`, answered as the
 * Go proxy answers it, with an optional bearer token that the Go proxy lacks.
 *
 * @since 0.1.0
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { timingSafeEqual } from "node:crypto"
import { ProxyConfig } from "../Config.js"
import { BadRequest, Unauthorized } from "../Domain/Errors.js"
import * as Origin from "../Domain/Origin.js"
import { LoadBalancer } from "../LoadBalancer/LoadBalancer.js"
import { IceTcpServer } from "../Tcp/IceTcpServer.js"
import { Relay } from "../Udp/Relay.js"
import { readText } from "./Body.js"

export const VERSION = "0.1.0"

/** `Authorization: Bearer <token>` compared in constant time. */
export const bearerMatches = (header: string | undefined, token: string): boolean => {
  const match = header === undefined ? null : /^Bearer\s+(.+)$/i.exec(header.trim())
  if (match === null) return false
  const given = Buffer.from(match[1]!)
  const expected = Buffer.from(token)
  return given.length === expected.length && timingSafeEqual(given, expected)
}

/** With PROXY_SYSTEM_API_TOKEN set, the system API needs it (header, or ?token= for SRS heartbeats). */
export const requireSystemToken = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const config = yield* ProxyConfig
  if (Option.isSome(config.systemApiToken)) {
    const token = config.systemApiToken.value
    // SRS cannot add headers to its heartbeat, so the token may also come in the URL (?token=).
    const queryToken = new URL(request.url, "http://proxy").searchParams.get("token")
    const allowed = bearerMatches(request.headers["authorization"], token) ||
      (queryToken !== null && bearerMatches(`Bearer ${queryToken}`, token))
    if (!allowed) {
      return yield* new Unauthorized({
        message: request.headers["authorization"] === undefined && queryToken === null
          ? "the system API needs its token: Authorization: Bearer <token>, or ?token=<token> in the URL"
          : "the token given is not the system API's (Authorization: Bearer <token>, or ?token=<token> in the URL)"
      })
    }
  }
})

/** POST /api/v1/srs/register */
export const register = Effect.gen(function*() {
  const config = yield* ProxyConfig
  const balancer = yield* LoadBalancer
  yield* requireSystemToken
  const origin = yield* Either.mapLeft(Origin.fromHeartbeatText(yield* readText(config)), (message) => new BadRequest({ message }))
  const known = Option.isSome(yield* balancer.find(origin.id))
  yield* balancer.register(origin)
  if (!known) {
    yield* Effect.logInfo(
      `origin ${origin.id} registered: ${origin.ip}, api ${origin.apiPort ?? "none"}, rtc ${
        origin.rtc.map((e) => `${e.protocol ?? "udp"}:${e.port}`).join(" ") || "none"
      }`
    )
    if (origin.apiPort === undefined) {
      yield* Effect.logWarning(`origin ${origin.id} announced no HTTP API port; it cannot take WebRTC streams`)
    }
  }
  return HttpServerResponse.unsafeJson({ code: 0, pid: String(process.pid) })
}).pipe(Effect.withSpan("SystemApi.register"))

/** GET /api/v1/versions, in SRS's shape. */
export const versions = Effect.sync(() => {
  const [major, minor, revision] = VERSION.split(".").map(Number)
  return HttpServerResponse.unsafeJson({
    code: 0,
    server: "rtc-proxy",
    pid: String(process.pid),
    data: { major, minor, revision, version: VERSION }
  })
})

/** This process's memory, in bytes (RSS and the JavaScript heap) and uptime. */
const processStats = () => {
  const memory = process.memoryUsage()
  return {
    uptimeSeconds: Math.round(process.uptime()),
    memory: {
      rss: memory.rss,
      heapTotal: memory.heapTotal,
      heapUsed: memory.heapUsed,
      external: memory.external,
      arrayBuffers: memory.arrayBuffers
    }
  }
}

/**
 * GET /api/v1/stats: what the proxy is doing, for operators and benchmarks: origins and their health,
 * stream mappings, relay sessions, packets relayed, every drop and session end by reason, and the
 * ICE-TCP connections (null when ICE-TCP is off).
 */
export const stats = Effect.gen(function*() {
  yield* requireSystemToken
  const balancer = yield* LoadBalancer
  const relay = yield* Relay
  const relayStats = yield* relay.stats
  const iceTcp = yield* Effect.serviceOption(IceTcpServer)
  const iceTcpStats = Option.isSome(iceTcp) && Option.isSome(iceTcp.value.port) ? yield* iceTcp.value.stats : null
  // What this proxy knows by itself is shown even when the shared state (Redis) cannot be read.
  const [origins, streams, failover] = yield* Effect.all([
    Effect.either(balancer.origins),
    Effect.either(balancer.streams),
    balancer.failover
  ])
  const unavailable = Either.isLeft(origins) ? origins.left : Either.isLeft(streams) ? streams.left : undefined
  return HttpServerResponse.unsafeJson({
    code: 0,
    origins: Either.isLeft(origins) ? null : origins.right.map(({ down, healthy, lastSeen, origin }) => ({
      id: origin.id,
      ip: origin.ip,
      api: origin.apiPort ?? null,
      rtc: origin.rtc.map((endpoint) => `${endpoint.protocol ?? "udp"}://${endpoint.port}`),
      healthy,
      down,
      lastSeen: new Date(lastSeen).toISOString()
    })),
    streams: Either.isLeft(streams) ? null : streams.right,
    failover,
    ...(unavailable === undefined ? {} : { sharedState: unavailable.message }),
    relay: relayStats,
    iceTcp: iceTcpStats,
    process: processStats()
  })
})
