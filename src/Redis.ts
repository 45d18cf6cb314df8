/**
 * The Redis connection that the Redis load balancer and the Redis session store share: one ioredis
 * client opened in a scope with a connect timeout and closed with a bounded QUIT. Every failure
 * becomes a `RedisError`; the services on it turn that into what their callers see (a 503).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { Redis as IORedis } from "ioredis"
import { createHash } from "node:crypto"
import { ProxyConfig, type ProxyConfigShape } from "./Config.js"
import { RedisError } from "./RedisError.js"

export { RedisError }

/** A Lua script, run by its SHA1 and loaded on first use. */
export interface Script {
  readonly lua: string
  readonly sha: string
}

export const script = (lua: string): Script => ({ lua, sha: createHash("sha1").update(lua).digest("hex") })

export interface RedisClientShape {
  /** `host:port`, for messages. */
  readonly address: string
  /** A key under PROXY_REDIS_KEY_PREFIX: `<prefix>:<name>`, or `<name>` without a prefix (as the Go proxy). */
  readonly key: (name: string) => string
  /** Runs commands on the client; a rejection (or ioredis' command timeout) becomes a RedisError. */
  readonly use: <A>(f: (redis: IORedis) => Promise<A>) => Effect.Effect<A, RedisError>
  readonly eval: (
    script: Script,
    keys: ReadonlyArray<string>,
    args: ReadonlyArray<string | number>
  ) => Effect.Effect<unknown, RedisError>
  /** Publishes `message` on `channel` (a full name, prefix included). */
  readonly publish: (channel: string, message: string) => Effect.Effect<void, RedisError>
  /**
   * Calls `onMessage` with each message published on `channel`, on a second connection (a subscribed
   * connection takes no other command) opened now and closed with the scope; it reconnects and
   * subscribes again by itself. Messages published while it is down are lost.
   */
  readonly subscribe: (channel: string, onMessage: (message: string) => void) => Effect.Effect<void, RedisError, Scope.Scope>
  /** The keys that start with `prefix` (a full key, prefix included), by SCAN, up to `limit`. */
  readonly keysStartingWith: (prefix: string, limit?: number) => Effect.Effect<Array<string>, RedisError>
}

export interface RedisOptions {
  readonly host: string
  readonly port: number
  readonly password: Option.Option<string>
  readonly db: number
  readonly keyPrefix: string
  /** How long start-up waits for Redis (default 5 s). */
  readonly connectTimeout?: Duration.Duration
  /** How long one command may take before it fails (default 2 s). */
  readonly commandTimeout?: Duration.Duration
}

const messageOf = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : JSON.stringify(cause)

/**
 * Opens a client in the current scope. Start-up fails with one line naming the setting to check
 * (PROXY_REDIS_HOST / PROXY_REDIS_PORT when Redis cannot be reached, PROXY_REDIS_PASSWORD or
 * PROXY_REDIS_DB when it refuses them). Once up, commands fail at once while the connection is down
 * (no offline queue: a signaling request gets its 503 instead of waiting), and the client reconnects
 * in the background.
 */
