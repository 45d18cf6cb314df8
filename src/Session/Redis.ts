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
 * again). After a crash it expires with the record. A session removed for good (DELETE, through any
 * proxy) is announced on the channel `rtc-proxy-session-end` (message: its id), so that the proxy
 * relaying it stops at once. Writes that touch several keys are Lua scripts
 * (`RedisScripts.ts`), so each is atomic. A Redis failure becomes the 503 a client sees here, at the
 * service's boundary.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { randomBytes } from "node:crypto"
import { hostname } from "node:os"
import { orSharedStateUnavailable } from "../Domain/Errors.js"
import { OriginId } from "../Domain/Origin.js"
import {
  type IceKeys,
  MediaAddress,
  type SessionEndReason,
  SessionId,
  SessionKind,
  SessionRecord,
  UfragPair
} from "../Domain/Session.js"
import { StreamKey } from "../Domain/StreamUrl.js"
import { RedisClient, type RedisError } from "../Redis.js"
import * as RenewalSchedule from "../RenewalSchedule.js"
import { whenTracing } from "../Span.js"
import { Field, PUBLISHER_OF, PUT, REKEY, REMOVE, RETIRE_PUBLISHER } from "./RedisScripts.js"
import { SessionStore, type SessionStoreShape } from "./SessionStore.js"

const SESSION = "rtc-proxy-session:"
const SESSION_END = "rtc-proxy-session-end"
const UFRAG = "srs-proxy-ufrag:"
const RTC = "srs-proxy-rtc:"
const PUBLISHER = "rtc-proxy-publisher:"

/** How long a record lives without renewal (the Go proxy's 120 s). */
export const SESSION_TTL = Duration.seconds(120)

const renamed = <S extends Schema.Schema.All>(schema: S, key: string) =>
  Schema.propertySignature(schema).pipe(Schema.fromKey(key))

/** `origin_location` is null when the origin gave no session resource. */
const NullAsUndefined = Schema.transform(Schema.NullOr(Schema.String), Schema.UndefinedOr(Schema.String), {
  strict: true,
  decode: (location) => location ?? undefined,
  encode: (location) => location ?? null
})

/** A session's ICE state as stored (`ice` in the record), snake_case like the rest. */
const StoredIce = Schema.Struct({
  clientPwd: renamed(Schema.String, "client_pwd"),
  etag: renamed(Schema.String, "etag"),
  lite: renamed(Schema.Boolean, "lite"),
  options: Schema.optional(Schema.String).pipe(Schema.fromKey("options")),
  origin: Schema.optional(Schema.Struct({
    ufragPair: renamed(UfragPair, "ufrag"),
    serverPwd: renamed(Schema.String, "server_pwd"),
    clientPwd: Schema.optional(Schema.String).pipe(Schema.fromKey("client_pwd"))
  })).pipe(Schema.fromKey("origin"))
})
const encodeIce = Schema.encode(Schema.parseJson(StoredIce))

/**
 * A record as stored: snake_case like the Go proxy's fields, with which it shares `stream_url` and
 * `ufrag`, and the proxy instance that last started relaying it. The scripts read the `Field`s.
 */
const StoredFields = Schema.Struct({
  id: renamed(SessionId, Field.sessionId),
  kind: renamed(SessionKind, Field.kind),
  streamUrl: renamed(StreamKey, Field.streamUrl),
  ufragPair: renamed(UfragPair, Field.ufrag),
  originId: renamed(OriginId, "origin_id"),
  originLocation: renamed(NullAsUndefined, "origin_location"),
  serverPwd: renamed(Schema.String, Field.serverPwd),
  originMedia: renamed(MediaAddress, "origin_media"),
  createdAt: renamed(Schema.Number, "created_at"),
  ice: Schema.optional(StoredIce).pipe(Schema.fromKey(Field.ice)),
  relayedBy: Schema.optional(Schema.String).pipe(Schema.fromKey(Field.relayedBy))
})

/**
 * A session record in Redis, both ways: JSON written as relayed by `instance`. Decoding takes any
 * proxy's record (who relays it is the scripts' business), and nothing else: a Go proxy's record,
 * which has no ice-pwd, is not one.
 */
const StoredSession = (instance: string) =>
  Schema.parseJson(Schema.transform(StoredFields, Schema.typeSchema(SessionRecord), {
    strict: true,
    decode: ({ relayedBy: _, ...record }) => record,
    encode: (record) => ({ ...record, relayedBy: instance })
  }))

/** `srs-proxy-rtc:<stream URL>`: the stream's latest session, as the Go proxy writes it. */
const StreamSession = Schema.parseJson(Schema.Struct({
  streamUrl: renamed(StreamKey, Field.streamUrl),
  ufragPair: renamed(UfragPair, Field.ufrag)
}))
const encodeStreamSession = Schema.encode(StreamSession)

/**
 * Builds a Redis session store. Records expire `ttl` after they were written or last renewed;
 * `touch` renews a live session's keys once a quarter of the TTL has passed since it last did. Its
 * subscription to session ends closes with the scope.
 */
