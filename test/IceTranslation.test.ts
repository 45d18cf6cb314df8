// STUN re-signed for other ICE credentials (an ICE restart the proxy carries out): Stun.resign byte
// for byte against the encoder given the new credentials, and checked by werift's STUN parser as an
// independent oracle; then each direction of Udp/IceTranslation.
import { assert, describe, it } from "@effect/vitest"
import { parseMessage } from "werift"
import type { SessionRecord } from "../src/Domain/Session.ts"
import { SessionId, ufragPair } from "../src/Domain/Session.ts"
import { OriginId } from "../src/Domain/Origin.ts"
import { StreamKey } from "../src/Domain/StreamUrl.ts"
import {
  AttributeType,
  encodeBindingRequest,
  encodeBindingSuccess,
  HEADER_LENGTH,
  MAGIC_COOKIE,
  MessageType,
  parseStun,
  resign,
  type StunMessage,
  verifyFingerprint,
  verifyMessageIntegrity
} from "../src/Stun.ts"
import * as IceTranslation from "../src/Udp/IceTranslation.ts"

const TID = Buffer.from("0102030405060708090a0b0c", "hex")

const parsed = (buf: Buffer): StunMessage => {
  const message = parseStun(buf)
  if (typeof message === "string") throw new Error(`not STUN: ${message}`)
  return message
}

/** Integrity and fingerprint hold with `key`, by our checks and by werift's parser. */
const assertSigned = (buf: Buffer, key: string) => {
  const message = parsed(buf)
  assert.isTrue(verifyMessageIntegrity(buf, message, key), "MESSAGE-INTEGRITY verifies with the new key")
  assert.isTrue(verifyFingerprint(buf, message), "FINGERPRINT is right")
  assert.isDefined(parseMessage(buf, Buffer.from(key)), "werift accepts it with the new key")
  assert.isUndefined(parseMessage(buf, Buffer.from(`${key}x`)), "and refuses it with another")
}

const request = (username: string, password: string | undefined, extra: { fingerprint?: boolean } = {}) =>
  encodeBindingRequest({
    username,
    ...(password === undefined ? {} : { password }),
    transactionId: TID,
    priority: 1853817087,
    iceControlling: 0x1122334455667788n,
    useCandidate: true,
    ...extra
  })

const attr = (type: number, value: Uint8Array, pad = 0): Buffer => {
  const buf = Buffer.alloc(4 + ((value.length + 3) & ~3), pad)
  buf.writeUInt16BE(type, 0)
  buf.writeUInt16BE(value.length, 2)
  Buffer.from(value).copy(buf, 4)
  return buf
}

/** A message assembled by hand: header with the right length, then the attributes as given. */
const assemble = (type: number, attributes: ReadonlyArray<Buffer>): Buffer => {
  const body = Buffer.concat(attributes)
  const header = Buffer.alloc(HEADER_LENGTH)
  header.writeUInt16BE(type, 0)
  header.writeUInt16BE(body.length, 2)
  header.writeUInt32BE(MAGIC_COOKIE, 4)
  TID.copy(header, 8)
  return Buffer.concat([header, body])
}

