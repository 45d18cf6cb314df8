/**
 * WHIP and WHEP signaling through the proxy: the offer goes to the origin chosen for the stream, the
 * answer comes back pointing at the proxy's UDP port, and the session gets a proxy session URL through
 * which DELETE (and PATCH) reach that origin. Also SRS's legacy JSON API.
 *
 * @since 0.1.0
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { randomBytes } from "node:crypto"
import { lookup } from "node:dns/promises"
import { isIP } from "node:net"
import { ProxyConfig, type ProxyConfigShape } from "../Config.js"
import {
  BadRequest,
  Conflict,
  isOriginDown,
  NotFound,
  OriginFailed,
  type OriginTimeout,
  PreconditionFailed,
  PreconditionRequired,
  ServiceUnavailable,
  UnprocessableContent,
  UnsupportedMediaType
} from "../Domain/Errors.js"
import * as LegacyApi from "../Domain/LegacyApi.js"
import { apiBaseUrl, type Origin, udpRtcPort } from "../Domain/Origin.js"
import {
  chooseMediaAddress,
  newSessionId,
  SessionId,
  type SessionIce,
  type SessionKind,
  type SessionRecord,
  ufragPair
} from "../Domain/Session.js"
import * as StreamUrl from "../Domain/StreamUrl.js"
import { LoadBalancer } from "../LoadBalancer/LoadBalancer.js"
import { IceTcpServer } from "../Tcp/IceTcpServer.js"
import * as Sdp from "../Sdp.js"
import { SessionStore } from "../Session/SessionStore.js"
import { Relay } from "../Udp/Relay.js"
import type * as DataPlane from "../Udp/DataPlane.js"
import { endpoint } from "../Udp/UdpSocket.js"
import { randomToken } from "../RandomToken.js"
import { readText } from "./Body.js"
import * as IceServers from "./IceServers.js"
import * as ClientAddress from "./ClientAddress.js"
import { countIceRestart } from "./Metrics.js"
import { OriginClient, type OriginRequest, type OriginResponse } from "./OriginClient.js"

/** What a signaling request runs on. */
interface Services {
  readonly request: HttpServerRequest.HttpServerRequest
  readonly config: ProxyConfigShape
  readonly relay: Relay["Type"]
  readonly store: SessionStore["Type"]
  readonly balancer: LoadBalancer["Type"]
  readonly client: OriginClient["Type"]
}

type ServiceTags = HttpServerRequest.HttpServerRequest | ProxyConfig | Relay | SessionStore | LoadBalancer | OriginClient

/**
 * Every service of a signaling request, read from the context in one step: signaling is CPU-bound,
 * and each `yield*` of a tag is a few fiber steps of its own.
 */
const signalingServices: Effect.Effect<Services, never, ServiceTags> = Effect.map(Effect.context<ServiceTags>(), (context) => ({
  request: Context.get(context, HttpServerRequest.HttpServerRequest),
  config: Context.get(context, ProxyConfig),
  relay: Context.get(context, Relay),
  store: Context.get(context, SessionStore),
  balancer: Context.get(context, LoadBalancer),
  client: Context.get(context, OriginClient)
}))

/** With PROXY_MAX_SESSIONS reached, new sessions wait (503 + Retry-After) rather than starve the rest. */
const checkCapacity = ({ config, relay }: Services) => Effect.gen(function*() {
  if (config.maxSessions === 0) return
  if ((yield* relay.activeSessions) >= config.maxSessions) {
    return yield* new ServiceUnavailable({
      message: `this proxy is relaying its maximum of ${config.maxSessions} sessions; try again shortly`,
      retryAfter: Duration.seconds(5)
    })
  }
})

/**
 * A stream takes one publisher, and SRS answers a second one by closing the connection, which reads
 * like a fault of the proxy. So a publish offer for a stream that has a live publish session in the
 * store (every session this proxy relays; with Redis, those every proxy relays) is refused here with
 * 409, and the origin never sees it. Plays are never refused. A store that cannot be read fails the
 * offer with 503, as it fails every other offer then. Two offers at once for one stream may both pass
 * (nothing holds the stream between this check and the store's record of the new session): the
 * origin then refuses one, and its client gets the 502 of `explainHangUp`.
 */
