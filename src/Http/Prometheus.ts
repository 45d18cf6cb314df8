/**
 * `/metrics`: every Effect `Metric` of the process through `@effect/opentelemetry` into the
 * OpenTelemetry Prometheus exporter, whose own server is never started; the system API serves it.
 *
 * @since 0.1.0
 */
import * as Metrics from "@effect/opentelemetry/Metrics"
import * as Resource from "@effect/opentelemetry/Resource"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
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

export class Prometheus extends Context.Tag("rtc-proxy/Prometheus")<Prometheus, PrometheusShape>() {
  static readonly layer: Layer.Layer<Prometheus> = Layer.scoped(
    Prometheus,
    Effect.gen(function*() {
      const exporter = new PrometheusExporter({ preventServerStart: true })
      yield* Layer.buildWithScope(
        Metrics.layer(() => exporter).pipe(Layer.provide(Resource.layer({ serviceName: "rtc-proxy", serviceVersion: VERSION }))),
        yield* Effect.scope
      )
      const serializer = new PrometheusSerializer()
      const update = yield* makeScrapeUpdate
      return {
        scrape: Effect.zipRight(
          update,
          Effect.map(Effect.promise(() => exporter.collect()), ({ resourceMetrics }) => serializer.serialize(resourceMetrics))
        )
      }
    })
  )
}

/** The scrape as an HTTP response. */
export const respond = Effect.flatMap(Prometheus, (prometheus) => prometheus.scrape).pipe(
  Effect.map((text) => HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8" }))
)
