// The memory session store's index of each stream's publish sessions, kept in step with put, remove,
// release and rekey.
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { SessionRecord, UfragPair } from "../../src/Domain/Session.js"
import { StreamKey } from "../../src/Domain/StreamUrl.js"
import * as MemorySessionStore from "../../src/Session/Memory.js"

let counter = 0
const record = (overrides: Partial<typeof SessionRecord.Encoded> = {}): SessionRecord => {
  const n = ++counter
  return Schema.decodeSync(SessionRecord)({
    id: `session-${n}`,
    kind: "publish",
    streamUrl: "__defaultVhost__/live/s",
    originId: "srv-a-svc1-4242",
    originLocation: undefined,
    ufragPair: `srv${n}:cli${n}`,
    serverPwd: `serverPassword${n}0123456789`,
    originMedia: { host: "127.0.0.1", port: 8000 },
    createdAt: 1_750_000_000_000 + n,
    ...overrides
  })
}

const idOf = (found: Option.Option<SessionRecord>) => Option.getOrUndefined(Option.map(found, (r) => r.id))

describe("memory session store: publisher of a stream", () => {
  it.effect("a publish record is its stream's publisher; a play record and other streams are not", () =>
    Effect.gen(function*() {
      const store = MemorySessionStore.make()
      const publisher = record()
      yield* store.put(record({ kind: "play" }))
      assert.isTrue(Option.isNone(yield* store.publisherOf(publisher.streamUrl)), "a player is no publisher")
      yield* store.put(publisher)
      assert.deepStrictEqual(yield* store.publisherOf(publisher.streamUrl), Option.some(publisher))
      assert.isTrue(Option.isNone(yield* store.publisherOf(StreamKey.make("__defaultVhost__/live/other"))))
    }))

  it.effect("remove and release (any reason) end it; a put again of the same session does not count twice", () =>
    Effect.gen(function*() {
      const store = MemorySessionStore.make()
      const deleted = record()
      yield* store.put(deleted)
      yield* store.put({ ...deleted, originLocation: "http://127.0.0.1:1985/rtc/v1/whip/?session=x" })
      yield* store.remove(deleted.id)
      assert.isTrue(Option.isNone(yield* store.publisherOf(deleted.streamUrl)))

      for (const reason of ["idle", "shutdown", "replaced", "socket-error"] as const) {
        const released = record()
        yield* store.put(released)
        yield* store.release(released.id, reason)
        assert.isTrue(Option.isNone(yield* store.publisherOf(released.streamUrl)), reason)
      }
    }))

  it.effect("rekey (ICE restart) keeps the session its stream's publisher, with its new keys", () =>
    Effect.gen(function*() {
      const store = MemorySessionStore.make()
      const publisher = record()
      yield* store.put(publisher)
      yield* store.rekey(publisher.id, { ufragPair: UfragPair.make("restarted:cli9"), serverPwd: "newServerPassword0123456" })
      const found = yield* store.publisherOf(publisher.streamUrl)
      assert.strictEqual(Option.getOrUndefined(found)?.ufragPair, "restarted:cli9")
      assert.strictEqual(idOf(found), publisher.id)
      yield* store.remove(publisher.id)
      assert.isTrue(Option.isNone(yield* store.publisherOf(publisher.streamUrl)))
    }))

  it.effect("two publishers of one stream (both passed the check at once): the other remains when one goes", () =>
    Effect.gen(function*() {
      const store = MemorySessionStore.make()
      const first = record()
      const second = record()
      yield* store.put(first)
      yield* store.put(second)
      yield* store.remove(first.id)
      assert.strictEqual(idOf(yield* store.publisherOf(first.streamUrl)), second.id)
      yield* store.release(second.id, "idle")
      assert.isTrue(Option.isNone(yield* store.publisherOf(first.streamUrl)))
    }))
})