const checkNoPublisher = (kind: SessionKind, streamUrl: StreamUrl.StreamUrl, { config, store }: Services) =>
  kind !== "publish" ? Effect.void : Effect.gen(function*() {
    const publisher = yield* store.publisherOf(streamUrl.key)
    if (Option.isNone(publisher)) return
    yield* Effect.logInfo(`publish ${streamUrl.key} refused: session ${publisher.value.id} publishes it`)
    return yield* new Conflict({
      message: `stream ${streamUrl.key} already has a publisher; end it with DELETE on its session URL, or wait ` +
        `for it to end (a publisher gone without DELETE ends after ${Duration.format(config.relayIdleTimeout)} without packets)`
    })
  })

/**
 * An origin that hangs up on a publish offer without answering is most likely SRS refusing it: say
 * so, rather than leave the client to suspect the proxy.
 */
const explainHangUp = (kind: SessionKind) => <E>(error: E | OriginFailed): E | OriginFailed =>
  kind === "publish" && error instanceof OriginFailed && error.closedWithoutAnswer === true
    ? new OriginFailed({
      message:
        `${error.message}: the stream may already have a publisher there, or the origin rejected the offer (check its log)`,
      closedWithoutAnswer: true
    })
    : error

/** This proxy's ICE servers as a Link header value (TURN credentials minted now), if it has any. */
export const iceServerLinks = (config: ProxyConfigShape): Effect.Effect<string | undefined> =>
  config.iceServers.length === 0 ? Effect.succeed(undefined) : Effect.map(Clock.currentTimeMillis, (nowMillis) =>
    IceServers.linkHeader(config.iceServers, {
      turnSecret: Option.getOrUndefined(config.turnSecret),
      nowMillis,
      ttlMillis: Duration.toMillis(config.turnCredentialTtl)
    }))

/** WHIP publishes, WHEP plays; each has its endpoint path at the proxy and at the origin. */
export const endpointOf = (kind: SessionKind) => kind === "publish" ? "whip" : "whep"

/** The proxy's session URL for a session (the `Location` of the 201). */
export const sessionPath = (kind: SessionKind, id: string) => `/rtc/v1/${endpointOf(kind)}/sessions/${id}`

const OFFER_PROBLEMS: Record<Sdp.OfferProblem, string> = {
  empty: "the body is empty; send the SDP offer",
  binary: "the body is not SDP text",
  "not-sdp": "the body is not an SDP offer (it must start with v=0)",
  "no-media": "the offer has no media section (m=)",
  "no-ice-ufrag": "the offer has no a=ice-ufrag",
  "no-ice-pwd": "the offer has no a=ice-pwd",
  "bad-ice-ufrag": "the offer's a=ice-ufrag is not valid ICE characters",
  "bad-ice-pwd": "the offer's a=ice-pwd is not valid ICE characters"
}

// Headers that belong to one connection, or that the proxy writes itself.
const NOT_COPIED = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-length",
  "location",
  "date",
  "server",
  "upgrade",
  "access-control-allow-origin",
  "access-control-allow-methods",
  "access-control-allow-headers",
  "access-control-expose-headers",
  "access-control-allow-credentials",
  "access-control-max-age",
  "vary"
])

const copyableHeaders = (headers: Readonly<Record<string, string>>): Record<string, string> => {
  const copied: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) if (!NOT_COPIED.has(name)) copied[name] = value
  return copied
}

const withoutContentType = (headers: Record<string, string>): Record<string, string> => {
  const { "content-type": _, ...rest } = headers
  return rest
}

const mediaTypeOf = (contentType: string | undefined) => contentType?.split(";")[0]!.trim().toLowerCase() ?? ""

/**
 * Headers forwarded to the origin with the offer (and with DELETE and PATCH): the client as
 * `ClientAddress.ofRequest` resolves it in X-Real-IP, and the hops with the peer last in X-Forwarded-For.
 */
const headersForOrigin = (
  request: HttpServerRequest.HttpServerRequest,
  config: ProxyConfigShape,
  client: ClientAddress.ClientAddressShape = ClientAddress.ofRequest(request, config.trustedProxies)
): Record<string, string> => {
  const headers: Record<string, string> = {}
  const authorization = request.headers["authorization"]
  if (authorization !== undefined) headers["authorization"] = authorization
  const ifMatch = request.headers["if-match"]
  if (ifMatch !== undefined) headers["if-match"] = ifMatch
  headers["x-forwarded-for"] = client.chain.join(", ")
  headers["x-real-ip"] = client.address
  return headers
}

/**
 * The IPs written into answers: the configured ones; else the request's Host when it is an IP; else
 * that name resolved (in the family the request arrived over: IPv4 unless it came over IPv6); else the
 * local address the request arrived on.
 */
