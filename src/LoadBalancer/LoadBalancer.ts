/**
 * The load balancer: which origins are alive, and which origin serves each stream. Sticky per stream
 * URL, so that every publisher and player of one stream meet on one origin. The service, and the
 * policy its implementations (`Memory.ts`, `Redis.ts`) share.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as Option from "effect/Option"
import { ServiceUnavailable } from "../Domain/Errors.js"
import type { Origin, OriginId } from "../Domain/Origin.js"
import type { StreamKey } from "../Domain/StreamUrl.js"

/** An origin with what the load balancer knows of its health. */
export interface OriginStatus {
  readonly origin: Origin
  /** Epoch milliseconds of the last heartbeat (or registration). */
  readonly lastSeen: number
  readonly healthy: boolean
  /** Drained by an operator: takes no new streams; its live streams stay. */
  readonly draining: boolean
  /** Marked down by a failed signaling request (see `markDown`); it gets no new streams. */
  readonly down: boolean
}

/** This proxy's failover counts (the admin view). */
export interface FailoverStats {
  /** Streams moved to another origin because theirs was down or expired. */
  readonly reroutes: number
  /** Origins this proxy marked down. */
  readonly markedDown: number
  /** Origins back up after a hold-down (a heartbeat or a probe after it ended). */
  readonly cameBack: number
}

export interface StreamMapping {
  readonly streamUrl: StreamKey
  readonly originId: OriginId
}

export interface LoadBalancerShape {
  /** Adds or refreshes an origin (a heartbeat). */
  readonly register: (origin: Origin) => Effect.Effect<void>
  /**
   * The origin for a stream: the one it is mapped to while that origin is healthy, else a healthy
   * origin that is not draining, chosen now (and mapped). Origins marked down count as unhealthy, and so does `avoid`: the
   * mapping moves off it only if it still points there (compare and set), so that two proxies
   * failing over one stream at once agree on its new origin. Fails when no healthy origin can take
   * WebRTC.
   */
  readonly pick: (streamUrl: StreamKey, avoid?: OriginId) => Effect.Effect<Origin, ServiceUnavailable>
  /**
   * The origin could not be reached: it gets no new streams for the hold-down, and after it until its
   * next heartbeat. Streams mapped to it move when they next pick. With Redis every proxy knows.
   */
  readonly markDown: (originId: OriginId, why: string) => Effect.Effect<void>
  /** An active health probe reached the origin: a down mark whose hold-down is over ends, as with a heartbeat. */
  readonly markUp: (originId: OriginId) => Effect.Effect<void>
  /** Which of these origins are marked down (none when shared state cannot be read). */
  readonly downOrigins: (originIds: ReadonlyArray<OriginId>) => Effect.Effect<ReadonlySet<OriginId>>
  readonly failover: Effect.Effect<FailoverStats>
  /**
   * These streams have relay sessions on this proxy, with the origin each is relayed to: their
   * mappings stay, and one that was lost (it lapsed while shared state was unreachable) is set again
   * while that origin is known. Called about once a second. A mapping expires when its stream has
   * had no session and no pick for the stream mapping TTL, so unique stream names do not pile up.
   */
  readonly keepStreams: (streams: ReadonlyMap<StreamKey, OriginId>) => Effect.Effect<void>
  readonly find: (originId: OriginId) => Effect.Effect<Option.Option<Origin>>
  /**
   * Drains an origin (`on`) or ends its drain: a draining origin is not chosen for new streams, and
   * keeps the streams mapped to it. False when the origin is not known.
   */
  readonly drain: (originId: OriginId, on: boolean) => Effect.Effect<boolean, ServiceUnavailable>
  /** Every known origin (the admin view); fails when shared state cannot be read. */
  readonly origins: Effect.Effect<ReadonlyArray<OriginStatus>, ServiceUnavailable>
  /** Stream mappings (the admin view; a shared store may list a bounded number). */
  readonly streams: Effect.Effect<ReadonlyArray<StreamMapping>, ServiceUnavailable>
}

export class LoadBalancer extends Context.Tag("rtc-proxy/LoadBalancer")<LoadBalancer, LoadBalancerShape>() {}

/**
 * What a pick fails with when no live origin can take WebRTC (only origins with an HTTP API can).
 * `markedDown`: how many registered ones could, but are held down after failing (PROXY_ORIGIN_DOWN_HOLD).
 */
export const noHealthyOrigin = (markedDown = 0): ServiceUnavailable =>
  new ServiceUnavailable({
    message: markedDown > 0
      ? `every origin that takes WebRTC (${markedDown}) is marked down after it could not be reached; ` +
        "it gets offers again after PROXY_ORIGIN_DOWN_HOLD, and a registered one after its next heartbeat too (see /api/v1/origins)"
      : "no healthy origin is registered for WebRTC; check the origins' heartbeat settings",
    retryAfter: Duration.seconds(10)
  })

/** How long an origin marked down gets no new streams when the configuration does not say. */
export const DEFAULT_ORIGIN_DOWN_HOLD = Duration.seconds(10)

const reroutesTotal = Metric.counter("rtc_proxy_origin_reroutes_total", {
  description: "Streams moved to another origin because theirs was down or expired"
})
const stateChangesTotal = Metric.counter("rtc_proxy_origin_state_changes_total", {
  description: "Origins marked down, and back up, by this proxy (tag state)"
})

/** The failover counts of one load balancer, logged and counted in the metrics once per event. */
export const makeFailoverCounters = () => {
  const counts = { reroutes: 0, markedDown: 0, cameBack: 0 }
  return {
    stats: Effect.sync((): FailoverStats => ({ ...counts })),
    /** A stream whose origin was down or expired was given another one. */
    moved: (streamUrl: StreamKey, from: OriginId, to: OriginId): Effect.Effect<void> =>
      Effect.suspend(() => {
        counts.reroutes++
        return Effect.zipRight(
          Metric.increment(reroutesTotal),
          Effect.logInfo(`stream ${streamUrl} moved from origin ${from} (down or expired) to ${to}`)
        )
      }),
    down: (originId: OriginId, why: string, hold: Duration.Duration): Effect.Effect<void> =>
      Effect.suspend(() => {
        counts.markedDown++
        return Effect.zipRight(
          Metric.increment(Metric.tagged(stateChangesTotal, "state", "down")),
          Effect.logWarning(`origin ${originId} marked down for ${Duration.format(hold)}: ${why}`)
        )
      }),
    up: (originId: OriginId): Effect.Effect<void> =>
      Effect.suspend(() => {
        counts.cameBack++
        return Effect.zipRight(
          Metric.increment(Metric.tagged(stateChangesTotal, "state", "up")),
          Effect.logInfo(`origin ${originId} is back up after its hold-down`)
        )
      })
  }
}