export const make = (options: RedisOptions): Effect.Effect<RedisClientShape, RedisError, Scope.Scope> =>
  Effect.gen(function*() {
    const address = `${options.host.includes(":") ? `[${options.host}]` : options.host}:${options.port}`
    const connectTimeout = options.connectTimeout ?? Duration.seconds(5)
    const supervise = yield* FiberSet.makeRuntime<never>()
    let lastError: Error | undefined
    let up = false
    let connecting = true
    const errorsWhileConnecting: Array<Error> = []

    const lost = (why: string) => {
      if (!up) return
      up = false
      supervise(Effect.logWarning(`lost Redis at ${address} (${why}); reconnecting`))
    }
    const onError = (error: Error) => {
      lastError = error
      if (connecting && errorsWhileConnecting.length < 10) errorsWhileConnecting.push(error)
      lost(error.message)
    }
    const onClose = () => lost("connection closed")
    const onReady = () => {
      if (up) return
      up = true
      if (!connecting) supervise(Effect.logInfo(`Redis at ${address} is back`))
    }

    // The setting to check: a refused AUTH (the first error says why) or SELECT, else the address.
    const connectFailure = (cause: unknown) => {
      const auth = errorsWhileConnecting.find((error) => /WRONGPASS|NOAUTH|AUTH/.test(error.message))
      const select = errorsWhileConnecting.find((error) => /DB index|SELECT/i.test(error.message))
      const reason = auth ?? select ?? lastError ?? cause
      const setting = auth !== undefined
        ? "PROXY_REDIS_PASSWORD"
        : select !== undefined
        ? "PROXY_REDIS_DB"
        : "PROXY_REDIS_HOST / PROXY_REDIS_PORT"
      return new RedisError({
        reason: "Connect",
        message: `cannot connect to Redis at ${address} (${setting}): ${messageOf(reason)}`,
        cause: reason
      })
    }

    const client = yield* Effect.acquireRelease(
      Effect.async<IORedis, RedisError>((resume) => {
        const redis = new IORedis({
          host: options.host,
          port: options.port,
          db: options.db,
          ...(Option.isSome(options.password) ? { password: options.password.value } : {}),
          lazyConnect: true,
          connectTimeout: Duration.toMillis(connectTimeout),
          commandTimeout: Duration.toMillis(options.commandTimeout ?? Duration.seconds(2)),
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
          retryStrategy: (attempt) => Math.min(attempt * 200, 2000)
        })
        redis.on("error", onError)
        redis.on("close", onClose)
        redis.on("ready", onReady)
        redis.connect().then(
          () => {
            connecting = false
            // ioredis reports a refused SELECT and carries on with database 0.
            if (errorsWhileConnecting.some((error) => /DB index|SELECT/i.test(error.message))) {
              redis.disconnect()
              resume(Effect.fail(connectFailure(undefined)))
            } else {
              resume(Effect.succeed(redis))
            }
          },
          (cause) => {
            connecting = false
            redis.disconnect()
            resume(Effect.fail(connectFailure(cause)))
          }
        )
        return Effect.sync(() => redis.disconnect())
      }).pipe(
        Effect.timeoutFail({
          duration: connectTimeout,
          onTimeout: () => connectFailure(new Error(`no answer within ${Duration.format(connectTimeout)}`))
        })
      ),
      (redis) =>
        Effect.sync(() => {
          redis.off("error", onError)
          redis.off("close", onClose)
          redis.off("ready", onReady)
          redis.on("error", () => {}) // a socket error while closing is not news
        }).pipe(
          Effect.zipRight(Effect.tryPromise(() => redis.quit())),
          Effect.timeout(Duration.seconds(1)),
          Effect.ignore,
          Effect.ensuring(Effect.sync(() => redis.disconnect()))
        )
    )

    const notConnected = (cause?: unknown) =>
      new RedisError({
        reason: "Command",
        message: `Redis at ${address} is not connected${
          lastError === undefined ? "" : ` (last error: ${lastError.message})`
        }`,
        cause
      })

    const use = <A>(f: (redis: IORedis) => Promise<A>): Effect.Effect<A, RedisError> =>
      Effect.suspend(() =>
        client.status === "ready"
          ? Effect.tryPromise({
            try: () => f(client),
            // ioredis' words for a command sent while the connection is going away
            catch: (cause) =>
              /Stream isn't writeable|Connection is closed/.test(messageOf(cause))
                ? notConnected(cause)
                : new RedisError({ reason: "Command", message: `Redis at ${address}: ${messageOf(cause)}`, cause })
          })
          : Effect.fail(notConnected())
      )

    const keysStartingWith = (prefix: string, limit = Infinity) =>
      Effect.gen(function*() {
        const pattern = `${prefix.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`
        const keys: Array<string> = []
        let cursor = "0"
        do {
          const [next, batch] = yield* use((redis) => redis.scan(cursor, "MATCH", pattern, "COUNT", 500))
          keys.push(...batch)
          cursor = next
        } while (cursor !== "0" && keys.length < limit)
        return keys
      })

    const subscribe = (channel: string, onMessage: (message: string) => void) =>
      Effect.acquireRelease(
        Effect.async<IORedis, RedisError>((resume) => {
          const subscriber = client.duplicate({ lazyConnect: true, enableOfflineQueue: true, maxRetriesPerRequest: null })
          subscriber.on("error", () => {}) // the main client reports the connection's trouble
          subscriber.on("message", (from: string, message: string) => {
            if (from === channel) onMessage(message)
          })
          subscriber.connect().then(() => subscriber.subscribe(channel)).then(
            () => resume(Effect.succeed(subscriber)),
            (cause) => {
              subscriber.disconnect()
              resume(Effect.fail(
                new RedisError({ reason: "Connect", message: `cannot subscribe to ${channel} at Redis ${address}: ${messageOf(cause)}`, cause })
              ))
            }
          )
          return Effect.sync(() => subscriber.disconnect())
        }).pipe(
          Effect.timeoutFail({
            duration: connectTimeout,
            onTimeout: () => new RedisError({ reason: "Connect", message: `cannot subscribe to ${channel} at Redis ${address}: no answer` })
          })
        ),
        (subscriber) =>
          Effect.tryPromise(() => subscriber.quit()).pipe(
            Effect.timeout(Duration.seconds(1)),
            Effect.ignore,
            Effect.ensuring(Effect.sync(() => subscriber.disconnect()))
          )
      ).pipe(Effect.asVoid)

    return {
      address,
      publish: (channel, message) => Effect.asVoid(use((redis) => redis.publish(channel, message))),
      subscribe,
      key: (name) => options.keyPrefix === "" ? name : `${options.keyPrefix}:${name}`,
      use,
      eval: (script, keys, args) =>
        use((redis) =>
          redis.evalsha(script.sha, keys.length, ...keys, ...args).catch((error: unknown) =>
            messageOf(error).startsWith("NOSCRIPT")
              ? redis.eval(script.lua, keys.length, ...keys, ...args)
              : Promise.reject(error)
          )
        ),
      keysStartingWith
    } satisfies RedisClientShape
  })

export class RedisClient extends Context.Tag("rtc-proxy/RedisClient")<RedisClient, RedisClientShape>() {
  /** The client for PROXY_REDIS_HOST, _PORT, _PASSWORD, _DB and _KEY_PREFIX. */
  static readonly layer: Layer.Layer<RedisClient, RedisError, ProxyConfig> = Layer.scoped(
    RedisClient,
    Effect.flatMap(ProxyConfig, (config: ProxyConfigShape) => make(config.redis))
  )
}
