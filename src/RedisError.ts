/**
 * What every Redis failure becomes, in a module of its own: the package entry names it (the error of
 * `LoadBalancerLive`) without loading ioredis, which only `rtc-proxy/redis` and a Redis proxy load.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

export class RedisError extends Data.TaggedError("RedisError")<{
  readonly reason: "Connect" | "Command"
  readonly message: string
  readonly cause?: unknown
}> {}
