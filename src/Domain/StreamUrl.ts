/**
 * The stream URL `<vhost>/<app>/<stream>`: the key under which the load balancer keeps a stream on
 * one origin. Computed one way for every route (WHIP, WHEP, legacy JSON), so publish and play meet.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { isIP } from "node:net"

export const DEFAULT_VHOST = "__defaultVhost__"
export const DEFAULT_APP = "live"
export const DEFAULT_STREAM = "livestream"

/** `<vhost>/<app>/<stream>`: the key of a stream in the load balancer and the session store. */
export const StreamKey = Schema.String.pipe(Schema.brand("StreamKey"))
export type StreamKey = typeof StreamKey.Type

export interface StreamUrl {
  readonly vhost: string
  readonly app: string
  readonly stream: string
  readonly key: StreamKey
}

// Printable, no white space, nothing that would break a URL, a Redis key or a log line.
const NAME = /^[A-Za-z0-9._~!$&'()*+,;=:@%-]+(?:\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*$/
const MAX_NAME = 255

/** The hostname of a Host header value (`name`, `name:port`, `[v6]:port`), lower-cased. */
export const hostnameOf = (host: string): string => {
  const trimmed = host.trim().toLowerCase()
  if (trimmed.startsWith("[")) {
    const close = trimmed.indexOf("]")
    return close === -1 ? trimmed : trimmed.slice(1, close)
  }
  const colon = trimmed.indexOf(":")
  // More than one colon: a bare IPv6 literal without brackets.
  if (colon !== -1 && trimmed.indexOf(":", colon + 1) === -1) return trimmed.slice(0, colon)
  return trimmed
}

/** SRS's rule: a Host names a vhost only when it is a domain name (not an IP literal, and has a dot). */
export const vhostFromHost = (host: string | undefined): string => {
  if (host === undefined) return DEFAULT_VHOST
  const hostname = hostnameOf(host)
  if (hostname === "" || isIP(hostname) !== 0 || !hostname.includes(".")) return DEFAULT_VHOST
  return hostname
}

const checkName = (what: string, value: string): Either.Either<string, string> =>
  value.length > MAX_NAME
    ? Either.left(`${what} is longer than ${MAX_NAME} characters`)
    : NAME.test(value)
    ? Either.right(value)
    : Either.left(`${what} ${JSON.stringify(value)} has characters a stream name cannot have`)

/** Builds the key; the error says which part is unusable. */
export const make = (parts: {
  readonly vhost: string
  readonly app: string
  readonly stream: string
}): Either.Either<StreamUrl, string> =>
  Either.gen(function*() {
    const vhost = yield* checkName("vhost", parts.vhost)
    const app = yield* checkName("app", parts.app)
    const stream = yield* checkName("stream", parts.stream)
    return { vhost, app, stream, key: StreamKey.make(`${vhost}/${app}/${stream}`) }
  })

const nonEmpty = (value: string | null): string | undefined =>
  value === null || value.trim() === "" ? undefined : value.trim()

/** From a WHIP/WHEP request: `app`, `stream`, `vhost` (or `domain`) query parameters and the Host header. */
export const fromRequest = (query: URLSearchParams, host: string | undefined): Either.Either<StreamUrl, string> =>
  make({
    vhost: nonEmpty(query.get("vhost")) ?? nonEmpty(query.get("domain")) ?? vhostFromHost(host),
    app: nonEmpty(query.get("app")) ?? DEFAULT_APP,
    stream: nonEmpty(query.get("stream")) ?? DEFAULT_STREAM
  })

/**
 * From the legacy API's `streamurl` (`webrtc://host[:port]/app[/more]/stream[?vhost=v]`): the last path
 * segment is the stream, what comes before it the app; vhost as for a request, with the URL's host.
 */
export const fromWebrtcUrl = (streamurl: string): Either.Either<StreamUrl, string> => {
  let url: URL
  try {
    url = new URL(streamurl)
  } catch {
    return Either.left(`streamurl ${JSON.stringify(streamurl)} is not a URL`)
  }
  const segments = url.pathname.split("/").filter((segment) => segment !== "")
  if (segments.length < 2) return Either.left(`streamurl ${JSON.stringify(streamurl)} has no app and stream`)
  const stream = segments.pop()!
  return make({
    vhost: nonEmpty(url.searchParams.get("vhost")) ?? nonEmpty(url.searchParams.get("domain")) ??
      vhostFromHost(url.host),
    app: segments.join("/"),
    stream
  })
}
