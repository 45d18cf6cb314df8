/**
 * Origins: the media servers behind the proxy, as they register by heartbeat (SRS's body) or as
 * configured. Listen strings and the heartbeat body are decoded here, purely, by schema.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

/** `<server>-<service>-<pid>` for registered origins (SRS's identity; changes on restart). */
export const OriginId = Schema.String.pipe(Schema.brand("OriginId"))
export type OriginId = typeof OriginId.Type

/** One listen endpoint as SRS writes it: `8000`, `udp://8000`, `udp://0.0.0.0:8000`, `[::]:1985`, `udp:0.0.0.0:8000`. */
export const ListenEndpoint = Schema.Struct({
  protocol: Schema.UndefinedOr(Schema.Literal("udp", "tcp")),
  /** The host part when given (often a wildcard such as `0.0.0.0`). */
  host: Schema.UndefinedOr(Schema.String),
  port: Schema.Int.pipe(Schema.between(1, 65535))
})
export interface ListenEndpoint extends Schema.Schema.Type<typeof ListenEndpoint> {}

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

/** A listen endpoint written back in the form SRS sends (`8000`, `udp://8000`, `udp://0.0.0.0:8000`). */
export const formatListen = (endpoint: ListenEndpoint): string => {
  const host = endpoint.host === undefined ? "" : `${endpoint.host.includes(":") ? `[${endpoint.host}]` : endpoint.host}:`
  return endpoint.protocol === undefined ? `${host}${endpoint.port}` : `${endpoint.protocol}://${host}${endpoint.port}`
}

/** A listen string, decoded to its endpoint and encoded back in SRS's form. */
export const ListenString = Schema.transformOrFail(Schema.String, ListenEndpoint, {
  strict: true,
  decode: (value, _, ast) => Either.mapLeft(parseListen(value), (reason) => new ParseResult.Type(ast, value, reason)),
  encode: (endpoint) => ParseResult.succeed(formatListen(endpoint))
})

/** An origin as the proxy knows it. */
export const Origin = Schema.Struct({
  id: OriginId,
  /** The address the proxy dials, for the HTTP API and for media. */
  ip: Schema.String,
  deviceId: Schema.UndefinedOr(Schema.String),
  server: Schema.String,
  service: Schema.String,
  pid: Schema.String,
  /** HTTP API port (WHIP/WHEP); an origin without one cannot take WebRTC streams. */
  apiPort: Schema.UndefinedOr(Schema.Number),
  /** WebRTC endpoints it announced; SRS serves every session on one UDP port. */
  rtc: Schema.Array(ListenEndpoint),
  /** Configured origins never expire. */
  fixed: Schema.Boolean
})
export interface Origin extends Schema.Schema.Type<typeof Origin> {}

/** The UDP port the origin announced for WebRTC media, if any (`tcp://` endpoints are not media for us). */
export const udpRtcPort = (origin: Origin): number | undefined =>
  origin.rtc.find((endpoint) => endpoint.protocol !== "tcp")?.port

/** Only an origin with an HTTP API can take WebRTC streams (the Redis PICK script applies the same rule). */
export const canServeWebRtc = (origin: Origin): boolean => origin.apiPort !== undefined

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

const parseAll = (field: string, values: ReadonlyArray<string> | undefined) =>
  Either.all((values ?? []).map((value) => Either.mapLeft(parseListen(value), (reason) => `${field}: ${reason}`)))

/**
 * A heartbeat body as the origin it registers. Its listen strings are checked in order (rtmp, api,
 * rtc) and refused with a sentence that names the field. An origin does not keep its RTMP ports, so
 * it cannot be encoded back into a heartbeat.
 */
export const OriginFromRegistration = Schema.transformOrFail(Registration, Origin, {
  strict: true,
  decode: (body, _, ast) =>
    Either.gen(function*() {
      if (/\s/.test(body.ip)) return yield* Either.left("ip must be an address, without spaces")
      yield* parseAll("rtmp", body.rtmp)
      const api = yield* parseAll("api", body.api)
      const rtc = yield* parseAll("rtc", body.rtc)
      return {
        id: OriginId.make(`${body.server}-${body.service}-${body.pid}`),
        ip: body.ip,
        deviceId: body.device_id ?? undefined,
        server: body.server,
        service: body.service,
        pid: body.pid,
        apiPort: api[0]?.port,
        rtc,
        fixed: false
      }
    }).pipe(Either.mapLeft((reason) => new ParseResult.Type(ast, body, reason))),
  encode: (origin, _, ast) =>
    ParseResult.fail(new ParseResult.Forbidden(ast, origin, "an origin does not keep the RTMP ports a heartbeat needs"))
})

const decodeHeartbeat = Schema.decodeUnknownEither(OriginFromRegistration, { errors: "first" })
const decodeJson = Schema.decodeEither(Schema.parseJson())

/**
 * The first problem of a heartbeat as one sentence that names its field: a refused listen string or
 * ip is its own sentence, a missing field "… is missing", a value of the wrong type "<field>: Expected
 * …, actual …", and a body that is no object says so (rather than print the schema).
 */
const reasonOf = (issue: ParseResult.ParseIssue): string => {
  const [first] = ParseResult.ArrayFormatter.formatIssueSync(issue._tag === "Transformation" ? issue.issue : issue)
  if (first === undefined) return "the heartbeat is not valid"
  const message = first.message.replace(/\s+/g, " ")
  if (first.path.length === 0) {
    return message.startsWith("Expected ") ? "expected a JSON object (the body SRS posts to /api/v1/srs/register)" : message
  }
  const field = first.path.map(String).join(".")
  if (first._tag === "Missing") {
    // The first element of a list that must not be empty (rtmp: []).
    const last = first.path[first.path.length - 1]
    return typeof last === "number" && first.path.length > 1
      ? `${first.path.slice(0, -1).map(String).join(".")} must not be empty`
      : `${field} is missing`
  }
  return message.startsWith(`${field} `) ? message : `${field}: ${message}`
}

/** Turns a heartbeat body into an origin; the error is a sentence for a 400 answer. */
export const fromRegistration = (body: unknown): Either.Either<Origin, string> =>
  Either.mapLeft(decodeHeartbeat(body), (error) => reasonOf(error.issue))

/** The heartbeat's text as an origin: it must be JSON whatever its Content-Type (curl -d sends a form type). */
export const fromHeartbeatText = (text: string): Either.Either<Origin, string> =>
  Either.flatMap(
    Either.mapLeft(decodeJson(text), () => "the heartbeat is not JSON"),
    (body) => Either.mapLeft(fromRegistration(body), (reason) => `invalid heartbeat: ${reason}`)
  )

/** The origin configured with PROXY_DEFAULT_BACKEND_*: never expires. */
export const fixed = (options: { readonly ip: string; readonly apiPort: number; readonly rtcPort: number }): Origin => ({
  id: OriginId.make(`default-${options.ip}-${options.apiPort}`),
  ip: options.ip,
  deviceId: undefined,
  server: "default",
  service: "default",
  pid: "0",
  apiPort: options.apiPort,
  rtc: [{ protocol: "udp", host: undefined, port: options.rtcPort }],
  fixed: true
})
