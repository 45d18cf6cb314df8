import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as LogLevel from "effect/LogLevel"
import * as Logging from "../src/Logging.ts"

const fromEnv = (entries: Record<string, string>) => ConfigProvider.fromMap(new Map(Object.entries(entries)))

const load = (entries: Record<string, string>, isTerminal: boolean) =>
  Effect.withConfigProvider(Logging.loggingConfig(isTerminal), fromEnv(entries))

/** Lines the main program's logger writes for `program`, with the given environment. */
const logged = (entries: Record<string, string>, program: Effect.Effect<void>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const current = yield* Effect.console
    const capture: Console.Console = {
      ...current,
      log: (...args) => Effect.sync(() => void lines.push(args.map(String).join(" "))),
      unsafe: { ...current.unsafe, log: (...args) => void lines.push(args.map(String).join(" ")) }
    }
    yield* program.pipe(
      Effect.provide(Logging.layer(false).pipe(Layer.provide(Layer.setConfigProvider(fromEnv(entries))))),
      Effect.withConsole(capture)
    )
    return lines
  })

describe("logging configuration", () => {
  it.effect("auto: pretty on a terminal, logfmt otherwise; info and above", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* load({}, true)).format, "pretty")
      assert.strictEqual((yield* load({}, false)).format, "logfmt")
      assert.strictEqual((yield* load({}, false)).level, LogLevel.Info)
    }))

  it.effect("an explicit format and level, the level in any case", () =>
    Effect.gen(function*() {
      const loaded = yield* load({ PROXY_LOG_FORMAT: "json", PROXY_LOG_LEVEL: "warning" }, true)
      assert.strictEqual(loaded.format, "json")
      assert.strictEqual(loaded.level, LogLevel.Warning)
      assert.strictEqual((yield* load({ PROXY_LOG_LEVEL: "DEBUG" }, true)).level, LogLevel.Debug)
    }))

  it.effect("an unknown format or level is a configuration error naming the variable", () =>
    Effect.gen(function*() {
      const format = yield* Effect.either(load({ PROXY_LOG_FORMAT: "xml" }, false))
      assert.isTrue(Either.isLeft(format) && String(format.left).includes("PROXY_LOG_FORMAT"))
      const level = yield* Effect.either(load({ PROXY_LOG_LEVEL: "loud" }, false))
      assert.isTrue(Either.isLeft(level) && String(level.left).includes("PROXY_LOG_LEVEL"))
    }))

  it.effect("json writes one JSON object per event; the level filters", () =>
    Effect.gen(function*() {
      const lines = yield* logged(
        { PROXY_LOG_FORMAT: "json", PROXY_LOG_LEVEL: "info" },
        Effect.zipRight(Effect.logDebug("hidden"), Effect.logInfo("session ended").pipe(Effect.annotateLogs("reason", "idle")))
      )
      assert.lengthOf(lines, 1)
      const event = JSON.parse(lines[0]!) as { message: string; logLevel: string; annotations: Record<string, string> }
      assert.strictEqual(event.message, "session ended")
      assert.strictEqual(event.logLevel, "INFO")
      assert.strictEqual(event.annotations["reason"], "idle")
    }))

  it.effect("logfmt writes key=value pairs", () =>
    Effect.gen(function*() {
      const lines = yield* logged({}, Effect.logWarning("origin slow"))
      assert.lengthOf(lines, 1)
      assert.match(lines[0]!, /level=WARN/)
      assert.match(lines[0]!, /message="origin slow"/)
    }))
})
