/**
 * The in-memory session store: the records of the sessions this proxy relays, in its memory.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { SessionId, SessionRecord, UfragPair } from "../Domain/Session.js"
import type { StreamKey } from "../Domain/StreamUrl.js"
import { SessionStore, type SessionStoreShape } from "./SessionStore.js"

/** An in-memory store; its maps are owned here and nowhere else. */
export const make = (): SessionStoreShape => {
  const byId = new Map<SessionId, SessionRecord>()
  const byUfrag = new Map<UfragPair, SessionId>()
  /** Stream URL to the ids of its publish sessions (normally one; two when both passed the check at once). */
  const publishers = new Map<StreamKey, Set<SessionId>>()

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

  const remove = (id: SessionId) => {
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
        const next = {
          ...current,
          ufragPair: keys.ufragPair,
          serverPwd: keys.serverPwd,
          ...(keys.ice === undefined ? {} : { ice: keys.ice })
        }
        put(next)
        return Option.some(next)
      }),
    remove: (id) => Effect.sync(() => remove(id)),
    release: (id) => Effect.sync(() => remove(id)),
    onRemoved: () => Effect.void,
    touch: () => Effect.void,
    list: Effect.sync(() => [...byId.values()])
  }
}

/** Records in this proxy's memory. */
export const layer: Layer.Layer<SessionStore> = Layer.sync(SessionStore, make)
