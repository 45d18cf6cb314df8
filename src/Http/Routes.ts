/**
 * The two HTTP apps: the media API (WHIP, WHEP, session URLs, legacy JSON) and the system API
 * (origin registration, stats, the admin API of `Admin.ts`), on the platform's HttpRouter. Every unknown path gets a JSON 404 and every
 * wrong method a 405 with Allow.
 *
 * @since 0.1.0
 */
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { flow } from "effect/Function"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { HttpFailure } from "../Domain/Errors.js"
import { MethodNotAllowed, NotFound, Unauthorized } from "../Domain/Errors.js"
import type { SessionKind } from "../Domain/Session.js"
import { ProxyConfig, type ProxyConfigShape } from "../Config.js"
import type { LoadBalancer } from "../LoadBalancer/LoadBalancer.js"
import type { SessionStore } from "../Session/SessionStore.js"
import type { Relay } from "../Udp/Relay.js"
import type { UdpSocket } from "../Udp/UdpSocket.js"
import type { OriginClient } from "./OriginClient.js"
import * as Admin from "./Admin.js"
import * as ClientAddress from "./ClientAddress.js"
import * as LiveStreams from "./LiveStreams.js"
import { RateLimiter } from "./RateLimit.js"
import * as Health from "./Health.js"
import { timeSignaling } from "./Metrics.js"
import { FAVICON_SVG, TRY_PAGE } from "./Page.js"
import * as Prometheus from "./Prometheus.js"
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
  | Health.Health
  | Prometheus.Prometheus
  | HttpServerRequest.HttpServerRequest

type Handler = Effect.Effect<HttpServerResponse.HttpServerResponse, HttpFailure, RouteServices>
/** A handler inside the router, which may read the route's path parameters. */
type RouteHandler = Effect.Effect<HttpServerResponse.HttpServerResponse, HttpFailure, RouteServices | HttpRouter.RouteContext>
type Router = HttpRouter.HttpRouter<HttpFailure, RouteServices>

/** Headers a browser must be allowed to read from WHIP/WHEP answers. */
export const EXPOSED_HEADERS = ["Location", "ETag", "Link", "Accept-Patch", "Retry-After", "Content-Type"]

const STATE_CHANGING = new Set(["POST", "PATCH", "DELETE", "PUT"])

/** Session URLs (client and admin): a DELETE there is never refused by the limiter, so a session can always end. */
const SESSION_URL = /^\/(?:rtc\/v1\/wh[ie]p\/sessions|api\/v1\/sessions)\/[^/?]+\/?(?:\?|$)/

/**
 * The request's client (`ClientAddress.ts`) on the handler's logs.
 * POST, PATCH and DELETE then take a token from the client's bucket first (429 when it is empty),
 * except a DELETE of a session. Each API has its own buckets, so an origin's heartbeats never count
 * against clients at the same address.
 */
const rateLimited = (api: "media" | "system", handler: Handler): Effect.Effect<
  HttpServerResponse.HttpServerResponse,
  HttpFailure,
  RouteServices
> =>
  Effect.contextWithEffect((context: Context.Context<HttpServerRequest.HttpServerRequest | ProxyConfig | RateLimiter>) => {
    const request = Context.get(context, HttpServerRequest.HttpServerRequest)
    const client = ClientAddress.ofRequest(request, Context.get(context, ProxyConfig).trustedProxies)
    const limited = STATE_CHANGING.has(request.method) && !(request.method === "DELETE" && SESSION_URL.test(request.url))
    // The platform runs each request in a fiber of its own, so the annotation is set for the rest of
    // that fiber rather than scoped to the handler (a scoped one costs two more copies of the fiber's refs).
    const annotated = FiberRef.update(FiberRef.currentLogAnnotations, HashMap.set<string, unknown>("client", client.address))
    return Effect.zipRight(
      annotated,
      limited ? Effect.zipRight(Context.get(context, RateLimiter).take(`${api} ${client.address}`), handler) : handler
    )
  })

/**
 * With PROXY_HTTP_API_TOKEN set, signaling needs the bearer token (which still goes on to the origin),
 * and so does the list of live streams, whose names may be what keeps a stream private.
 */
