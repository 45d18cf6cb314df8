/**
 * `/metrics`: every Effect `Metric` of the process through `@effect/opentelemetry` into the
 * OpenTelemetry Prometheus exporter, whose own server is never started; the system API serves it.
 *
 * @since 0.1.0
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { LoadBalancer } from "../LoadBalancer/LoadBalancer.js"
import type { Relay } from "../Udp/Relay.js"
import { makeScrapeUpdate } from "./Metrics.js"
import { VERSION } from "./SystemApi.js"

export interface PrometheusShape {
  /** The metrics in Prometheus' text format, the scrape-time series read first. */
  readonly scrape: Effect.Effect<string, never, Relay | LoadBalancer>
}

// The OpenTelemetry modules (about 5 MB of RSS) load at the first scrape: Effect's metrics count
// from the start all the same, and a proxy nobody scrapes never pays for them.
const importExporter = Effect.promise(() =>
  Promise.all([
    import("@effect/opentelemetry/Metrics"),
    import("@effect/opentelemetry/Resource"),
    import("@opentelemetry/exporter-prometheus")
  ])
)

export class Prometheus extends Context.Tag("rtc-proxy/Prometheus")<Prometheus, PrometheusShape>() {
  static readonly layer: Layer.Layer<Prometheus> = Layer.scoped(
    Prometheus,
    Effect.gen(function*() {
      const scope = yield* Effect.scope
      const exporter = yield* Effect.cached(Effect.gen(function*() {
        const [Metrics, Resource, { PrometheusExporter, PrometheusSerializer }] = yield* importExporter
        const exporter = new PrometheusExporter({ preventServerStart: true })
        yield* Layer.buildWithScope(
          Metrics.layer(() => exporter).pipe(Layer.provide(Resource.layer({ serviceName: "rtc-proxy", serviceVersion: VERSION }))),
          scope
        )
        const serializer = new PrometheusSerializer()
        return Effect.map(Effect.promise(() => exporter.collect()), ({ resourceMetrics }) => serializer.serialize(resourceMetrics))
      }))
      const update = yield* makeScrapeUpdate
      return { scrape: Effect.zipRight(update, Effect.flatten(exporter)) }
    })
  )
}

/** The scrape as an HTTP response. */
export const respond = Effect.flatMap(Prometheus, (prometheus) => prometheus.scrape).pipe(
  Effect.map((text) => HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8" }))
)
