/**
 * A relay session: one client's ICE session relayed to the origin chosen at signaling.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { isIP } from "node:net"
import { OriginId } from "./Origin.js"
import { StreamKey } from "./StreamUrl.js"
import { randomToken } from "../RandomToken.js"

/** Unguessable: it is the capability in the session URL. */
export const SessionId = Schema.String.pipe(Schema.brand("SessionId"))
export type SessionId = typeof SessionId.Type

/** `<server ufrag>:<client ufrag>`, the USERNAME of the client's binding requests. */
export const UfragPair = Schema.String.pipe(Schema.brand("UfragPair"))
export type UfragPair = typeof UfragPair.Type

export const SessionKind = Schema.Literal("publish", "play")
export type SessionKind = typeof SessionKind.Type

/** Where the origin receives this session's media (from its answer, or its registered RTC port). */
export const MediaAddress = Schema.Struct({ host: Schema.String, port: Schema.Number })
export interface MediaAddress extends Schema.Schema.Type<typeof MediaAddress> {}

/**
 * The ICE credentials the origin holds for a session whose ICE restart the proxy carried out itself
 * (an origin without PATCH, such as SRS): the client's checks are re-signed for these.
 */
export const OriginIce = Schema.Struct({
  /** `<origin ufrag>:<client ufrag the origin knows>`. */
  ufragPair: UfragPair,
  /** The origin's ice-pwd. */
  serverPwd: Schema.String,
  /** The client ice-pwd the origin knows (absent in a record of an older proxy). */
  clientPwd: Schema.optional(Schema.String)
})
export interface OriginIce extends Schema.Schema.Type<typeof OriginIce> {}

/** What PATCH on the session URL needs: the client's credentials, the entity-tag, the answer's ICE lines. */
export const SessionIce = Schema.Struct({
  /** The client's ice-pwd now (the offer's, or its latest ICE restart's). */
  clientPwd: Schema.String,
  /** The strong entity-tag the client was given (RFC 9725 section 4.3.1), quotes included. */
  etag: Schema.String,
  /** The answer's `a=ice-lite`, mirrored in a restart's fragment. */
  lite: Schema.Boolean,
  /** The answer's `a=ice-options` value. */
  options: Schema.optional(Schema.String),
  /** Set once the proxy carried out an ICE restart itself. */
  origin: Schema.optional(OriginIce)
})
export interface SessionIce extends Schema.Schema.Type<typeof SessionIce> {}

/** What an ICE restart changes in a record. */
export interface IceKeys {
  readonly ufragPair: UfragPair
  readonly serverPwd: string
  readonly ice?: SessionIce | undefined
}

/**
 * What any proxy needs to relay a session, and what signaling needs to end it. Kept in the session
 * store, keyed by `id` and by `ufragPair`, which may change while the session lives (ICE restart).
 */
export const SessionRecord = Schema.Struct({
  id: SessionId,
  kind: SessionKind,
  streamUrl: StreamKey,
  originId: OriginId,
  /** The origin's session resource (absolute URL) for DELETE and PATCH, when it gave one. */
  originLocation: Schema.UndefinedOr(Schema.String),
  ufragPair: UfragPair,
  /** The server's ice-pwd from the answer: the MESSAGE-INTEGRITY key of the client's checks. */
  serverPwd: Schema.String,
  originMedia: MediaAddress,
  /** Epoch milliseconds. */
  createdAt: Schema.Number,
  /** Absent in a record of an older proxy. */
  ice: Schema.optional(SessionIce)
})
export interface SessionRecord extends Schema.Schema.Type<typeof SessionRecord> {}

/**
 * Why a relay session ended; each one is counted. `origin-lost`: its origin's media port refused the
 * session's packets (ICMP port unreachable), or its origin was marked down and fell silent.
 * `worker-lost`: the data-plane worker thread that relayed it died (PROXY_RTC_WORKERS above 1).
 */
export type SessionEndReason =
  | "deleted"
  | "idle"
  | "shutdown"
  | "replaced"
  | "socket-error"
  | "origin-lost"
  | "worker-lost"

export const ufragPair = (serverUfrag: string, clientUfrag: string): UfragPair =>
  UfragPair.make(`${serverUfrag}:${clientUfrag}`)

/** 128 random bits, URL-safe. */
export const newSessionId = (): SessionId => SessionId.make(randomToken(16))

/**
 * Where the origin receives a session's media, chosen at signaling: a UDP candidate of its answer at
 * the origin's registered address; else its registered address with the port of a candidate on its
 * announced RTC port (SRS writes its public IP into candidates, which the proxy may not reach); else
 * the first usable UDP host candidate (origins such as werift, Janus or MediaMTX open a port per
 * session); else the registered RTC endpoint.
 */
export const chooseMediaAddress = (
  answerCandidates: ReadonlyArray<{ readonly transport: string; readonly address: string; readonly port: number; readonly type: string }>,
  origin: { readonly ip: string; readonly rtcPort: number | undefined }
): MediaAddress | undefined => {
  const usable = answerCandidates.filter((c) =>
    c.transport === "udp" && c.port > 0 && isIP(c.address) !== 0 && c.address !== "0.0.0.0" && c.address !== "::"
  )
  const atOrigin = usable.find((c) => c.address === origin.ip)
  if (atOrigin !== undefined) return { host: atOrigin.address, port: atOrigin.port }
  const onRtcPort = usable.find((c) => c.port === origin.rtcPort)
  if (onRtcPort !== undefined) return { host: origin.ip, port: onRtcPort.port }
  const host = usable.find((c) => c.type === "host") ?? usable[0]
  if (host !== undefined) return { host: host.address, port: host.port }
  return origin.rtcPort === undefined ? undefined : { host: origin.ip, port: origin.rtcPort }
}
