/**
 * Origins: the media servers behind the proxy, as they register by heartbeat (SRS's body) or as
 * configured. Listen strings and the registration body are parsed here, purely.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

/** One listen endpoint as SRS writes it: `8000`, `udp://8000`, `udp://0.0.0.0:8000`, `[::]:1985`, `udp:0.0.0.0:8000`. */
export interface ListenEndpoint {
  readonly protocol: "udp" | "tcp" | undefined
  /** The host part when given (often a wildcard such as `0.0.0.0`). */
  readonly host: string | undefined
  readonly port: number
}

const LISTEN = /^(?:(udp|tcp):(?:\/\/)?)?(?:(\[[0-9a-fA-F:.]+\]|[^:\[\]\/]+):)?(\d{1,5})$/i

/** Parses a listen string; the error says what is wrong with it. */
export const parseListen = (value: string): Either.Either<ListenEndpoint, string> => {
  const match = LISTEN.exec(value.trim())
  const port = match === null ? NaN : Number(match[3])
  if (match === null || !Number.isInteger(port) || port < 1 || port > 65535) {
    return Either.left(`${JSON.stringify(value)} is not a listen endpoint (like 8000, udp://0.0.0.0:8000 or [::]:1985)`)
  }
  const host = match[2] === undefined ? undefined : match[2].replace(/^\[|\]$/g, "")
  return Either.right({
    protocol: match[1] === undefined ? undefined : (match[1].toLowerCase() as "udp" | "tcp"),
    host,
    port
  })
}

/** An origin as the proxy knows it. */
export interface Origin {
  /** `<server>-<service>-<pid>` for registered origins (SRS's identity; changes on restart). */
  readonly id: string
  /** The address the proxy dials, for the HTTP API and for media. */
  readonly ip: string
  readonly deviceId: string | undefined
  readonly server: string
  readonly service: string
  readonly pid: string
  /** HTTP API port (WHIP/WHEP); an origin without one cannot take WebRTC streams. */
  readonly apiPort: number | undefined
  /** WebRTC endpoints it announced; SRS serves every session on one UDP port. */
  readonly rtc: ReadonlyArray<ListenEndpoint>
  /** Configured origins never expire. */
  readonly fixed: boolean
}

/** The UDP port the origin announced for WebRTC media, if any (`tcp://` endpoints are not media for us). */
export const udpRtcPort = (origin: Origin): number | undefined =>
  origin.rtc.find((endpoint) => endpoint.protocol !== "tcp")?.port

export const apiBaseUrl = (origin: Origin): string | undefined =>
  origin.apiPort === undefined
    ? undefined
    : `http://${origin.ip.includes(":") ? `[${origin.ip}]` : origin.ip}:${origin.apiPort}`

const ListenList = Schema.Array(Schema.String)

/** The heartbeat body SRS posts to `/api/v1/srs/register`. Unknown fields are ignored. */
export const Registration = Schema.Struct({
  device_id: Schema.optional(Schema.NullOr(Schema.String)),
  ip: Schema.String.pipe(Schema.minLength(1, { message: () => "ip must not be empty" })),
  server: Schema.String.pipe(Schema.minLength(1, { message: () => "server must not be empty" })),
  service: Schema.String.pipe(Schema.minLength(1, { message: () => "service must not be empty" })),
  // SRS sends the pid as a string; numbers are accepted too, for hand-written heartbeats.
  pid: Schema.Union(Schema.String, Schema.Number).pipe(
    Schema.transform(Schema.String, { decode: (pid) => String(pid), encode: (pid) => pid, strict: true })
  ),
  rtmp: Schema.NonEmptyArray(Schema.String),
  http: Schema.optional(ListenList),
  api: Schema.optional(ListenList),
  srt: Schema.optional(ListenList),
  rtc: Schema.optional(ListenList),
  rtsp: Schema.optional(ListenList)
})
export type Registration = typeof Registration.Type

const decodeRegistration = Schema.decodeUnknownEither(Registration, { onExcessProperty: "ignore", errors: "first" })

const parseAll = (field: string, values: ReadonlyArray<string> | undefined) =>
  Either.all((values ?? []).map((value) => Either.mapLeft(parseListen(value), (reason) => `${field}: ${reason}`)))

/** Turns a heartbeat body into an origin; the error is a sentence for a 400 answer. */
export const fromRegistration = (body: unknown): Either.Either<Origin, string> =>
  Either.gen(function*() {
    const registration = yield* Either.mapLeft(
      decodeRegistration(body),
      (error) => ParseResult.TreeFormatter.formatErrorSync(error).replace(/\s+/g, " ")
    )
    if (/\s/.test(registration.ip)) return yield* Either.left("ip must be an address, without spaces")
    yield* parseAll("rtmp", registration.rtmp)
    const api = yield* parseAll("api", registration.api)
    const rtc = yield* parseAll("rtc", registration.rtc)
    return {
      id: `${registration.server}-${registration.service}-${registration.pid}`,
      ip: registration.ip,
      deviceId: registration.device_id ?? undefined,
      server: registration.server,
      service: registration.service,
      pid: registration.pid,
      apiPort: api[0]?.port,
      rtc,
      fixed: false
    } satisfies Origin
  })

/** The origin configured with PROXY_DEFAULT_BACKEND_*: never expires. */
export const fixed = (options: { readonly ip: string; readonly apiPort: number; readonly rtcPort: number }): Origin => ({
  id: `default-${options.ip}-${options.apiPort}`,
  ip: options.ip,
  deviceId: undefined,
  server: "default",
  service: "default",
  pid: "0",
  apiPort: options.apiPort,
  rtc: [{ protocol: "udp", host: undefined, port: options.rtcPort }],
  fixed: true
})