const publicIps = (config: ProxyConfigShape, request: HttpServerRequest.HttpServerRequest): Effect.Effect<ReadonlyArray<string>> => {
  if (config.candidateIps.length > 0) return Effect.succeed(config.candidateIps)
  const arrivedOn = NodeHttpServerRequest.toIncomingMessage(request).socket.localAddress?.replace(/^::ffff:/, "")
  const localAddress = () => [arrivedOn ?? "127.0.0.1"]
  const host = request.headers["host"]
  if (host === undefined) return Effect.sync(localAddress)
  const hostname = StreamUrl.hostnameOf(host)
  if (isIP(hostname) !== 0) return Effect.succeed([hostname])
  return Effect.tryPromise(() => lookup(hostname, { family: arrivedOn !== undefined && isIP(arrivedOn) === 6 ? 6 : 4 })).pipe(
    Effect.timeout("2 seconds"),
    Effect.match({ onFailure: localAddress, onSuccess: ({ address }) => [address] })
  )
}

/**
 * Where the answer tells the client to send media: every public IP, the UDP port of the session's
 * worker (`placement`, see Relay.open), and the ICE-TCP port when on.
 */
const proxyAddress = (
  config: ProxyConfigShape,
  request: HttpServerRequest.HttpServerRequest,
  placement: DataPlane.Placement
) =>
  Effect.gen(function*() {
    const [ip, ...moreIps] = yield* publicIps(config, request)
    const tcp = yield* Effect.serviceOption(IceTcpServer)
    return {
      ip: ip!,
      moreIps,
      port: placement.port,
      tcpPort: Option.getOrUndefined(Option.flatMap(tcp, (server) => server.port))
    } satisfies Sdp.PublicAddress
  })

/** Redirects an origin may answer an offer with (RFC 9725 section 4.5: 301 and 302 are not for WHIP). */
const REDIRECTS = new Set([307, 308])

/**
 * An origin's answer that is not a success is passed on: 4xx as the origin said it (with its headers,
 * such as WHEP's 409 with Retry-After), a 307 or 308 with its Location, anything else as a 502.
 */
const originRefused = (origin: Origin, response: OriginResponse) => {
  if (REDIRECTS.has(response.status) && response.headers["location"] !== undefined) {
    return Effect.succeed(
      HttpServerResponse.text(response.body, {
        status: response.status,
        contentType: response.headers["content-type"] ?? "text/plain",
        headers: { ...copyableHeaders(response.headers), location: response.headers["location"] }
      })
    )
  }
  if (response.status >= 500 || response.status < 400) {
    return Effect.fail(
      new OriginFailed({
        message: `origin ${origin.id} answered ${response.status}${
          response.body === "" ? "" : `: ${response.body.slice(0, 200).replace(/\s+/g, " ")}`
        }`
      })
    )
  }
  // A refusal without a body would leave the client with a bare status: it says whose it is.
  const refusal = response.body.trim() === ""
    ? HttpServerResponse.unsafeJson(
      { code: "origin-refused", message: `origin ${origin.id} answered ${response.status} without a body` },
      { status: response.status, headers: withoutContentType(copyableHeaders(response.headers)) }
    )
    : HttpServerResponse.text(response.body, {
      status: response.status,
      contentType: response.headers["content-type"] ?? "text/plain",
      headers: copyableHeaders(response.headers)
    })
  return Effect.as(Effect.logInfo(`origin ${origin.id} refused the offer: ${response.status}`), refusal)
}

/** A strong entity-tag for a session's ICE state (RFC 9725 section 4.3.1): new at every restart. */
const newEntityTag = () => `"${randomToken(16)}"`

/** Whether an If-Match value names the session's entity-tag (strong comparison; `*` names any). */
const ifMatchHolds = (ifMatch: string, record: SessionRecord): boolean => {
  if (ifMatch.trim() === "*") return true
  const current = record.ice?.etag
  return current !== undefined && ifMatch.split(",").some((tag) => tag.trim() === current)
}

interface Negotiated {
  readonly record: SessionRecord
  readonly answer: string
}

/**
 * The shared core of every route: given an accepted offer and the origin's answer, check the answer,
 * choose the origin's media address, rewrite the candidates and start the relay session.
 */
