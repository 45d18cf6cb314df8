/**
 * A relay session: one client's ICE session relayed to the origin chosen at signaling.
 *
 * @since 0.1.0
 */
import { randomBytes } from "node:crypto"
import { isIP } from "node:net"

export type SessionKind = "publish" | "play"

/** Where the origin receives this session's media (from its answer, or its registered RTC port). */
export interface MediaAddress {
  readonly host: string
  readonly port: number
}

/**
 * What any proxy needs to relay a session, and what signaling needs to end it. Kept in the session
 * store (memory now, shared later), keyed by `id` and by `ufragPair`, which may change while the
 * session lives (ICE restart).
 */
export interface SessionRecord {
  /** Unguessable: it is the capability in the session URL. */
  readonly id: string
  readonly kind: SessionKind
  readonly streamUrl: string
  readonly originId: string
  /** The origin's session resource (absolute URL) for DELETE and PATCH, when it gave one. */
  readonly originLocation: string | undefined
  /** `<server ufrag>:<client ufrag>`, the USERNAME of the client's binding requests. */
  readonly ufragPair: string
  /** The server's ice-pwd from the answer: the MESSAGE-INTEGRITY key of the client's checks. */
  readonly serverPwd: string
  readonly originMedia: MediaAddress
  /** Epoch milliseconds. */
  readonly createdAt: number
}

/** Why a relay session ended; each one is counted. */
export type SessionEndReason = "deleted" | "idle" | "shutdown" | "replaced" | "socket-error"

export const ufragPair = (serverUfrag: string, clientUfrag: string): string => `${serverUfrag}:${clientUfrag}`

/** 128 random bits, URL-safe. */
export const newSessionId = (): string => randomBytes(16).toString("base64url")

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
