/**
 * The load balancer on Redis, shared by every proxy that uses the same Redis (and key prefix), under
 * the SRS Go proxy's keys so that both can share one Redis during a migration:
 *
 * - `srs-proxy-server:<origin id>`: the origin's JSON in the Go proxy's shape, expiring
 *   PROXY_ORIGIN_SERVER_TTL after its last heartbeat;
 * - `srs-proxy-all-servers`: a JSON array of those keys, pruned of expired ones at each registration;
 * - `srs-proxy-url:<stream URL>`: the key of the origin chosen for the stream; with
 *   PROXY_STREAM_MAPPING_TTL set, it expires that long after the stream's last pick or live session
 *   (by default it does not, as the Go proxies, which never renew it, expect).
 *
 * Registration and pick are Lua scripts, so each is atomic: two proxies registering at once keep
 * both origins in the list, and two proxies picking for one new stream (or for a stream whose origin
 * expired) both get the origin the first one chose.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import { ProxyConfig } from "../Config.js"
import { ServiceUnavailable } from "../Domain/Errors.js"
import { type ListenEndpoint, type Origin, parseListen } from "../Domain/Origin.js"
import { orUnavailable, RedisClient, RedisError, renewalSchedule, script } from "../Redis.js"
import { LoadBalancer, type LoadBalancerShape, type OriginStatus } from "./LoadBalancer.js"

const SERVER = "srs-proxy-server:"
const ALL_SERVERS = "srs-proxy-all-servers"
const STREAM = "srs-proxy-url:"

/**
 * An origin as the Go proxy stores it (Go's `SRSServer`, every field `omitempty`): listen endpoints
 * as arrays of strings, `update_at` as RFC 3339. `fixed` is ours (a configured origin); Go ignores it.
 */
const ServerJson = Schema.Struct({
  ip: Schema.String,
  device_id: Schema.optional(Schema.String),
  server_id: Schema.optional(Schema.String),
  service_id: Schema.optional(Schema.String),
  pid: Schema.optional(Schema.Union(Schema.String, Schema.Number)),
  rtmp: Schema.optional(Schema.NullOr(Schema.Array(Schema.String))),
  http: Schema.optional(Schema.NullOr(Schema.Array(Schema.String))),
  api: Schema.optional(Schema.NullOr(Schema.Array(Schema.String))),
  srt: Schema.optional(Schema.NullOr(Schema.Array(Schema.String))),
  rtc: Schema.optional(Schema.NullOr(Schema.Array(Schema.String))),
  update_at: Schema.optional(Schema.String),
  fixed: Schema.optional(Schema.Boolean)
})
type ServerJson = typeof ServerJson.Type

const decodeServer = Schema.decodeUnknownEither(Schema.parseJson(ServerJson), { onExcessProperty: "ignore" })

/** A listen endpoint written back in the form SRS sends (`8000`, `udp://8000`, `udp://0.0.0.0:8000`). */
export const formatListen = (endpoint: ListenEndpoint): string => {
  const host = endpoint.host === undefined ? "" : `${endpoint.host.includes(":") ? `[${endpoint.host}]` : endpoint.host}:`
  return endpoint.protocol === undefined ? `${host}${endpoint.port}` : `${endpoint.protocol}://${host}${endpoint.port}`
}

/** An origin in the Go proxy's JSON. The API port alone, which is what the Go proxy can parse. */
export const toServerJson = (origin: Origin, now: number): ServerJson => ({
  ip: origin.ip,
  ...(origin.deviceId === undefined ? {} : { device_id: origin.deviceId }),
  server_id: origin.server,
  service_id: origin.service,
  pid: origin.pid,
  ...(origin.apiPort === undefined ? {} : { api: [String(origin.apiPort)] }),
  ...(origin.rtc.length === 0 ? {} : { rtc: origin.rtc.map(formatListen) }),
  update_at: new Date(now).toISOString(),
  ...(origin.fixed ? { fixed: true } : {})
})

const parseEndpoints = (values: ReadonlyArray<string> | null | undefined): Array<ListenEndpoint> =>
  (values ?? []).flatMap((value) => Either.match(parseListen(value), { onLeft: () => [], onRight: (e) => [e] }))

/** Reads an origin's JSON, ours or the Go proxy's; the id is the key's (`<server>-<service>-<pid>`). */
export const fromServerJson = (id: string, text: string): Either.Either<{ origin: Origin; lastSeen: number }, string> =>
  Either.flatMap(
    Either.mapLeft(decodeServer(text), () => `the origin record ${id} in Redis is not an origin's JSON`),
    (server) => {
      if (server.ip === "") return Either.left(`the origin record ${id} in Redis has no ip`)
      const updated = server.update_at === undefined ? NaN : Date.parse(server.update_at)
      return Either.right({
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
      })
    }
  )

/** Lua: `list` = the JSON array of origin keys at KEYS[2] (empty when missing or not JSON). */
const READ_SERVER_LIST = `local list = {}
local raw = redis.call('GET', KEYS[2])
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == 'table' then list = decoded end
end
`

