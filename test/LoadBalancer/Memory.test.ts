// The memory load balancer on the test clock: sticky picks, origin expiry, and stream mappings that
// are forgotten once their stream has had no session and no pick for the stream mapping TTL.
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { fixed, OriginId } from "../../src/Domain/Origin.js"
import type { LoadBalancerShape } from "../../src/LoadBalancer/LoadBalancer.js"
import * as MemoryLoadBalancer from "../../src/LoadBalancer/Memory.js"
import { checkDrain, heartbeatOrigin } from "../support/origins.js"
import { StreamKey } from "../../src/Domain/StreamUrl.js"

const origin = heartbeatOrigin

const mapped = (lb: LoadBalancerShape) => Effect.map(lb.streams, (all) => all.map((m) => m.streamUrl).sort())

describe("memory load balancer", () => {
  it.effect("a draining origin takes no new stream, keeps its mapped ones, and takes new ones once undrained", () =>
    Effect.gen(function*() {
      const lb = yield* MemoryLoadBalancer.make(Duration.seconds(30))
      yield* checkDrain(lb, lb)
    }))

  it.effect("no origin, or none with an HTTP API: 503 with Retry-After", () =>
    Effect.gen(function*() {
      const lb = yield* MemoryLoadBalancer.make(Duration.seconds(30))
      const none = yield* Effect.flip(lb.pick(StreamKey.make("v/live/s")))
      assert.strictEqual(none._tag, "ServiceUnavailable")
      assert.match(none.message, /^no healthy origin is registered for WebRTC/)
      assert.strictEqual(Duration.toMillis(none.retryAfter!), 10_000)
      yield* lb.register(origin({ apiPort: undefined }))
      assert.strictEqual((yield* Effect.flip(lb.pick(StreamKey.make("v/live/s"))))._tag, "ServiceUnavailable")
    }))

  it.effect("sticky per stream; a stream whose origin stopped its heartbeat moves to a live one", () =>
    Effect.gen(function*() {
      const lb = yield* MemoryLoadBalancer.make(Duration.seconds(30))
      const first = origin()
      yield* lb.register(first)
      assert.strictEqual((yield* lb.pick(StreamKey.make("v/live/s"))).id, first.id)
      const second = origin()
      yield* lb.register(second)
      for (let i = 0; i < 10; i++) assert.strictEqual((yield* lb.pick(StreamKey.make("v/live/s"))).id, first.id)

      yield* TestClock.adjust(Duration.seconds(20))
      yield* lb.register(second)
      yield* TestClock.adjust(Duration.seconds(15))
      assert.strictEqual((yield* lb.pick(StreamKey.make("v/live/s"))).id, second.id)
      const views = yield* lb.origins
      assert.deepStrictEqual(views.map((v) => [v.origin.id, v.healthy]), [[first.id, false], [second.id, true]])
      // Three TTLs after its last heartbeat an origin is gone from the admin view too.
      yield* TestClock.adjust(Duration.seconds(60))
      yield* lb.register(second)
      assert.deepStrictEqual((yield* lb.origins).map((v) => v.origin.id), [second.id])
      assert.isTrue(Option.isNone(yield* lb.find(first.id)))
    }))

  it.effect("a stream mapping lives while its stream has sessions, and the TTL after the last one", () =>
    Effect.gen(function*() {
      const lb = yield* MemoryLoadBalancer.make(Duration.minutes(5), Duration.minutes(10))
      const configured = fixed({ ip: "127.0.0.1", apiPort: 1985, rtcPort: 8000 })
      yield* lb.register(configured)
      yield* lb.pick(StreamKey.make("v/live/watched"))
      yield* lb.pick(StreamKey.make("v/live/once"))
      // What the relay's sweep passes, about once a second: every live session's stream and origin.
      const live = new Map([
        [StreamKey.make("v/live/watched"), configured.id],
        [StreamKey.make("v/live/gone-origin"), OriginId.make("no-such-origin")]
      ])
      for (let minute = 1; minute <= 30; minute++) {
        yield* TestClock.adjust(Duration.minutes(1))
        yield* lb.keepStreams(live)
      }
      assert.deepStrictEqual(yield* mapped(lb), ["v/live/watched"], "kept for 30 min by its sessions; the other forgotten")
      for (let minute = 1; minute <= 11; minute++) {
        yield* TestClock.adjust(Duration.minutes(1))
        yield* lb.keepStreams(new Map())
      }
      assert.deepStrictEqual(yield* mapped(lb), [], "forgotten 10 min after its last session")
    }))

  it.effect("a pick renews a mapping; a zero TTL keeps every mapping for as long as its origin lives", () =>
    Effect.gen(function*() {
      const lb = yield* MemoryLoadBalancer.make(Duration.minutes(5), Duration.minutes(10))
      const forever = yield* MemoryLoadBalancer.make(Duration.minutes(5), Duration.zero)
      const configured = fixed({ ip: "127.0.0.1", apiPort: 1985, rtcPort: 8000 })
      yield* lb.register(configured)
      yield* forever.register(configured)
      for (let minute = 0; minute < 30; minute++) {
        yield* lb.pick(StreamKey.make("v/live/s"))
        yield* forever.pick(StreamKey.make(`v/live/s${minute}`))
        yield* TestClock.adjust(Duration.minutes(1))
        yield* lb.keepStreams(new Map())
        yield* forever.keepStreams(new Map())
      }
      assert.deepStrictEqual(yield* mapped(lb), ["v/live/s"])
      assert.lengthOf(yield* mapped(forever), 30)
    }))

  it.effect("a live stream without a mapping gets it back, to the origin its sessions use", () =>
    Effect.gen(function*() {
      const lb = yield* MemoryLoadBalancer.make(Duration.minutes(5), Duration.minutes(10))
      const [first, second] = [heartbeatOrigin(), heartbeatOrigin()]
      yield* lb.register(first)
      yield* lb.register(second)
      yield* lb.keepStreams(new Map([[StreamKey.make("v/live/adopted"), second.id]]))
      assert.deepStrictEqual(yield* lb.streams, [{ streamUrl: StreamKey.make("v/live/adopted"), originId: second.id }])
      for (let i = 0; i < 10; i++) assert.strictEqual((yield* lb.pick(StreamKey.make("v/live/adopted"))).id, second.id)
    }))

  it.effect("an origin marked down gets no new streams for the hold-down, then until its next heartbeat", () =>
    Effect.gen(function*() {
      const lb = yield* MemoryLoadBalancer.make(Duration.seconds(30), Duration.hours(1), Duration.seconds(10))
      const first = origin()
      yield* lb.register(first)
      const streams = ["a", "b", "c"].map((name) => StreamKey.make(`v/live/${name}`))
      for (const stream of streams) yield* lb.pick(stream)
      const second = origin()
      yield* lb.register(second)

      yield* lb.markDown(first.id, "connection refused")
      yield* lb.markDown(first.id, "connection refused")
      assert.deepStrictEqual(yield* lb.failover, { reroutes: 0, markedDown: 1, cameBack: 0 })
      // Only the stream that signals moves.
      assert.strictEqual((yield* lb.pick(streams[0]!)).id, second.id)
      assert.deepStrictEqual([...(yield* lb.downOrigins([first.id, second.id]))], [first.id])

      yield* TestClock.adjust(Duration.seconds(5))
      yield* lb.register(first)
      assert.isTrue((yield* lb.origins).find((s) => s.origin.id === first.id)!.down, "a heartbeat in the hold-down")
      yield* TestClock.adjust(Duration.seconds(6))
      assert.isTrue((yield* lb.origins).find((s) => s.origin.id === first.id)!.down, "no heartbeat since the hold-down")
      yield* lb.register(second)
      yield* lb.register(first)
      assert.isFalse((yield* lb.origins).find((s) => s.origin.id === first.id)!.down)
      // The streams that did not signal while it was down stayed; the one that moved stays moved.
      assert.strictEqual((yield* lb.pick(streams[1]!)).id, first.id)
      assert.strictEqual((yield* lb.pick(streams[2]!)).id, first.id)
      assert.strictEqual((yield* lb.pick(streams[0]!)).id, second.id)
      assert.deepStrictEqual(yield* lb.failover, { reroutes: 1, markedDown: 1, cameBack: 1 })
    }))

  it.effect("a pick that avoids an origin moves the stream only off that origin (compare and set)", () =>
    Effect.gen(function*() {
      const lb = yield* MemoryLoadBalancer.make(Duration.seconds(30))
      const first = origin()
      yield* lb.register(first)
      const stream = StreamKey.make("v/live/s")
      yield* lb.pick(stream)
      const second = origin()
      yield* lb.register(second)
      assert.strictEqual((yield* lb.pick(stream, first.id)).id, second.id)
      // Already moved: avoiding the old origin again keeps the new one.
      assert.strictEqual((yield* lb.pick(stream, first.id)).id, second.id)
      assert.strictEqual((yield* lb.pick(stream)).id, second.id)
      assert.strictEqual((yield* lb.failover).reroutes, 1)
    }))

  it.effect("a configured origin, which sends no heartbeat, is back when its hold-down ends", () =>
    Effect.gen(function*() {
      const lb = yield* MemoryLoadBalancer.make(Duration.seconds(30), Duration.hours(1), Duration.seconds(10))
      const configured = fixed({ ip: "127.0.0.1", apiPort: 1985, rtcPort: 8000 })
      yield* lb.register(configured)
      yield* lb.markDown(configured.id, "connection refused")
      const refused = yield* Effect.flip(lb.pick(StreamKey.make("v/live/s")))
      assert.strictEqual(refused._tag, "ServiceUnavailable")
      // Registered, but held down: the message says so, not that none is registered.
      assert.match(refused.message, /^every origin that takes WebRTC \(1\) is marked down after it could not be reached/)
      yield* TestClock.adjust(Duration.seconds(10))
      assert.strictEqual((yield* lb.pick(StreamKey.make("v/live/s"))).id, configured.id)
    }))

  it.effect("a probe that reaches an origin after its hold-down brings it back without a heartbeat", () =>
    Effect.gen(function*() {
      const lb = yield* MemoryLoadBalancer.make(Duration.seconds(30), Duration.hours(1), Duration.seconds(10))
      const first = origin()
      yield* lb.register(first)
      yield* lb.markDown(first.id, "3 health probes missed")
      yield* lb.markUp(first.id)
      assert.strictEqual((yield* lb.downOrigins([first.id])).size, 1, "in the hold-down")
      yield* TestClock.adjust(Duration.seconds(10))
      yield* lb.markUp(first.id)
      assert.strictEqual((yield* lb.downOrigins([first.id])).size, 0)
      assert.strictEqual((yield* lb.failover).cameBack, 1)
    }))
})
