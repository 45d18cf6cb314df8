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
import { availableParallelism } from "node:os"
import { isIceServerUrl } from "./Http/IceServers.js"
import { parseTrustedProxies, type TrustedProxies } from "./Http/ClientAddress.js"

export interface ProxyConfigShape {
  /** Address every listener binds to unless its own variable names a host. */
  readonly listenHost: string
  readonly httpPort: number
  /** Host of PROXY_HTTP_API (`127.0.0.1:11985`); none: listenHost. */
  readonly httpHost: Option.Option<string>
  readonly systemPort: number
  /** Host of PROXY_SYSTEM_API; none: listenHost. */
  readonly systemHost: Option.Option<string>
  /**
   * The media API over TLS as well, on a listener of its own: when PROXY_HTTPS_CERT and
   * PROXY_HTTPS_KEY are both set.
   */
  readonly https: Option.Option<HttpsConfig>
  readonly udpPort: number
  /** Host of PROXY_WEBRTC_SERVER, always an IP literal; none: listenHost. */
  readonly udpHost: Option.Option<string>
  /**
   * IPs written into answers' candidates, one candidate each (IPv4 and IPv6 alike), the first also in
   * `c=` lines; empty: the hostname of each request's Host, resolved.
   */
  readonly candidateIps: ReadonlyArray<string>
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
  /**
   * An origin that could not be reached at signaling gets no new streams for this long, and then
   * until its next heartbeat.
   */
  readonly originDownHold: Duration.Duration
  /** Active health: origins with live sessions here are sent `GET <path>` every `interval` (0: never). */
  readonly originProbe: {
    readonly path: string
    readonly interval: Duration.Duration
    readonly timeout: Duration.Duration
    /** Probes missed in a row (no answer, or a 5xx) that mark the origin down. */
    readonly failures: number
  }
  readonly maxBodyBytes: number
  /** How long a client may take to send a request body once its headers are in (then 408). */
  readonly bodyTimeout: Duration.Duration
  /** When set, origins must send `Authorization: Bearer <token>` to the system API. */
  readonly systemApiToken: Option.Option<string>
  /** When set, WHIP/WHEP requests must carry `Authorization: Bearer <token>` (it still goes to the origin). */
  readonly mediaApiToken: Option.Option<string>
  /** STUN/TURN URLs advertised to clients as `Link: <url>; rel="ice-server"` (RFC 9725). */
  readonly iceServers: ReadonlyArray<string>
  /** coturn's `static-auth-secret`: TURN URLs then carry time-limited REST credentials. */
  readonly turnSecret: Option.Option<string>
  /** How long those TURN credentials stay valid. */
  readonly turnCredentialTtl: Duration.Duration
  /**
   * Whether the proxy carries out an ICE restart itself when the origin cannot (no PATCH: SRS);
   * off, such a restart is answered 422 (the session supports trickle ICE only).
   */
  readonly iceRestart: boolean
  /** POST/PATCH/DELETE per client address: sustained per second (0: off) and burst. */
  readonly rateLimit: { readonly perSecond: number; readonly burst: number }
  /**
   * Reverse proxies (addresses, CIDR ranges) whose `Forwarded` / `X-Forwarded-For` name the client;
   * none by default: the TCP peer is the client.
   */
  readonly trustedProxies: TrustedProxies
  /** Most relay sessions at once (0: no cap); past it, new offers get 503. */
  readonly maxSessions: number
  /**
   * ICE-TCP (RFC 6544, RFC 4571 framing) on one TCP port beside the UDP one; none: off. The host is
   * an IP literal (none: listenHost).
   */
  readonly iceTcp: Option.Option<ListenAddress>
  /** Most ICE-TCP connections at once; past it, new ones are closed at once (counted). */
  readonly iceTcpMaxConnections: number
  /** An ICE-TCP connection without a verified binding request this long after it opened is closed. */
  readonly iceTcpHandshakeTimeout: Duration.Duration
  /** Kernel socket buffer size for the shared UDP port. */
  readonly udpBufferBytes: number
  /**
   * Data-plane worker threads, each on its own UDP port (udpPort + i). 1: no worker thread, the
   * media is relayed on the main thread.
   */
  readonly rtcWorkers: number
  readonly graceQuitTimeout: Duration.Duration
  readonly forceQuitTimeout: Duration.Duration
}