const authorized = <R>(
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, HttpFailure, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, HttpFailure, R | ProxyConfig | HttpServerRequest.HttpServerRequest> =>
  Effect.contextWithEffect((context: Context.Context<ProxyConfig | HttpServerRequest.HttpServerRequest>) => {
    const token = Context.get(context, ProxyConfig).mediaApiToken
    if (Option.isNone(token)) return handler
    const authorization = Context.get(context, HttpServerRequest.HttpServerRequest).headers["authorization"]
    if (bearerMatches(authorization, token.value)) return handler
    return Effect.fail(
      new Unauthorized({
        message: authorization === undefined
          ? "this proxy needs Authorization: Bearer <token> for WHIP/WHEP"
          : "the Authorization bearer token is not the one this proxy takes for WHIP/WHEP"
      })
    )
  })

const noContent: Handler = Effect.succeed(HttpServerResponse.empty({ status: 204 }))

/** WHEP's HEAD on the endpoint: what an offer is sent as (draft-ietf-wish-whep section 4.1). */
const whepDiscovery: Handler = Effect.succeed(HttpServerResponse.text("", { status: 200, contentType: "application/sdp" }))

const pathOf = (url: string) => {
  const query = url.indexOf("?")
  return query === -1 ? url : url.slice(0, query)
}

/** Every method a route answers or refuses; others (WebDAV's and such) are a 404 like an unknown path. */
const KNOWN_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const
type Method = typeof KNOWN_METHODS[number]

/**
 * A resource: its handlers by method, on its paths (the router takes each with and without a
 * trailing slash). HEAD falls back to GET (the router does that); every other method gets 405 with Allow.
 */
const resource = (paths: ReadonlyArray<HttpRouter.PathInput>, table: Partial<Record<Method, RouteHandler>>) =>
(router: Router): Router => {
  const methods = Object.keys(table)
  // The Allow header lists HEAD too where GET is (the router serves it); the message names what to use.
  const allow = [...methods, ...(table.GET !== undefined && table.HEAD === undefined ? ["HEAD"] : [])].join(", ")
  const refuse: Handler = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    Effect.fail(
      new MethodNotAllowed({ message: `${request.method} is not allowed on ${pathOf(request.url)}; use ${methods.join(", ")}`, allow })
    ))
  for (const path of paths) {
    for (const method of KNOWN_METHODS) {
      const handler = table[method] ?? (method === "HEAD" && table.GET !== undefined ? undefined : refuse)
      if (handler !== undefined) router = HttpRouter.route(method)(router, path, handler) as Router
    }
  }
  return router
}

/** The session id in a session URL: what the proxy mints (base64url, 128 bits), at most 64 characters. */
const SessionPath = Schema.Struct({ id: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_-]{1,64}$/)) })

/** A handler of the session whose id is in the path; a malformed id is a path that does not exist. */
const withSessionId = (handler: (id: string) => Handler): RouteHandler =>
  HttpRouter.schemaPathParams(SessionPath).pipe(
    Effect.catchTag("ParseError", () =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
        Effect.fail(new NotFound({ message: `nothing at ${pathOf(request.url)}` })))),
    Effect.flatMap(({ id }) => handler(id))
  )

const endpointRoutes = (endpoint: "whip" | "whep") => {
  const kind: SessionKind = endpoint === "whip" ? "publish" : "play"
  return flow(
    resource([`/rtc/v1/${endpoint}`], {
      POST: authorized(Signaling.offer(kind)),
      GET: noContent,
      ...(endpoint === "whep" ? { HEAD: whepDiscovery } : {})
    }),
    resource([`/rtc/v1/${endpoint}/sessions/:id`], {
      DELETE: authorized(withSessionId(Signaling.deleteSession)),
      PATCH: authorized(withSessionId(Signaling.patchSession)),
      GET: noContent
    })
  )
}

const tryPage: Handler = Effect.succeed(
  HttpServerResponse.text(TRY_PAGE, { contentType: "text/html; charset=utf-8", headers: { "cache-control": "no-cache" } })
)

const favicon: Handler = Effect.succeed(
  HttpServerResponse.text(FAVICON_SVG, { contentType: "image/svg+xml", headers: { "cache-control": "max-age=86400" } })
)

/** Unknown paths get the same JSON 404 as every other error. */
const app = (router: Router): Handler =>
  Effect.catchTag(router, "RouteNotFound", (error) =>
    Effect.fail(new NotFound({ message: `nothing at ${pathOf(error.request.url)}` })))

