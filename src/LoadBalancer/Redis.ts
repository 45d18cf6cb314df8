/**
 * The load balancer on Redis, shared by every proxy that uses the same Redis (and key prefix), under
 * the SRS Go proxy's keys so that both can share one Redis during a migration:
 *
 * - `srs-proxy-server:<origin id>`: the origin's JSON in the Go proxy's shape, expiring
 *   PROXY_ORIGIN_SERVER_TTL after its last heartbeat;
 * - `srs-proxy-all-servers`: a JSON array of those keys, pruned of expired ones at each registration;
 * - `srs-proxy-url:<stream URL>`: the key of the origin chosen for the stream; with
 *   PROXY_STREAM_MAPPING_TTL set, it expires that long after the stream's last pick or live session
 *   (by default it does not, as the Go proxies, which never renew it, expect);
 * - `rtc-proxy-drain:<origin id>`: present while an operator drains the origin (ours: Go proxies
 *   do not read it, and may still choose a draining origin).
 * - `rtc-proxy-origin-down:<origin id>`: ours alone, an origin marked down (it could not be reached),
 *   holding the end of its hold-down; a heartbeat after that deletes it (it expires with the origin
 *   TTL otherwise). Go proxies do not read it.
 *
 * Registration and pick are Lua scripts (`RedisScripts.ts`), so each is atomic. A Redis failure
 * becomes the 503 a client sees here, at the service's boundary.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import { ProxyConfig } from "../Config.js"
import { orSharedStateUnavailable, ServiceUnavailable, sharedStateUnavailable } from "../Domain/Errors.js"
import { canServeWebRtc, formatListen, type ListenEndpoint, Origin, OriginId, parseListen } from "../Domain/Origin.js"
import { StreamKey } from "../Domain/StreamUrl.js"
import { RedisClient } from "../Redis.js"
import * as RenewalSchedule from "../RenewalSchedule.js"
import { whenTracing } from "../Span.js"
import {
  DEFAULT_ORIGIN_DOWN_HOLD,
  LoadBalancer,
  type LoadBalancerShape,
  makeFailoverCounters,
  noHealthyOrigin,
  type OriginStatus
} from "./LoadBalancer.js"
import { KEEP_STREAMS, MARK_DOWN, MARK_UP, PICK, REGISTER } from "./RedisScripts.js"

const SERVER = "srs-proxy-server:"
const ALL_SERVERS = "srs-proxy-all-servers"
const STREAM = "srs-proxy-url:"
const DRAIN = "rtc-proxy-drain:"
const DOWN = "rtc-proxy-origin-down:"

const ListenStrings = Schema.optional(Schema.NullOr(Schema.Array(Schema.String)))

/**
 * An origin as the Go proxy stores it (Go's `SRSServer`, every field `omitempty`): listen endpoints
 * as arrays of strings, `update_at` as RFC 3339. `fixed` is ours (a configured origin); Go ignores it.
 * The PICK script reads `api`.
 */
const GoServer = Schema.Struct({
  ip: Schema.NonEmptyString,
  device_id: Schema.optional(Schema.String),
  server_id: Schema.optional(Schema.String),
  service_id: Schema.optional(Schema.String),
  pid: Schema.optional(Schema.Union(Schema.String, Schema.Number)),
  rtmp: ListenStrings,
  http: ListenStrings,
  api: ListenStrings,
  srt: ListenStrings,
  rtc: ListenStrings,
  update_at: Schema.optional(Schema.String),
  fixed: Schema.optional(Schema.Boolean)
})

// Listen strings that do not parse are skipped: the record may be a Go proxy's, or from a newer SRS.
const parseEndpoints = (values: ReadonlyArray<string> | null | undefined): Array<ListenEndpoint> =>
  (values ?? []).flatMap((value) => Either.match(parseListen(value), { onLeft: () => [], onRight: (e) => [e] }))

/**
 * An origin in Redis, ours or the Go proxy's: its id (the suffix of its key) and its JSON, as the
 * origin and the time of its last heartbeat. Written with the API port alone, which is what the Go
 * proxy can parse.
 */