const startSession = (services: Services, options: {
  readonly kind: SessionKind
  readonly streamUrl: StreamUrl.StreamUrl
  readonly origin: Origin
  readonly offer: Sdp.Offer
  readonly answer: string
  readonly originLocation: string | undefined
  /** The origin's entity-tag, kept when it gave one. */
  readonly etag?: string | undefined
}) => Effect.gen(function*() {
  const { answer, origin } = options
  if (!Sdp.startsWithVersion(answer)) {
    return yield* new OriginFailed({ message: `origin ${origin.id} answered without an SDP answer` })
  }
  const facts = Sdp.readAnswer(answer)
  const credentials = yield* Either.match(facts.credentials, {
    onLeft: (problem) =>
      Effect.fail(new OriginFailed({ message: `origin ${origin.id} answered an SDP without usable ICE credentials (${problem})` })),
    onRight: Effect.succeed
  })
  const originMedia = chooseMediaAddress(facts.candidates, { ip: origin.ip, rtcPort: udpRtcPort(origin) })
  if (originMedia === undefined) {
    return yield* new OriginFailed({
      message: `origin ${origin.id} answered without a UDP candidate and announced no UDP RTC port`
    })
  }
  const answerIce = facts.ice
  const ice: SessionIce = {
    clientPwd: options.offer.credentials.pwd,
    etag: options.etag ?? newEntityTag(),
    lite: answerIce.lite,
    ...(answerIce.options === undefined ? {} : { options: answerIce.options })
  }
  const record: SessionRecord = {
    id: newSessionId(),
    kind: options.kind,
    streamUrl: options.streamUrl.key,
    originId: origin.id,
    originLocation: options.originLocation,
    ufragPair: ufragPair(credentials.ufrag, options.offer.credentials.ufrag),
    serverPwd: credentials.pwd,
    originMedia,
    createdAt: yield* Clock.currentTimeMillis,
    ice
  }
  // Its answer names the UDP port of the worker it went to (PROXY_CANDIDATE_PORT + worker when set).
  const placement = yield* services.relay.open(record)
  yield* Effect.logInfo(
    `${options.kind} ${options.streamUrl.key} via origin ${origin.id} (media ${endpoint(originMedia.host, originMedia.port)}), session ${record.id}`
  )
  const address = yield* proxyAddress(services.config, services.request, placement)
  return { record, answer: Sdp.rewriteAnswer(answer, address) } satisfies Negotiated
})

/** Origins an offer is sent to at most, each one after the last could not be reached. */
const MAX_ORIGIN_TRIES = 3

/**
 * Picks the stream's origin and sends it the offer. An origin that cannot be reached or does not
 * answer in time (`isOriginDown`) is marked down, and the offer goes to the origin the stream is
 * moved to, within the same request. Any answer the origin gave, and any hang-up, is the caller's:
 * SRS hangs up on a second publisher and on an offer it cannot parse, so a hang-up says nothing of
 * the origin's health, and the offer may have reached it.
 */
const pickAndSend = (
  { balancer, client }: Services,
  streamUrl: StreamUrl.StreamUrl,
  request: (origin: Origin) => OriginRequest
): Effect.Effect<
  { readonly origin: Origin; readonly response: OriginResponse },
  ServiceUnavailable | OriginFailed | OriginTimeout
> => {
  const sendTo = (origin: Origin, tries: number): Effect.Effect<
    { readonly origin: Origin; readonly response: OriginResponse },
    ServiceUnavailable | OriginFailed | OriginTimeout
  > =>
    client.send(request(origin)).pipe(
      Effect.map((response) => ({ origin, response })),
      Effect.catchIf(isOriginDown, (error) =>
        Effect.zipRight(
          balancer.markDown(origin.id, error.message),
          tries >= MAX_ORIGIN_TRIES ? Effect.fail(error) : balancer.pick(streamUrl.key, origin.id).pipe(
            // With no other origin to try, the client learns what happened to this one.
            Effect.mapError(() => error),
            Effect.flatMap((next) => sendTo(next, tries + 1))
          )
        ))
    )
  return Effect.flatMap(balancer.pick(streamUrl.key), (origin) => sendTo(origin, 1))
}

/** Tells the origin a session it created is not wanted after all (the relay could not start). */
const abandonAtOrigin = ({ client }: Services, location: string | undefined, headers: Record<string, string>) =>
  location === undefined ? Effect.void : Effect.ignore(client.send({ method: "DELETE", url: location, headers }))

// The handlers run under the platform's request span (named by method, with http.route); their own
// spans are the steps that leave the process or take a resource (OriginClient.send, Relay.open, the Redis
// LoadBalancer.*), and the rare ICE restart the proxy carries out itself (Signaling.restartAtProxy).