/** Observability, on both ports without a token but /metrics (system port, behind the system token). */
const healthRoutes = flow(
  resource(["/healthz"], { GET: Health.healthz }),
  resource(["/readyz"], { GET: Health.readyz })
)
const metricsRoute = resource(["/metrics"], { GET: Effect.zipRight(SystemApi.requireSystemToken, Prometheus.respond) })

/** The system app counts its requests in flight (drained at shutdown), as the media app does. */
const tracked = <E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | Health.Health> =>
  Effect.flatMap(Health.Health, (health) => health.track(app))

const mediaRouter = HttpRouter.empty.pipe(
  healthRoutes,
  endpointRoutes("whip"),
  endpointRoutes("whep"),
  resource(["/rtc/v1/publish"], { POST: authorized(Signaling.legacyOffer("publish")) }),
  resource(["/rtc/v1/play"], { POST: authorized(Signaling.legacyOffer("play")) }),
  resource(["/api/v1/versions"], { GET: SystemApi.versions }),
  resource(["/rtc/v1/streams"], { GET: authorized(LiveStreams.list) }),
  resource(["/", "/index.html"], { GET: tryPage }),
  resource(["/favicon.ico"], { GET: favicon })
)

/**
 * An OPTIONS that is not a CORS preflight asks what the endpoint takes (RFC 9725 section 4.6): the
 * offer's media type and this proxy's ICE servers. Preflights go on to the CORS middleware.
 */
const discovery = (config: ProxyConfigShape, url: string) =>
  Effect.map(Signaling.iceServerLinks(config), (links) =>
    HttpServerResponse.empty({
      status: 204,
      headers: {
        // What the resource takes: an offer at an endpoint, a fragment (or a counter-offer's answer) at a session URL.
        ...(SESSION_URL.test(url)
          ? { "accept-patch": "application/trickle-ice-sdpfrag" }
          : ENDPOINT_URL.test(url)
          ? { "accept-post": "application/sdp" }
          : {}),
        "access-control-allow-origin": "*",
        ...(links === undefined ? {} : { link: links })
      }
    }))

/** The WHIP and WHEP endpoints an offer is POSTed to (SRS's legacy JSON ones take JSON). */
const ENDPOINT_URL = /^\/rtc\/v1\/wh[ie]p\/?(?:\?|$)/

/** The media API's requests with CORS that browsers accept for WHIP/WHEP. */
const mediaRequests = handle(rateLimited("media", app(mediaRouter))).pipe(
  HttpMiddleware.cors({
    allowedMethods: ["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
    exposedHeaders: EXPOSED_HEADERS,
    maxAge: 86400
  })
)

/**
 * The media API app: discovery answered first; every other request counted in flight (drained at
 * shutdown) and timed, both in one finalizer. The steps are written out rather than stacked as
 * middlewares because each layer costs fiber work on every request, and signaling is CPU-bound.
 */
export const mediaApp = Effect.contextWithEffect((
  context: Context.Context<HttpServerRequest.HttpServerRequest | ProxyConfig | Health.Health>
) => {
  const request = Context.get(context, HttpServerRequest.HttpServerRequest)
  if (request.method === "OPTIONS" && request.headers["access-control-request-method"] === undefined) {
    return discovery(Context.get(context, ProxyConfig), request.url)
  }
  return Context.get(context, Health.Health).track(mediaRequests, timeSignaling(request))
})

const systemRouter = HttpRouter.empty.pipe(
  healthRoutes,
  metricsRoute,
  resource(["/api/v1/srs/register"], { POST: SystemApi.register }),
  resource(["/api/v1/stats"], { GET: SystemApi.stats }),
  resource(["/api/v1/versions"], { GET: SystemApi.versions }),
  resource(["/api/v1/origins"], { GET: Admin.origins }),
  resource(["/api/v1/origins/:id/drain"], { POST: Admin.drain(true), DELETE: Admin.drain(false) }),
  resource(["/api/v1/streams"], { GET: Admin.streams }),
  resource(["/api/v1/sessions"], { GET: Admin.sessions }),
  resource(["/api/v1/sessions/:id"], { DELETE: withSessionId(Admin.deleteSession) })
)

/** The system API app. */
export const systemApp = tracked(handle(rateLimited("system", app(systemRouter))))
