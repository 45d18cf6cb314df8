/**
 * How the main program logs: format and minimum level from PROXY_LOG_FORMAT and PROXY_LOG_LEVEL.
 * An app that embeds the proxy's Layers keeps its own logger; this is for `npm start`.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"

export type LogFormat = "pretty" | "logfmt" | "json"

export interface LoggingConfig {
  readonly format: LogFormat
  readonly level: LogLevel.LogLevel
}

const levels: Record<string, LogLevel.LogLevel> = {
  all: LogLevel.All,
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None
}

/**
 * `auto` (the default) is pretty, coloured lines on a terminal and logfmt otherwise (a file, journald,
 * a container's log collector), where one line per event with key=value pairs is what tools parse.
 */
export const loggingConfig = (isTerminal: boolean): Config.Config<LoggingConfig> =>
  Config.all({
    format: Config.literal("auto", "pretty", "logfmt", "json")("PROXY_LOG_FORMAT").pipe(
      Config.withDefault("auto" as const),
      Config.map((format): LogFormat => (format === "auto" ? (isTerminal ? "pretty" : "logfmt") : format))
    ),
    level: Config.string("PROXY_LOG_LEVEL").pipe(
      Config.mapOrFail((name) => {
        const level = levels[name.toLowerCase()]
        return level === undefined
          ? Either.left(ConfigError.InvalidData([], `expected one of ${Object.keys(levels).join(", ")}, got ${JSON.stringify(name)}`))
          : Either.right(level)
      }),
      Config.withDefault(LogLevel.Info)
    )
  })

const formats: Record<LogFormat, Layer.Layer<never>> = {
  pretty: Logger.pretty,
  logfmt: Logger.logFmt,
  json: Logger.json
}

/** The logger of the main program, from the configuration. */
export const layer = (isTerminal: boolean) =>
  Layer.unwrapEffect(
    Effect.map(loggingConfig(isTerminal), ({ format, level }) => Layer.merge(formats[format], Logger.minimumLogLevel(level)))
  )
