/**
 * The proxy's two HTTP listeners (media API and system API), bound in one scoped layer that tells
 * where everything listens: ports may be 0 in tests and embedding.
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
import { ProxyConfig } from "../Config.js"
import { LoadBalancer } from "../LoadBalancer/LoadBalancer.js"
import { SessionStore } from "../Session/SessionStore.js"
import { Relay } from "../Udp/Relay.js"
import { UdpSocket } from "../Udp/UdpSocket.js"
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
  readonly system: Endpoint
  readonly udp: Endpoint
}>() {}

// Slow clients must not hold a connection forever (slowloris): headers within 10 s, a request within 30 s.
const makeNodeServer = () => {
  const server = createServer({ requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 5_000 })
  server.maxRequestsPerSocket = 1000
  return server
}

const addressOf = (server: HttpServer.HttpServer): Endpoint =>
  server.address._tag === "TcpAddress"
    ? { host: server.address.hostname, port: server.address.port }
    : { host: server.address.path, port: 0 }

/** Binds both HTTP listeners and serves the apps on them until the scope ends. */
export const layer: Layer.Layer<
  ProxyAddresses,
  ServeError,
  ProxyConfig | LoadBalancer | OriginClient | Relay | SessionStore | UdpSocket | RateLimiter | Health | Prometheus
> = Layer.scoped(
  ProxyAddresses,
  Effect.gen(function*() {
    const config = yield* ProxyConfig
    const udp = yield* UdpSocket
    const media = yield* NodeHttpServer.make(makeNodeServer, {
      host: Option.getOrElse(config.httpHost, () => config.listenHost),
      port: config.httpPort
    })
    yield* media.serve(mediaApp)
    const system = yield* NodeHttpServer.make(makeNodeServer, {
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
    const addresses = { media: addressOf(media), system: addressOf(system), udp: udp.address }
    yield* Effect.logInfo(
      `WHIP/WHEP on http://${addresses.media.host}:${addresses.media.port}/rtc/v1/whip/ and /rtc/v1/whep/; ` +
        `origins register at http://${addresses.system.host}:${addresses.system.port}/api/v1/srs/register`
    )
    return addresses
  })
)
