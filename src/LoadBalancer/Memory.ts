/**
 * The in-process load balancer: origins and stream mappings in this proxy's memory.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import { ProxyConfig } from "../Config.js"
import { ServiceUnavailable } from "../Domain/Errors.js"
import type { Origin } from "../Domain/Origin.js"
import { LoadBalancer, type LoadBalancerShape, type OriginStatus } from "./LoadBalancer.js"

/** Builds a memory load balancer whose origins expire `ttl` after their last heartbeat. */
export const make = (ttl: Duration.Duration): Effect.Effect<LoadBalancerShape> =>
  Effect.sync(() => {
    const ttlMillis = Duration.toMillis(ttl)
    const origins = new Map<string, { origin: Origin; lastSeen: number }>()
    const streams = new Map<string, string>()

    const isHealthy = (entry: { origin: Origin; lastSeen: number }, now: number) =>
      entry.origin.fixed || now - entry.lastSeen < ttlMillis

    const canServeWebRtc = (origin: Origin) => origin.apiPort !== undefined

    const pick = Effect.fn("LoadBalancer.pick")(function*(streamUrl: string) {
      const now = yield* Clock.currentTimeMillis
      const mapped = streams.get(streamUrl)
      if (mapped !== undefined) {
        const entry = origins.get(mapped)
        if (entry !== undefined && isHealthy(entry, now)) return entry.origin
      }
      const candidates = [...origins.values()].filter((entry) => isHealthy(entry, now) && canServeWebRtc(entry.origin))
      if (candidates.length === 0) {
        return yield* new ServiceUnavailable({
          message: "no healthy origin is registered for WebRTC; check the origins' heartbeat settings",
          retryAfter: Duration.seconds(10)
        })
      }
      const chosen = candidates[yield* Random.nextIntBetween(0, candidates.length)]!.origin
      streams.set(streamUrl, chosen.id)
      if (mapped !== undefined) yield* Effect.logInfo(`stream ${streamUrl} moved from expired origin ${mapped} to ${chosen.id}`)
      return chosen
    })

    const register = (origin: Origin) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        origins.set(origin.id, { origin, lastSeen: now })
      })

    // Expired origins are kept (as unhealthy) until three TTLs have passed, for the admin view.
    const prune = (now: number) => {
      for (const [id, entry] of origins) {
        if (!entry.origin.fixed && now - entry.lastSeen >= 3 * ttlMillis) origins.delete(id)
      }
      for (const [stream, id] of streams) if (!origins.has(id)) streams.delete(stream)
    }

    return {
      register: (origin) => Effect.zipRight(Effect.map(Clock.currentTimeMillis, prune), register(origin)),
      pick,
      find: (originId) => Effect.sync(() => Option.map(Option.fromNullable(origins.get(originId)), (e) => e.origin)),
      origins: Effect.map(Clock.currentTimeMillis, (now): ReadonlyArray<OriginStatus> =>
        [...origins.values()].map((entry) => ({ ...entry, healthy: isHealthy(entry, now) }))),
      streams: Effect.sync(() => [...streams].map(([streamUrl, originId]) => ({ streamUrl, originId })))
    } satisfies LoadBalancerShape
  })

/** The memory load balancer, with the origin TTL from the configuration. */
export const layer: Layer.Layer<LoadBalancer, never, ProxyConfig> = Layer.effect(
  LoadBalancer,
  Effect.flatMap(ProxyConfig, (config) => make(config.originTtl))
)