/** Where the HTTPS listener binds and the PEM files it serves, re-read when they change. */
export interface HttpsConfig {
  /** Host of PROXY_HTTPS_API; none: listenHost. */
  readonly host: Option.Option<string>
  readonly port: number
  /** PROXY_HTTPS_CERT: the certificate, then any intermediates (a `fullchain.pem`). */
  readonly certFile: string
  /** PROXY_HTTPS_KEY: its private key, unencrypted. */
  readonly keyFile: string
  /** How often both files are checked for a renewal. */
  readonly reloadInterval: Duration.Duration
}

// Go's time.ParseDuration: each amount may be `5`, `5.`, `.5` or `5.5`; µ (micro) and μ (mu) both spell µs.
const GO_AMOUNT = String.raw`(?:\d+\.?\d*|\.\d+)`
const GO_DURATION = new RegExp(`^\\+?(${GO_AMOUNT}(?:ns|us|µs|μs|ms|s|m|h))+$`)
const GO_PART = new RegExp(`(${GO_AMOUNT})(ns|us|µs|μs|ms|s|m|h)`, "g")
const GO_UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, "μs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/**
 * Durations as the Go proxy writes them (`300s`, `1m30s`, `500ms`), as bare seconds (`30`), or in
 * Effect's form (`30 seconds`).
 */
