/**
 * Runs the proxy: configuration from the environment and `.env`, every part as a Layer, until
 * SIGINT/SIGTERM, then a drain bounded by PROXY_FORCE_QUIT_TIMEOUT.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { existsSync, readFileSync } from "node:fs"
import { parseDotEnv, ProxyConfig, providerFrom } from "./Config.js"
import * as Logging from "./Logging.js"
import { ProxyLive } from "./Proxy.js"

const dotEnv = existsSync(".env") ? parseDotEnv(readFileSync(".env", "utf8")) : new Map<string, string>()

const forceQuitAfterSignal = Effect.gen(function*() {
  const config = yield* ProxyConfig
  const force = Duration.toMillis(config.forceQuitTimeout)
  const onSignal = (signal: string) => {
    console.error(`${signal}: draining (at most ${Duration.format(config.forceQuitTimeout)})`)
    setTimeout(() => {
      console.error("drain did not finish in time; exiting")
      process.exit(1)
    }, force).unref()
  }
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)
})

const configFromEnv = Layer.setConfigProvider(providerFrom(process.env, dotEnv))

const MainLive = ProxyLive.pipe(
  Layer.merge(Layer.effectDiscard(forceQuitAfterSignal)),
  Layer.provideMerge(ProxyConfig.layer),
  Layer.provide(configFromEnv),
  Layer.provide(Logging.layer(process.stdout.isTTY === true).pipe(Layer.provide(configFromEnv)))
)

Layer.launch(MainLive).pipe(
  // A bad setting or a port in use: one clear line, exit code 1.
  Effect.tapErrorCause((cause) =>
    Effect.sync(() => {
      const error = Cause.squash(cause)
      const message = error instanceof Error ? error.message : String(error)
      console.error(`rtc-proxy cannot start: ${message.replace(/\s+/g, " ")}`)
    })
  ),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
