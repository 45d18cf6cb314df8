/**
 * STUN (RFC 8489) as the relay needs it: demultiplexing by first byte (RFC 7983), a bounds-checked
 * parse of the header and attributes, USERNAME, MESSAGE-INTEGRITY and FINGERPRINT. Pure: nothing here
 * throws on any input, and nothing touches a socket.
 *
 * @since 0.1.0
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto"

/** What a datagram on the shared port carries, from its first byte (RFC 7983 section 7). */
export type PacketKind = "stun" | "dtls" | "turn" | "rtp" | "unknown"

/** RFC 7983: 0-3 STUN, 20-63 DTLS, 64-79 TURN channel, 128-191 RTP/RTCP; anything else is junk. */
export const classifyPacket = (firstByte: number): PacketKind =>
  firstByte <= 3
    ? "stun"
    : firstByte >= 128 && firstByte <= 191
    ? "rtp"
    : firstByte >= 20 && firstByte <= 63
    ? "dtls"
    : firstByte >= 64 && firstByte <= 79
    ? "turn"
    : "unknown"

export const MAGIC_COOKIE = 0x2112a442
export const HEADER_LENGTH = 20

export const MessageType = {
  BindingRequest: 0x0001,
  BindingSuccess: 0x0101,
  BindingError: 0x0111,
  BindingIndication: 0x0011
} as const

export const AttributeType = {
  MappedAddress: 0x0001,
  Username: 0x0006,
  MessageIntegrity: 0x0008,
  MessageIntegritySha256: 0x001c,
  ErrorCode: 0x0009,
  XorMappedAddress: 0x0020,
  Priority: 0x0024,
  UseCandidate: 0x0025,
  Fingerprint: 0x8028,
  IceControlled: 0x8029,
  IceControlling: 0x802a
} as const

const MESSAGE_INTEGRITY_LENGTH = 20
const FINGERPRINT_XOR = 0x5354554e

/** Why a datagram that looked like STUN was not accepted; each one is a counted drop reason. */
export type StunParseFailure =
  | "too-short"
  | "not-stun"
  | "bad-cookie"
  | "bad-length"
  | "truncated-attribute"
  | "bad-username"