export const StoredOrigin = Schema.transform(
  Schema.Tuple(OriginId, Schema.parseJson(GoServer)),
  Schema.Struct({ origin: Schema.typeSchema(Origin), lastSeen: Schema.Number }),
  {
    strict: true,
    decode: ([id, server]) => {
      const updated = server.update_at === undefined ? NaN : Date.parse(server.update_at)
      return {
        origin: {
          id,
          ip: server.ip,
          deviceId: server.device_id === "" ? undefined : server.device_id,
          server: server.server_id ?? "",
          service: server.service_id ?? "",
          pid: server.pid === undefined ? "" : String(server.pid),
          apiPort: parseEndpoints(server.api)[0]?.port,
          rtc: parseEndpoints(server.rtc),
          fixed: server.fixed === true
        },
        lastSeen: Number.isNaN(updated) ? 0 : updated
      }
    },
    encode: ({ lastSeen, origin }) =>
      [origin.id, {
        ip: origin.ip,
        ...(origin.deviceId === undefined ? {} : { device_id: origin.deviceId }),
        server_id: origin.server,
        service_id: origin.service,
        pid: origin.pid,
        ...(origin.apiPort === undefined ? {} : { api: [String(origin.apiPort)] }),
        ...(origin.rtc.length === 0 ? {} : { rtc: origin.rtc.map(formatListen) }),
        update_at: new Date(lastSeen).toISOString(),
        ...(origin.fixed ? { fixed: true } : {})
      }] as const
  }
)

const decodeOrigin = Schema.decodeEither(StoredOrigin)
const encodeOrigin = Schema.encode(StoredOrigin)

/** `srs-proxy-all-servers`: a JSON array of origin keys (anything else in it is skipped, as the scripts do). */
const ServerKeys = Schema.parseJson(Schema.transform(Schema.Array(Schema.Unknown), Schema.Array(Schema.String), {
  strict: true,
  decode: (items) => items.filter(Predicate.isString),
  encode: (keys) => keys
}))
const decodeServerKeys = Schema.decodeOption(ServerKeys)

/** Stream keys per KEEP_STREAMS call, so that one call never holds Redis long. */
const KEEP_STREAMS_BATCH = 500

/** At most this many stream mappings are listed (the admin view; a SCAN over the keyspace). */
const MAX_LISTED_STREAMS = 10_000

/**
 * Builds a Redis load balancer. Configured (fixed) origins are renewed by this proxy every third of
 * the TTL (at most every 30 s, as the Go proxy does) for as long as it runs: when it stops, they expire
 * like any origin whose heartbeat stopped, instead of staying in the shared Redis with nobody
 * vouching for them.
 */
