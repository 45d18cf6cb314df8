/**
 * Spans out over OTLP/HTTP (JSON) when OTEL_EXPORTER_OTLP_ENDPOINT (or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, through @effect/opentelemetry's own exporter; without
 * it nothing is loaded and spans stay in-process.
 *
 * @since 0.1.0
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import { constTrue } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { VERSION } from "./Http/SystemApi.js"

/** Where spans go: the traces endpoint as given, or `<endpoint>/v1/traces` as the OTLP spec builds it. */
export const tracesUrl = Config.all({
  traces: Config.option(Config.string("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")),
  base: Config.option(Config.string("OTEL_EXPORTER_OTLP_ENDPOINT")),
  serviceName: Config.string("OTEL_SERVICE_NAME").pipe(Config.withDefault("rtc-proxy"))
}).pipe(Config.map(({ base, serviceName, traces }) => ({
  serviceName,
  url: Option.orElse(traces, () => Option.map(base, (url) => `${url.replace(/\/+$/, "")}/v1/traces`))
})))

const tracesUrlOrNone = Effect.orElseSucceed(tracesUrl, () => ({ serviceName: "", url: Option.none<string>() }))

/** The OTLP tracer when configured, else nothing. */
export const layer: Layer.Layer<never> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const { serviceName, url } = yield* tracesUrlOrNone
    if (Option.isNone(url)) return Layer.empty
    const [OtlpTracer, OtlpSerialization] = yield* Effect.promise(() =>
      Promise.all([import("@effect/opentelemetry/OtlpTracer"), import("@effect/opentelemetry/OtlpSerialization")])
    )
    yield* Effect.logInfo(`spans go to ${url.value} over OTLP`)
    return OtlpTracer.layer({ url: url.value, resource: { serviceName, serviceVersion: VERSION } }).pipe(
      Layer.provide(Layer.merge(OtlpSerialization.layerJson, FetchHttpClient.layer))
    )
  })
)

/**
 * For the main program: with no exporter configured a span goes nowhere, so none is made (the HTTP
 * server's request spans, the origin client's, the proxy's own), which saves signaling CPU. An app
 * that embeds the Layers keeps its own tracer and does not use this.
 */
export const offUnlessExported: Layer.Layer<never> = Layer.unwrapEffect(
  Effect.map(tracesUrlOrNone, ({ url }) =>
    Option.isSome(url)
      ? Layer.empty
      : Layer.merge(Layer.setTracerEnabled(false), Layer.locallyScoped(HttpMiddleware.currentTracerDisabledWhen, constTrue)))
)
