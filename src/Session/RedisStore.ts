/**
 * The session store on Redis: what any proxy sharing the Redis needs to relay a session signaled
 * through another one. Each record is JSON under two keys, both expiring after a TTL that the
 * relaying proxy renews while the session lives:
 *
 * - `rtc-proxy-session:<id>`, for DELETE and PATCH on the session URL, through any proxy;
 * - `srs-proxy-ufrag:<ufrag pair>`, for a binding request arriving at a proxy that does not relay
 *   the session yet (the Go proxy's key; its `stream_url` and `ufrag` fields are there too).
 *
 * `srs-proxy-rtc:<stream URL>` gets `{"stream_url","ufrag"}` of the stream's latest session, as the
 * Go proxy writes it. `rtc-proxy-publisher:<stream URL>` holds the id of the stream's live publish
 * session: set when a proxy starts relaying one, renewed with its record, deleted when it is removed
 * or released, and also when the proxy relaying it shuts down (the record stays for a takeover, but a
 * session nobody relays must not keep a new publisher out; a proxy that takes it over sets the key
 * again). After a crash it expires with the record. Writes that touch several keys are Lua scripts,
 * so each is atomic.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { randomBytes } from "node:crypto"
import { hostname } from "node:os"
import type { SessionEndReason, SessionRecord } from "../Domain/Session.js"
import { orUnavailable, RedisClient, renewalSchedule, script } from "../Redis.js"
import { SessionStore, type SessionStoreShape } from "./SessionStore.js"

const SESSION = "rtc-proxy-session:"
const UFRAG = "srs-proxy-ufrag:"
const RTC = "srs-proxy-rtc:"
const PUBLISHER = "rtc-proxy-publisher:"

/** How long a record lives without renewal (the Go proxy's 120 s). */
export const SESSION_TTL = Duration.seconds(120)

/** A record as stored: snake_case like the Go proxy's fields, with which it shares `stream_url` and `ufrag`. */
const StoredSession = Schema.Struct({
  session_id: Schema.String,
  kind: Schema.Literal("publish", "play"),
  stream_url: Schema.String,
  ufrag: Schema.String,
  origin_id: Schema.String,
  origin_location: Schema.NullOr(Schema.String),
  server_pwd: Schema.String,
  origin_media: Schema.Struct({ host: Schema.String, port: Schema.Number }),
  created_at: Schema.Number,
  /** The proxy instance that last started relaying it. */
  relayed_by: Schema.optional(Schema.String)
})

const decodeStored = Schema.decodeUnknownOption(Schema.parseJson(StoredSession), { onExcessProperty: "ignore" })

/** Reads a stored record; none for anything else (such as a Go proxy's record, which has no ice-pwd). */
export const fromStored = (text: string | null): Option.Option<SessionRecord> =>
  text === null ? Option.none() : Option.map(decodeStored(text), (stored) => ({
    id: stored.session_id,
    kind: stored.kind,
    streamUrl: stored.stream_url,
    originId: stored.origin_id,
    originLocation: stored.origin_location ?? undefined,
    ufragPair: stored.ufrag,
    serverPwd: stored.server_pwd,
    originMedia: { host: stored.origin_media.host, port: stored.origin_media.port },
    createdAt: stored.created_at
  }))

export const toStored = (record: SessionRecord, relayedBy: string): typeof StoredSession.Encoded => ({
  session_id: record.id,
  kind: record.kind,
  stream_url: record.streamUrl,
  ufrag: record.ufragPair,
  origin_id: record.originId,
  origin_location: record.originLocation ?? null,
  server_pwd: record.serverPwd,
  origin_media: { host: record.originMedia.host, port: record.originMedia.port },
  created_at: record.createdAt,
  relayed_by: relayedBy
})

// Whether a key holds the record of session `id` (a ufrag pair may have moved to another session).
const HOLDS = `
local function holds(key, id)
  local raw = redis.call('GET', key)
  if not raw then return false end
  local ok, r = pcall(cjson.decode, raw)
  return ok and type(r) == 'table' and r.session_id == id
end
`

/**
 * KEYS: id key, ufrag key, stream key, publisher key. ARGV: record JSON, TTL ms, ufrag key prefix,
 * stream JSON, the session id when it publishes ('' when it plays). A previous ufrag key of the same
 * session goes (unless it is the same key).
 */
const PUT = script(`${HOLDS}
local previous = redis.call('GET', KEYS[1])
if previous then
  local ok, r = pcall(cjson.decode, previous)
  if ok and type(r) == 'table' and type(r.ufrag) == 'string' then
    local old = ARGV[3] .. r.ufrag
    if old ~= KEYS[2] and holds(old, r.session_id) then redis.call('DEL', old) end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[2])
if ARGV[5] ~= '' then redis.call('SET', KEYS[4], ARGV[5], 'PX', ARGV[2]) end
return 1
`)