/** POST /rtc/v1/whip/ and /rtc/v1/whep/: an SDP offer in, a 201 with the answer and a session URL out. */
export const offer = (kind: SessionKind) =>
  Effect.gen(function*() {
    const services = yield* signalingServices
    const { request, config } = services
    const url = new URL(request.url, "http://proxy")
    const mediaType = mediaTypeOf(request.headers["content-type"])
    if (mediaType !== "application/sdp") {
      return yield* new UnsupportedMediaType({
        message: `the offer must be sent as application/sdp${mediaType === "" ? "" : `, not ${mediaType}`}`
      })
    }
    const body = yield* readText(config)
    const offer = yield* Either.mapLeft(Sdp.validateOffer(body), (problem) => new BadRequest({ message: OFFER_PROBLEMS[problem] }))
    const streamUrl = yield* Either.mapLeft(
      StreamUrl.fromRequest(url.searchParams, request.headers["host"]),
      (message) => new BadRequest({ message })
    )
    yield* checkNoPublisher(kind, streamUrl, services)
    yield* checkCapacity(services)
    const forwarded = headersForOrigin(request, config)
    const { origin, response } = yield* pickAndSend(services, streamUrl, (origin) => ({
      method: "POST",
      url: `${apiBaseUrl(origin)!}/rtc/v1/${endpointOf(kind)}/${url.search}`,
      headers: forwarded,
      body: { contentType: "application/sdp", text: offer.forOrigin }
    })).pipe(Effect.mapError(explainHangUp(kind)))
    const base = apiBaseUrl(origin)!
    // WHEP: a 406 with an SDP offer of the origin's own (a counter-offer), which the player answers
    // with PATCH application/sdp on the session URL: a session like any other until then.
    const counterOffer = kind === "play" && response.status === 406 &&
      mediaTypeOf(response.headers["content-type"]) === "application/sdp"
    if (response.status !== 201 && response.status !== 200 && !counterOffer) return yield* originRefused(origin, response)
    const originLocation = response.headers["location"] === undefined
      ? undefined
      : new URL(response.headers["location"], `${base}/`).toString()
    const negotiated = yield* startSession(services, {
      kind,
      streamUrl,
      origin,
      offer,
      answer: response.body,
      originLocation,
      etag: response.headers["etag"]
    }).pipe(Effect.tapError(() => abandonAtOrigin(services, originLocation, forwarded)))
    const headers: Record<string, string> = {
      ...copyableHeaders(response.headers),
      location: sessionPath(kind, negotiated.record.id),
      etag: negotiated.record.ice!.etag
    }
    const links = IceServers.joinLinks(response.headers["link"], yield* iceServerLinks(config))
    if (links !== undefined) headers["link"] = links
    return HttpServerResponse.text(negotiated.answer, {
      status: counterOffer ? 406 : 201,
      contentType: "application/sdp",
      headers
    })
  })

/** The stored record of the session whose id is in the URL, or a 404. */
const storedSession = (store: SessionStore["Type"], id: string) =>
  Effect.flatMap(
    store.get(SessionId.make(id)),
    Option.match({
      onNone: () => Effect.fail(new NotFound({ message: "no such session (it ended, or never existed)" })),
      onSome: Effect.succeed
    })
  )

const findSession = (id: string) => Effect.flatMap(SessionStore, (store) => storedSession(store, id))

/**
 * Ends a session, as a DELETE on its session URL does (client or admin): the relay session ends at
 * once, its record goes (which tells every proxy on a shared store), and the origin is told with `headers`.
 */
export const endSession = (id: string, headers: Record<string, string>) =>
  Effect.flatMap(Effect.context<Relay | SessionStore | OriginClient>(), (context) => endWith(context, id, headers))

const endWith = (
  context: Context.Context<Relay | SessionStore | OriginClient>,
  id: string,
  headers: Record<string, string>
) => Effect.gen(function*() {
  const relay = Context.get(context, Relay)
  const store = Context.get(context, SessionStore)
  const client = Context.get(context, OriginClient)
  const record = yield* storedSession(store, id)
  // The relay goes first: the session is to end, whatever the origin says.
  yield* relay.close(record.id, "deleted")
  yield* store.remove(record.id)
  if (record.originLocation !== undefined) {
    yield* client.send({ method: "DELETE", url: record.originLocation, headers }).pipe(
      Effect.tap((response) =>
        response.status >= 400
          ? Effect.logWarning(`origin answered ${response.status} to DELETE of session ${record.id}`)
          : Effect.void
      ),
      Effect.catchAll((error) => Effect.logWarning(`DELETE of session ${record.id} at its origin: ${error.message}`))
    )
  }
})

