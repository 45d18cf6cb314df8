/**
 * The session store: every relay session's record, by id (the session URL) and by ufrag pair (the
 * binding request USERNAME). A session's ufrag pair may change while it lives (ICE restart).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { SessionRecord } from "../Domain/Session.js"

export interface SessionStoreShape {
  /** Adds or replaces a record (a record holding the same ufrag pair loses that key). */
  readonly put: (record: SessionRecord) => Effect.Effect<void>
  readonly get: (id: string) => Effect.Effect<Option.Option<SessionRecord>>
  readonly findByUfrag: (ufragPair: string) => Effect.Effect<Option.Option<SessionRecord>>
  /** Moves a session to a new ufrag pair and server password; none when the session is gone. */
  readonly rekey: (
    id: string,
    keys: { readonly ufragPair: string; readonly serverPwd: string }
  ) => Effect.Effect<Option.Option<SessionRecord>>
  readonly remove: (id: string) => Effect.Effect<void>
  readonly list: Effect.Effect<ReadonlyArray<SessionRecord>>
}

export class SessionStore extends Context.Tag("rtc-proxy/SessionStore")<SessionStore, SessionStoreShape>() {
  /** Records in this proxy's memory. */
  static readonly layerMemory: Layer.Layer<SessionStore> = Layer.sync(SessionStore, () => makeMemory())
}

/** An in-memory store; its maps are owned here and nowhere else. */
export const makeMemory = (): SessionStoreShape => {
  const byId = new Map<string, SessionRecord>()
  const byUfrag = new Map<string, string>()

  const put = (record: SessionRecord) => {
    const previous = byId.get(record.id)
    if (previous !== undefined && byUfrag.get(previous.ufragPair) === record.id) byUfrag.delete(previous.ufragPair)
    byId.set(record.id, record)
    byUfrag.set(record.ufragPair, record.id)
  }

  return {
    put: (record) => Effect.sync(() => put(record)),
    get: (id) => Effect.sync(() => Option.fromNullable(byId.get(id))),
    findByUfrag: (ufragPair) =>
      Effect.sync(() => {
        const id = byUfrag.get(ufragPair)
        return Option.fromNullable(id === undefined ? undefined : byId.get(id))
      }),
    rekey: (id, keys) =>
      Effect.sync(() => {
        const current = byId.get(id)
        if (current === undefined) return Option.none()
        const next = { ...current, ...keys }
        put(next)
        return Option.some(next)
      }),
    remove: (id) =>
      Effect.sync(() => {
        const record = byId.get(id)
        if (record === undefined) return
        byId.delete(id)
        if (byUfrag.get(record.ufragPair) === id) byUfrag.delete(record.ufragPair)
      }),
    list: Effect.sync(() => [...byId.values()])
  }
}