/**
 * KEYS: id key, new ufrag key. ARGV: new ufrag pair, new server ice-pwd, TTL ms, ufrag key prefix,
 * stream key prefix, publisher key prefix. Returns the new record's JSON, or nil when the session is gone.
 */
const REKEY = script(`${HOLDS}
local raw = redis.call('GET', KEYS[1])
if not raw then return nil end
local ok, r = pcall(cjson.decode, raw)
if not ok or type(r) ~= 'table' or type(r.ufrag) ~= 'string' then return nil end
local oldPair = r.ufrag
local old = ARGV[4] .. oldPair
if old ~= KEYS[2] and holds(old, r.session_id) then redis.call('DEL', old) end
r.ufrag = ARGV[1]
r.server_pwd = ARGV[2]
local json = cjson.encode(r)
redis.call('SET', KEYS[1], json, 'PX', ARGV[3])
redis.call('SET', KEYS[2], json, 'PX', ARGV[3])
if type(r.stream_url) == 'string' then
  local streamKey = ARGV[5] .. r.stream_url
  local stream = redis.call('GET', streamKey)
  if stream then
    local ok2, s = pcall(cjson.decode, stream)
    if ok2 and type(s) == 'table' and s.ufrag == oldPair then
      redis.call('SET', streamKey, cjson.encode({ stream_url = r.stream_url, ufrag = ARGV[1] }), 'PX', ARGV[3])
    end
  end
  local publisherKey = ARGV[6] .. r.stream_url
  if r.kind == 'publish' and redis.call('GET', publisherKey) == r.session_id then
    redis.call('PEXPIRE', publisherKey, ARGV[3])
  end
end
return json
`)

/**
 * KEYS: id key. ARGV: the proxy instance that must be relaying it ('' for any), ufrag key prefix,
 * stream key prefix, publisher key prefix. Deletes the record's keys; returns 1 when it did.
 */
const REMOVE = script(`${HOLDS}
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, r = pcall(cjson.decode, raw)
if not ok or type(r) ~= 'table' then
  redis.call('DEL', KEYS[1])
  return 1
end
if ARGV[1] ~= '' and r.relayed_by ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if type(r.ufrag) == 'string' and holds(ARGV[2] .. r.ufrag, r.session_id) then redis.call('DEL', ARGV[2] .. r.ufrag) end
if type(r.stream_url) == 'string' then
  local streamKey = ARGV[3] .. r.stream_url
  local stream = redis.call('GET', streamKey)
  if stream then
    local ok2, s = pcall(cjson.decode, stream)
    if ok2 and type(s) == 'table' and s.ufrag == r.ufrag then redis.call('DEL', streamKey) end
  end
  local publisherKey = ARGV[4] .. r.stream_url
  if r.kind == 'publish' and redis.call('GET', publisherKey) == r.session_id then redis.call('DEL', publisherKey) end
end
return 1
`)

/**
 * KEYS: id key. ARGV: this proxy instance, publisher key prefix. At shutdown: the session stops
 * counting as its stream's publisher when this proxy is the one relaying it; its record stays.
 */
const RETIRE_PUBLISHER = script(`
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, r = pcall(cjson.decode, raw)
if not ok or type(r) ~= 'table' or r.kind ~= 'publish' or r.relayed_by ~= ARGV[1] then return 0 end
if type(r.stream_url) ~= 'string' then return 0 end
local publisherKey = ARGV[2] .. r.stream_url
if redis.call('GET', publisherKey) ~= r.session_id then return 0 end
redis.call('DEL', publisherKey)
return 1
`)

/** KEYS: publisher key. ARGV: id key prefix. The record of the stream's publisher, or nil. */
const PUBLISHER_OF = script(`
local id = redis.call('GET', KEYS[1])
if not id then return nil end
return redis.call('GET', ARGV[1] .. id)
`)

/**
 * Builds a Redis session store. Records expire `ttl` after they were written or last renewed;
 * `touch` renews a live session's keys once a quarter of the TTL has passed since it last did.
 */
