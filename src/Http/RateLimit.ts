/**
 * Per-client rate limiting for the requests that create or change state (POST, PATCH, DELETE): a
 * token bucket per client address, refilled continuously. Buckets of quiet clients are forgotten, so
 * a flood of spoofed addresses cannot grow the table without bound.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { ProxyConfig } from "../Config.js"
import { TooManyRequests } from "../Domain/Errors.js"

export interface RateLimiterShape {
  /** Takes one request's token for `client`, or fails with 429 and when to retry. */
  readonly take: (client: string) => Effect.Effect<void, TooManyRequests>
}

/** Most clients tracked at once; past it, full (idle) buckets are dropped first. */
const MAX_CLIENTS = 100_000

/**
 * @param perSecond sustained requests per second per client; 0 turns limiting off
 * @param burst requests a client may make at once
 */
export const make = (perSecond: number, burst: number): RateLimiterShape => {
  if (perSecond <= 0) return { take: () => Effect.void }
  const buckets = new Map<string, { tokens: number; at: number }>()
  const refill = (bucket: { tokens: number; at: number }, now: number) => {
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * perSecond)
    bucket.at = now
  }
  const prune = (now: number) => {
    for (const [client, bucket] of buckets) {
      refill(bucket, now)
      if (bucket.tokens >= burst) buckets.delete(client)
    }
  }
  return {
    take: (client) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        let bucket = buckets.get(client)
        if (bucket === undefined) {
          if (buckets.size >= MAX_CLIENTS) prune(now)
          buckets.set(client, bucket = { tokens: burst, at: now })
        } else {
          refill(bucket, now)
        }
        if (bucket.tokens >= 1) {
          bucket.tokens -= 1
          return Effect.void
        }
        const wait = Duration.millis(Math.ceil(((1 - bucket.tokens) / perSecond) * 1000))
        return Effect.fail(
          new TooManyRequests({ message: "too many requests from this address; slow down", retryAfter: wait })
        )
      })
  }
}

export class RateLimiter extends Context.Tag("rtc-proxy/RateLimiter")<RateLimiter, RateLimiterShape>() {
  /** PROXY_RATE_LIMIT per second with PROXY_RATE_LIMIT_BURST. */
  static readonly layer: Layer.Layer<RateLimiter, never, ProxyConfig> = Layer.effect(
    RateLimiter,
    Effect.map(ProxyConfig, (config) => make(config.rateLimit.perSecond, config.rateLimit.burst))
  )
}
