// The main program's tracing switch: with no OTLP exporter configured, no span is made (the
// platform's request spans are off too); an app's own tracer is untouched unless it uses the layer.
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Tracing from "../src/Tracing.js"

const spanMade = Effect.withSpan(Effect.map(Effect.currentSpan, (span) => span.spanId !== "noop"), "probe")
const serverSpansOff = Effect.map(FiberRef.get(HttpMiddleware.currentTracerDisabledWhen), (disabled) => disabled({} as never))

const withEnv = (env: Record<string, string>) =>
  Tracing.offUnlessExported.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))))

describe("Tracing.offUnlessExported", () => {
  it.effect("without OTEL_EXPORTER_OTLP_ENDPOINT, spans are noops and the HTTP server makes none", () =>
    Effect.gen(function*() {
      assert.isFalse(yield* spanMade)
      assert.isTrue(yield* serverSpansOff)
    }).pipe(Effect.provide(withEnv({}))))

  it.effect("with an endpoint, spans are made as before", () =>
    Effect.gen(function*() {
      assert.isTrue(yield* spanMade)
      assert.isFalse(yield* serverSpansOff)
    }).pipe(Effect.provide(withEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:1" }))))

  it.effect("without the layer (an embedding app), spans are made", () =>
    Effect.map(spanMade, (made) => assert.isTrue(made)))
})
