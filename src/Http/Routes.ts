/**
 * The two HTTP apps: the media API (WHIP, WHEP, session URLs, legacy JSON) and the system API
 * (origin registration). Routing is a plain match on method and path, so that every unknown path
 * gets a JSON 404 and every wrong method a 405 with Allow.
 *
 * @since 0.1.0
 */
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { HttpFailure } from "../Domain/Errors.js"
import { MethodNotAllowed, NotFound, Unauthorized } from "../Domain/Errors.js"
import type { SessionKind } from "../Domain/Session.js"
import { ProxyConfig } from "../Config.js"
import type { LoadBalancer } from "../LoadBalancer/LoadBalancer.js"
import type { SessionStore } from "../Session/SessionStore.js"
import type { Relay } from "../Udp/Relay.js"
import type { UdpSocket } from "../Udp/UdpSocket.js"
import type { OriginClient } from "./OriginClient.js"
import * as LiveStreams from "./LiveStreams.js"
import { RateLimiter } from "./RateLimit.js"
import { FAVICON_SVG, TRY_PAGE } from "./Page.js"
import { handle } from "./Respond.js"
import * as Signaling from "./Signaling.js"
import * as SystemApi from "./SystemApi.js"
import { bearerMatches } from "./SystemApi.js"

/** What the handlers need: the services they run on and the request. */
export type RouteServices =
  | ProxyConfig
  | LoadBalancer
  | OriginClient
  | Relay
  | SessionStore
  | UdpSocket
  | RateLimiter
  | HttpServerRequest.HttpServerRequest

type Handler = Effect.Effect<HttpServerResponse.HttpServerResponse, HttpFailure, RouteServices>

const methods = (path: string, table: Partial<Record<string, Handler>>): Handler =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const method = request.method === "HEAD" && table["HEAD"] === undefined ? "GET" : request.method
    const handler = table[method]
    if (handler !== undefined) return handler
    const allow = Object.keys(table).join(", ")
    return Effect.fail(new MethodNotAllowed({ message: `${request.method} is not allowed on ${path}; use ${allow}`, allow }))
  })

const noContent: Handler = Effect.succeed(HttpServerResponse.empty({ status: 204 }))
const notFound = (path: string): Handler => Effect.fail(new NotFound({ message: `nothing at ${path}` }))

const ENDPOINT = /^\/rtc\/v1\/(whip|whep)\/?$/
const SESSION = /^\/rtc\/v1\/(whip|whep)\/sessions\/([A-Za-z0-9_-]{1,64})\/?$/
const LEGACY = /^\/rtc\/v1\/(publish|play)\/?$/

const kindOf = (endpoint: string): SessionKind => endpoint === "whip" || endpoint === "publish" ? "publish" : "play"

/** Headers a browser must be allowed to read from WHIP/WHEP answers. */
export const EXPOSED_HEADERS = ["Location", "ETag", "Link", "Accept-Patch", "Retry-After", "Content-Type"]

const STATE_CHANGING = new Set(["POST", "PATCH", "DELETE", "PUT"])

/**
 * POST, PATCH and DELETE take a token from the client's bucket first (429 when it is empty). Each API
 * has its own buckets, so an origin's heartbeats never count against clients at the same address.
 */
const rateLimited = (api: "media" | "system", handler: Handler): Handler =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    if (!STATE_CHANGING.has(request.method)) return handler
    const client = Option.getOrElse(request.remoteAddress, () => "unknown").replace(/^::ffff:/, "")
    return Effect.zipRight(Effect.flatMap(RateLimiter, (limiter) => limiter.take(`${api} ${client}`)), handler)
  })

/**
 * With PROXY_HTTP_API_TOKEN set, signaling needs the bearer token (which still goes on to the origin),
 * and so does the list of live streams, whose names may be what keeps a stream private.
 */
const authorized = (handler: Handler): Handler =>
  Effect.gen(function*() {
    const config = yield* ProxyConfig
    const request = yield* HttpServerRequest.HttpServerRequest
    if (Option.isSome(config.mediaApiToken) && !bearerMatches(request.headers["authorization"], config.mediaApiToken.value)) {
      return yield* new Unauthorized({ message: "this proxy needs Authorization: Bearer <token> for WHIP/WHEP" })
    }
    return yield* handler
  })

const route: Handler = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
  const path = new URL(request.url, "http://proxy").pathname
  let match = ENDPOINT.exec(path)
  if (match !== null) {
    return methods(path, { POST: authorized(Signaling.offer(kindOf(match[1]!))), GET: noContent })
  }
  match = SESSION.exec(path)
  if (match !== null) {
    const id = match[2]!
    return methods(path, {
      DELETE: authorized(Signaling.deleteSession(id)),
      PATCH: authorized(Signaling.patchSession(id)),
      GET: noContent
    })
  }
  match = LEGACY.exec(path)
  if (match !== null) return methods(path, { POST: authorized(Signaling.legacyOffer(kindOf(match[1]!))) })
  if (path === "/api/v1/versions" || path === "/api/v1/versions/") return methods(path, { GET: SystemApi.versions })
  if (path === "/rtc/v1/streams" || path === "/rtc/v1/streams/") return methods(path, { GET: authorized(LiveStreams.list) })
  if (path === "/" || path === "/index.html") return methods(path, { GET: tryPage })
  if (path === "/favicon.ico") return methods(path, { GET: favicon })
  return notFound(path)
})

const tryPage: Handler = Effect.succeed(
  HttpServerResponse.text(TRY_PAGE, { contentType: "text/html; charset=utf-8", headers: { "cache-control": "no-cache" } })
)

const favicon: Handler = Effect.succeed(
  HttpServerResponse.text(FAVICON_SVG, { contentType: "image/svg+xml", headers: { "cache-control": "max-age=86400" } })
)

/** The media API app, with CORS that browsers accept for WHIP/WHEP. */
// The platform runs an app uninterruptibly; handlers must be interruptible so that the origin and
// body timeouts can fire and a client that hangs up stops its request.
export const mediaApp = handle(Effect.interruptible(rateLimited("media", route))).pipe(
  HttpMiddleware.cors({
    allowedMethods: ["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
    exposedHeaders: EXPOSED_HEADERS,
    maxAge: 86400
  })
)

const systemRoute: Handler = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
  const path = new URL(request.url, "http://proxy").pathname
  if (path === "/api/v1/srs/register" || path === "/api/v1/srs/register/") {
    return methods(path, { POST: SystemApi.register })
  }
  if (path === "/api/v1/stats" || path === "/api/v1/stats/") return methods(path, { GET: SystemApi.stats })
  if (path === "/api/v1/versions" || path === "/api/v1/versions/") return methods(path, { GET: SystemApi.versions })
  return notFound(path)
})

/** The system API app. */
export const systemApp = handle(Effect.interruptible(rateLimited("system", systemRoute)))