/** DELETE on a session URL. */
export const deleteSession = (id: string) =>
  Effect.flatMap(
    Effect.context<HttpServerRequest.HttpServerRequest | ProxyConfig | Relay | SessionStore | OriginClient>(),
    (context) =>
      Effect.as(
        endWith(
          context,
          id,
          headersForOrigin(Context.get(context, HttpServerRequest.HttpServerRequest), Context.get(context, ProxyConfig))
        ),
        HttpServerResponse.empty({ status: 200 })
      )
  )

/** Origin answers to a forwarded ICE restart that say it cannot do one: the proxy then does it itself. */
const NO_RESTART_AT_ORIGIN = new Set([404, 405, 422, 501])

/** ICE credentials the proxy mints for a restart it carries out: ice-chars (base64), 48 and 144 bits. */
const mintCredentials = (): Sdp.IceCredentials => ({
  ufrag: randomBytes(6).toString("base64"),
  pwd: randomBytes(18).toString("base64")
})

/** The 200 of an ICE restart: the new fragment and the session's new strong entity-tag. */
const restarted = (fragment: string, etag: string, headers: Record<string, string> = {}) =>
  HttpServerResponse.text(fragment, {
    status: 200,
    contentType: "application/trickle-ice-sdpfrag",
    headers: { ...headers, etag }
  })

/**
 * An ICE restart the origin cannot do (SRS has no PATCH): the proxy mints new server credentials and
 * answers with its own candidate; from then on the relay re-signs the session's STUN between the
 * client's new credentials and those the origin still holds (`Udp/IceTranslation.ts`).
 */
const restartAtProxy = Effect.fn("Signaling.restartAtProxy")(function*(
  record: SessionRecord,
  fragment: string,
  client: Sdp.IceCredentials
) {
  const config = yield* ProxyConfig
  const request = yield* HttpServerRequest.HttpServerRequest
  if (!config.iceRestart) {
    return yield* new UnprocessableContent({
      message: "this session supports trickle ICE but not ICE restart (its origin cannot restart ICE); send a new offer"
    })
  }
  const server = mintCredentials()
  const previous = record.ice
  const ice: SessionIce = {
    clientPwd: client.pwd,
    etag: newEntityTag(),
    lite: previous?.lite ?? false,
    ...(previous?.options === undefined ? {} : { options: previous.options }),
    // The credentials the origin holds: those of the offer and answer, however many restarts ago.
    origin: previous?.origin ?? {
      ufragPair: record.ufragPair,
      serverPwd: record.serverPwd,
      ...(previous === undefined ? {} : { clientPwd: previous.clientPwd })
    }
  }
  const known = yield* (yield* Relay).rekey(record.id, {
    ufragPair: ufragPair(server.ufrag, client.ufrag),
    serverPwd: server.pwd,
    ice
  })
  if (!known) return yield* new NotFound({ message: "the session ended during the ICE restart" })
  yield* countIceRestart("proxy")
  yield* Effect.logInfo(`session ${record.id}: ICE restart carried out by the proxy (the origin keeps ${ice.origin!.ufragPair})`)
  // The candidates of an answer (on the session's worker port): a client on ICE-TCP or on another
  // address family follows too.
  const address = yield* proxyAddress(config, request, yield* (yield* Relay).placementOf(record.id))
  return restarted(
    Sdp.restartFragment({ request: fragment, credentials: server, lite: ice.lite, iceOptions: ice.options, address }),
    ice.etag
  )
})

/**
 * An ICE restart: forwarded to an origin that can restart ICE (its new credentials are learnt), or
 * carried out by the proxy when the origin cannot: it answered 404, 405, 422 or 501, or hung up, as
 * SRS does. A session restarted by the proxy once stays with the proxy: the origin still holds the
 * credentials the translation needs.
 */
