/**
 * The proxy's HTTP listeners (media API and system API, and the media API over TLS when
 * PROXY_HTTPS_CERT and PROXY_HTTPS_KEY are set), bound in one scoped layer that tells where
 * everything listens: ports may be 0 in tests and embedding.
 *
 * @since 0.1.0
 */
import type * as HttpServer from "@effect/platform/HttpServer"
import type { ServeError } from "@effect/platform/HttpServerError"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { createServer } from "node:http"
import type { Server as NetServer } from "node:net"
import type { Duplex } from "node:stream"
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https"
import { ProxyConfig } from "../Config.js"
import { LoadBalancer } from "../LoadBalancer/LoadBalancer.js"
import { SessionStore } from "../Session/SessionStore.js"
import { Relay } from "../Udp/Relay.js"
import { UdpSocket } from "../Udp/UdpSocket.js"
import * as Certificate from "./Certificate.js"
import { Health } from "./Health.js"
import { OriginClient } from "./OriginClient.js"
import type { Prometheus } from "./Prometheus.js"
import { RateLimiter } from "./RateLimit.js"
import { mediaApp, systemApp } from "./Routes.js"

export interface Endpoint {
  readonly host: string
  readonly port: number
}

/** Where the running proxy listens. */
export class ProxyAddresses extends Context.Tag("rtc-proxy/ProxyAddresses")<ProxyAddresses, {
  readonly media: Endpoint
  /** The media API over TLS; none without PROXY_HTTPS_CERT and PROXY_HTTPS_KEY. */
  readonly https: Option.Option<Endpoint>
  readonly system: Endpoint
  readonly udp: Endpoint
}>() {}

// Slow clients must not hold a connection forever (slowloris): headers within 10 s, a request within 30 s.
const TIMEOUTS = { requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 5_000 }

/**
 * What Node's HTTP parser refuses before any handler runs (a malformed request line or header, headers
 * past the size limit, a request that did not arrive within `requestTimeout`) is answered as the
 * proxy's own errors are, with a JSON `{code, message}`, and the connection is closed. Node's own
 * answer has no body.
 */
const PARSER_REFUSALS: Record<string, readonly [status: number, reason: string, code: string, message: string]> = {
  HPE_HEADER_OVERFLOW: [431, "Request Header Fields Too Large", "request-header-fields-too-large", "the request's headers are larger than this proxy accepts"],
  ERR_HTTP_REQUEST_TIMEOUT: [
    408,
    "Request Timeout",
    "request-timeout",
    `the request did not arrive in time (its headers within ${TIMEOUTS.headersTimeout / 1000} s, all of it within ${
      TIMEOUTS.requestTimeout / 1000
    } s)`
  ]
}
const MALFORMED = [400, "Bad Request", "bad-request", "the request is not valid HTTP/1.1"] as const

const answerClientError = (error: Error & { readonly code?: string }, socket: Duplex) => {
  // A connection the client reset, or one whose current response has begun (as Node's own handler
  // checks), gets nothing more: bytes written now would land inside that response.
  const current = (socket as Duplex & { readonly _httpMessage?: { readonly headersSent?: boolean } })._httpMessage
  if (error.code === "ECONNRESET" || !socket.writable || current?.headersSent === true) {
    socket.destroy()
    return
  }
  const [status, reason, code, message] = PARSER_REFUSALS[error.code ?? ""] ?? MALFORMED
  const body = JSON.stringify({ code, message })
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Connection: close\r\n\r\n${body}`
  )
}

const makeNodeServer = () => {
  const server = createServer(TIMEOUTS)
  server.maxRequestsPerSocket = 1000
  server.on("clientError", answerClientError)
  return server
}

// The same HTTP/1.1 server behind TLS 1.2 or later, with the TLS handshake held to 10 s as well.
const makeHttpsServer = (pair: Certificate.CertificatePair) => {
  const server = createHttpsServer({ ...TIMEOUTS, cert: pair.cert, key: pair.key, minVersion: "TLSv1.2", handshakeTimeout: 10_000 })
  server.maxRequestsPerSocket = 1000
  server.on("clientError", answerClientError)
  return server
}

// Node's own address of the listener where there is one: the platform reports `::` as 0.0.0.0.
const addressOf = (server: HttpServer.HttpServer, node?: NetServer): Endpoint => {
  const bound = node?.address()
  if (typeof bound === "object" && bound !== null) return { host: bound.address, port: bound.port }
  return server.address._tag === "TcpAddress"
    ? { host: server.address.hostname, port: server.address.port }
    : { host: server.address.path, port: 0 }
}

const hostPort = ({ host, port }: Endpoint) => host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`

/** Binds the HTTP listeners and serves the apps on them until the scope ends. */
export const layer: Layer.Layer<
  ProxyAddresses,
  ServeError | Certificate.CertificateError,
  ProxyConfig | LoadBalancer | OriginClient | Relay | SessionStore | UdpSocket | RateLimiter | Health | Prometheus
> = Layer.scoped(
  ProxyAddresses,
  Effect.gen(function*() {
    const config = yield* ProxyConfig
    const udp = yield* UdpSocket
    let mediaNode: NetServer | undefined
    const media = yield* NodeHttpServer.make(() => (mediaNode = makeNodeServer()), {
      host: Option.getOrElse(config.httpHost, () => config.listenHost),
      port: config.httpPort
    })
    yield* media.serve(mediaApp)
    const https = yield* Option.match(config.https, {
      onNone: () => Effect.succeedNone,
      onSome: (settings) =>
        Effect.gen(function*() {
          const initial = yield* Certificate.loadStamped(settings)
          let node: HttpsServer | undefined
          const server = yield* NodeHttpServer.make(() => (node = makeHttpsServer(initial.pair)), {
            host: Option.getOrElse(settings.host, () => config.listenHost),
            port: settings.port
          })
          yield* server.serve(mediaApp)
          yield* Certificate.announce(initial.pair, `served from ${settings.certFile}`)
          yield* Certificate.watch(node!, settings, settings.reloadInterval, initial)
          return Option.some(addressOf(server, node))
        })
    })
    let systemNode: NetServer | undefined
    const system = yield* NodeHttpServer.make(() => (systemNode = makeNodeServer()), {
      host: Option.getOrElse(config.systemHost, () => config.listenHost),
      port: config.systemPort
    })
    yield* system.serve(systemApp)
    // Released before the listeners stop: readiness turns 503 and requests in flight may finish.
    const health = yield* Health
    yield* Effect.acquireRelease(
      Effect.sync(() => health.markServing(true)),
      () => Effect.zipRight(health.drain(config.graceQuitTimeout), Effect.sync(() => health.markServing(false)))
    )
    const addresses = { media: addressOf(media, mediaNode), https, system: addressOf(system, systemNode), udp: udp.address }
    const overTls = Option.match(https, {
      onNone: () => "",
      onSome: (endpoint) => ` and https://${hostPort(endpoint)}/rtc/v1/whip/`
    })
    yield* Effect.logInfo(
      `WHIP/WHEP on http://${hostPort(addresses.media)}/rtc/v1/whip/${overTls} (and /rtc/v1/whep/); ` +
        `origins register at http://${hostPort(addresses.system)}/api/v1/srs/register`
    )
    return addresses
  })
)
