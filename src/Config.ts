/**
 * Configuration from environment variables (and an optional `.env`), under the SRS Go proxy's names
 * so one proxy can replace the other, plus what it lacks. Defaults run on one machine with nothing
 * else installed.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { isIP } from "node:net"

export interface ProxyConfigShape {
  /** Address every listener binds to. */
  readonly listenHost: string
  readonly httpPort: number
  readonly systemPort: number
  readonly udpPort: number
  /** IP written into answers' candidates; none: the hostname of each request's Host, resolved. */
  readonly candidateIp: Option.Option<string>
  /** Port written into answers' candidates, when it differs from the bound UDP port (port forwarding). */
  readonly candidatePort: Option.Option<number>
  readonly loadBalancer: "memory" | "redis"
  readonly redis: {
    readonly host: string
    readonly port: number
    readonly password: Option.Option<string>
    readonly db: number
    readonly keyPrefix: string
  }
  readonly originTtl: Duration.Duration
  /**
   * How long a stream's origin mapping outlives the stream's last relay session (0: for ever). None:
   * the load balancer's own default (memory: 1 hour; Redis: for ever, as the SRS Go proxies, which
   * share the mappings and never renew them, expect).
   */
  readonly streamMappingTtl: Option.Option<Duration.Duration>
  readonly defaultBackend: Option.Option<{ readonly ip: string; readonly apiPort: number; readonly rtcPort: number }>
  /** A relay session with no packet from its client for this long is freed (RFC 7675: 30 s). */
  readonly relayIdleTimeout: Duration.Duration
  readonly originTimeout: Duration.Duration
  readonly maxBodyBytes: number
  /** How long a client may take to send a request body once its headers are in (then 408). */
  readonly bodyTimeout: Duration.Duration
  /** When set, origins must send `Authorization: Bearer <token>` to the system API. */
  readonly systemApiToken: Option.Option<string>
  /** When set, WHIP/WHEP requests must carry `Authorization: Bearer <token>` (it still goes to the origin). */
  readonly mediaApiToken: Option.Option<string>
  /** POST/PATCH/DELETE per client address: sustained per second (0: off) and burst. */
  readonly rateLimit: { readonly perSecond: number; readonly burst: number }
  /** Most relay sessions at once (0: no cap); past it, new offers get 503. */
  readonly maxSessions: number
  /** Kernel socket buffer size for the shared UDP port. */
  readonly udpBufferBytes: number
  readonly graceQuitTimeout: Duration.Duration
  readonly forceQuitTimeout: Duration.Duration
}

const GO_DURATION = /^(\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/
const GO_UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/**
 * Durations as the Go proxy writes them (`300s`, `1m30s`, `500ms`), as bare seconds (`30`), or in
 * Effect's form (`30 seconds`).
 */
export const parseDuration = (text: string): Either.Either<Duration.Duration, string> => {
  const value = text.trim()
  if (/^\d+(\.\d+)?$/.test(value)) return Either.right(Duration.seconds(Number(value)))
  if (GO_DURATION.test(value)) {
    let millis = 0
    for (const [, amount, unit] of value.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) {
      millis += Number(amount) * GO_UNIT_MS[unit!]!
    }
    return Either.right(Duration.millis(millis))
  }
  const decoded = Duration.decodeUnknown(value)
  return Option.match(decoded, {
    onNone: () => Either.left(`expected a duration such as 30s, 1m30s, 500ms or 30, got ${JSON.stringify(text)}`),
    onSome: Either.right
  })
}

/** A duration variable's text, parsed; the error names the variable (so does a failed `check`). */
const parseDurationOf = (name: string, check?: { readonly valid: (d: Duration.Duration) => boolean; readonly message: string }) =>
(text: string) =>
  Either.flatMap(
    Either.mapLeft(parseDuration(text), (message) => ConfigErrorInvalid(name, message)),
    (parsed) => check === undefined || check.valid(parsed) ? Either.right(parsed) : Either.left(ConfigErrorInvalid(name, check.message))
  )

const duration = (name: string, fallback: string) =>
  Config.string(name).pipe(Config.withDefault(fallback), Config.mapOrFail(parseDurationOf(name)))

// Validate before withDefault: a check on the default's result would report an empty path, not the name.
const port = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "expected a port from 0 to 65535", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(fallback)
  )

const ipLiteral = (name: string) =>
  Config.string(name).pipe(Config.validate({ message: "expected an IPv4 or IPv6 address", validation: (s) => isIP(s) !== 0 }))

const ConfigErrorInvalid = (name: string, message: string) => ConfigError.InvalidData([name], message)

