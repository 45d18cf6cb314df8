// STUN messages assembled by hand, byte by byte, independently of src/Stun.ts's encoders.
import { assert } from "@effect/vitest"
import { HEADER_LENGTH, MAGIC_COOKIE, parseStun, type StunMessage } from "../../src/Stun.ts"

/** A STUN header: type, length, magic cookie (or another, to test its check), transaction id. */
export const stunHeader = (type: number, length: number, tid: Uint8Array, cookie = MAGIC_COOKIE): Buffer => {
  const buf = Buffer.alloc(HEADER_LENGTH)
  buf.writeUInt16BE(type, 0)
  buf.writeUInt16BE(length, 2)
  buf.writeUInt32BE(cookie, 4)
  Buffer.from(tid).copy(buf, 8)
  return buf
}

/** Type, length, value, then padding to 4 bytes (with `pad`, zero unless told: RFC 5769 pads with 0x20). */
export const stunAttribute = (type: number, value: Uint8Array, pad = 0x00): Buffer => {
  const buf = Buffer.alloc(4 + Math.ceil(value.length / 4) * 4, pad)
  buf.writeUInt16BE(type, 0)
  buf.writeUInt16BE(value.length, 2)
  Buffer.from(value).copy(buf, 4)
  return buf
}

/** A message whose header length is exactly the attributes' length. */
export const stunMessage = (type: number, tid: Uint8Array, attributes: ReadonlyArray<Buffer>): Buffer => {
  const body = Buffer.concat(attributes)
  return Buffer.concat([stunHeader(type, body.length, tid), body])
}

/** The message `buf` parses to; the test fails when it is not STUN. */
export const parsedStun = (buf: Uint8Array): StunMessage => {
  const result = parseStun(buf)
  if (typeof result === "string") assert.fail(`expected a STUN message, got ${result}`)
  return result
}
