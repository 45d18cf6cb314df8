/**
 * Liveness and readiness. `/healthz` answers while the process serves at all; `/readyz` only while
 * the proxy can take sessions: UDP port bound, every HTTP listener serving (HTTPS too), load balancer reachable,
 * not draining. On SIGTERM/SIGINT the proxy drains first: readiness turns 503 at once, and the
 * listeners stay up until in-flight requests finish (at most PROXY_GRACE_QUIT_TIMEOUT).
 *
 * @since 0.1.0
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { LoadBalancer } from "../LoadBalancer/LoadBalancer.js"
import { UdpSocket } from "../Udp/UdpSocket.js"

export interface HealthShape {
  /** Readiness turns 503 from now on; what main's signal handler calls before shutdown starts. */
  readonly startDraining: () => void
  readonly draining: () => boolean
  /** Every HTTP listener (media, system and, when configured, HTTPS) serves. */
  readonly markServing: (serving: boolean) => void
  readonly serving: () => boolean
  /**
   * Counts a request as in flight while it runs; `ended`, when given, is told how it ended, in the
   * same finalizer (one per request rather than one per concern).
   */
  readonly track: <A, E, R>(
    request: Effect.Effect<A, E, R>,
    ended?: (exit: Exit.Exit<A, E>) => void
  ) => Effect.Effect<A, E, R>
  /** Drains: readiness 503, then waits until no request is in flight, at most `timeout`. */
  readonly drain: (timeout: Duration.DurationInput) => Effect.Effect<void>
}

export class Health extends Context.Tag("rtc-proxy/Health")<Health, HealthShape>() {
  static readonly layer: Layer.Layer<Health> = Layer.sync(Health, () => {
    const state = { draining: false, serving: false, inFlight: 0 }
    return {
      startDraining: () => {
        state.draining = true
      },
      draining: () => state.draining,
      markServing: (serving) => {
        state.serving = serving
      },
      serving: () => state.serving,
      track: (request, ended) =>
        Effect.suspend(() => {
          state.inFlight++
          return Effect.onExit(request, (exit) =>
            Effect.sync(() => {
              state.inFlight--
              ended?.(exit)
            }))
        }),
      drain: (timeout) =>
        Effect.suspend(() => {
          state.draining = true
          const idle = Effect.suspend(() => state.inFlight === 0 ? Effect.void : Effect.fail("busy" as const))
          return idle.pipe(Effect.retry(Schedule.spaced("50 millis")), Effect.timeoutOption(timeout), Effect.ignore)
        })
    }
  })
}

/** GET /healthz */
export const healthz = Effect.succeed(HttpServerResponse.unsafeJson({ status: "ok" }))

type Check = "udp" | "http" | "loadBalancer" | "draining"

/** GET /readyz: 200 with every check "ok", else 503 naming what fails. */
export const readyz = Effect.gen(function*() {
  const health = yield* Health
  const udp = yield* UdpSocket
  const balancer = yield* LoadBalancer
  // For Redis, listing the origins is one cheap command; a second is too long to be ready.
  const reachable = yield* balancer.origins.pipe(
    Effect.timeoutFail({ duration: "1 second", onTimeout: () => "no answer within 1 s" }),
    Effect.as("ok"),
    Effect.catchAll((error) => Effect.succeed(typeof error === "string" ? error : error.message))
  )
  const checks: Record<Check, string> = {
    udp: (yield* udp.boundAddresses).length > 0 ? "ok" : "the UDP port is not bound",
    http: health.serving() ? "ok" : "the HTTP listeners (HTTPS too, when configured) are not serving",
    loadBalancer: reachable,
    draining: health.draining() ? "shutting down" : "ok"
  }
  const ready = Object.values(checks).every((check) => check === "ok")
  return HttpServerResponse.unsafeJson({ status: ready ? "ok" : "unavailable", checks }, { status: ready ? 200 : 503 })
})