const restartIce = (record: SessionRecord, fragment: string, client: Sdp.IceCredentials) =>
  Effect.gen(function*() {
    if (record.originLocation === undefined || record.ice?.origin !== undefined) {
      return yield* restartAtProxy(record, fragment, client)
    }
    const request = yield* HttpServerRequest.HttpServerRequest
    const config = yield* ProxyConfig
    // The proxy checked the precondition against the entity-tag it gave the client.
    const headers = { ...headersForOrigin(request, config), "if-match": "*" }
    const answered = yield* (yield* OriginClient).send({
      method: "PATCH",
      url: record.originLocation,
      headers,
      body: { contentType: "application/trickle-ice-sdpfrag", text: Sdp.stripCandidates(fragment) }
    }).pipe(
      Effect.map(Option.some),
      Effect.catchIf(
        (error) => error instanceof OriginFailed && error.closedWithoutAnswer === true,
        () => Effect.succeedNone
      )
    )
    if (Option.isNone(answered) || NO_RESTART_AT_ORIGIN.has(answered.value.status)) {
      return yield* restartAtProxy(record, fragment, client)
    }
    const response = answered.value
    if (response.status !== 200) {
      return HttpServerResponse.text(response.body, {
        status: response.status,
        headers: copyableHeaders(response.headers)
      })
    }
    const serverCredentials = Sdp.iceCredentials(response.body)
    if (serverCredentials.ufrag === undefined || serverCredentials.pwd === undefined) {
      return yield* new OriginFailed({ message: "the origin answered the ICE restart without new credentials" })
    }
    const etag = response.headers["etag"] ?? newEntityTag()
    const known = yield* (yield* Relay).rekey(record.id, {
      ufragPair: ufragPair(serverCredentials.ufrag, client.ufrag),
      serverPwd: serverCredentials.pwd,
      ice: { ...(record.ice ?? { lite: Sdp.iceAttributes(response.body).lite }), clientPwd: client.pwd, etag }
    })
    // Deleted or expired while the origin was restarting ICE.
    if (!known) return yield* new NotFound({ message: "the session ended during the ICE restart" })
    yield* countIceRestart("origin")
    const address = yield* proxyAddress(config, request, yield* (yield* Relay).placementOf(record.id))
    return restarted(Sdp.rewriteAnswer(response.body, address), etag, copyableHeaders(response.headers))
  })

/**
 * WHEP's answer to a counter-offer (PATCH application/sdp after a 406): forwarded to the origin
 * without the player's candidates, and the player's ufrag learnt if it changed.
 */
const answerCounterOffer = (record: SessionRecord, answer: string) =>
  Effect.gen(function*() {
    if (record.originLocation === undefined) {
      return yield* new UnprocessableContent({ message: "this session takes no SDP answer (its origin gave it no resource)" })
    }
    const request = yield* HttpServerRequest.HttpServerRequest
    const response = yield* (yield* OriginClient).send({
      method: "PATCH",
      url: record.originLocation,
      headers: headersForOrigin(request, yield* ProxyConfig),
      body: { contentType: "application/sdp", text: Sdp.stripCandidates(answer) }
    })
    const client = Sdp.iceCredentials(answer)
    const serverUfrag = record.ufragPair.slice(0, record.ufragPair.indexOf(":"))
    if (response.status < 300 && Sdp.validCredentials(client) && ufragPair(serverUfrag, client.ufrag) !== record.ufragPair) {
      yield* (yield* Relay).rekey(record.id, {
        ufragPair: ufragPair(serverUfrag, client.ufrag),
        serverPwd: record.serverPwd,
        ice: record.ice === undefined ? undefined : { ...record.ice, clientPwd: client.pwd }
      })
    }
    if (response.status >= 400) {
      yield* Effect.logWarning(`origin answered ${response.status} to the SDP answer of session ${record.id}`)
    }
    return response.body === "" && response.status === 204
      ? HttpServerResponse.empty({ status: 204, headers: copyableHeaders(response.headers) })
      : HttpServerResponse.text(response.body, { status: response.status, headers: copyableHeaders(response.headers) })
  })

/**
 * PATCH on a session URL (RFC 9725 section 4.3). Trickled client candidates are answered here with
 * 204 and no entity-tag: the origin only ever talks to the proxy, so they are of no use to it. An ICE
 * restart (a new ice-ufrag) needs If-Match (428 without, 412 when it names another entity-tag than
 * the session's) and goes to the origin, or is carried out by the proxy (`restartIce`); the new
 * ufrag pair is learnt, and the old pair keeps working until the client switches. WHEP's
 * `application/sdp` answer to a counter-offer goes to the origin.
 */
