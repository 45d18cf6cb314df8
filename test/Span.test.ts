// The proxy's own spans: made (named, with the caller's span as parent) while the tracer is on, and
// skipped, leaving the effect as it is, while it is off.
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { whenTracing } from "../src/Span.js"

const innerSpan = Effect.map(Effect.option(Effect.currentSpan), Option.map((span) => ({ name: span.name, parent: span.parent })))

describe("whenTracing", () => {
  it.effect("with the tracer on, the effect runs in a span of that name under the caller's span", () =>
    Effect.gen(function*() {
      const seen = yield* innerSpan.pipe(whenTracing("Probe.inner"), Effect.withSpan("Probe.outer"))
      assert.isTrue(Option.isSome(seen))
      const span = Option.getOrThrow(seen)
      assert.strictEqual(span.name, "Probe.inner")
      assert.isTrue(Option.isSome(span.parent) && span.parent.value._tag === "Span" && span.parent.value.name === "Probe.outer")
    }))

  it.effect("with the tracer off, no span is made: the effect sees none", () =>
    Effect.gen(function*() {
      assert.isTrue(Option.isNone(yield* whenTracing("Probe.inner")(innerSpan)))
      // Its result and failure are the effect's own.
      assert.strictEqual(yield* whenTracing("Probe.inner")(Effect.succeed(42)), 42)
      assert.strictEqual(yield* Effect.flip(whenTracing("Probe.inner")(Effect.fail("no"))), "no")
    }).pipe(Effect.provide(Layer.setTracerEnabled(false))))
})