export const parseDuration = (text: string): Either.Either<Duration.Duration, string> => {
  const value = text.trim()
  if (/^\d+(\.\d+)?$/.test(value)) return Either.right(Duration.seconds(Number(value)))
  if (GO_DURATION.test(value)) {
    let millis = 0
    for (const [, amount, unit] of value.matchAll(GO_PART)) {
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

const ConfigErrorInvalid = (name: string, message: string) => ConfigError.InvalidData([name], message)

/** `Config.validate` that names the value it refused ("…, got -1"). Apply before withDefault, as validate. */
const validated = <A>(options: { readonly message: string; readonly validation: (a: A) => boolean }) =>
  Config.mapOrFail((value: A) =>
    options.validation(value)
      ? Either.right(value)
      : Either.left(ConfigError.InvalidData([], `${options.message}, got ${JSON.stringify(value)}`))
  )

/**
 * A configuration error as the one line start-up prints: each refused variable with what was wrong,
 * `PROXY_HTTP_API: expected a port or host:port, got "abc" (…)`, several joined with `; `.
 */
export const describeConfigError = (error: ConfigError.ConfigError): string => {
  switch (error._op) {
    case "And":
      return `${describeConfigError(error.left)}; ${describeConfigError(error.right)}`
    case "Or":
      return `${describeConfigError(error.left)}, or ${describeConfigError(error.right)}`
    case "InvalidData":
    case "MissingData":
    case "SourceUnavailable":
    case "Unsupported":
      return error.path.length === 0 ? error.message : `${error.path.join(".")}: ${error.message}`
  }
}

// Validate before withDefault: a check on the default's result would report an empty path, not the name.
const port = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    validated({ message: "expected a port from 0 to 65535", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(fallback)
  )

const ipLiteral = (name: string) =>
  Config.string(name).pipe(validated({ message: "expected an IPv4 or IPv6 address", validation: (s) => isIP(s) !== 0 }))



/** Where one listener binds: its own host (none: PROXY_LISTEN_HOST) and its port. */
export interface ListenAddress {
  readonly host: Option.Option<string>
  readonly port: number
}

// The forms a listen variable takes, with the variable's own default port; names only where a host name is.
const listenForms = (port: number, hostnames: boolean) =>
  `accepted: ${port}, :${port}, 127.0.0.1:${port}, [::1]:${port}, 0.0.0.0:${port}${hostnames ? `, localhost:${port}` : ""}`
const HOSTNAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i

/**
 * A listen variable in the SRS Go proxy's forms: a port (`11985`, `:11985`) or host and port
 * (`127.0.0.1:11985`, `[::1]:11985`, `0.0.0.0:11985`, `media.internal:11985`: the Go proxy hands the
 * string to net.Listen, which resolves names). `localhost` is 127.0.0.1, the address Go binds for it
 * (Node's resolver may answer ::1 first). With `hostnames: false` a host must be an IP literal.
 */
export const parseListenAddress = (
  text: string,
  options: { readonly hostnames: boolean; readonly examplePort?: number }
): Either.Either<ListenAddress, string> => {
  const fail = (why: string) =>
    Either.left(`${why}, got ${JSON.stringify(text)} (${listenForms(options.examplePort ?? 11985, options.hostnames)})`)
  const value = text.trim()
  const match = /^(?:(\[[^\]]*\]|[^:[\]]*):)?(\d+)$/.exec(value)
  if (match === null) {
    const lastColon = value.lastIndexOf(":")
    return lastColon > 0 && isIP(value.slice(0, lastColon)) === 6
      ? fail("an IPv6 host needs brackets")
      : fail("expected a port or host:port")
  }
  const [, rawHost, digits] = match
  const port = Number(digits)
  if (port > 65535) return fail("expected a port from 0 to 65535")
  if (rawHost === undefined || rawHost === "") return Either.right({ host: Option.none(), port })
  if (rawHost.startsWith("[")) {
    const v6 = rawHost.slice(1, -1)
    return isIP(v6) === 6 ? Either.right({ host: Option.some(v6), port }) : fail(`${rawHost} is not an IPv6 address`)
  }
  if (rawHost.toLowerCase() === "localhost") return Either.right({ host: Option.some("127.0.0.1"), port })
  if (isIP(rawHost) === 4) return Either.right({ host: Option.some(rawHost), port })
  if (/^[\d.]+$/.test(rawHost)) return fail(`${rawHost} is not an IPv4 address`)
  if (!options.hostnames) return fail(`the host must be an IP address, not a name like ${rawHost}`)
  return HOSTNAME.test(rawHost) ? Either.right({ host: Option.some(rawHost), port }) : fail(`${rawHost} is neither an IP address nor a host name`)
}

// mapOrFail after withDefault, as in `duration`: wrapped the other way, the error's path names the variable twice.
const listen = (name: string, fallbackPort: number, options: { readonly hostnames: boolean }) =>
  Config.string(name).pipe(
    Config.withDefault(String(fallbackPort)),
    Config.mapOrFail((text) =>
      Either.mapLeft(parseListenAddress(text, { ...options, examplePort: fallbackPort }), (message) => ConfigErrorInvalid(name, message))
    )
  )

const ON = new Set(["on", "true", "yes", "1"])
const OFF = new Set(["off", "false", "no", "0"])

/**
 * `on`/`off` as the SRS Go proxy writes them, and true/false, yes/no, 1/0, in any case. (The Go proxy
 * takes exactly `on` as on and anything else as off; a value that is neither here is an error.)
 */
const onOff = (name: string, fallback: boolean) =>
  Config.string(name).pipe(Config.withDefault(fallback ? "on" : "off"), Config.mapOrFail((text) => {
    const value = text.trim().toLowerCase()
    return ON.has(value)
      ? Either.right(true)
      : OFF.has(value)
      ? Either.right(false)
      : Either.left(ConfigErrorInvalid(name, `expected on or off (or true/false, yes/no, 1/0), got ${JSON.stringify(text)}`))
  }))

/**
 * The SRS Go proxy's variables for what rtc-proxy does not serve (RTMP, HTTP-FLV/HLS, SRT, static
 * files, Go's pprof) or does its own way (the session cache TTL: rtc-proxy renews live sessions'
 * records). Accepted and ignored, so a Go proxy's environment starts this proxy unchanged.
 */
export const GO_PROXY_IGNORED_VARIABLES: ReadonlyArray<string> = [
  "GO_PPROF",
  "PROXY_RTMP_SERVER",
  "PROXY_HTTP_SERVER",
  "PROXY_SRT_SERVER",
  "PROXY_STATIC_FILES",
  "PROXY_DEFAULT_BACKEND_RTMP",
  "PROXY_DEFAULT_BACKEND_HTTP",
  "PROXY_DEFAULT_BACKEND_SRT",
  "PROXY_HLS_ALIVE_DURATION",
  "PROXY_RTC_ALIVE_DURATION",
  // Inert unless PROXY_HTTP_API_AUTH_ENABLED is on, which stops start-up (see below).
  "PROXY_HTTP_API_AUTH_ENABLED",
  "PROXY_HTTP_API_AUTH_TYPE",
  "PROXY_HTTP_API_AUTH_TOKEN"
]

/** Which of the Go proxy's ignored variables are set (non-empty) in `env`, in the list's order. */
export const ignoredGoProxyVariables = (env: ReadonlyMap<string, string>): ReadonlyArray<string> =>
  GO_PROXY_IGNORED_VARIABLES.filter((name) => (env.get(name) ?? "") !== "")

/**
 * The start-up line naming the ignored variables that are set, each group with its reason: the other
 * protocols' settings, and the API token settings (inert while PROXY_HTTP_API_AUTH_ENABLED is off).
 */
export const ignoredGoProxyLine = (ignored: ReadonlyArray<string>): string | undefined => {
  const isAuth = (name: string) => name.startsWith("PROXY_HTTP_API_AUTH_")
  const other = ignored.filter((name) => !isAuth(name))
  const auth = ignored.filter(isAuth)
  const reasons = [
    ...(other.length === 0 ? [] : [`${other.join(", ")}: rtc-proxy serves WebRTC only (WHIP/WHEP and one UDP port)`]),
    ...(auth.length === 0 ? [] : [
      `${auth.join(", ")}: rtc-proxy's own tokens are PROXY_HTTP_API_TOKEN (WHIP/WHEP) and PROXY_SYSTEM_API_TOKEN (origin registration)`
    ])
  ]
  return reasons.length === 0 ? undefined : `ignoring the SRS Go proxy's ${reasons.join("; and ")}`
}

// Newer Go proxies protect their APIs with PROXY_HTTP_API_AUTH_*. Ignoring it would open what the
// user meant to close, so it stops start-up and names this proxy's own token variables.
const goProxyAuthRefused = onOff("PROXY_HTTP_API_AUTH_ENABLED", false).pipe(
  Config.mapOrFail((enabled) =>
    enabled
      ? Either.left(ConfigErrorInvalid(
        "PROXY_HTTP_API_AUTH_ENABLED",
        "rtc-proxy does not read the SRS Go proxy's PROXY_HTTP_API_AUTH_*: set PROXY_SYSTEM_API_TOKEN (origin registration) " +
          "and PROXY_HTTP_API_TOKEN (WHIP/WHEP) instead, and unset PROXY_HTTP_API_AUTH_ENABLED"
      ))
      : Either.right(undefined)
  )
)

// PROXY_ORIGIN_SERVER_TTL is the Go proxy's name since SRS 8; some 2025 builds read PROXY_SERVER_ALIVE_DURATION.
const originTtl = Config.all({
  ttl: Config.option(Config.string("PROXY_ORIGIN_SERVER_TTL")),
  alias: Config.option(Config.string("PROXY_SERVER_ALIVE_DURATION"))
}).pipe(Config.mapOrFail(({ alias, ttl }) =>
  Option.isSome(ttl)
    ? parseDurationOf("PROXY_ORIGIN_SERVER_TTL")(ttl.value)
    : parseDurationOf("PROXY_SERVER_ALIVE_DURATION")(Option.getOrElse(alias, () => "300s"))
))

/**
 * PROXY_HTTPS_CERT and PROXY_HTTPS_KEY go together; PROXY_HTTPS_API or PROXY_HTTPS_RELOAD_INTERVAL
 * without them would leave an operator believing TLS is served, so each of these is an error.
 */
const https = Config.all({
  listen: Config.option(Config.string("PROXY_HTTPS_API")),
  cert: Config.option(Config.string("PROXY_HTTPS_CERT")),
  key: Config.option(Config.string("PROXY_HTTPS_KEY")),
  reloadInterval: Config.option(Config.string("PROXY_HTTPS_RELOAD_INTERVAL"))
}).pipe(Config.mapOrFail(({ cert, key, listen: listenText, reloadInterval }): Either.Either<Option.Option<HttpsConfig>, ConfigError.ConfigError> => {
  if (Option.isNone(cert) || Option.isNone(key)) {
    const missing = Option.isNone(cert) ? "PROXY_HTTPS_CERT" : "PROXY_HTTPS_KEY"
    const given = { PROXY_HTTPS_CERT: cert, PROXY_HTTPS_KEY: key, PROXY_HTTPS_API: listenText, PROXY_HTTPS_RELOAD_INTERVAL: reloadInterval }
    const set = Object.entries(given).filter(([, value]) => Option.isSome(value)).map(([name]) => name)
    return set.length === 0
      ? Either.right(Option.none())
      : Either.left(ConfigErrorInvalid(
        missing,
        `${set.join(" and ")} set without ${missing}: HTTPS needs both PROXY_HTTPS_CERT and PROXY_HTTPS_KEY (paths of PEM files)`
      ))
  }
  const address = parseListenAddress(Option.getOrElse(listenText, () => "11443"), { hostnames: true })
  if (Either.isLeft(address)) return Either.left(ConfigErrorInvalid("PROXY_HTTPS_API", address.left))
  const interval = parseDurationOf("PROXY_HTTPS_RELOAD_INTERVAL", {
    valid: (d) => Duration.toMillis(d) >= 100,
    message: "expected a duration of at least 100ms"
  })(Option.getOrElse(reloadInterval, () => "10s"))
  if (Either.isLeft(interval)) return Either.left(interval.left)
  return Either.right(Option.some({
    host: address.right.host,
    port: address.right.port,
    certFile: cert.value,
    keyFile: key.value,
    reloadInterval: interval.right
  }))
}))

/** The whole configuration, as an effect/Config. */
export const config: Config.Config<ProxyConfigShape> = Config.all({
  listenHost: ipLiteral("PROXY_LISTEN_HOST").pipe(Config.withDefault("0.0.0.0")),
  http: listen("PROXY_HTTP_API", 11985, { hostnames: true }),
  system: listen("PROXY_SYSTEM_API", 12025, { hostnames: true }),
  // The shared UDP socket binds and sends without DNS lookups: its host must be an IP literal.
  udp: listen("PROXY_WEBRTC_SERVER", 18000, { hostnames: false }),
  https,
  goProxyAuthRefused,
  candidateIps: Config.string("PROXY_CANDIDATE_IP").pipe(
    Config.withDefault(""),
    Config.mapOrFail((text) => {
      const ips = text.split(",").map((ip) => ip.trim()).filter((ip) => ip !== "")
      const bad = ips.find((ip) => isIP(ip) === 0)
      return bad === undefined
        ? Either.right([...new Set(ips)])
        : Either.left(ConfigErrorInvalid("PROXY_CANDIDATE_IP", `expected IPv4 or IPv6 addresses, comma-separated, got ${JSON.stringify(bad)}`))
    })
  ),
  candidatePort: Config.option(Config.integer("PROXY_CANDIDATE_PORT").pipe(
    validated({ message: "expected a port from 1 to 65535", validation: (n) => n >= 1 && n <= 65535 })
  )),
  loadBalancer: Config.literal("memory", "redis")("PROXY_LOAD_BALANCER_TYPE").pipe(Config.withDefault("memory" as const)),
  redis: Config.all({
    host: Config.string("PROXY_REDIS_HOST").pipe(Config.withDefault("127.0.0.1")),
    port: port("PROXY_REDIS_PORT", 6379),
    password: Config.option(Config.string("PROXY_REDIS_PASSWORD")),
    db: Config.integer("PROXY_REDIS_DB").pipe(Config.withDefault(0)),
    keyPrefix: Config.string("PROXY_REDIS_KEY_PREFIX").pipe(Config.withDefault(""))
  }),
  originTtl,
  // Live sessions renew their mappings about once a second: a shorter TTL could lapse between renewals.
  streamMappingTtl: Config.string("PROXY_STREAM_MAPPING_TTL").pipe(
    Config.withDefault(""),
    Config.mapOrFail((text) =>
      text === ""
        ? Either.right(Option.none())
        : Either.map(
          parseDurationOf("PROXY_STREAM_MAPPING_TTL", {
            valid: (ttl) => Duration.toMillis(ttl) === 0 || Duration.toMillis(ttl) >= 10_000,
            message: "expected 0 (never expire) or at least 10s"
          })(text),
          Option.some
        )
    )
  ),
  defaultBackend: Config.all({
    enabled: onOff("PROXY_DEFAULT_BACKEND_ENABLED", false),
    ip: Config.string("PROXY_DEFAULT_BACKEND_IP").pipe(Config.withDefault("127.0.0.1")),
    apiPort: port("PROXY_DEFAULT_BACKEND_API", 1985),
    rtcPort: port("PROXY_DEFAULT_BACKEND_RTC", 8000)
  }).pipe(Config.map(({ enabled, ...backend }) => (enabled ? Option.some(backend) : Option.none()))),
  relayIdleTimeout: duration("PROXY_RTC_IDLE_TIMEOUT", "30s"),
  originTimeout: duration("PROXY_ORIGIN_TIMEOUT", "5s"),
  originDownHold: duration("PROXY_ORIGIN_DOWN_HOLD", "10s"),
  originProbe: Config.all({
    path: Config.string("PROXY_ORIGIN_PROBE_PATH").pipe(
      validated({ message: "expected a path starting with /", validation: (path) => path.startsWith("/") }),
      Config.withDefault("/api/v1/versions")
    ),
    interval: duration("PROXY_ORIGIN_PROBE_INTERVAL", "5s"),
    timeout: duration("PROXY_ORIGIN_PROBE_TIMEOUT", "2s"),
    failures: Config.integer("PROXY_ORIGIN_PROBE_FAILURES").pipe(
      validated({ message: "expected a number of probes, 1 or more", validation: (n) => n >= 1 }),
      Config.withDefault(3)
    )
  }),
  maxBodyBytes: Config.integer("PROXY_MAX_BODY_SIZE").pipe(
    validated({ message: "expected a size in bytes from 1024", validation: (n) => n >= 1024 }),
    Config.withDefault(64 * 1024)
  ),
  bodyTimeout: duration("PROXY_BODY_TIMEOUT", "10s"),
  systemApiToken: Config.option(Config.string("PROXY_SYSTEM_API_TOKEN")),
  mediaApiToken: Config.option(Config.string("PROXY_HTTP_API_TOKEN")),
  iceServers: Config.string("PROXY_ICE_SERVERS").pipe(
    Config.withDefault(""),
    Config.mapOrFail((text) => {
      const urls = text.split(",").map((url) => url.trim()).filter((url) => url !== "")
      const bad = urls.find((url) => !isIceServerUrl(url))
      return bad === undefined
        ? Either.right(urls)
        : Either.left(ConfigErrorInvalid("PROXY_ICE_SERVERS", `expected stun:, stuns:, turn: or turns: URLs, got ${JSON.stringify(bad)}`))
    })
  ),
  turnSecret: Config.option(Config.string("PROXY_TURN_SECRET")),
  turnCredentialTtl: duration("PROXY_TURN_TTL", "24h"),
  iceRestart: onOff("PROXY_ICE_RESTART", true),
  rateLimit: Config.all({
    perSecond: Config.number("PROXY_RATE_LIMIT").pipe(
      validated({ message: "expected requests per second, 0 or more", validation: (n) => n >= 0 }),
      Config.withDefault(20)
    ),
    burst: Config.integer("PROXY_RATE_LIMIT_BURST").pipe(
      validated({ message: "expected a number of requests, 1 or more", validation: (n) => n >= 1 }),
      Config.withDefault(50)
    )
  }),
  trustedProxies: Config.string("PROXY_TRUSTED_PROXIES").pipe(
    Config.withDefault(""),
    Config.mapOrFail((text) => Either.mapLeft(parseTrustedProxies(text), (message) => ConfigErrorInvalid("PROXY_TRUSTED_PROXIES", message)))
  ),
  maxSessions: Config.integer("PROXY_MAX_SESSIONS").pipe(
    validated({ message: "expected a number of sessions, 0 or more", validation: (n) => n >= 0 }),
    Config.withDefault(10_000)
  ),
  // Off unless set: a TCP port is one more thing to open in a firewall, and most clients never need it.
  iceTcp: Config.string("PROXY_WEBRTC_TCP").pipe(
    Config.withDefault(""),
    Config.mapOrFail((text) =>
      text.trim() === ""
        ? Either.right(Option.none())
        : Either.map(
          Either.mapLeft(parseListenAddress(text, { hostnames: false }), (message) => ConfigErrorInvalid("PROXY_WEBRTC_TCP", message)),
          Option.some
        )
    )
  ),
  iceTcpMaxConnections: Config.integer("PROXY_WEBRTC_TCP_MAX_CONNECTIONS").pipe(
    validated({ message: "expected a number of connections, 1 or more", validation: (n) => n >= 1 }),
    Config.withDefault(2000)
  ),
  iceTcpHandshakeTimeout: duration("PROXY_WEBRTC_TCP_HANDSHAKE_TIMEOUT", "5s"),
  udpBufferBytes: Config.integer("PROXY_UDP_BUFFER_SIZE").pipe(
    validated({ message: "expected a size in bytes from 65536", validation: (n) => n >= 65536 }),
    Config.withDefault(4 * 1024 * 1024)
  ),
  rtcWorkers: Config.string("PROXY_RTC_WORKERS").pipe(
    Config.withDefault("1"),
    Config.mapOrFail((text) => Either.mapLeft(parseWorkerCount(text), (message) => ConfigErrorInvalid("PROXY_RTC_WORKERS", message)))
  ),
  graceQuitTimeout: duration("PROXY_GRACE_QUIT_TIMEOUT", "20s"),
  forceQuitTimeout: duration("PROXY_FORCE_QUIT_TIMEOUT", "30s")
}).pipe(Config.map(({ goProxyAuthRefused: _, http, system, udp, ...rest }) => ({
  ...rest,
  httpPort: http.port,
  httpHost: http.host,
  systemPort: system.port,
  systemHost: system.host,
  udpPort: udp.port,
  udpHost: udp.host
})), Config.mapOrFail((config) => Either.map(checkWorkers(config, environmentNames), () => config)))

/** Most data-plane workers: each is a thread with its own event loop and a few MB of heap. */
const MAX_RTC_WORKERS = 64

/** How a configuration check names the settings: the variables, or ProxyConfigShape's fields. */
interface SettingNames {
  readonly iceTcp: string
  readonly rtcWorkers: string
  readonly workersIs: (count: number) => string
  readonly oneWorker: string
}

const environmentNames: SettingNames = {
  iceTcp: "PROXY_WEBRTC_TCP",
  rtcWorkers: "PROXY_RTC_WORKERS",
  workersIs: (count) => `PROXY_RTC_WORKERS=${count}`,
  oneWorker: "PROXY_RTC_WORKERS=1"
}

const fieldNames: SettingNames = {
  iceTcp: "iceTcp",
  rtcWorkers: "rtcWorkers",
  workersIs: (count) => `rtcWorkers: ${count}`,
  oneWorker: "rtcWorkers to 1"
}

/**
 * What the worker settings must agree on, for the environment and for a configuration built in
 * code alike: a worker count from 1 to 64, and no ICE-TCP with more than one worker (its
 * connections are relayed by the router on the main thread, which workers do not have).
 */
const checkWorkers = (config: ProxyConfigShape, names: SettingNames): Either.Either<void, ConfigError.ConfigError> => {
  const count = config.rtcWorkers
  if (!Number.isInteger(count) || count < 1 || count > MAX_RTC_WORKERS) {
    return Either.left(ConfigErrorInvalid(names.rtcWorkers, `expected a number of workers from 1 to ${MAX_RTC_WORKERS}, got ${count}`))
  }
  if (count > 1 && Option.isSome(config.iceTcp)) {
    return Either.left(ConfigErrorInvalid(
      names.iceTcp,
      `ICE-TCP is not available with data-plane workers (${names.workersIs(count)}): ` +
        `unset ${names.iceTcp} or set ${names.oneWorker}`
    ))
  }
  return Either.void
}

/**
 * Candidate addresses no client could use, as warnings for the start-up log: an address of a family
 * the media port does not listen on (an IPv6 candidate while the UDP port is bound to 0.0.0.0). Not
 * an error: a NAT or load balancer in front may translate.
 */
export const candidateFamilyWarnings = (config: ProxyConfigShape): ReadonlyArray<string> => {
  const host = Option.getOrElse(config.udpHost, () => config.listenHost)
  const listens = host === "::" ? [4, 6] : [isIP(host)]
  return config.candidateIps.filter((ip) => !listens.includes(isIP(ip))).map((ip) =>
    `PROXY_CANDIDATE_IP names ${ip}, but the WebRTC UDP port listens on ${host} (IPv${listens[0]} only): ` +
    `clients cannot reach it there unless something in front translates; PROXY_LISTEN_HOST=:: listens on both families`
  )
}

/** The proxy's configuration as a service. */
export class ProxyConfig extends Context.Tag("rtc-proxy/ProxyConfig")<ProxyConfig, ProxyConfigShape>() {
  /** From the current ConfigProvider (the environment, and `.env` in main). */
  static readonly layer = Layer.effect(ProxyConfig, config)

  /**
   * Defaults overridden by `overrides`: for tests and embedding. Refused as the environment would be
   * when the worker settings disagree (a ConfigError naming the fields).
   */
  static readonly layerWith = (overrides: Partial<ProxyConfigShape>) =>
    Layer.effect(
      ProxyConfig,
      Effect.flatMap(
        Effect.withConfigProvider(config, ConfigProvider.fromMap(new Map())),
        (defaults) => {
          const merged: ProxyConfigShape = { ...defaults, ...overrides }
          return Either.map(checkWorkers(merged, fieldNames), () => merged)
        }
      )
    )
}

/** `auto` (one worker per available core) or a count from 1 to 64. */
export const parseWorkerCount = (text: string): Either.Either<number, string> => {
  const trimmed = text.trim().toLowerCase()
  if (trimmed === "auto") return Either.right(Math.min(MAX_RTC_WORKERS, Math.max(1, availableParallelism())))
  if (!/^\d+$/.test(trimmed)) return Either.left(`expected auto or a number of workers from 1 to ${MAX_RTC_WORKERS}, got ${text}`)
  const count = Number(trimmed)
  return count >= 1 && count <= MAX_RTC_WORKERS
    ? Either.right(count)
    : Either.left(`expected auto or a number of workers from 1 to ${MAX_RTC_WORKERS}, got ${text}`)
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
export const mergeEnv = (env: Record<string, string | undefined>, dotEnv: ReadonlyMap<string, string>): Map<string, string> => {
  const merged = new Map<string, string>()
  for (const [key, value] of dotEnv) if (value !== "") merged.set(key, value)
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && value !== "") merged.set(key, value)
  }
  return merged
}

/** A ConfigProvider over {@link mergeEnv}. */
export const providerFrom = (env: Record<string, string | undefined>, dotEnv: ReadonlyMap<string, string>) =>
  ConfigProvider.fromMap(mergeEnv(env, dotEnv))
