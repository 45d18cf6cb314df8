/**
 * The admin API, on the system port behind PROXY_SYSTEM_API_TOKEN (as /api/v1/stats): origins with
 * their streams and sessions, stream mappings, this proxy's relay sessions (paged), ending a session,
 * and draining an origin.
 *
 * @since 0.1.0
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { BadRequest, NotFound, type ServiceUnavailable } from "../Domain/Errors.js"
import { OriginId } from "../Domain/Origin.js"
import type { SessionRecord } from "../Domain/Session.js"
import { LoadBalancer } from "../LoadBalancer/LoadBalancer.js"
import { SessionStore } from "../Session/SessionStore.js"
import { Relay } from "../Udp/Relay.js"
import { endSession } from "./Signaling.js"
import { requireSystemToken } from "./SystemApi.js"

const countBy = <A>(items: ReadonlyArray<A>, key: (item: A) => string): Map<string, number> => {
  const counts = new Map<string, number>()
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1)
  return counts
}

/** Every session the store knows: with Redis, those of every proxy. */
const storedSessions: Effect.Effect<ReadonlyArray<SessionRecord>, ServiceUnavailable, SessionStore> =
  Effect.flatMap(SessionStore, (store) => store.list)

/** GET /api/v1/origins: each origin, its health and drain, and the streams and sessions on it. */
export const origins = Effect.gen(function*() {
  yield* requireSystemToken
  const balancer = yield* LoadBalancer
  const [all, streams, sessions] = yield* Effect.all([balancer.origins, balancer.streams, storedSessions])
  const streamsOn = countBy(streams, (mapping) => mapping.originId)
  const sessionsOn = countBy(sessions, (record) => record.originId)
  return HttpServerResponse.unsafeJson({
    code: 0,
    origins: all.map(({ draining, healthy, lastSeen, origin }) => ({
      id: origin.id,
      ip: origin.ip,
      api: origin.apiPort ?? null,
      rtc: origin.rtc.map((endpoint) => `${endpoint.protocol ?? "udp"}://${endpoint.port}`),
      lastSeen: new Date(lastSeen).toISOString(),
      healthy,
      draining,
      streams: streamsOn.get(origin.id) ?? 0,
      sessions: sessionsOn.get(origin.id) ?? 0
    }))
  })
}).pipe(Effect.withSpan("Admin.origins"))

/** GET /api/v1/streams: each stream mapping and the sessions of the stream. */
export const streams = Effect.gen(function*() {
  yield* requireSystemToken
  const balancer = yield* LoadBalancer
  const [mappings, sessions] = yield* Effect.all([balancer.streams, storedSessions])
  const sessionsOf = countBy(sessions, (record) => record.streamUrl)
  return HttpServerResponse.unsafeJson({
    code: 0,
    streams: mappings.map(({ originId, streamUrl }) => ({ streamUrl, originId, sessions: sessionsOf.get(streamUrl) ?? 0 }))
  })
}).pipe(Effect.withSpan("Admin.streams"))

const Page = Schema.Struct({
  offset: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative()), { default: () => 0 }),
  limit: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 1000)), { default: () => 100 })
})

/** GET /api/v1/sessions?offset=&limit=: this proxy's relay sessions, oldest first (limit 1 to 1000, default 100). */
export const sessions = Effect.gen(function*() {
  yield* requireSystemToken
  const request = yield* HttpServerRequest.HttpServerRequest
  const query = Object.fromEntries(new URL(request.url, "http://proxy").searchParams)
  const { limit, offset } = yield* Schema.decodeUnknown(Page)(query).pipe(
    Effect.mapError(() => new BadRequest({ message: "offset must be 0 or more and limit from 1 to 1000" }))
  )
  const now = yield* Clock.currentTimeMillis
  const all = [...yield* Effect.flatMap(Relay, (relay) => relay.sessions)].sort((a, b) => a.createdAt - b.createdAt)
  return HttpServerResponse.unsafeJson({
    code: 0,
    total: all.length,
    offset,
    limit,
    sessions: all.slice(offset, offset + limit).map((view) => ({
      id: view.id,
      kind: view.kind,
      streamUrl: view.streamUrl,
      originId: view.originId,
      client: view.client ?? null,
      ageSeconds: Math.max(0, Math.round((now - view.createdAt) / 1000)),
      packetsFromClient: view.packetsFromClient,
      packetsFromOrigin: view.packetsFromOrigin,
      bytesFromClient: view.bytesFromClient,
      bytesFromOrigin: view.bytesFromOrigin
    }))
  })
}).pipe(Effect.withSpan("Admin.sessions"))

/** DELETE /api/v1/sessions/{id}: ends the session here, at its origin and on every proxy, as a client DELETE does. */
export const deleteSession = (id: string) =>
  Effect.gen(function*() {
    yield* requireSystemToken
    yield* endSession(id, {})
    return HttpServerResponse.unsafeJson({ code: 0 })
  }).pipe(Effect.withSpan("Admin.deleteSession"))

const OriginPath = Schema.Struct({ id: OriginId })

/** POST (on) and DELETE (off) /api/v1/origins/{id}/drain. */
export const drain = (on: boolean) =>
  Effect.gen(function*() {
    yield* requireSystemToken
    const { id } = yield* HttpRouter.schemaPathParams(OriginPath).pipe(
      Effect.mapError(() => new NotFound({ message: "no such origin" }))
    )
    const known = yield* Effect.flatMap(LoadBalancer, (balancer) => balancer.drain(id, on))
    if (!known) return yield* new NotFound({ message: `no origin ${id} is registered` })
    yield* Effect.logInfo(on ? `origin ${id} draining: no new streams` : `origin ${id} no longer draining`)
    return HttpServerResponse.unsafeJson({ code: 0, id, draining: on })
  }).pipe(Effect.withSpan("Admin.drain"))
