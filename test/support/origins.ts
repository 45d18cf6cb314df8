/**
 * Origins as the load balancers hold them, for tests.
 */
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Origin, OriginId } from "../../src/Domain/Origin.js"
import { StreamKey } from "../../src/Domain/StreamUrl.js"
import type { LoadBalancerShape } from "../../src/LoadBalancer/LoadBalancer.js"

let counter = 0
/** A registered origin as a heartbeat makes it; unique per call. */
export const heartbeatOrigin = (overrides: Partial<typeof Origin.Encoded> = {}): Origin => {
  const n = ++counter
  return Schema.decodeSync(Origin)({
    id: `srv-${n}-svc-${n}-${4000 + n}`,
    ip: "127.0.0.1",
    deviceId: `origin-${n}`,
    server: `srv-${n}`,
    service: `svc-${n}`,
    pid: String(4000 + n),
    apiPort: 19850 + n,
    rtc: [{ protocol: "udp", host: undefined, port: 8000 + n }],
    fixed: false,
    ...overrides
  })
}

/**
 * Drains an origin through `a` and checks through `b` (the same balancer, or another proxy's on a
 * shared store): no new stream goes to it, its mapped stream stays, and the drain can be ended.
 */
export const checkDrain = (a: LoadBalancerShape, b: LoadBalancerShape) =>
  Effect.gen(function*() {
    const first = heartbeatOrigin()
    yield* a.register(first)
    assert.strictEqual((yield* b.pick(StreamKey.make("v/live/old"))).id, first.id)
    assert.isTrue(yield* a.drain(first.id, true))
    assert.isFalse(yield* a.drain(OriginId.make("unknown"), true))
    assert.deepStrictEqual((yield* b.origins).map((v) => v.draining), [true])
    assert.strictEqual((yield* Effect.flip(b.pick(StreamKey.make("v/live/new"))))._tag, "ServiceUnavailable")
    assert.strictEqual((yield* b.pick(StreamKey.make("v/live/old"))).id, first.id, "a live stream stays")
    const second = heartbeatOrigin()
    yield* a.register(second)
    for (let i = 0; i < 10; i++) assert.strictEqual((yield* b.pick(StreamKey.make(`v/live/n${i}`))).id, second.id)
    assert.isTrue(yield* b.drain(first.id, false))
    assert.deepStrictEqual((yield* a.origins).map((v) => v.draining), [false, false])
    return first
  })