export const patchSession = (id: string) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const config = yield* ProxyConfig
    const record = yield* findSession(id)
    const mediaType = mediaTypeOf(request.headers["content-type"])
    // An SDP answer only answers a WHEP counter-offer (a 406): a publish session never had one.
    if (mediaType === "application/sdp" && record.kind === "play") {
      const answer = yield* readText(config)
      if (!Sdp.isText(answer) || !Sdp.startsWithVersion(answer)) {
        return yield* new BadRequest({ message: "the body is not an SDP answer (it must start with v=0)" })
      }
      return yield* answerCounterOffer(record, answer)
    }
    if (mediaType !== "application/trickle-ice-sdpfrag") {
      return yield* new UnsupportedMediaType({
        message: record.kind === "play"
          ? "PATCH takes application/trickle-ice-sdpfrag (trickle ICE or ICE restart), or application/sdp answering a counter-offer"
          : "PATCH takes application/trickle-ice-sdpfrag (trickle ICE or ICE restart)"
      })
    }
    const fragment = yield* readText(config)
    if (!Sdp.isText(fragment)) return yield* new BadRequest({ message: "the body is not an SDP fragment (it is not text)" })
    const clientCredentials = Sdp.iceCredentials(fragment)
    const currentClientUfrag = record.ufragPair.slice(record.ufragPair.indexOf(":") + 1)
    const ifMatch = request.headers["if-match"]
    if (clientCredentials.ufrag === undefined || clientCredentials.ufrag === currentClientUfrag) {
      if (ifMatch !== undefined && !ifMatchHolds(ifMatch, record)) {
        return yield* new PreconditionFailed({ message: "If-Match does not name this session's current entity-tag" })
      }
      return HttpServerResponse.empty({ status: 204 })
    }
    if (ifMatch === undefined) {
      return yield* new PreconditionRequired({ message: "an ICE restart needs If-Match: * (or the session's entity-tag)" })
    }
    if (!ifMatchHolds(ifMatch, record)) {
      return yield* new PreconditionFailed({
        message: "If-Match does not name this session's current entity-tag (the ETag of its 201, or of its last ICE " +
          "restart); use * or that ETag"
      })
    }
    if (!Sdp.validCredentials(clientCredentials)) {
      return yield* new BadRequest({ message: "an ICE restart needs a new a=ice-ufrag and a=ice-pwd of ICE characters" })
    }
    return yield* restartIce(record, fragment, clientCredentials)
  })

/** POST /rtc/v1/publish/ and /rtc/v1/play/ (SRS's JSON API before WHIP): answered 200 with JSON. */
export const legacyOffer = (kind: SessionKind) =>
  Effect.gen(function*() {
    const services = yield* signalingServices
    const { request, config } = services
    const body = yield* Either.mapLeft(LegacyApi.decodeOffer(yield* readText(config)), (message) => new BadRequest({ message }))
    const offer = yield* Either.mapLeft(Sdp.validateOffer(body.sdp), (problem) => new BadRequest({ message: OFFER_PROBLEMS[problem] }))
    const streamUrl = yield* Either.mapLeft(StreamUrl.fromWebrtcUrl(body.streamurl), (message) => new BadRequest({ message }))
    yield* checkNoPublisher(kind, streamUrl, services)
    yield* checkCapacity(services)
    const path = kind === "publish" ? "publish" : "play"
    const clientAddress = ClientAddress.ofRequest(request, config.trustedProxies)
    const clientip = clientAddress.address
    const { origin, response } = yield* pickAndSend(services, streamUrl, (origin) => ({
      method: "POST",
      url: `${apiBaseUrl(origin)!}/rtc/v1/${path}/`,
      headers: headersForOrigin(request, config, clientAddress),
      body: {
        contentType: "application/json",
        text: LegacyApi.encodeOffer({ ...body, sdp: offer.forOrigin, clientip: body.clientip ?? clientip })
      }
    })).pipe(Effect.mapError(explainHangUp(kind)))
    if (response.status !== 200) return yield* originRefused(origin, response)
    const answer = yield* Either.mapLeft(
      LegacyApi.decodeAnswer(response.body),
      () => new OriginFailed({ message: `origin ${origin.id} answered the legacy API with something other than JSON` })
    )
    // SRS reports its own errors as 200 with a non-zero code: the client reads them the same way.
    if (Either.isLeft(answer)) return HttpServerResponse.unsafeJson(answer.left)
    const negotiated = yield* startSession(services, {
      kind,
      streamUrl,
      origin,
      offer,
      answer: answer.right.sdp,
      originLocation: undefined
    })
    return HttpServerResponse.unsafeJson(LegacyApi.encodeAnswer({ ...answer.right, sdp: negotiated.answer }))
  })
