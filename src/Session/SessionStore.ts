/**
 * The session store: every relay session's record, by id (the session URL) and by ufrag pair (the
 * binding request USERNAME), and the live publish session of each stream. A session's ufrag pair may
 * change while it lives (ICE restart).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { ServiceUnavailable } from "../Domain/Errors.js"
import type { SessionEndReason, SessionRecord } from "../Domain/Session.js"

export interface SessionStoreShape {
  /** Adds or replaces a record (a record holding the same ufrag pair loses that key). */
  readonly put: (record: SessionRecord) => Effect.Effect<void, ServiceUnavailable>
  readonly get: (id: string) => Effect.Effect<Option.Option<SessionRecord>, ServiceUnavailable>
  readonly findByUfrag: (ufragPair: string) => Effect.Effect<Option.Option<SessionRecord>, ServiceUnavailable>
  /**
   * A live publish session of the stream: one that a proxy relays now (and renews). A record kept
   * only for a takeover after a shutdown does not count until a proxy relays it again.
   */
  readonly publisherOf: (streamUrl: string) => Effect.Effect<Option.Option<SessionRecord>, ServiceUnavailable>
  /** Moves a session to a new ufrag pair and server password; none when the session is gone. */
  readonly rekey: (
    id: string,
    keys: { readonly ufragPair: string; readonly serverPwd: string }
  ) => Effect.Effect<Option.Option<SessionRecord>, ServiceUnavailable>
  /** Removes a session for good (it was deleted). */
  readonly remove: (id: string) => Effect.Effect<void>
  /**
   * This proxy stopped relaying a session. The memory store forgets it; a shared store keeps it while
   * another proxy relays it, and after a shutdown until it expires, so that another proxy can take over.
   */
  readonly release: (id: string, reason: SessionEndReason) => Effect.Effect<void>
  /** The sessions this proxy relays are alive: a shared store renews them (others expire). */
  readonly touch: (records: ReadonlyArray<SessionRecord>) => Effect.Effect<void>
  readonly list: Effect.Effect<ReadonlyArray<SessionRecord>, ServiceUnavailable>
}

export class SessionStore extends Context.Tag("rtc-proxy/SessionStore")<SessionStore, SessionStoreShape>() {
  /** Records in this proxy's memory. */
  static readonly layerMemory: Layer.Layer<SessionStore> = Layer.sync(SessionStore, () => makeMemory())
}

/** An in-memory store; its maps are owned here and nowhere else. */
export const makeMemory = (): SessionStoreShape => {
  const byId = new Map<string, SessionRecord>()
  const byUfrag = new Map<string, string>()
  /** Stream URL to the ids of its publish sessions (normally one; two when both passed the check at once). */
  const publishers = new Map<string, Set<string>>()

  const unindexPublisher = (record: SessionRecord) => {
    const ids = publishers.get(record.streamUrl)
    if (ids === undefined) return
    ids.delete(record.id)
    if (ids.size === 0) publishers.delete(record.streamUrl)
  }

  const put = (record: SessionRecord) => {
    const previous = byId.get(record.id)
    if (previous !== undefined) {
      if (byUfrag.get(previous.ufragPair) === record.id) byUfrag.delete(previous.ufragPair)
      if (previous.kind === "publish") unindexPublisher(previous)
    }
    byId.set(record.id, record)
    byUfrag.set(record.ufragPair, record.id)
    if (record.kind === "publish") {
      const ids = publishers.get(record.streamUrl)
      if (ids === undefined) publishers.set(record.streamUrl, new Set([record.id]))
      else ids.add(record.id)
    }
  }

  const remove = (id: string) => {
    const record = byId.get(id)
    if (record === undefined) return
    byId.delete(id)
    if (byUfrag.get(record.ufragPair) === id) byUfrag.delete(record.ufragPair)
    if (record.kind === "publish") unindexPublisher(record)
  }

  return {
    put: (record) => Effect.sync(() => put(record)),
    get: (id) => Effect.sync(() => Option.fromNullable(byId.get(id))),
    findByUfrag: (ufragPair) =>
      Effect.sync(() => {
        const id = byUfrag.get(ufragPair)
        return Option.fromNullable(id === undefined ? undefined : byId.get(id))
      }),
    // Every record here is a session this proxy relays: release forgets it at once.
    publisherOf: (streamUrl) =>
      Effect.sync(() => {
        const ids = publishers.get(streamUrl)
        if (ids === undefined) return Option.none()
        const [first] = ids
        return Option.fromNullable(first === undefined ? undefined : byId.get(first))
      }),
    rekey: (id, keys) =>
      Effect.sync(() => {
        const current = byId.get(id)
        if (current === undefined) return Option.none()
        const next = { ...current, ...keys }
        put(next)
        return Option.some(next)
      }),
    remove: (id) => Effect.sync(() => remove(id)),
    release: (id) => Effect.sync(() => remove(id)),
    touch: () => Effect.void,
    list: Effect.sync(() => [...byId.values()])
  }
}