export const make = (options: { readonly ttl?: Duration.Duration } = {}) =>
  Effect.gen(function*() {
    const redis = yield* RedisClient
    const ttlMillis = Math.max(1, Math.round(Duration.toMillis(options.ttl ?? SESSION_TTL)))
    /** This proxy instance, as `relayed_by` in the records it relays. */
    const instance = `${hostname()}-${process.pid}-${randomBytes(6).toString("hex")}`
    const idKey = (id: SessionId) => redis.key(`${SESSION}${id}`)
    const ufragPrefix = redis.key(UFRAG)
    const streamPrefix = redis.key(RTC)
    const publisherPrefix = redis.key(PUBLISHER)
    const renewals = RenewalSchedule.make<SessionId>(ttlMillis / 4)
    const Stored = StoredSession(instance)
    const encodeStored = Schema.encode(Stored)
    // A corrupt or foreign record (such as a Go proxy's) is no record.
    const decodeStored = Schema.decodeUnknownOption(Stored)
    const recordOf = (json: unknown) => Predicate.isString(json) ? decodeStored(json) : Option.none()
    const endChannel = redis.key(SESSION_END)
    const onEnd = new Set<(id: SessionId) => void>()
    yield* redis.subscribe(endChannel, (message) => {
      const id = SessionId.make(message)
      for (const f of onEnd) f(id)
    })
    const onRemoved = (f: (id: SessionId) => void) =>
      Effect.acquireRelease(Effect.sync(() => onEnd.add(f)), () => Effect.sync(() => onEnd.delete(f))).pipe(Effect.asVoid)

    // The calls on every session's path make their span only while the tracer is on (Span.ts).
    const put = (record: SessionRecord) => Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      yield* redis.eval(PUT, [
        idKey(record.id),
        `${ufragPrefix}${record.ufragPair}`,
        `${streamPrefix}${record.streamUrl}`,
        `${publisherPrefix}${record.streamUrl}`
      ], [
        yield* encodeStored(record).pipe(Effect.orDie),
        ttlMillis,
        ufragPrefix,
        yield* encodeStreamSession(record).pipe(Effect.orDie),
        record.kind === "publish" ? record.id : ""
      ]).pipe(orSharedStateUnavailable)
      renewals.renewed(record.id, now)
    }).pipe(whenTracing("SessionStore.put", { captureStackTrace: false }))

    const get = (id: SessionId) =>
      redis.use((client) => client.get(idKey(id))).pipe(
        orSharedStateUnavailable,
        Effect.map(recordOf),
        whenTracing("SessionStore.get", { captureStackTrace: false })
      )

    const findByUfrag = Effect.fn("SessionStore.findByUfrag")(function*(ufragPair: UfragPair) {
      const found = recordOf(
        yield* redis.use((client) => client.get(`${ufragPrefix}${ufragPair}`)).pipe(orSharedStateUnavailable)
      )
      return Option.filter(found, (record) => record.ufragPair === ufragPair)
    })

    const publisherOf = (streamUrl: StreamKey) =>
      redis.eval(PUBLISHER_OF, [`${publisherPrefix}${streamUrl}`], [redis.key(SESSION)]).pipe(
        orSharedStateUnavailable,
        Effect.map((json) =>
          Option.filter(recordOf(json), (record) => record.kind === "publish" && record.streamUrl === streamUrl)
        ),
        whenTracing("SessionStore.publisherOf", { captureStackTrace: false })
      )

    const rekey = Effect.fn("SessionStore.rekey")(function*(
      id: SessionId,
      keys: IceKeys
    ) {
      const json = yield* redis.eval(REKEY, [idKey(id), `${ufragPrefix}${keys.ufragPair}`], [
        keys.ufragPair,
        keys.serverPwd,
        ttlMillis,
        ufragPrefix,
        streamPrefix,
        publisherPrefix,
        keys.ice === undefined ? "" : yield* encodeIce(keys.ice).pipe(Effect.orDie)
      ]).pipe(orSharedStateUnavailable)
      return recordOf(json)
    })

    // Removal cannot fail the caller: what Redis missed expires with the TTL.
    const removeIf = (id: SessionId, relayedBy: string) =>
      redis.eval(REMOVE, [idKey(id)], [relayedBy, ufragPrefix, streamPrefix, publisherPrefix]).pipe(
        Effect.tap(() => Effect.sync(() => renewals.forget(id))),
        Effect.catchAll((error) => Effect.logWarning(`session ${id} not removed from Redis (it expires): ${error.message}`)),
        Effect.asVoid
      )

    // A proxy that misses the news (Redis down) ends the session when its client goes quiet.
    const remove = (id: SessionId) =>
      removeIf(id, "").pipe(
        Effect.zipRight(redis.publish(endChannel, id).pipe(
          Effect.catchAll((error) => Effect.logWarning(`the end of session ${id} not announced to other proxies: ${error.message}`))
        )),
        whenTracing("SessionStore.remove", { captureStackTrace: false })
      )

    // After a shutdown the record stays until it expires: a proxy that receives the client's next
    // binding request (this one restarted, or another) takes the session over. Until one does, it is
    // not its stream's publisher. Otherwise it goes, unless another proxy has taken it over since.
    const release = (id: SessionId, reason: SessionEndReason) =>
      reason === "shutdown"
        ? Effect.sync(() => renewals.forget(id)).pipe(
          Effect.zipRight(redis.eval(RETIRE_PUBLISHER, [idKey(id)], [instance, publisherPrefix])),
          // What Redis missed expires with the TTL; a shutdown during an outage would log once per session.
          Effect.catchAll((error) => Effect.logDebug(`session ${id} still counts as a publisher in Redis: ${error.message}`)),
          Effect.asVoid,
          whenTracing("SessionStore.release", { captureStackTrace: false })
        )
        : removeIf(id, instance).pipe(whenTracing("SessionStore.release", { captureStackTrace: false }))

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
      return values.flatMap((value) => Option.toArray(recordOf(value)))
    }).pipe(orSharedStateUnavailable, Effect.withSpan("SessionStore.list"))

    return { put, get, findByUfrag, publisherOf, rekey, remove, onRemoved, release, touch, list } satisfies SessionStoreShape
  })

/** The Redis session store on the shared Redis client. */
export const layer: Layer.Layer<SessionStore, RedisError, RedisClient> = Layer.scoped(SessionStore, make())
