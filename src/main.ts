/**
 * Runs the proxy: configuration from the environment and `.env`, every part as a Layer, until
 * SIGINT/SIGTERM, then a drain bounded by PROXY_FORCE_QUIT_TIMEOUT.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import { existsSync, readFileSync } from "node:fs"
import { describeConfigError, ignoredGoProxyLine, ignoredGoProxyVariables, mergeEnv, parseDotEnv, ProxyConfig } from "./Config.js"
import { Health } from "./Http/Health.js"
import * as Logging from "./Logging.js"
import { ProxyLive } from "./Proxy.js"
import * as Tracing from "./Tracing.js"

const dotEnv = existsSync(".env") ? parseDotEnv(readFileSync(".env", "utf8")) : new Map<string, string>()

const forceQuitAfterSignal = Effect.gen(function*() {
  const config = yield* ProxyConfig
  const health = yield* Health
  // The signal handler's lines go through the configured logger (PROXY_LOG_FORMAT, PROXY_LOG_LEVEL).
  const log = Runtime.runSync(yield* Effect.runtime<never>())
  const force = Duration.toMillis(config.forceQuitTimeout)
  // Runs before the layer's finalizers: readiness is 503 from the first of them on.
  const onSignal = (signal: string) => {
    health.startDraining()
    log(Effect.logInfo(`${signal}: draining (at most ${Duration.format(config.forceQuitTimeout)})`))
    setTimeout(() => {
      log(Effect.logError("drain did not finish in time; exiting"))
      process.exit(1)
    }, force).unref()
  }
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)
})

const env = mergeEnv(process.env, dotEnv)
const configFromEnv = Layer.setConfigProvider(ConfigProvider.fromMap(env))

// A Go proxy's environment starts this proxy: its settings for other protocols are named once, not refused.
const announceIgnored = Layer.effectDiscard(Effect.suspend(() => {
  const line = ignoredGoProxyLine(ignoredGoProxyVariables(env))
  return line === undefined ? Effect.void : Effect.logInfo(line)
}))

const MainLive = Layer.effectDiscard(forceQuitAfterSignal).pipe(
  Layer.provideMerge(ProxyLive),
  Layer.merge(announceIgnored),
  Layer.provideMerge(ProxyConfig.layer),
  Layer.provide(configFromEnv),
  Layer.provide(Tracing.offUnlessExported.pipe(Layer.provide(configFromEnv))),
  Layer.provide(Logging.layer(process.stdout.isTTY === true).pipe(Layer.provide(configFromEnv)))
)

Layer.launch(MainLive).pipe(
  // A bad setting or a port in use: one clear line, exit code 1.
  Effect.tapErrorCause((cause) =>
    Effect.sync(() => {
      const error = Cause.squash(cause)
      const message = ConfigError.isConfigError(error)
        ? describeConfigError(error)
        : error instanceof Error
        ? error.message
        : String(error)
      console.error(`rtc-proxy cannot start: ${message.replace(/\s+/g, " ")}`)
    })
  ),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
