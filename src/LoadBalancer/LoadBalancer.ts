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
   * origin that is not draining, chosen now (and mapped). Fails when no healthy origin can take WebRTC.
   */
  readonly pick: (streamUrl: StreamKey) => Effect.Effect<Origin, ServiceUnavailable>
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

/** What a pick fails with when no live origin can take WebRTC (only origins with an HTTP API can). */
export const noHealthyOrigin = (): ServiceUnavailable =>
  new ServiceUnavailable({
    message: "no healthy origin is registered for WebRTC; check the origins' heartbeat settings",
    retryAfter: Duration.seconds(10)
  })

/** A stream whose origin expired was given another one. */
export const logMoved = (streamUrl: StreamKey, from: OriginId, to: OriginId): Effect.Effect<void> =>
  Effect.logInfo(`stream ${streamUrl} moved from expired origin ${from} to ${to}`)