describe("Stun.resign", () => {
  it("a check with a new USERNAME and key is byte for byte the check the encoder makes with them", () => {
    const original = request("srv1:cli1", "originalServerPassword01")
    const copy = Buffer.from(original)
    const resigned = resign(original, parsed(original), { username: Buffer.from("srvNew99:cli2"), key: "newServerPassword0123456" })
    assert.strictEqual(resigned.toString("hex"), request("srvNew99:cli2", "newServerPassword0123456").toString("hex"))
    assert.strictEqual(original.toString("hex"), copy.toString("hex"), "the input is untouched")
    assert.strictEqual(resigned.subarray(8, 20).toString("hex"), TID.toString("hex"), "transaction id kept")
    assertSigned(resigned, "newServerPassword0123456")
  })

  it.each([
    ["longer, padding grows", "ab:c", "a-much-longer:ufrag-pair"],
    ["shorter, padding shrinks", "a-much-longer:ufrag-pair", "ab:c"],
    ["same length", "srv1:cli1", "srv2:cli2"],
    ["5 to 7 bytes", "ab:cd", "abc:def"]
  ])("USERNAME %s (%s to %s)", (_, from, to) => {
    const original = request(from, "pw-of-the-first-kind-0001")
    const resigned = resign(original, parsed(original), { username: Buffer.from(to), key: "pw-of-the-second-kind-002" })
    assert.strictEqual(resigned.toString("hex"), request(to, "pw-of-the-second-kind-002").toString("hex"))
    assert.strictEqual(parsed(resigned).username, to)
    assertSigned(resigned, "pw-of-the-second-kind-002")
  })

  it("a response (no USERNAME) is re-keyed: byte for byte the encoder's response with the new key", () => {
    const original = encodeBindingSuccess({ transactionId: TID, address: "192.0.2.7", port: 40000, password: "originPassword0123456789" })
    const resigned = resign(original, parsed(original), { key: "proxyMintedPassword01234" })
    const expected = encodeBindingSuccess({ transactionId: TID, address: "192.0.2.7", port: 40000, password: "proxyMintedPassword01234" })
    assert.strictEqual(resigned.toString("hex"), expected.toString("hex"))
    assertSigned(resigned, "proxyMintedPassword01234")
  })

  it("a USERNAME to set on a message without one adds none", () => {
    const original = encodeBindingSuccess({ transactionId: TID, address: "192.0.2.7", port: 40000, password: "originPassword0123456789" })
    const resigned = resign(original, parsed(original), { username: Buffer.from("x:y"), key: "k" })
    assert.isUndefined(parsed(resigned).username)
    assert.strictEqual(resigned.length, original.length)
  })

  it("without MESSAGE-INTEGRITY: the USERNAME is replaced and FINGERPRINT recomputed, no integrity added", () => {
    const original = request("srv1:cli1", undefined)
    const resigned = resign(original, parsed(original), { username: Buffer.from("srv2:cli2"), key: "unused" })
    assert.strictEqual(resigned.toString("hex"), request("srv2:cli2", undefined).toString("hex"))
    assert.strictEqual(parsed(resigned).integrityOffset, -1)
    assert.isTrue(verifyFingerprint(resigned, parsed(resigned)))
  })

  it("without FINGERPRINT: integrity recomputed, no fingerprint added", () => {
    const original = request("srv1:cli1", "pw1pw1pw1pw1pw1pw1pw1pw1", { fingerprint: false })
    const resigned = resign(original, parsed(original), { username: Buffer.from("srv2:cli2"), key: "pw2pw2pw2pw2pw2pw2pw2pw2" })
    assert.strictEqual(
      resigned.toString("hex"),
      request("srv2:cli2", "pw2pw2pw2pw2pw2pw2pw2pw2", { fingerprint: false }).toString("hex")
    )
    assert.strictEqual(parsed(resigned).fingerprintOffset, -1)
    assert.isTrue(verifyMessageIntegrity(resigned, parsed(resigned), "pw2pw2pw2pw2pw2pw2pw2pw2"))
  })

  it("with neither: only the USERNAME changes, and the length with it", () => {
    const original = assemble(MessageType.BindingIndication, [attr(AttributeType.Username, Buffer.from("a:b"))])
    const resigned = resign(original, parsed(original), { username: Buffer.from("abcdefg:hij"), key: "k" })
    assert.strictEqual(
      resigned.toString("hex"),
      assemble(MessageType.BindingIndication, [attr(AttributeType.Username, Buffer.from("abcdefg:hij"))]).toString("hex")
    )
  })

  it("attributes between MESSAGE-INTEGRITY and FINGERPRINT (ignored by receivers) are left out", () => {
    const signed = request("srv1:cli1", "pw1pw1pw1pw1pw1pw1pw1pw1", { fingerprint: false })
    const withJunk = Buffer.concat([signed, attr(0x8022, Buffer.from("software")), attr(AttributeType.Fingerprint, Buffer.alloc(4))])
    withJunk.writeUInt16BE(withJunk.length - HEADER_LENGTH, 2)
    const resigned = resign(withJunk, parsed(withJunk), { username: Buffer.from("srv2:cli2"), key: "pw2pw2pw2pw2pw2pw2pw2pw2" })
    assert.strictEqual(resigned.toString("hex"), request("srv2:cli2", "pw2pw2pw2pw2pw2pw2pw2pw2").toString("hex"))
  })

  it("MESSAGE-INTEGRITY-SHA256, which would no longer verify, is left out", () => {
    const original = assemble(MessageType.BindingRequest, [
      attr(AttributeType.Username, Buffer.from("a:b")),
      attr(AttributeType.MessageIntegritySha256, Buffer.alloc(32, 7)),
      attr(AttributeType.Priority, Buffer.from([0, 0, 0, 1]))
    ])
    const resigned = resign(original, parsed(original), { username: Buffer.from("c:d"), key: "k" })
    assert.strictEqual(
      resigned.toString("hex"),
      assemble(MessageType.BindingRequest, [
        attr(AttributeType.Username, Buffer.from("c:d")),
        attr(AttributeType.Priority, Buffer.from([0, 0, 0, 1]))
      ]).toString("hex")
    )
  })

  it("only the first USERNAME is replaced; non-zero padding of the old value goes", () => {
    const original = assemble(MessageType.BindingRequest, [
      attr(AttributeType.Username, Buffer.from("a:b"), 0x20),
      attr(AttributeType.Username, Buffer.from("c:d"), 0x20)
    ])
    const resigned = resign(original, parsed(original), { username: Buffer.from("e:f"), key: "k" })
    assert.strictEqual(
      resigned.toString("hex"),
      assemble(MessageType.BindingRequest, [
        attr(AttributeType.Username, Buffer.from("e:f")),
        attr(AttributeType.Username, Buffer.from("c:d"), 0x20)
      ]).toString("hex")
    )
  })
})

