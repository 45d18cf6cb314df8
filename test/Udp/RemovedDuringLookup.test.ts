// A session signaled through another proxy on a shared store, deleted there while this proxy is still
// looking its ufrag pair up (a client's check arrived first): the lookup's answer is stale, and the
// proxy must not open the session again (nor write its record back to the store).
import { assert, describe } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { ProxyConfig } from "../../src/Config.ts"
import type { SessionId } from "../../src/Domain/Session.ts"
import * as MemoryLoadBalancer from "../../src/LoadBalancer/Memory.ts"
import * as MemorySessionStore from "../../src/Session/Memory.ts"
import { SessionStore } from "../../src/Session/SessionStore.ts"
import { Relay } from "../../src/Udp/Relay.ts"
import { UdpSocket } from "../../src/Udp/UdpSocket.ts"
import { eventually, openUdpHandles } from "../support/eventually.ts"
import { live } from "../support/live.ts"
import { binding, makeRecord, PAIR, SERVER_PWD } from "../support/relay.ts"
import { udpPeer } from "../support/udpPeer.ts"

describe("relay: a session removed while its store lookup is in flight", () => {
  live("is not opened from the stale answer, and its record stays removed", () =>
    Effect.gen(function*() {
      const inner = MemorySessionStore.make()
      const lookupStarted = yield* Deferred.make<void>()
      const answerLookup = yield* Deferred.make<void>()
      const removedListeners: Array<(id: SessionId) => void> = []
      // The memory store, with a lookup that reads the record and then waits, and removals announced as a shared store does.
      const store = SessionStore.of({
        ...inner,
        findByUfrag: (pair) =>
          inner.findByUfrag(pair).pipe(
            Effect.tap(() => Deferred.succeed(lookupStarted, undefined)),
            Effect.zipLeft(Deferred.await(answerLookup))
          ),
        remove: (id) => Effect.zipRight(inner.remove(id), Effect.sync(() => removedListeners.forEach((f) => f(id)))),
        onRemoved: (f) => Effect.sync(() => void removedListeners.push(f))
      })
      const context = yield* Layer.build(
        Relay.layer.pipe(
          Layer.provideMerge(Layer.mergeAll(UdpSocket.layer, Layer.succeed(SessionStore, store), MemoryLoadBalancer.layer)),
          Layer.provideMerge(ProxyConfig.layerWith({ listenHost: "127.0.0.1", udpPort: 0 }))
        )
      )
      const relay = Context.get(context, Relay)
      const port = Context.get(context, UdpSocket).address.port
      const origin = yield* udpPeer()
      const record = makeRecord(origin)
      yield* inner.put(record) // signaled through another proxy
      const client = yield* udpPeer()
      const handlesBefore = openUdpHandles()
      client.send(binding(PAIR, SERVER_PWD), port)
      yield* Deferred.await(lookupStarted)
      yield* store.remove(record.id) // DELETE through the other proxy
      yield* Deferred.succeed(answerLookup, undefined)

      yield* Effect.sleep("200 millis")
      assert.deepStrictEqual(yield* relay.sessions, [])
      assert.isTrue(Option.isNone(yield* inner.get(record.id)), "the record is not written back")
      assert.strictEqual(origin.received.length, 0)
      yield* eventually(() => assert.strictEqual(openUdpHandles(), handlesBefore))
    }))
})