/** A parsed STUN message. Offsets point into the datagram it was parsed from (-1: absent). */
export interface StunMessage {
  readonly type: number
  /** Length of the attributes, from the header: the datagram is exactly 20 bytes longer. */
  readonly length: number
  readonly transactionId: Uint8Array
  readonly username: string | undefined
  /** USE-CANDIDATE: the controlling agent nominates this pair (RFC 8445 section 8.1.1). */
  readonly useCandidate: boolean
  /** Offset of the MESSAGE-INTEGRITY attribute header. */
  readonly integrityOffset: number
  /** Offset of the FINGERPRINT attribute header. */
  readonly fingerprintOffset: number
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

const readUint16 = (buf: Uint8Array, offset: number): number => (buf[offset]! << 8) | buf[offset + 1]!

const readUint32 = (buf: Uint8Array, offset: number): number =>
  ((buf[offset]! << 24) | (buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!) >>> 0

/**
 * Parses a STUN message. Every length is checked against what is left before it is read, so a
 * truncated or lying datagram yields a failure reason, never an exception or an out-of-bounds read.
 * Attributes after MESSAGE-INTEGRITY other than FINGERPRINT are ignored, as RFC 8489 requires.
 */
export const parseStun = (buf: Uint8Array): StunMessage | StunParseFailure => {
  if (buf.length < HEADER_LENGTH) return "too-short"
  // The two most significant bits of every STUN message are zero.
  if ((buf[0]! & 0xc0) !== 0) return "not-stun"
  if (readUint32(buf, 4) !== MAGIC_COOKIE) return "bad-cookie"
  const length = readUint16(buf, 2)
  // Over UDP a STUN message is its whole datagram: a length short of the end is a lie too (SRS drops it).
  if ((length & 3) !== 0 || HEADER_LENGTH + length !== buf.length) return "bad-length"
  const end = HEADER_LENGTH + length
  let username: string | undefined
  let useCandidate = false
  let integrityOffset = -1
  let fingerprintOffset = -1
  let offset = HEADER_LENGTH
  while (offset < end) {
    if (offset + 4 > end) return "truncated-attribute"
    const attrType = readUint16(buf, offset)
    const attrLength = readUint16(buf, offset + 2)
    const valueStart = offset + 4
    if (valueStart + attrLength > end) return "truncated-attribute"
    if (fingerprintOffset === -1) {
      if (attrType === AttributeType.Fingerprint) {
        if (attrLength !== 4) return "truncated-attribute"
        fingerprintOffset = offset
      } else if (integrityOffset === -1) {
        // RFC 8489 section 14: only the first occurrence of an attribute counts.
        if (attrType === AttributeType.Username && username === undefined) {
          try {
            username = utf8.decode(buf.subarray(valueStart, valueStart + attrLength))
          } catch {
            return "bad-username"
          }
        } else if (attrType === AttributeType.UseCandidate) {
          useCandidate = true
        } else if (attrType === AttributeType.MessageIntegrity) {
          if (attrLength !== MESSAGE_INTEGRITY_LENGTH) return "truncated-attribute"
          integrityOffset = offset
        }
      }
    }
    offset = valueStart + ((attrLength + 3) & ~3)
  }
  return {
    type: readUint16(buf, 0),
    length,
    transactionId: buf.subarray(8, 20),
    username,
    useCandidate,
    integrityOffset,
    fingerprintOffset
  }
}

/** The session key of a binding request: the USERNAME, `<server ufrag>:<client ufrag>`. */
export const isUfragPair = (username: string): boolean => {
  const colon = username.indexOf(":")
  return colon > 0 && colon < username.length - 1 && username.indexOf(":", colon + 1) === -1
}

/** HMAC-SHA1 over the message up to MESSAGE-INTEGRITY, with the header length ending just after it. */
const computeIntegrity = (buf: Uint8Array, integrityOffset: number, key: string | Uint8Array): Buffer => {
  const header = Buffer.from(buf.subarray(0, HEADER_LENGTH))
  header.writeUInt16BE(integrityOffset - HEADER_LENGTH + 4 + MESSAGE_INTEGRITY_LENGTH, 2)
  return createHmac("sha1", key).update(header).update(buf.subarray(HEADER_LENGTH, integrityOffset)).digest()
}

/**
 * Checks MESSAGE-INTEGRITY with ICE short-term credentials (the key is the password's bytes,
 * RFC 8445 section 7.2.2). A message without the attribute does not verify.
 */
export const verifyMessageIntegrity = (
  buf: Uint8Array,
  message: StunMessage,
  key: string | Uint8Array
): boolean => {
  if (message.integrityOffset < 0) return false
  const expected = computeIntegrity(buf, message.integrityOffset, key)
  const start = message.integrityOffset + 4
  return timingSafeEqual(expected, buf.subarray(start, start + MESSAGE_INTEGRITY_LENGTH))
}

const CRC32_TABLE = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

/** CRC-32 (ISO 3309, as STUN's FINGERPRINT uses it). */
export const crc32 = (buf: Uint8Array, start = 0, end = buf.length): number => {
  let crc = 0xffffffff
  for (let i = start; i < end; i++) crc = CRC32_TABLE[(crc ^ buf[i]!) & 0xff]! ^ (crc >>> 8)
  return (crc ^ 0xffffffff) >>> 0
}

/** Checks FINGERPRINT: CRC-32 of the message before it, XOR 0x5354554E. Absent: does not verify. */
export const verifyFingerprint = (buf: Uint8Array, message: StunMessage): boolean => {
  if (message.fingerprintOffset < 0) return false
  const expected = (crc32(buf, 0, message.fingerprintOffset) ^ FINGERPRINT_XOR) >>> 0
  return readUint32(buf, message.fingerprintOffset + 4) === expected
}

/** Options for building a binding request, as an ICE agent sends one. */
export interface BindingRequestOptions {
  /** `<remote ufrag>:<local ufrag>`. */
  readonly username: string
  /** The remote side's ice-pwd; omitted: no MESSAGE-INTEGRITY. */
  readonly password?: string
  readonly transactionId?: Uint8Array
  readonly priority?: number
  /** Tie-breaker; when set, ICE-CONTROLLING is added. */
  readonly iceControlling?: bigint
  readonly useCandidate?: boolean
  /** Default true. */
  readonly fingerprint?: boolean
}

const attribute = (type: number, value: Uint8Array): Buffer => {
  const padded = Buffer.alloc(4 + ((value.length + 3) & ~3))
  padded.writeUInt16BE(type, 0)
  padded.writeUInt16BE(value.length, 2)
  padded.set(value, 4)
  return padded
}

/** Appends MESSAGE-INTEGRITY (when a key is given) and FINGERPRINT to a message of header + attributes. */
const seal = (header: Buffer, attributes: Array<Buffer>, key: string | undefined, fingerprint: boolean): Buffer => {
  let message = Buffer.concat([header, ...attributes])
  const setLength = (extra: number) => message.writeUInt16BE(message.length - HEADER_LENGTH + extra, 2)
  if (key !== undefined) {
    setLength(4 + MESSAGE_INTEGRITY_LENGTH)
    const digest = createHmac("sha1", key).update(message).digest()
    message = Buffer.concat([message, attribute(AttributeType.MessageIntegrity, digest)])
  }
  if (fingerprint) {
    setLength(8)
    const value = Buffer.alloc(4)
    value.writeUInt32BE((crc32(message) ^ FINGERPRINT_XOR) >>> 0, 0)
    message = Buffer.concat([message, attribute(AttributeType.Fingerprint, value)])
  }
  setLength(0)
  return message
}

const makeHeader = (type: number, transactionId: Uint8Array): Buffer => {
  const header = Buffer.alloc(HEADER_LENGTH)
  header.writeUInt16BE(type, 0)
  header.writeUInt32BE(MAGIC_COOKIE, 4)
  header.set(transactionId.subarray(0, 12), 8)
  return header
}

/** Builds a binding request as a client's ICE agent would (used by tests and the benchmark). */
export const encodeBindingRequest = (options: BindingRequestOptions): Buffer => {
  const attributes = [attribute(AttributeType.Username, Buffer.from(options.username, "utf8"))]
  if (options.priority !== undefined) {
    const value = Buffer.alloc(4)
    value.writeUInt32BE(options.priority >>> 0, 0)
    attributes.push(attribute(AttributeType.Priority, value))
  }
  if (options.iceControlling !== undefined) {
    const value = Buffer.alloc(8)
    value.writeBigUInt64BE(options.iceControlling, 0)
    attributes.push(attribute(AttributeType.IceControlling, value))
  }
  if (options.useCandidate) attributes.push(attribute(AttributeType.UseCandidate, new Uint8Array(0)))
  return seal(
    makeHeader(MessageType.BindingRequest, options.transactionId ?? randomBytes(12)),
    attributes,
    options.password,
    options.fingerprint ?? true
  )
}

/**
 * Builds a binding success response with XOR-MAPPED-ADDRESS (IPv4), as an ICE-lite server sends it
 * (used by test origins and the benchmark).
 */
export const encodeBindingSuccess = (options: {
  readonly transactionId: Uint8Array
  readonly address: string
  readonly port: number
  readonly password?: string
}): Buffer => {
  const value = Buffer.alloc(8)
  value.writeUInt8(0x01, 1)
  value.writeUInt16BE((options.port ^ (MAGIC_COOKIE >>> 16)) & 0xffff, 2)
  const octets = options.address.split(".").map((part) => Number(part) & 0xff)
  const ip = ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0
  value.writeUInt32BE((ip ^ MAGIC_COOKIE) >>> 0, 4)
  return seal(
    makeHeader(MessageType.BindingSuccess, options.transactionId),
    [attribute(AttributeType.XorMappedAddress, value)],
    options.password,
    true
  )
}

/** What a message is re-signed with: the key of its new MESSAGE-INTEGRITY, and a new USERNAME if any. */
export interface ResignOptions {
  readonly key: string | Uint8Array
  /** Replaces the value of the first USERNAME (a message without one gets none). */
  readonly username?: Uint8Array
}

/**
 * The same message for other ICE credentials (an ICE restart the proxy carries out itself): type,
 * transaction id and every attribute before MESSAGE-INTEGRITY kept byte for byte, the USERNAME value
 * replaced when one is given (zero padding), then MESSAGE-INTEGRITY (HMAC-SHA1 with `key`) and
 * FINGERPRINT recomputed where the message had them. Left out: MESSAGE-INTEGRITY-SHA256, which ICE
 * does not use and which would no longer verify, and attributes after MESSAGE-INTEGRITY other than
 * FINGERPRINT, which RFC 8489 makes receivers ignore. `message` is `buf` parsed, so every offset is
 * known to be in bounds. One allocation for the result, plus the HMAC's.
 */
export const resign = (buf: Uint8Array, message: StunMessage, options: ResignOptions): Buffer => {
  const bodyEnd = message.integrityOffset >= 0
    ? message.integrityOffset
    : message.fingerprintOffset >= 0
    ? message.fingerprintOffset
    : HEADER_LENGTH + message.length
  // First pass: the size of what is kept.
  let size = HEADER_LENGTH
  let replaced = options.username === undefined
  for (let offset = HEADER_LENGTH; offset < bodyEnd;) {
    const type = readUint16(buf, offset)
    const next = offset + 4 + ((readUint16(buf, offset + 2) + 3) & ~3)
    if (type === AttributeType.Username && !replaced) {
      size += 4 + ((options.username!.length + 3) & ~3)
      replaced = true
    } else if (type !== AttributeType.MessageIntegritySha256) {
      size += next - offset
    }
    offset = next
  }
  const integritySize = message.integrityOffset >= 0 ? 4 + MESSAGE_INTEGRITY_LENGTH : 0
  const fingerprintSize = message.fingerprintOffset >= 0 ? 8 : 0
  const out = Buffer.allocUnsafe(size + integritySize + fingerprintSize)
  out.set(buf.subarray(0, HEADER_LENGTH), 0)
  // Second pass: the attributes, the USERNAME replaced.
  let at = HEADER_LENGTH
  replaced = options.username === undefined
  for (let offset = HEADER_LENGTH; offset < bodyEnd;) {
    const type = readUint16(buf, offset)
    const next = offset + 4 + ((readUint16(buf, offset + 2) + 3) & ~3)
    if (type === AttributeType.Username && !replaced) {
      const username = options.username!
      const end = at + 4 + ((username.length + 3) & ~3)
      out.writeUInt16BE(AttributeType.Username, at)
      out.writeUInt16BE(username.length, at + 2)
      out.set(username, at + 4)
      out.fill(0, at + 4 + username.length, end)
      at = end
      replaced = true
    } else if (type !== AttributeType.MessageIntegritySha256) {
      out.set(buf.subarray(offset, next), at)
      at += next - offset
    }
    offset = next
  }
  if (integritySize > 0) {
    // The length field covers MESSAGE-INTEGRITY while it is computed (RFC 8489 section 14.5).
    out.writeUInt16BE(at - HEADER_LENGTH + integritySize, 2)
    const digest = createHmac("sha1", options.key).update(out.subarray(0, at)).digest()
    out.writeUInt16BE(AttributeType.MessageIntegrity, at)
    out.writeUInt16BE(MESSAGE_INTEGRITY_LENGTH, at + 2)
    out.set(digest, at + 4)
    at += integritySize
  }
  if (fingerprintSize > 0) {
    out.writeUInt16BE(at - HEADER_LENGTH + fingerprintSize, 2)
    const crc = (crc32(out, 0, at) ^ FINGERPRINT_XOR) >>> 0
    out.writeUInt16BE(AttributeType.Fingerprint, at)
    out.writeUInt16BE(4, at + 2)
    out.writeUInt32BE(crc, at + 4)
    at += fingerprintSize
  }
  out.writeUInt16BE(at - HEADER_LENGTH, 2)
  return out
}
