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
import { canServeWebRtc, type Origin, type OriginId } from "../Domain/Origin.js"
import type { StreamKey } from "../Domain/StreamUrl.js"
import { LoadBalancer, type LoadBalancerShape, logMoved, noHealthyOrigin, type OriginStatus } from "./LoadBalancer.js"

/** How long a stream's mapping outlives its last session when the configuration does not say. */
export const DEFAULT_STREAM_MAPPING_TTL = Duration.hours(1)

interface StreamEntry {
  originId: OriginId
  /** Epoch milliseconds of the last pick or the last time a session of the stream was seen alive. */
  lastUsed: number
}

/**
 * Builds a memory load balancer whose origins expire `originTtl` after their last heartbeat, and
 * whose stream mappings are forgotten `streamMappingTtl` after the stream was last used (zero: never).
 */
export const make = (
  originTtl: Duration.Duration,
  streamMappingTtl: Duration.Duration = DEFAULT_STREAM_MAPPING_TTL
): Effect.Effect<LoadBalancerShape> =>
  Effect.sync(() => {
    const ttlMillis = Duration.toMillis(originTtl)
    const streamTtlMillis = Duration.toMillis(streamMappingTtl)
    const origins = new Map<OriginId, { origin: Origin; lastSeen: number }>()
    const streams = new Map<StreamKey, StreamEntry>()
    const draining = new Set<OriginId>()
    // Pruning walks every mapping: at most every tenth of the stream TTL (and every minute).
    const pruneEvery = Math.min(60_000, streamTtlMillis / 10)
    let prunedAt = 0

    const isHealthy = (entry: { origin: Origin; lastSeen: number }, now: number) =>
      entry.origin.fixed || now - entry.lastSeen < ttlMillis

    const pick = Effect.fn("LoadBalancer.pick")(function*(streamUrl: StreamKey) {
      const now = yield* Clock.currentTimeMillis
      const mapped = streams.get(streamUrl)
      if (mapped !== undefined) {
        const entry = origins.get(mapped.originId)
        if (entry !== undefined && isHealthy(entry, now)) {
          mapped.lastUsed = now
          return entry.origin
        }
      }
      const candidates = [...origins.values()].filter((entry) => isHealthy(entry, now) && canServeWebRtc(entry.origin) && !draining.has(entry.origin.id))
      if (candidates.length === 0) return yield* noHealthyOrigin()
      const chosen = candidates[yield* Random.nextIntBetween(0, candidates.length)]!.origin
      streams.set(streamUrl, { originId: chosen.id, lastUsed: now })
      if (mapped !== undefined) yield* logMoved(streamUrl, mapped.originId, chosen.id)
      return chosen
    })

    const register = (origin: Origin) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        origins.set(origin.id, { origin, lastSeen: now })
      })

    // Expired origins are kept (as unhealthy) until three TTLs have passed, for the admin view.
    const prune = (now: number) => {
      prunedAt = now
      for (const [id, entry] of origins) {
        if (!entry.origin.fixed && now - entry.lastSeen >= 3 * ttlMillis) {
          origins.delete(id)
          draining.delete(id)
        }
      }
      for (const [stream, entry] of streams) {
        const unused = streamTtlMillis > 0 && now - entry.lastUsed >= streamTtlMillis
        if (unused || !origins.has(entry.originId)) streams.delete(stream)
      }
    }

    const keepStreams = (live: ReadonlyMap<StreamKey, OriginId>) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        for (const [streamUrl, originId] of live) {
          const entry = streams.get(streamUrl)
          if (entry !== undefined) entry.lastUsed = now
          else if (origins.has(originId)) streams.set(streamUrl, { originId, lastUsed: now })
        }
        if (streamTtlMillis > 0 && now - prunedAt >= pruneEvery) prune(now)
      })

    return {
      register: (origin) => Effect.zipRight(Effect.map(Clock.currentTimeMillis, prune), register(origin)),
      pick,
      keepStreams,
      find: (originId) => Effect.sync(() => Option.map(Option.fromNullable(origins.get(originId)), (e) => e.origin)),
      drain: (originId, on) =>
        Effect.sync(() => {
          if (!origins.has(originId)) return false
          if (on) draining.add(originId)
          else draining.delete(originId)
          return true
        }),
      origins: Effect.map(Clock.currentTimeMillis, (now): ReadonlyArray<OriginStatus> =>
        [...origins.values()].map((entry) => ({
          ...entry,
          healthy: isHealthy(entry, now),
          draining: draining.has(entry.origin.id)
        }))),
      streams: Effect.sync(() => [...streams].map(([streamUrl, entry]) => ({ streamUrl, originId: entry.originId })))
    } satisfies LoadBalancerShape
  })

/** The memory load balancer, with the origin TTL and stream mapping TTL from the configuration. */
export const layer: Layer.Layer<LoadBalancer, never, ProxyConfig> = Layer.effect(
  LoadBalancer,
  Effect.flatMap(ProxyConfig, (config) =>
    make(config.originTtl, Option.getOrElse(config.streamMappingTtl, () => DEFAULT_STREAM_MAPPING_TTL)))
)