/** The whole configuration, as an effect/Config. */
export const config: Config.Config<ProxyConfigShape> = Config.all({
  listenHost: ipLiteral("PROXY_LISTEN_HOST").pipe(Config.withDefault("0.0.0.0")),
  httpPort: port("PROXY_HTTP_API", 11985),
  systemPort: port("PROXY_SYSTEM_API", 12025),
  udpPort: port("PROXY_WEBRTC_SERVER", 18000),
  candidateIp: Config.option(ipLiteral("PROXY_CANDIDATE_IP")),
  candidatePort: Config.option(Config.integer("PROXY_CANDIDATE_PORT").pipe(
    Config.validate({ message: "expected a port from 1 to 65535", validation: (n) => n >= 1 && n <= 65535 })
  )),
  loadBalancer: Config.literal("memory", "redis")("PROXY_LOAD_BALANCER_TYPE").pipe(Config.withDefault("memory" as const)),
  redis: Config.all({
    host: Config.string("PROXY_REDIS_HOST").pipe(Config.withDefault("127.0.0.1")),
    port: port("PROXY_REDIS_PORT", 6379),
    password: Config.option(Config.string("PROXY_REDIS_PASSWORD")),
    db: Config.integer("PROXY_REDIS_DB").pipe(Config.withDefault(0)),
    keyPrefix: Config.string("PROXY_REDIS_KEY_PREFIX").pipe(Config.withDefault(""))
  }),
  originTtl: duration("PROXY_ORIGIN_SERVER_TTL", "300s"),
  // Live sessions renew their mappings about once a second: a shorter TTL could lapse between renewals.
  streamMappingTtl: Config.option(Config.string("PROXY_STREAM_MAPPING_TTL").pipe(
    Config.mapOrFail(parseDurationOf("PROXY_STREAM_MAPPING_TTL", {
      valid: (ttl) => Duration.toMillis(ttl) === 0 || Duration.toMillis(ttl) >= 10_000,
      message: "expected 0 (never expire) or at least 10s"
    }))
  )),
  defaultBackend: Config.all({
    enabled: Config.boolean("PROXY_DEFAULT_BACKEND_ENABLED").pipe(Config.withDefault(false)),
    ip: Config.string("PROXY_DEFAULT_BACKEND_IP").pipe(Config.withDefault("127.0.0.1")),
    apiPort: port("PROXY_DEFAULT_BACKEND_API", 1985),
    rtcPort: port("PROXY_DEFAULT_BACKEND_RTC", 8000)
  }).pipe(Config.map(({ enabled, ...backend }) => (enabled ? Option.some(backend) : Option.none()))),
  relayIdleTimeout: duration("PROXY_RTC_IDLE_TIMEOUT", "30s"),
  originTimeout: duration("PROXY_ORIGIN_TIMEOUT", "5s"),
  maxBodyBytes: Config.integer("PROXY_MAX_BODY_SIZE").pipe(
    Config.validate({ message: "expected a size in bytes from 1024", validation: (n) => n >= 1024 }),
    Config.withDefault(64 * 1024)
  ),
  bodyTimeout: duration("PROXY_BODY_TIMEOUT", "10s"),
  systemApiToken: Config.option(Config.string("PROXY_SYSTEM_API_TOKEN")),
  mediaApiToken: Config.option(Config.string("PROXY_HTTP_API_TOKEN")),
  rateLimit: Config.all({
    perSecond: Config.number("PROXY_RATE_LIMIT").pipe(
      Config.validate({ message: "expected requests per second, 0 or more", validation: (n) => n >= 0 }),
      Config.withDefault(20)
    ),
    burst: Config.integer("PROXY_RATE_LIMIT_BURST").pipe(
      Config.validate({ message: "expected a number of requests, 1 or more", validation: (n) => n >= 1 }),
      Config.withDefault(50)
    )
  }),
  maxSessions: Config.integer("PROXY_MAX_SESSIONS").pipe(
    Config.validate({ message: "expected a number of sessions, 0 or more", validation: (n) => n >= 0 }),
    Config.withDefault(10_000)
  ),
  udpBufferBytes: Config.integer("PROXY_UDP_BUFFER_SIZE").pipe(
    Config.validate({ message: "expected a size in bytes from 65536", validation: (n) => n >= 65536 }),
    Config.withDefault(4 * 1024 * 1024)
  ),
  graceQuitTimeout: duration("PROXY_GRACE_QUIT_TIMEOUT", "20s"),
  forceQuitTimeout: duration("PROXY_FORCE_QUIT_TIMEOUT", "30s")
})

/** The proxy's configuration as a service. */
export class ProxyConfig extends Context.Tag("rtc-proxy/ProxyConfig")<ProxyConfig, ProxyConfigShape>() {
  /** From the current ConfigProvider (the environment, and `.env` in main). */
  static readonly layer = Layer.effect(ProxyConfig, config)

  /** Defaults overridden by `overrides`: for tests and embedding. */
  static readonly layerWith = (overrides: Partial<ProxyConfigShape>) =>
    Layer.effect(
      ProxyConfig,
      Effect.map(
        Effect.withConfigProvider(config, ConfigProvider.fromMap(new Map())),
        (defaults) => ({ ...defaults, ...overrides })
      )
    )
}

/** Parses `.env` text: `KEY=value` lines, `export ` prefixes, `#` comments, single or double quotes. */
export const parseDotEnv = (text: string): Map<string, string> => {
  const entries = new Map<string, string>()
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim()
    if (line === "" || line.startsWith("#")) continue
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line)
    if (match === null) continue
    let value = match[2]!
    // A quoted value ends at the first closing quote followed only by an optional comment.
    const quoted = /^(["'])(.*?)\1(?:\s+#.*|\s*)$/.exec(value)
    if (quoted !== null) {
      value = quoted[2]!
      if (quoted[1] === "\"") value = value.replace(/\\n/g, "\n")
    } else {
      value = value.replace(/\s+#.*$/, "")
    }
    entries.set(match[1]!, value)
  }
  return entries
}

/**
 * The environment over `.env` (as godotenv does for the Go proxy: the environment wins), with empty
 * values treated as unset.
 */
export const providerFrom = (env: Record<string, string | undefined>, dotEnv: Map<string, string>) => {
  const merged = new Map<string, string>()
  for (const [key, value] of dotEnv) if (value !== "") merged.set(key, value)
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && value !== "") merged.set(key, value)
  }
  return ConfigProvider.fromMap(merged)
}
