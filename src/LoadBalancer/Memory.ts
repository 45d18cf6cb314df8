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
import {
  DEFAULT_ORIGIN_DOWN_HOLD,
  LoadBalancer,
  type LoadBalancerShape,
  makeFailoverCounters,
  noHealthyOrigin,
  type OriginStatus
} from "./LoadBalancer.js"

/** How long a stream's mapping outlives its last session when the configuration does not say. */
export const DEFAULT_STREAM_MAPPING_TTL = Duration.hours(1)

interface StreamEntry {
  originId: OriginId
  /** Epoch milliseconds of the last pick or the last time a session of the stream was seen alive. */
  lastUsed: number
}

/**
 * Builds a memory load balancer whose origins expire `originTtl` after their last heartbeat, whose
 * stream mappings are forgotten `streamMappingTtl` after the stream was last used (zero: never), and
 * whose origins marked down stay down for `downHold` and then until their next heartbeat.
 */
export const make = (
  originTtl: Duration.Duration,
  streamMappingTtl: Duration.Duration = DEFAULT_STREAM_MAPPING_TTL,
  downHold: Duration.Duration = DEFAULT_ORIGIN_DOWN_HOLD
): Effect.Effect<LoadBalancerShape> =>
  Effect.sync(() => {
    const holdMillis = Duration.toMillis(downHold)
    // Origins marked down, with the end of their hold-down (epoch milliseconds).
    const down = new Map<OriginId, number>()
    const counters = makeFailoverCounters()
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

    // A configured origin sends no heartbeat: its hold-down alone ends its down mark.
    const isDown = (origin: Origin, now: number) => {
      const until = down.get(origin.id)
      return until !== undefined && (!origin.fixed || now < until)
    }

    // No span: a lookup in memory, on every offer; the Redis balancer's pick has one.
    const pick = (streamUrl: StreamKey, avoid?: OriginId) => Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const usable = (entry: { origin: Origin; lastSeen: number }) =>
        isHealthy(entry, now) && !isDown(entry.origin, now) && entry.origin.id !== avoid
      const mapped = streams.get(streamUrl)
      if (mapped !== undefined) {
        const entry = origins.get(mapped.originId)
        if (entry !== undefined && usable(entry)) {
          mapped.lastUsed = now
          return entry.origin
        }
      }
      const candidates = [...origins.values()].filter((entry) =>
        usable(entry) && canServeWebRtc(entry.origin) && !draining.has(entry.origin.id)
      )
      if (candidates.length === 0) {
        const markedDown = [...origins.values()].filter((entry) =>
          isHealthy(entry, now) && isDown(entry.origin, now) && canServeWebRtc(entry.origin) && !draining.has(entry.origin.id)
        ).length
        return yield* noHealthyOrigin(markedDown)
      }
      const chosen = candidates[yield* Random.nextIntBetween(0, candidates.length)]!.origin
      streams.set(streamUrl, { originId: chosen.id, lastUsed: now })
      if (mapped !== undefined) yield* counters.moved(streamUrl, mapped.originId, chosen.id)
      return chosen
    })

    const markUp = (originId: OriginId) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const until = down.get(originId)
        if (until === undefined || now < until) return Effect.void
        down.delete(originId)
        return counters.up(originId)
      })

    const register = (origin: Origin) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        origins.set(origin.id, { origin, lastSeen: now })
        return markUp(origin.id)
      })

    const markDown = (originId: OriginId, why: string) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const wasDown = down.has(originId)
        down.set(originId, now + holdMillis)
        return wasDown ? Effect.void : counters.down(originId, why, downHold)
      })

    // Expired origins are kept (as unhealthy) until three TTLs have passed, for the admin view.
    const prune = (now: number) => {
      prunedAt = now
      for (const [id, entry] of origins) {
        if (!entry.origin.fixed && now - entry.lastSeen >= 3 * ttlMillis) {
          origins.delete(id)
          draining.delete(id)
          down.delete(id)
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
      markDown,
      markUp,
      downOrigins: (ids) =>
        Effect.map(Clock.currentTimeMillis, (now) =>
          new Set(ids.filter((id) => {
            const entry = origins.get(id)
            return entry !== undefined && isDown(entry.origin, now)
          }))),
      failover: counters.stats,
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
          draining: draining.has(entry.origin.id),
          down: isDown(entry.origin, now)
        }))),
      streams: Effect.sync(() => [...streams].map(([streamUrl, entry]) => ({ streamUrl, originId: entry.originId })))
    } satisfies LoadBalancerShape
  })

/** The memory load balancer, with the origin TTL and stream mapping TTL from the configuration. */
export const layer: Layer.Layer<LoadBalancer, never, ProxyConfig> = Layer.effect(
  LoadBalancer,
  Effect.flatMap(ProxyConfig, (config) =>
    make(
      config.originTtl,
      Option.getOrElse(config.streamMappingTtl, () => DEFAULT_STREAM_MAPPING_TTL),
      config.originDownHold
    ))
)
