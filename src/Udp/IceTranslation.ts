/**
 * STUN between two sets of ICE credentials, for a session whose ICE restart the proxy carried out
 * itself (the origin cannot: SRS has no PATCH). The client now uses the credentials of the restart
 * (the proxy's new server ufrag and ice-pwd, its own new ones); the origin still holds those of the
 * offer and answer. Each binding message crossing the relay is re-signed for the side it goes to
 * (`Stun.resign`): USERNAME swapped, MESSAGE-INTEGRITY and FINGERPRINT recomputed, transaction id
 * kept. DTLS and SRTP never change, so the media carries on. Pure and synchronous: the router calls
 * it on STUN packets of translated sessions only.
 *
 * | message | from | USERNAME becomes | signed with |
 * |---|---|---|---|
 * | binding request (check) | client | the origin's pair | the origin's ice-pwd |
 * | its response | origin | (none) | the server ice-pwd the client used |
 * | binding request (full-ICE origin) | origin | the client's new pair, reversed | the client's new ice-pwd |
 * | its response | client | (none) | the client ice-pwd the origin knows |
 *
 * @since 0.1.0
 */
import type { SessionRecord } from "../Domain/Session.js"
import { MessageType, parseStun, resign, type StunMessage, verifyMessageIntegrity } from "../Stun.js"

/** A translated session's keys, worked out once per ICE restart so that a packet allocates none. */
export interface IceTranslation {
  /** USERNAME of the client's checks as the origin knows them: `<origin ufrag>:<client ufrag>`. */
  readonly originPair: string
  readonly originPairBytes: Buffer
  /** The origin's ice-pwd: the key of checks sent to it, and of its responses. */
  readonly originPwd: string
  /** The client ice-pwd the origin knows: the key of its own checks, and of the answers it expects. */
  readonly originClientPwd: string | undefined
  /** The client's ice-pwd now. */
  readonly clientPwd: string
  /** USERNAME of the origin's checks as the client expects them: `<client ufrag>:<server ufrag>`. */
  readonly clientCheckUsername: Buffer
}

/** The translation a record calls for: none until the proxy carried out an ICE restart. */
export const fromRecord = (record: SessionRecord): IceTranslation | undefined => {
  const origin = record.ice?.origin
  if (origin === undefined) return undefined
  const colon = record.ufragPair.indexOf(":")
  return {
    originPair: origin.ufragPair,
    originPairBytes: Buffer.from(origin.ufragPair, "utf8"),
    originPwd: origin.serverPwd,
    originClientPwd: origin.clientPwd,
    clientPwd: record.ice!.clientPwd,
    clientCheckUsername: Buffer.from(
      `${record.ufragPair.slice(colon + 1)}:${record.ufragPair.slice(0, colon)}`,
      "utf8"
    )
  }
}

/** A client's check (already verified with the server ice-pwd of its pair), as the origin expects it. */
export const checkToOrigin = (translation: IceTranslation, msg: Buffer, message: StunMessage): Buffer =>
  resign(msg, message, { username: translation.originPairBytes, key: translation.originPwd })

const isResponse = (type: number) => type === MessageType.BindingSuccess || type === MessageType.BindingError

/**
 * A binding response from the origin to a check the client sent with a translated pair: signed again
 * with that pair's server ice-pwd. Anything else passes unchanged.
 */
export const responseToClient = (msg: Buffer, key: string): Buffer => {
  const message = parseStun(msg)
  if (typeof message === "string" || !isResponse(message.type) || message.integrityOffset < 0) return msg
  return resign(msg, message, { key })
}

/**
 * A STUN message from the origin that answers nothing the client sent: a full-ICE origin's own
 * check goes out with the client's new credentials. Anything else passes unchanged.
 */
export const fromOrigin = (translation: IceTranslation, msg: Buffer): Buffer => {
  const message = parseStun(msg)
  if (typeof message === "string" || message.type !== MessageType.BindingRequest || message.integrityOffset < 0) {
    return msg
  }
  return resign(msg, message, { username: translation.clientCheckUsername, key: translation.clientPwd })
}

/**
 * A client's response to the origin's check: when it verifies with the client's new ice-pwd, it is
 * signed again with the one the origin knows; otherwise (an answer from before the restart, or
 * forged) it passes unchanged, and the origin judges it.
 */
export const responseToOrigin = (translation: IceTranslation, msg: Buffer, message: StunMessage): Buffer => {
  if (translation.originClientPwd === undefined || !isResponse(message.type)) return msg
  if (!verifyMessageIntegrity(msg, message, translation.clientPwd)) return msg
  return resign(msg, message, { key: translation.originClientPwd })
}