export const make = (options: { readonly ttl?: Duration.Duration } = {}) =>
  Effect.gen(function*() {
    const redis = yield* RedisClient
    const ttlMillis = Math.max(1, Math.round(Duration.toMillis(options.ttl ?? SESSION_TTL)))
    /** This proxy instance, as `relayed_by` in the records it relays. */
    const instance = `${hostname()}-${process.pid}-${randomBytes(6).toString("hex")}`
    const idKey = (id: string) => redis.key(`${SESSION}${id}`)
    const ufragPrefix = redis.key(UFRAG)
    const streamPrefix = redis.key(RTC)
    const publisherPrefix = redis.key(PUBLISHER)
    const renewals = renewalSchedule(ttlMillis / 4)

    const put = Effect.fn("SessionStore.put")(function*(record: SessionRecord) {
      const now = yield* Clock.currentTimeMillis
      yield* redis.eval(PUT, [
        idKey(record.id),
        `${ufragPrefix}${record.ufragPair}`,
        `${streamPrefix}${record.streamUrl}`,
        `${publisherPrefix}${record.streamUrl}`
      ], [
        JSON.stringify(toStored(record, instance)),
        ttlMillis,
        ufragPrefix,
        JSON.stringify({ stream_url: record.streamUrl, ufrag: record.ufragPair }),
        record.kind === "publish" ? record.id : ""
      ]).pipe(orUnavailable)
      renewals.renewed(record.id, now)
    })

    const get = Effect.fn("SessionStore.get")(function*(id: string) {
      return fromStored(yield* redis.use((client) => client.get(idKey(id))).pipe(orUnavailable))
    })

    const findByUfrag = Effect.fn("SessionStore.findByUfrag")(function*(ufragPair: string) {
      const found = fromStored(
        yield* redis.use((client) => client.get(`${ufragPrefix}${ufragPair}`)).pipe(orUnavailable)
      )
      return Option.filter(found, (record) => record.ufragPair === ufragPair)
    })

    const publisherOf = Effect.fn("SessionStore.publisherOf")(function*(streamUrl: string) {
      const json = yield* redis.eval(PUBLISHER_OF, [`${publisherPrefix}${streamUrl}`], [idKey("")]).pipe(orUnavailable)
      return Option.filter(
        fromStored(typeof json === "string" ? json : null),
        (record) => record.kind === "publish" && record.streamUrl === streamUrl
      )
    })

    const rekey = Effect.fn("SessionStore.rekey")(function*(
      id: string,
      keys: { readonly ufragPair: string; readonly serverPwd: string }
    ) {
      const json = yield* redis.eval(REKEY, [idKey(id), `${ufragPrefix}${keys.ufragPair}`], [
        keys.ufragPair,
        keys.serverPwd,
        ttlMillis,
        ufragPrefix,
        streamPrefix,
        publisherPrefix
      ]).pipe(orUnavailable)
      return fromStored(typeof json === "string" ? json : null)
    })

    // Removal cannot fail the caller: what Redis missed expires with the TTL.
    const removeIf = (id: string, relayedBy: string) =>
      redis.eval(REMOVE, [idKey(id)], [relayedBy, ufragPrefix, streamPrefix, publisherPrefix]).pipe(
        Effect.tap(() => Effect.sync(() => renewals.forget(id))),
        Effect.catchAll((error) => Effect.logWarning(`session ${id} not removed from Redis (it expires): ${error.message}`)),
        Effect.asVoid
      )

    const remove = (id: string) => removeIf(id, "").pipe(Effect.withSpan("SessionStore.remove"))

    // After a shutdown the record stays until it expires: a proxy that receives the client's next
    // binding request (this one restarted, or another) takes the session over. Until one does, it is
    // not its stream's publisher. Otherwise it goes, unless another proxy has taken it over since.
    const release = (id: string, reason: SessionEndReason) =>
      reason === "shutdown"
        ? Effect.sync(() => renewals.forget(id)).pipe(
          Effect.zipRight(redis.eval(RETIRE_PUBLISHER, [idKey(id)], [instance, publisherPrefix])),
          // What Redis missed expires with the TTL; a shutdown during an outage would log once per session.
          Effect.catchAll((error) => Effect.logDebug(`session ${id} still counts as a publisher in Redis: ${error.message}`)),
          Effect.asVoid,
          Effect.withSpan("SessionStore.release")
        )
        : removeIf(id, instance).pipe(Effect.withSpan("SessionStore.release"))

    const touch = (records: ReadonlyArray<SessionRecord>) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const live = new Map(records.map((record) => [record.id, record]))
        const due = renewals.due(live, now)
        if (due.length === 0) return
        const renew = redis.use((client) => {
          const pipeline = client.pipeline()
          for (const id of due) {
            const record = live.get(id)!
            pipeline.pexpire(idKey(id), ttlMillis)
            pipeline.pexpire(`${ufragPrefix}${record.ufragPair}`, ttlMillis)
            pipeline.pexpire(`${streamPrefix}${record.streamUrl}`, ttlMillis)
            if (record.kind === "publish") pipeline.pexpire(`${publisherPrefix}${record.streamUrl}`, ttlMillis)
          }
          return pipeline.exec()
        })
        yield* renewals.run(due, now, renew, (error) => `cannot renew ${due.length} sessions in Redis: ${error.message}`)
      }).pipe(Effect.withSpan("SessionStore.touch"))

    const list = Effect.gen(function*() {
      const keys = yield* redis.keysStartingWith(redis.key(SESSION))
      if (keys.length === 0) return []
      const values = yield* redis.use((client) => client.mget(...keys))
      return values.flatMap((value) => Option.toArray(fromStored(value ?? null)))
    }).pipe(orUnavailable, Effect.withSpan("SessionStore.list"))

    return { put, get, findByUfrag, publisherOf, rekey, remove, release, touch, list } satisfies SessionStoreShape
  })

/** The Redis session store on the shared Redis client. */
export const layer: Layer.Layer<SessionStore, never, RedisClient> = Layer.effect(SessionStore, make())