export const make = (
  ttl: Duration.Duration,
  streamMappingTtl: Duration.Duration = Duration.zero,
  downHold: Duration.Duration = DEFAULT_ORIGIN_DOWN_HOLD
) =>
  Effect.gen(function*() {
    const redis = yield* RedisClient
    const holdMillis = Math.max(1, Math.round(Duration.toMillis(downHold)))
    const counters = makeFailoverCounters()
    const downKey = (id: OriginId) => redis.key(`${DOWN}${id}`)
    const ttlMillis = Math.max(1, Math.round(Duration.toMillis(ttl)))
    const streamTtlMillis = Math.max(0, Math.round(Duration.toMillis(streamMappingTtl)))
    const serverKey = (id: OriginId) => redis.key(`${SERVER}${id}`)
    const serverPrefix = redis.key(SERVER)
    const idOf = (key: string) => OriginId.make(key.startsWith(serverPrefix) ? key.slice(serverPrefix.length) : key)
    const streamKey = (streamUrl: StreamKey) => redis.key(`${STREAM}${streamUrl}`)
    const drainKey = (id: OriginId) => redis.key(`${DRAIN}${id}`)
    const fixed = new Map<OriginId, Origin>()
    // A record that does not decode (not JSON, not an origin's) counts as no origin.
    const originAt = (key: string, json: string | null | undefined) =>
      json === null || json === undefined ? Option.none() : Either.getRight(decodeOrigin([idOf(key), json]))

    const write = (origin: Origin) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const [, json] = yield* encodeOrigin({ origin, lastSeen: now }).pipe(Effect.orDie)
        const result = yield* redis.eval(
          REGISTER,
          [serverKey(origin.id), redis.key(ALL_SERVERS), downKey(origin.id)],
          [json, ttlMillis, now]
        )
        if (Array.isArray(result) && result[1] === 1) yield* counters.up(origin.id)
      })

    const markDown = Effect.fn("LoadBalancer.markDown")(function*(originId: OriginId, why: string) {
      const now = yield* Clock.currentTimeMillis
      const first = yield* redis.eval(MARK_DOWN, [downKey(originId)], [now + holdMillis, Math.max(holdMillis, ttlMillis)])
        .pipe(
          Effect.catchAll((error) =>
            Effect.as(Effect.logWarning(`origin ${originId} not marked down in Redis: ${error.message}`), 0)
          )
        )
      if (first === 1) yield* counters.down(originId, why, downHold)
    })

    const markUp = Effect.fn("LoadBalancer.markUp")(function*(originId: OriginId) {
      const now = yield* Clock.currentTimeMillis
      const ended = yield* redis.eval(MARK_UP, [downKey(originId)], [now]).pipe(
        Effect.catchAll((error) => Effect.as(Effect.logWarning(`origin ${originId} not marked up in Redis: ${error.message}`), 0))
      )
      if (ended === 1) yield* counters.up(originId)
    })

    // Sessions are checked about once a second: a Redis that cannot answer makes none of them end.
    const downOrigins = (ids: ReadonlyArray<OriginId>): Effect.Effect<ReadonlySet<OriginId>> =>
      ids.length === 0 ? Effect.succeed(new Set()) : redis.use((client) => client.mget(...ids.map(downKey))).pipe(
        Effect.map((values) => new Set(ids.filter((_, i) => values[i] !== null && values[i] !== undefined))),
        Effect.catchAll(() => Effect.succeed(new Set<OriginId>()))
      )

    // The LoadBalancer's register cannot fail: a heartbeat that Redis missed comes again shortly.
    const register = Effect.fn("LoadBalancer.register")(function*(origin: Origin) {
      if (origin.fixed) fixed.set(origin.id, origin)
      yield* write(origin).pipe(
        Effect.catchAll((error) => Effect.logWarning(`origin ${origin.id} not registered: ${error.message}`))
      )
    })

    // On every offer's path: its span is made only while the tracer is on (Span.ts).
    const pick = (streamUrl: StreamKey, avoid?: OriginId) => Effect.gen(function*() {
      const random = yield* Random.next
      const result = yield* redis.eval(
        PICK,
        [streamKey(streamUrl), redis.key(ALL_SERVERS)],
        [random, streamTtlMillis, avoid === undefined ? "" : serverKey(avoid), serverPrefix, redis.key(DOWN), redis.key(DRAIN)]
      ).pipe(orSharedStateUnavailable)
      if (!Array.isArray(result)) {
        // The rare path: one more read tells "all held down" from "none registered" for the message.
        const known = yield* Effect.orElseSucceed(origins, (): ReadonlyArray<OriginStatus> => [])
        return yield* noHealthyOrigin(
          known.filter((status) => status.healthy && status.down && !status.draining && canServeWebRtc(status.origin)).length
        )
      }
      // The pick renewed (or set) the mapping's TTL.
      if (streamTtlMillis > 0) keeps.renewed(streamUrl, yield* Clock.currentTimeMillis)
      const [key, json, previous] = result as [string, string, string]
      const stored = originAt(key, json)
      if (Option.isNone(stored)) {
        yield* Effect.logWarning(`the origin record ${idOf(key)} in Redis is not an origin's JSON`)
        return yield* sharedStateUnavailable()
      }
      const origin = stored.value.origin
      if (previous !== "" && previous !== key) yield* counters.moved(streamUrl, idOf(previous), origin.id)
      if (!canServeWebRtc(origin)) {
        return yield* new ServiceUnavailable({
          message: `stream ${streamUrl} is on origin ${origin.id}, which announced no HTTP API for WebRTC`,
          retryAfter: Duration.seconds(10)
        })
      }
      return origin
    }).pipe(whenTracing("LoadBalancer.pick", { captureStackTrace: false }))

    // Renewals go out once a quarter of the TTL has passed since the stream's last pick or renewal.
    const keeps = RenewalSchedule.make<StreamKey>(streamTtlMillis / 4)
    const keepStreams = (live: ReadonlyMap<StreamKey, OriginId>): Effect.Effect<void> =>
      streamTtlMillis === 0 ? Effect.void : Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const due = keeps.due(live, now)
        if (due.length === 0) return
        const batches: Array<Array<StreamKey>> = []
        for (let i = 0; i < due.length; i += KEEP_STREAMS_BATCH) batches.push(due.slice(i, i + KEEP_STREAMS_BATCH))
        const renew = Effect.forEach(batches, (batch) =>
          redis.eval(
            KEEP_STREAMS,
            batch.map(streamKey),
            [streamTtlMillis, ...batch.map((streamUrl) => serverKey(live.get(streamUrl)!))]
          ), { discard: true })
        yield* keeps.run(due, now, renew, (error) => `cannot renew ${due.length} stream mappings in Redis: ${error.message}`)
      }).pipe(Effect.withSpan("LoadBalancer.keepStreams"))

    const find = Effect.fn("LoadBalancer.find")(function*(originId: OriginId) {
      const json = yield* redis.use((client) => client.get(serverKey(originId))).pipe(
        Effect.catchAll((error) => Effect.as(Effect.logWarning(`cannot look up origin ${originId}: ${error.message}`), null))
      )
      return Option.map(originAt(serverKey(originId), json), (stored) => stored.origin)
    })

    // The drain key has no TTL: it outlives the origin's record until the drain is ended.
    const drain = Effect.fn("LoadBalancer.drain")(function*(originId: OriginId, on: boolean) {
      const known = yield* redis.use((client) => client.exists(serverKey(originId))).pipe(orSharedStateUnavailable)
      if (known === 0) return false
      yield* redis.use((client): Promise<unknown> => on ? client.set(drainKey(originId), "1") : client.del(drainKey(originId)))
        .pipe(orSharedStateUnavailable)
      return true
    })

    const origins = Effect.gen(function*() {
      const list = yield* redis.use((client) => client.get(redis.key(ALL_SERVERS)))
      const keys = list === null ? [] : Option.getOrElse(decodeServerKeys(list), () => [])
      if (keys.length === 0) return []
      const values = yield* redis.use((client) => client.mget(...keys))
      const drains = yield* redis.use((client) => client.mget(...keys.map((key) => drainKey(idOf(key)))))
      const down = yield* redis.use((client) => client.mget(...keys.map((key) => downKey(idOf(key)))))
      return keys.flatMap((key, i): Array<OriginStatus> =>
        Option.match(originAt(key, values[i]), {
          onNone: () => [],
          onSome: ({ lastSeen, origin }) => [{ origin, lastSeen, healthy: true, draining: drains[i] != null, down: down[i] != null }]
        })
      )
    }).pipe(orSharedStateUnavailable, Effect.withSpan("LoadBalancer.origins"))

    const streams = Effect.gen(function*() {
      const prefix = redis.key(STREAM)
      const keys = yield* redis.keysStartingWith(prefix, MAX_LISTED_STREAMS)
      if (keys.length === 0) return []
      const values = yield* redis.use((client) => client.mget(...keys))
      return keys.flatMap((key, i) => {
        const value = values[i]
        return value === null || value === undefined
          ? []
          : [{ streamUrl: StreamKey.make(key.slice(prefix.length)), originId: idOf(value) }]
      })
    }).pipe(orSharedStateUnavailable, Effect.withSpan("LoadBalancer.streams"))

    const renewEvery = Duration.millis(Math.min(30_000, Math.max(1000, Math.floor(ttlMillis / 3))))
    const renewFixed = Effect.suspend(() =>
      Effect.forEach([...fixed.values()], (origin) =>
        write(origin).pipe(
          Effect.catchAll((error) => Effect.logWarning(`configured origin ${origin.id} not renewed: ${error.message}`))
        ), { discard: true })
    )
    yield* renewFixed.pipe(
      Effect.delay(renewEvery),
      Effect.forever,
      Effect.interruptible,
      Effect.forkScoped
    )

    return {
      register,
      pick,
      markDown,
      markUp,
      downOrigins,
      failover: counters.stats,
      keepStreams,
      find,
      drain,
      origins,
      streams
    } satisfies LoadBalancerShape
  })

/**
 * The Redis load balancer, with the origin TTL and stream mapping TTL (none unless configured) from
 * the configuration, on the shared Redis client.
 */
export const layer: Layer.Layer<LoadBalancer, never, ProxyConfig | RedisClient> = Layer.scoped(
  LoadBalancer,
  Effect.flatMap(ProxyConfig, (config) =>
    make(config.originTtl, Option.getOrElse(config.streamMappingTtl, () => Duration.zero), config.originDownHold))
)