const RECORD: SessionRecord = {
  id: SessionId.make("AAAAAAAAAAAAAAAAAAAAAA"),
  kind: "publish",
  streamUrl: StreamKey.make("__defaultVhost__/live/s"),
  originId: OriginId.make("origin-1"),
  originLocation: undefined,
  // After the restart: the proxy's new server ufrag and the client's new one.
  ufragPair: ufragPair("srvNew", "cliNew"),
  serverPwd: "proxyMintedPassword01234",
  originMedia: { host: "127.0.0.1", port: 8000 },
  createdAt: 0,
  ice: {
    clientPwd: "clientNewPassword0123456",
    etag: "\"e2\"",
    lite: true,
    origin: { ufragPair: ufragPair("srvOld", "cliOld"), serverPwd: "originPassword0123456789", clientPwd: "clientOldPassword0123456" }
  }
}
const translation = IceTranslation.fromRecord(RECORD)!

describe("IceTranslation", () => {
  it("fromRecord: none before the proxy restarted ICE; after, the keys of both sides", () => {
    assert.isUndefined(IceTranslation.fromRecord({ ...RECORD, ice: { ...RECORD.ice!, origin: undefined } }))
    const { ice: _, ...older } = RECORD
    assert.isUndefined(IceTranslation.fromRecord(older))
    assert.strictEqual(translation.originPair, "srvOld:cliOld")
    assert.strictEqual(translation.originPairBytes.toString(), "srvOld:cliOld")
    assert.strictEqual(translation.originPwd, "originPassword0123456789")
    assert.strictEqual(translation.originClientPwd, "clientOldPassword0123456")
    assert.strictEqual(translation.clientPwd, "clientNewPassword0123456")
    assert.strictEqual(translation.clientCheckUsername.toString(), "cliNew:srvNew")
  })

  it("checkToOrigin: the client's check as the origin knows it (its pair, its password)", () => {
    const check = request("srvNew:cliNew", "proxyMintedPassword01234")
    const out = IceTranslation.checkToOrigin(translation, check, parsed(check))
    assert.strictEqual(out.toString("hex"), request("srvOld:cliOld", "originPassword0123456789").toString("hex"))
  })

  it("responseToClient: the origin's success and error responses signed with the client's key; anything else as it came", () => {
    const success = encodeBindingSuccess({ transactionId: TID, address: "127.0.0.1", port: 5000, password: "originPassword0123456789" })
    assertSigned(IceTranslation.responseToClient(success, "proxyMintedPassword01234"), "proxyMintedPassword01234")
    const error = Buffer.from(success)
    error.writeUInt16BE(MessageType.BindingError, 0)
    const errorOut = IceTranslation.responseToClient(error, "proxyMintedPassword01234")
    assert.strictEqual(parsed(errorOut).type, MessageType.BindingError)
    assert.isTrue(verifyMessageIntegrity(errorOut, parsed(errorOut), "proxyMintedPassword01234"))
    const unsigned = encodeBindingSuccess({ transactionId: TID, address: "127.0.0.1", port: 5000 })
    assert.strictEqual(IceTranslation.responseToClient(unsigned, "k"), unsigned)
    const check = request("srvOld:cliOld", "originPassword0123456789")
    assert.strictEqual(IceTranslation.responseToClient(check, "k"), check)
    const junk = Buffer.from([0, 1, 0, 4])
    assert.strictEqual(IceTranslation.responseToClient(junk, "k"), junk)
  })

  it("fromOrigin: a full-ICE origin's check goes out with the client's new pair and password; anything else as it came", () => {
    const check = request("cliOld:srvOld", "clientOldPassword0123456")
    assert.strictEqual(
      IceTranslation.fromOrigin(translation, check).toString("hex"),
      request("cliNew:srvNew", "clientNewPassword0123456").toString("hex")
    )
    const response = encodeBindingSuccess({ transactionId: TID, address: "127.0.0.1", port: 5000, password: "originPassword0123456789" })
    assert.strictEqual(IceTranslation.fromOrigin(translation, response), response)
    const unsigned = request("cliOld:srvOld", undefined)
    assert.strictEqual(IceTranslation.fromOrigin(translation, unsigned), unsigned)
    const junk = Buffer.from([1, 1, 0, 0])
    assert.strictEqual(IceTranslation.fromOrigin(translation, junk), junk)
  })

  it("responseToOrigin: the client's answer to the origin's check, signed again with the password the origin knows", () => {
    const answer = encodeBindingSuccess({ transactionId: TID, address: "127.0.0.1", port: 6000, password: "clientNewPassword0123456" })
    const out = IceTranslation.responseToOrigin(translation, answer, parsed(answer))
    assert.strictEqual(
      out.toString("hex"),
      encodeBindingSuccess({ transactionId: TID, address: "127.0.0.1", port: 6000, password: "clientOldPassword0123456" }).toString("hex")
    )
    // An answer from before the restart (signed with the old password), or a forged one: the origin judges it.
    const old = encodeBindingSuccess({ transactionId: TID, address: "127.0.0.1", port: 6000, password: "clientOldPassword0123456" })
    assert.strictEqual(IceTranslation.responseToOrigin(translation, old, parsed(old)), old)
    // A record of an older proxy does not know the client's old password.
    const unknown = IceTranslation.fromRecord({
      ...RECORD,
      ice: { ...RECORD.ice!, origin: { ufragPair: ufragPair("srvOld", "cliOld"), serverPwd: "originPassword0123456789" } }
    })!
    assert.strictEqual(IceTranslation.responseToOrigin(unknown, answer, parsed(answer)), answer)
    const indication = assemble(MessageType.BindingIndication, [])
    assert.strictEqual(IceTranslation.responseToOrigin(translation, indication, parsed(indication)), indication)
  })
})
