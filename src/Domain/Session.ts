/**
 * A relay session: one client's ICE session relayed to the origin chosen at signaling.
 *
 * @since 0.1.0
 */
import { randomBytes } from "node:crypto"

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