/**
 * KEYS: the origin's key, the list of origin keys. ARGV: the origin's JSON, its TTL in ms.
 * Writes the origin, drops expired keys from the list, adds the origin's key when missing.
 */
const REGISTER = script(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
${READ_SERVER_LIST}local kept, found = {}, false
for _, key in ipairs(list) do
  if type(key) == 'string' then
    if key == KEYS[1] then
      if not found then table.insert(kept, key) end
      found = true
    elseif redis.call('EXISTS', key) == 1 then
      table.insert(kept, key)
    end
  end
end
if not found then table.insert(kept, KEYS[1]) end
redis.call('SET', KEYS[2], cjson.encode(kept))
return #kept
`)

/**
 * KEYS: the stream's key, the list of origin keys. ARGV: a random number in [0, 1), the mapping's TTL
 * in ms (0: none). Returns { origin key, origin JSON, previous origin key or '' } or nil when no live
 * origin has an HTTP API. The mapping is kept while its origin's key exists; otherwise a live origin
 * is chosen and the mapping set, in the same atomic step. A kept mapping's TTL is renewed only when
 * it has one: a mapping without (the Go proxy's) stays without.
 */
const PICK = script(`
local ttl = tonumber(ARGV[2])
local mapped = redis.call('GET', KEYS[1])
if mapped then
  local server = redis.call('GET', mapped)
  if server then
    if ttl > 0 and redis.call('PTTL', KEYS[1]) >= 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
    return { mapped, server, '' }
  end
end
${READ_SERVER_LIST}local alive = {}
for _, key in ipairs(list) do
  if type(key) == 'string' then
    local server = redis.call('GET', key)
    if server then
      local ok, decoded = pcall(cjson.decode, server)
      if ok and type(decoded) == 'table' and type(decoded.api) == 'table' and #decoded.api > 0 then
        table.insert(alive, { key, server })
      end
    end
  end
end
if #alive == 0 then return nil end
local chosen = alive[math.floor(tonumber(ARGV[1]) * #alive) + 1] or alive[1]
if ttl > 0 then redis.call('SET', KEYS[1], chosen[1], 'PX', ttl) else redis.call('SET', KEYS[1], chosen[1]) end
return { chosen[1], chosen[2], mapped or '' }
`)

/**
 * KEYS: stream keys. ARGV: the TTL in ms, then for each stream the key of the origin its live
 * sessions use. Renews each mapping that has a TTL; sets again, to that origin while its key exists,
 * a mapping that lapsed (Redis was unreachable for longer than the TTL). Returns how many.
 */
const KEEP_STREAMS = script(`
local kept = 0
for i, key in ipairs(KEYS) do
  local ttl = redis.call('PTTL', key)
  if ttl >= 0 then
    redis.call('PEXPIRE', key, ARGV[1])
    kept = kept + 1
  elseif ttl == -2 and redis.call('EXISTS', ARGV[i + 1]) == 1 then
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
    kept = kept + 1
  end
end
return kept
`)

/** Stream keys per KEEP_STREAMS call, so that one call never holds Redis long. */
const KEEP_STREAMS_BATCH = 500

const noOrigin = new ServiceUnavailable({
  message: "no healthy origin is registered for WebRTC; check the origins' heartbeat settings",
  retryAfter: Duration.seconds(10)
})

/** At most this many stream mappings are listed (the admin view; a SCAN over the keyspace). */
const MAX_LISTED_STREAMS = 10_000

/**
 * Builds a Redis load balancer. Configured (fixed) origins are renewed by this proxy every third of
 * the TTL (at most every 30 s, as the Go proxy does) for as long as it runs: when it stops, they expire
 * like any origin whose heartbeat stopped, instead of staying in the shared Redis with nobody
 * vouching for them.
 */
export const make = (ttl: Duration.Duration, streamMappingTtl: Duration.Duration = Duration.zero) =>
  Effect.gen(function*() {
    const redis = yield* RedisClient
    const ttlMillis = Math.max(1, Math.round(Duration.toMillis(ttl)))
    const streamTtlMillis = Math.max(0, Math.round(Duration.toMillis(streamMappingTtl)))
    const serverKey = (id: string) => redis.key(`${SERVER}${id}`)
    const serverPrefix = redis.key(SERVER)
    const idOf = (key: string) => key.startsWith(serverPrefix) ? key.slice(serverPrefix.length) : key
    const fixed = new Map<string, Origin>()

    const write = (origin: Origin) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        yield* redis.eval(REGISTER, [serverKey(origin.id), redis.key(ALL_SERVERS)], [
          JSON.stringify(toServerJson(origin, now)),
          ttlMillis
        ])
      })

    // The LoadBalancer's register cannot fail: a heartbeat that Redis missed comes again shortly.
    const register = Effect.fn("LoadBalancer.register")(function*(origin: Origin) {
      if (origin.fixed) fixed.set(origin.id, origin)
      yield* write(origin).pipe(
        Effect.catchAll((error) => Effect.logWarning(`origin ${origin.id} not registered: ${error.message}`))
      )
    })

    const pick = Effect.fn("LoadBalancer.pick")(function*(streamUrl: string) {
      const random = yield* Random.next
      const result = yield* redis.eval(
        PICK,
        [redis.key(`${STREAM}${streamUrl}`), redis.key(ALL_SERVERS)],
        [random, streamTtlMillis]
      ).pipe(orUnavailable)
      if (!Array.isArray(result)) return yield* noOrigin
      // The pick renewed (or set) the mapping's TTL.
      if (streamTtlMillis > 0) keeps.renewed(streamUrl, yield* Clock.currentTimeMillis)
      const [key, json, previous] = result as [string, string, string]
      const decoded = fromServerJson(idOf(key), json)
      if (Either.isLeft(decoded)) {
        return yield* orUnavailable(Effect.fail(new RedisError({ reason: "Decode", message: decoded.left })))
      }
      const origin = decoded.right.origin
      if (previous !== "") {
        yield* Effect.logInfo(`stream ${streamUrl} moved from expired origin ${idOf(previous)} to ${origin.id}`)
      }
      if (origin.apiPort === undefined) {
        return yield* new ServiceUnavailable({
          message: `stream ${streamUrl} is on origin ${origin.id}, which announced no HTTP API for WebRTC`,
          retryAfter: Duration.seconds(10)
        })
      }
      return origin
    })

    // Renewals go out once a quarter of the TTL has passed since the stream's last pick or renewal.
    const keeps = renewalSchedule(streamTtlMillis / 4)
    const keepStreams = (live: ReadonlyMap<string, string>): Effect.Effect<void> =>
      streamTtlMillis === 0 ? Effect.void : Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const due = keeps.due(live, now)
        if (due.length === 0) return
        const batches: Array<Array<string>> = []
        for (let i = 0; i < due.length; i += KEEP_STREAMS_BATCH) batches.push(due.slice(i, i + KEEP_STREAMS_BATCH))
        const renew = Effect.forEach(batches, (batch) =>
          redis.eval(
            KEEP_STREAMS,
            batch.map((streamUrl) => redis.key(`${STREAM}${streamUrl}`)),
            [streamTtlMillis, ...batch.map((streamUrl) => serverKey(live.get(streamUrl)!))]
          ), { discard: true })
        yield* keeps.run(due, now, renew, (error) => `cannot renew ${due.length} stream mappings in Redis: ${error.message}`)
      }).pipe(Effect.withSpan("LoadBalancer.keepStreams"))

    const find = Effect.fn("LoadBalancer.find")(function*(originId: string) {
      const text = yield* redis.use((client) => client.get(serverKey(originId))).pipe(
        Effect.catchAll((error) => Effect.as(Effect.logWarning(`cannot look up origin ${originId}: ${error.message}`), null))
      )
      if (text === null) return Option.none<Origin>()
      return Option.map(Either.getRight(fromServerJson(originId, text)), (entry) => entry.origin)
    })

    const origins = Effect.gen(function*() {
      const raw = yield* redis.use((client) => client.get(redis.key(ALL_SERVERS)))
      const keys = parseKeyList(raw)
      if (keys.length === 0) return []
      const values = yield* redis.use((client) => client.mget(...keys))
      return keys.flatMap((key, i): Array<OriginStatus> => {
        const text = values[i]
        if (text === null || text === undefined) return []
        return Either.match(fromServerJson(idOf(key), text), {
          onLeft: () => [],
          onRight: ({ lastSeen, origin }) => [{ origin, lastSeen, healthy: true }]
        })
      })
    }).pipe(orUnavailable, Effect.withSpan("LoadBalancer.origins"))

    const streams = Effect.gen(function*() {
      const prefix = redis.key(STREAM)
      const keys = yield* redis.keysStartingWith(prefix, MAX_LISTED_STREAMS)
      if (keys.length === 0) return []
      const values = yield* redis.use((client) => client.mget(...keys))
      return keys.flatMap((key, i) => {
        const value = values[i]
        return value === null || value === undefined ? [] : [{ streamUrl: key.slice(prefix.length), originId: idOf(value) }]
      })
    }).pipe(orUnavailable, Effect.withSpan("LoadBalancer.streams"))

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

    return { register, pick, keepStreams, find, origins, streams } satisfies LoadBalancerShape
  })

const parseKeyList = (raw: string | null): Array<string> => {
  if (raw === null) return []
  try {
    const list: unknown = JSON.parse(raw)
    return Array.isArray(list) ? list.filter((key): key is string => typeof key === "string") : []
  } catch {
    return []
  }
}

/**
 * The Redis load balancer, with the origin TTL and stream mapping TTL (none unless configured) from
 * the configuration, on the shared Redis client.
 */
export const layer: Layer.Layer<LoadBalancer, never, ProxyConfig | RedisClient> = Layer.scoped(
  LoadBalancer,
  Effect.flatMap(ProxyConfig, (config) =>
    make(config.originTtl, Option.getOrElse(config.streamMappingTtl, () => Duration.zero)))
)
