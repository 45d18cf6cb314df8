// The token bucket on the TestClock: bursts, refill, per-client independence, off when 0.
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as TestClock from "effect/TestClock"
import { make } from "../../src/Http/RateLimit.js"

const taken = (exit: Exit.Exit<void, unknown>) => Exit.isSuccess(exit)

describe("RateLimiter", () => {
  it.effect("allows a burst, then refills at the rate, and tells when to retry", () =>
    Effect.gen(function*() {
      const limiter = make(2, 3)
      const burst = yield* Effect.forEach([1, 2, 3, 4], () => Effect.exit(limiter.take("a")))
      assert.deepStrictEqual(burst.map(taken), [true, true, true, false])
      const refused = burst[3]!
      assert(Exit.isFailure(refused))
      const error = refused.cause._tag === "Fail" ? refused.cause.error : undefined
      assert.strictEqual(error?.status, 429)
      assert.strictEqual(Duration.toMillis(error!.retryAfter), 500)
      yield* TestClock.adjust(Duration.millis(500))
      assert.isTrue(taken(yield* Effect.exit(limiter.take("a"))))
      assert.isFalse(taken(yield* Effect.exit(limiter.take("a"))))
      // Never more than the burst, however long the client waited.
      yield* TestClock.adjust(Duration.hours(1))
      const later = yield* Effect.forEach([1, 2, 3, 4], () => Effect.exit(limiter.take("a")))
      assert.deepStrictEqual(later.map(taken), [true, true, true, false])
    }))

  it.effect("clients have their own buckets", () =>
    Effect.gen(function*() {
      const limiter = make(1, 1)
      assert.isTrue(taken(yield* Effect.exit(limiter.take("a"))))
      assert.isFalse(taken(yield* Effect.exit(limiter.take("a"))))
      assert.isTrue(taken(yield* Effect.exit(limiter.take("b"))))
    }))

  it.effect("a rate of 0 turns limiting off", () =>
    Effect.gen(function*() {
      const limiter = make(0, 1)
      for (let n = 0; n < 100; n++) assert.isTrue(taken(yield* Effect.exit(limiter.take("a"))))
    }))
})
