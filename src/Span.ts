/**
 * The proxy's own spans on the signaling path (an origin request, a relay session opened, the Redis
 * load balancer's pick and the Redis session store's calls on each session), made only while the tracer is on. `Effect.withSpan` makes a span, provides it for the span's duration and adds a
 * finalizer even when the tracer is off (`npm start` without an OTLP exporter): about 25 fiber steps,
 * against one to read whether it is on. Signaling is CPU-bound, so the check is worth it there.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import type * as Tracer from "effect/Tracer"

/** `Effect.withSpan(name, options)` while the tracer is enabled; the effect itself otherwise. */
export const whenTracing = (name: string, options?: Tracer.SpanOptions) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, Exclude<R, Tracer.ParentSpan>> =>
  Effect.flatMap(
    FiberRef.get(FiberRef.currentTracerEnabled),
    (enabled): Effect.Effect<A, E, Exclude<R, Tracer.ParentSpan>> =>
      enabled ? Effect.withSpan(self, name, options) : self as Effect.Effect<A, E, Exclude<R, Tracer.ParentSpan>>
  )
