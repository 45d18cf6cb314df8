import { assert, describe, it } from "@effect/vitest"
import { classes, Message, methods, parseMessage } from "werift"
import {
  AttributeType,
  classifyPacket,
  crc32,
  encodeBindingRequest,
  encodeBindingSuccess,
  HEADER_LENGTH,
  MAGIC_COOKIE,
  MessageType,
  parseStun,
  verifyFingerprint,
  verifyMessageIntegrity
} from "../src/Stun.ts"
import type { PacketKind, StunMessage, StunParseFailure } from "../src/Stun.ts"
import { parsedStun, stunAttribute, stunHeader, stunMessage } from "./support/stunMessages.ts"

// ---------------------------------------------------------------------------------------------------
// Helpers: STUN messages assembled by hand (test/support/stunMessages.ts), with this file's transaction id.

const TID = Buffer.from("b7e7a701bc34d686fa87dfae", "hex")
const header = (type: number, length: number, cookie = MAGIC_COOKIE): Buffer => stunHeader(type, length, TID, cookie)
const attr = stunAttribute
const stun = (type: number, ...attributes: Array<Buffer>): Buffer => stunMessage(type, TID, attributes)
const username = (text: string, pad = 0x00) => attr(AttributeType.Username, Buffer.from(text, "utf8"), pad)
const u32 = (n: number) => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n >>> 0, 0)
  return b
}
const parsed = parsedStun

const FAILURES: ReadonlyArray<StunParseFailure> = [
  "too-short",
  "not-stun",
  "bad-cookie",
  "bad-length",
  "truncated-attribute",
  "bad-username"
]

// RFC 5769 section 2.1 "Sample Request" and 2.2 "Sample IPv4 Response" (padding bytes are 0x20 there).
// Both carry MESSAGE-INTEGRITY keyed with the same short-term password and a FINGERPRINT; the tests
// below check both verify, which they could not if a byte had been typed wrong.
const RFC5769_PASSWORD = "VOkJxbRl1RmTxUk/WvJxBt"
const RFC5769_REQUEST = Buffer.from(
  [
    "00010058", // Binding request, length 88
    "2112a442", // magic cookie
    "b7e7a701bc34d686fa87dfae", // transaction id
    "80220010", // SOFTWARE, 16 bytes: "STUN test client"
    "5354554e207465737420636c69656e74",
    "00240004", // PRIORITY
    "6e0001ff",
    "80290008", // ICE-CONTROLLED
    "932ff9b151263b36",
    "00060009", // USERNAME, 9 bytes "evtj:h6vY" + 3 padding bytes 0x20
    "6576746a3a68367659202020",
    "00080014", // MESSAGE-INTEGRITY
    "9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2",
    "80280004", // FINGERPRINT
    "e57a3bcf"
  ].join(""),
  "hex"
)
const RFC5769_RESPONSE = Buffer.from(
  [
    "0101003c", // Binding success response, length 60
    "2112a442",
    "b7e7a701bc34d686fa87dfae",
    "8022000b", // SOFTWARE, 11 bytes "test vector" + 1 padding byte 0x20
    "7465737420766563746f7220",
    "00200008", // XOR-MAPPED-ADDRESS: IPv4 192.0.2.1 port 32853
    "0001a147e112a643",
    "00080014",
    "2b91f599fd9e90c38c7489f92af9ba53f06be7d7",
    "80280004",
    "c07d4c96"
  ].join(""),
  "hex"
)

// ---------------------------------------------------------------------------------------------------

describe("classifyPacket (RFC 7983)", () => {
  const ranges: ReadonlyArray<readonly [number, number, PacketKind]> = [
    [0, 3, "stun"],
    [4, 19, "unknown"],
    [20, 63, "dtls"],
    [64, 79, "turn"],
    [80, 127, "unknown"],
    [128, 191, "rtp"],
    [192, 255, "unknown"]
  ]
  for (const [first, last, kind] of ranges) {
    it(`${first} and ${last} are ${kind}`, () => {
      assert.strictEqual(classifyPacket(first), kind)
      assert.strictEqual(classifyPacket(last), kind)
    })
  }

  it("every byte value falls in exactly the range the table gives it", () => {
    for (let byte = 0; byte < 256; byte++) {
      const expected = ranges.find(([first, last]) => byte >= first && byte <= last)![2]
      assert.strictEqual(classifyPacket(byte), expected, `first byte ${byte}`)
    }
  })
})

describe("parseStun failures", () => {
  it("too-short: fewer than 20 bytes", () => {
    assert.strictEqual(parseStun(new Uint8Array(0)), "too-short")
    assert.strictEqual(parseStun(header(MessageType.BindingRequest, 0).subarray(0, 19)), "too-short")
  })

  it("not-stun: either of the two top bits of the type set", () => {
    for (const type of [0x4001, 0x8001, 0xc001]) {
      assert.strictEqual(parseStun(header(type, 0)), "not-stun", `type ${type.toString(16)}`)
    }
  })

  it("bad-cookie: anything but 0x2112A442", () => {
    assert.strictEqual(parseStun(header(MessageType.BindingRequest, 0, 0x2112a443)), "bad-cookie")
    assert.strictEqual(parseStun(header(MessageType.BindingRequest, 0, 0)), "bad-cookie")
  })

  it("bad-length: a length that is not a multiple of 4", () => {
    const buf = Buffer.concat([header(MessageType.BindingRequest, 6), Buffer.alloc(6)])
    assert.strictEqual(parseStun(buf), "bad-length")
  })

  it("bad-length: a length past the end of the datagram", () => {
    const buf = Buffer.concat([header(MessageType.BindingRequest, 12), username("ab:cd").subarray(0, 8)])
    assert.strictEqual(parseStun(buf), "bad-length")
    assert.strictEqual(parseStun(header(MessageType.BindingRequest, 0xfffc)), "bad-length")
  })

  it("bad-length: bytes after the end the length gives (a STUN message fills its datagram)", () => {
    const valid = stun(MessageType.BindingRequest, username("ab:cd"))
    assert.strictEqual(parseStun(Buffer.concat([valid, Buffer.alloc(4)])), "bad-length")
    assert.strictEqual(parseStun(Buffer.concat([header(MessageType.BindingRequest, 0), Buffer.alloc(1)])), "bad-length")
  })

  it("an attribute header cut off by the end of the datagram is caught by the length check (bad-length)", () => {
    // Attribute offsets advance in steps of 4 inside a length that is a multiple of 4 and present in
    // full, so a cut attribute header always shows as a bad header length first.
    const cut = Buffer.concat([header(MessageType.BindingRequest, 4), Buffer.from([0x00, 0x06])])
    assert.strictEqual(parseStun(cut), "bad-length")
    const cutAfterOne = Buffer.concat([header(MessageType.BindingRequest, 8), u32(0x00250000), Buffer.from([0x00, 0x06])])
    assert.strictEqual(parseStun(cutAfterOne), "bad-length")
  })

  it("truncated-attribute: an attribute length past the end of the message", () => {
    const liar = Buffer.alloc(8)
    liar.writeUInt16BE(AttributeType.Username, 0)
    liar.writeUInt16BE(5, 2) // 5 bytes claimed, 4 present
    assert.strictEqual(parseStun(stun(MessageType.BindingRequest, liar)), "truncated-attribute")
    const huge = Buffer.alloc(8)
    huge.writeUInt16BE(0x8022, 0)
    huge.writeUInt16BE(0xffff, 2)
    assert.strictEqual(parseStun(stun(MessageType.BindingRequest, username("ab:cd"), huge)), "truncated-attribute")
  })

  it("truncated-attribute: an attribute past the end is caught even after MESSAGE-INTEGRITY and FINGERPRINT", () => {
    const huge = Buffer.alloc(4)
    huge.writeUInt16BE(0x8022, 0)
    huge.writeUInt16BE(0x0100, 2)
    const afterIntegrity = stun(
      MessageType.BindingRequest,
      attr(AttributeType.MessageIntegrity, Buffer.alloc(20)),
      huge
    )
    assert.strictEqual(parseStun(afterIntegrity), "truncated-attribute")
    const afterFingerprint = stun(MessageType.BindingRequest, attr(AttributeType.Fingerprint, Buffer.alloc(4)), huge)
    assert.strictEqual(parseStun(afterFingerprint), "truncated-attribute")
  })

  it("truncated-attribute: MESSAGE-INTEGRITY of a size other than 20", () => {
    for (const size of [0, 16, 19, 21, 32]) {
      const buf = stun(MessageType.BindingRequest, username("ab:cd"), attr(AttributeType.MessageIntegrity, Buffer.alloc(size)))
      assert.strictEqual(parseStun(buf), "truncated-attribute", `size ${size}`)
    }
  })

  it("truncated-attribute: FINGERPRINT of a size other than 4", () => {
    for (const size of [0, 2, 8]) {
      const buf = stun(MessageType.BindingRequest, username("ab:cd"), attr(AttributeType.Fingerprint, Buffer.alloc(size)))
      assert.strictEqual(parseStun(buf), "truncated-attribute", `size ${size}`)
    }
    // Also when it follows MESSAGE-INTEGRITY: FINGERPRINT is the one attribute read after it.
    const afterIntegrity = stun(
      MessageType.BindingRequest,
      attr(AttributeType.MessageIntegrity, Buffer.alloc(20)),
      attr(AttributeType.Fingerprint, Buffer.alloc(8))
    )
    assert.strictEqual(parseStun(afterIntegrity), "truncated-attribute")
  })

  it("bad-username: USERNAME that is not valid UTF-8", () => {
    for (const bytes of [[0xff, 0xfe], [0x61, 0x3a, 0xe2, 0x82], [0xc0, 0x80], [0xed, 0xa0, 0x80]]) {
      const buf = stun(MessageType.BindingRequest, attr(AttributeType.Username, Buffer.from(bytes)))
      assert.strictEqual(parseStun(buf), "bad-username", Buffer.from(bytes).toString("hex"))
    }
  })

  it("Go proxy bug 1: the 22-byte datagram starting 0x00 with an attribute length past the end yields a failure reason, never a throw", () => {
    // The Go proxy read attribute headers from what the datagram had left without checking, and a
    // datagram like these crashed it. Every declared length, and every attribute header, must be refused.
    assert.strictEqual(classifyPacket(0x00), "stun")
    for (const declared of [0, 2, 4, 8, 0xfffc, 0xffff]) {
      // 20-byte header, then the first two bytes of an attribute header (USERNAME) and nothing more.
      const datagram = Buffer.concat([header(MessageType.BindingRequest, declared), Buffer.from([0x00, 0x06])])
      assert.strictEqual(datagram.length, 22)
      assert.strictEqual(datagram[0], 0x00)
      let result: StunMessage | StunParseFailure | undefined
      assert.doesNotThrow(() => {
        result = parseStun(datagram)
      })
      assert.strictEqual(result, "bad-length", `declared length ${declared}`)
    }
    // The same, with a whole attribute header whose length runs 0xffff bytes past the end.
    const datagram = Buffer.concat([header(MessageType.BindingRequest, 4), Buffer.from([0x00, 0x06, 0xff, 0xff])])
    assert.strictEqual(parseStun(datagram), "truncated-attribute")
  })
})

describe("parseStun accepts", () => {
  it("a bare header: type, length, transaction id, nothing else", () => {
    const message = parsed(header(MessageType.BindingIndication, 0))
    assert.strictEqual(message.type, MessageType.BindingIndication)
    assert.strictEqual(message.length, 0)
    assert.deepStrictEqual(Buffer.from(message.transactionId), TID)
    assert.strictEqual(message.username, undefined)
    assert.strictEqual(message.integrityOffset, -1)
    assert.strictEqual(message.fingerprintOffset, -1)
  })

  it("USERNAME is found", () => {
    const message = parsed(stun(MessageType.BindingRequest, attr(AttributeType.Priority, u32(1)), username("srvufrag:cliufrag")))
    assert.strictEqual(message.type, MessageType.BindingRequest)
    assert.strictEqual(message.username, "srvufrag:cliufrag")
    assert.strictEqual(message.length, 8 + 4 + 20)
  })

  it("USERNAME in multi-byte UTF-8", () => {
    assert.strictEqual(parsed(stun(MessageType.BindingRequest, username("ü:€"))).username, "ü:€")
  })

  it("padding: values of every length up to 8 are followed by the right next attribute", () => {
    for (let length = 0; length <= 8; length++) {
      const text = "abcdefgh".slice(0, length)
      // Non-zero padding (RFC 5769 pads with spaces): the padding is never part of the value.
      const buf = stun(
        MessageType.BindingRequest,
        username(text, 0x20),
        attr(AttributeType.MessageIntegrity, Buffer.alloc(20)),
        attr(AttributeType.Fingerprint, Buffer.alloc(4))
      )
      const message = parsed(buf)
      const padded = Math.ceil(length / 4) * 4
      assert.strictEqual(message.username, text, `length ${length}`)
      assert.strictEqual(message.integrityOffset, HEADER_LENGTH + 4 + padded, `length ${length}`)
      assert.strictEqual(message.fingerprintOffset, HEADER_LENGTH + 4 + padded + 24, `length ${length}`)
    }
  })

  it("a username of length 5 is read as 5 bytes, its 3 padding bytes skipped", () => {
    const message = parsed(stun(MessageType.BindingRequest, username("ab:cd", 0x58), attr(AttributeType.Priority, u32(7))))
    assert.strictEqual(message.username, "ab:cd")
    assert.strictEqual(message.length, 12 + 8)
  })

  it("unknown attributes before MESSAGE-INTEGRITY are skipped", () => {
    const message = parsed(stun(
      MessageType.BindingRequest,
      attr(0x8022, Buffer.from("soft")),
      attr(0x7fff, Buffer.from([1, 2, 3])),
      username("a:b"),
      attr(AttributeType.MessageIntegrity, Buffer.alloc(20))
    ))
    assert.strictEqual(message.username, "a:b")
    assert.strictEqual(message.integrityOffset, HEADER_LENGTH + 8 + 8 + 8)
  })

  it("attributes after MESSAGE-INTEGRITY are ignored, except FINGERPRINT", () => {
    const buf = stun(
      MessageType.BindingRequest,
      username("first:one"),
      attr(AttributeType.MessageIntegrity, Buffer.alloc(20)),
      username("second:one"),
      attr(AttributeType.MessageIntegrity, Buffer.alloc(7)), // wrong size, yet ignored
      attr(AttributeType.Username, Buffer.from([0xff])), // invalid UTF-8, yet ignored
      attr(AttributeType.Fingerprint, Buffer.alloc(4))
    )
    const message = parsed(buf)
    assert.strictEqual(message.username, "first:one")
    assert.strictEqual(message.integrityOffset, HEADER_LENGTH + 4 + 12)
    assert.strictEqual(message.fingerprintOffset, buf.length - 8)
  })

  it("a USERNAME only after MESSAGE-INTEGRITY is not the message's username", () => {
    const message = parsed(stun(
      MessageType.BindingRequest,
      attr(AttributeType.MessageIntegrity, Buffer.alloc(20)),
      username("late:comer")
    ))
    assert.strictEqual(message.username, undefined)
    assert.strictEqual(message.integrityOffset, HEADER_LENGTH)
  })

  it("attributes after FINGERPRINT are ignored, MESSAGE-INTEGRITY included", () => {
    const message = parsed(stun(
      MessageType.BindingRequest,
      attr(AttributeType.Fingerprint, Buffer.alloc(4)),
      username("late:comer"),
      attr(AttributeType.MessageIntegrity, Buffer.alloc(20)),
      attr(AttributeType.Fingerprint, Buffer.alloc(3))
    ))
    assert.strictEqual(message.fingerprintOffset, HEADER_LENGTH)
    assert.strictEqual(message.integrityOffset, -1)
    assert.strictEqual(message.username, undefined)
  })

  it("the RFC 5769 sample request", () => {
    const message = parsed(RFC5769_REQUEST)
    assert.strictEqual(message.type, MessageType.BindingRequest)
    assert.strictEqual(message.length, 88)
    assert.strictEqual(message.username, "evtj:h6vY")
    assert.deepStrictEqual(Buffer.from(message.transactionId), TID)
    assert.strictEqual(message.integrityOffset, 76)
    assert.strictEqual(message.fingerprintOffset, 100)
  })
})

describe("verifyMessageIntegrity", () => {
  it("true with the right password (RFC 5769 request and response, string and byte keys)", () => {
    for (const buf of [RFC5769_REQUEST, RFC5769_RESPONSE]) {
      assert.isTrue(verifyMessageIntegrity(buf, parsed(buf), RFC5769_PASSWORD))
      assert.isTrue(verifyMessageIntegrity(buf, parsed(buf), Buffer.from(RFC5769_PASSWORD, "utf8")))
    }
  })

  it("false with a wrong password", () => {
    assert.isFalse(verifyMessageIntegrity(RFC5769_REQUEST, parsed(RFC5769_REQUEST), "VOkJxbRl1RmTxUk/WvJxBT"))
    assert.isFalse(verifyMessageIntegrity(RFC5769_REQUEST, parsed(RFC5769_REQUEST), ""))
  })

  it("false when the message has no MESSAGE-INTEGRITY", () => {
    const buf = stun(MessageType.BindingRequest, username("evtj:h6vY"))
    assert.isFalse(verifyMessageIntegrity(buf, parsed(buf), RFC5769_PASSWORD))
  })

  it("false when any one byte before the end of MESSAGE-INTEGRITY changes; FINGERPRINT is outside it", () => {
    const end = parsed(RFC5769_REQUEST).integrityOffset + 24
    for (let i = 0; i < RFC5769_REQUEST.length; i++) {
      const changed = Buffer.from(RFC5769_REQUEST)
      changed[i] = changed[i]! ^ 0x01
      const message = parseStun(changed)
      if (typeof message === "string") continue // the header checks caught it first (type bits, length, cookie)
      const verified = verifyMessageIntegrity(changed, message, RFC5769_PASSWORD)
      if (i < end) assert.isFalse(verified, `byte ${i} changed`)
      else assert.isTrue(verified, `byte ${i} (FINGERPRINT) changed`)
    }
  })

  it("a change in the padding bytes of USERNAME is caught (they are covered by the HMAC)", () => {
    const changed = Buffer.from(RFC5769_REQUEST)
    changed[73] = 0x00 // the last padding byte after "evtj:h6vY"
    const message = parsed(changed)
    assert.strictEqual(message.username, "evtj:h6vY")
    assert.isFalse(verifyMessageIntegrity(changed, message, RFC5769_PASSWORD))
  })
})

describe("verifyFingerprint", () => {
  it("crc32 is CRC-32/ISO-HDLC (check value of \"123456789\" is 0xCBF43926)", () => {
    assert.strictEqual(crc32(Buffer.from("123456789")), 0xcbf43926)
    assert.strictEqual(crc32(Buffer.from("xx123456789yy"), 2, 11), 0xcbf43926)
  })

  it("true for the RFC 5769 request and response", () => {
    assert.isTrue(verifyFingerprint(RFC5769_REQUEST, parsed(RFC5769_REQUEST)))
    assert.isTrue(verifyFingerprint(RFC5769_RESPONSE, parsed(RFC5769_RESPONSE)))
  })

  it("false when a byte before it or of it changes", () => {
    for (const i of [0, 1, 9, 24, 60, RFC5769_REQUEST.length - 1]) {
      const changed = Buffer.from(RFC5769_REQUEST)
      changed[i] = changed[i]! ^ 0x80
      const message = parseStun(changed)
      if (typeof message === "string") continue
      assert.isFalse(verifyFingerprint(changed, message), `byte ${i} changed`)
    }
  })

  it("false when absent", () => {
    const buf = stun(MessageType.BindingRequest, username("a:b"))
    assert.isFalse(verifyFingerprint(buf, parsed(buf)))
  })
})

describe("encodeBindingRequest / encodeBindingSuccess", () => {
  const tid = Buffer.from("0102030405060708090a0b0c", "hex")

  it("a binding request round-trips through parseStun and verifies", () => {
    const buf = encodeBindingRequest({
      username: "srvufrag:cliufrag",
      password: "0123456789abcdefghijkl",
      transactionId: tid,
      priority: 0x6e0001ff,
      iceControlling: 0x932ff9b151263b36n,
      useCandidate: true
    })
    const message = parsed(buf)
    assert.strictEqual(message.type, MessageType.BindingRequest)
    assert.strictEqual(message.length, buf.length - HEADER_LENGTH)
    assert.strictEqual(message.username, "srvufrag:cliufrag")
    assert.deepStrictEqual(Buffer.from(message.transactionId), tid)
    assert.strictEqual(message.fingerprintOffset, buf.length - 8)
    assert.strictEqual(message.integrityOffset, buf.length - 8 - 24)
    assert.isTrue(verifyMessageIntegrity(buf, message, "0123456789abcdefghijkl"))
    assert.isFalse(verifyMessageIntegrity(buf, message, "0123456789abcdefghijkL"))
    assert.isTrue(verifyFingerprint(buf, message))
  })

  it("without password or fingerprint there is neither attribute; a random transaction id each time", () => {
    const a = encodeBindingRequest({ username: "a:b", fingerprint: false })
    const b = encodeBindingRequest({ username: "a:b", fingerprint: false })
    const message = parsed(a)
    assert.strictEqual(message.integrityOffset, -1)
    assert.strictEqual(message.fingerprintOffset, -1)
    assert.strictEqual(a.length, HEADER_LENGTH + 8)
    assert.strictEqual(message.transactionId.length, 12)
    assert.notDeepEqual(Buffer.from(message.transactionId), Buffer.from(parsed(b).transactionId))
  })

  it("MESSAGE-INTEGRITY as the last attribute verifies too", () => {
    const buf = encodeBindingRequest({ username: "ab:cde", password: "pw", fingerprint: false, transactionId: tid })
    const message = parsed(buf)
    assert.strictEqual(message.integrityOffset, buf.length - 24)
    assert.isTrue(verifyMessageIntegrity(buf, message, "pw"))
  })

  it("a binding request is byte-exact against werift's STUN Message", () => {
    const cases = [
      { username: "srvufrag:cliufrag", password: "0123456789abcdefghijkl", priority: 1853817343, iceControlling: 0x932ff9b151263b36n, useCandidate: true },
      { username: "ab:cd", password: "pw" }, // padded username, no optional attributes
      { username: "evtj:h6vY", priority: 1 } // no password: FINGERPRINT only
    ] as const
    for (const options of cases) {
      const ours = encodeBindingRequest({ ...options, transactionId: tid })
      const theirs = new Message(methods.BINDING, classes.REQUEST, Buffer.from(tid))
      theirs.setAttribute("USERNAME", options.username)
      if ("priority" in options) theirs.setAttribute("PRIORITY", options.priority)
      if ("iceControlling" in options) theirs.setAttribute("ICE-CONTROLLING", options.iceControlling)
      if ("useCandidate" in options) theirs.setAttribute("USE-CANDIDATE", null)
      if ("password" in options) theirs.addMessageIntegrity(Buffer.from(options.password))
      theirs.addFingerprint()
      assert.strictEqual(ours.toString("hex"), theirs.bytes.toString("hex"), options.username)
      // werift parses ours and checks integrity and fingerprint itself.
      const back = parseMessage(ours, "password" in options ? Buffer.from(options.password) : undefined)
      assert.isDefined(back)
      assert.strictEqual(back!.getAttributeValue("USERNAME"), options.username)
    }
  })

  it("a binding success is byte-exact against werift's STUN Message", () => {
    for (const password of ["VOkJxbRl1RmTxUk/WvJxBt", undefined]) {
      const ours = encodeBindingSuccess({
        transactionId: tid,
        address: "192.0.2.1",
        port: 32853,
        ...(password === undefined ? {} : { password })
      })
      const theirs = new Message(methods.BINDING, classes.RESPONSE, Buffer.from(tid))
      theirs.setAttribute("XOR-MAPPED-ADDRESS", ["192.0.2.1", 32853])
      if (password !== undefined) theirs.addMessageIntegrity(Buffer.from(password))
      theirs.addFingerprint()
      assert.strictEqual(ours.toString("hex"), theirs.bytes.toString("hex"))
      const back = parseMessage(ours, password === undefined ? undefined : Buffer.from(password))
      assert.deepStrictEqual(back?.getAttributeValue("XOR-MAPPED-ADDRESS"), ["192.0.2.1", 32853])
    }
  })

  it("a binding success round-trips through parseStun, and its XOR-MAPPED-ADDRESS matches RFC 5769", () => {
    const buf = encodeBindingSuccess({ transactionId: TID, address: "192.0.2.1", port: 32853, password: RFC5769_PASSWORD })
    const message = parsed(buf)
    assert.strictEqual(message.type, MessageType.BindingSuccess)
    assert.deepStrictEqual(Buffer.from(message.transactionId), TID)
    assert.isTrue(verifyMessageIntegrity(buf, message, RFC5769_PASSWORD))
    assert.isTrue(verifyFingerprint(buf, message))
    // The attribute right after the header: same bytes as in the RFC's sample response.
    assert.strictEqual(buf.subarray(20, 32).toString("hex"), "00200008" + "0001a147e112a643")
  })
})

describe("parseStun on junk", () => {
  // mulberry32: small, seeded, good enough to spread mutations.
  const prng = (seed: number) => () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  it("never throws on thousands of random and mutated datagrams, and what it accepts is in bounds", () => {
    const random = prng(0x5eed)
    const int = (n: number) => Math.floor(random() * n)
    const seeds = [
      RFC5769_REQUEST,
      RFC5769_RESPONSE,
      encodeBindingRequest({ username: "ab:cd", password: "pw", priority: 5, useCandidate: true }),
      encodeBindingSuccess({ transactionId: TID, address: "10.0.0.1", port: 9, password: "pw" }),
      header(MessageType.BindingRequest, 0)
    ]
    const counts = new Map<string, number>()
    for (let i = 0; i < 5000; i++) {
      let buf: Buffer
      const mode = i % 5
      if (mode === 0) {
        // Pure noise, with a STUN-looking start half of the time.
        buf = Buffer.from(Array.from({ length: int(80) }, () => int(256)))
        if (buf.length >= 8 && random() < 0.5) {
          buf[0] = int(4)
          buf.writeUInt32BE(MAGIC_COOKIE, 4)
        }
      } else {
        buf = Buffer.from(seeds[int(seeds.length)]!)
        if (mode === 1) {
          for (let k = 1 + int(4); k > 0; k--) buf[int(buf.length)] = int(256)
        } else if (mode === 2) {
          buf = buf.subarray(0, int(buf.length + 1))
        } else if (mode === 3 && buf.length > HEADER_LENGTH) {
          // Lie in an attribute length field (attributes start at 20, 4-byte aligned).
          const at = HEADER_LENGTH + 4 * int((buf.length - HEADER_LENGTH) / 4)
          if (at + 4 <= buf.length) buf.writeUInt16BE(int(0x10000), at + 2)
        } else {
          // Random attributes appended, with the header length patched to cover them (or not).
          const extra = Buffer.from(Array.from({ length: 4 * int(6) }, () => int(256)))
          buf = Buffer.concat([buf, extra])
          if (random() < 0.7) buf.writeUInt16BE((buf.length - HEADER_LENGTH) & 0xffff, 2)
        }
      }
      let result: StunMessage | StunParseFailure | undefined
      try {
        result = parseStun(buf)
        if (typeof result !== "string") {
          verifyMessageIntegrity(buf, result, "pw")
          verifyFingerprint(buf, result)
        }
      } catch (error) {
        assert.fail(`threw on ${buf.toString("hex")}: ${String(error)}`)
      }
      if (typeof result === "string") {
        assert.include(FAILURES, result)
        counts.set(result, (counts.get(result) ?? 0) + 1)
      } else {
        counts.set("ok", (counts.get("ok") ?? 0) + 1)
        assert.strictEqual(result!.length, buf.length - HEADER_LENGTH)
        if (result!.integrityOffset >= 0) assert.isAtMost(result!.integrityOffset + 24, buf.length)
        if (result!.fingerprintOffset >= 0) assert.isAtMost(result!.fingerprintOffset + 8, buf.length)
      }
    }
    // The mutations reach every reason and some survivors, or the loop would prove little.
    for (const reason of [...FAILURES, "ok"]) assert.isAbove(counts.get(reason) ?? 0, 0, reason)
  })
})

describe("repeated attributes", () => {
  it("only the first USERNAME counts (RFC 8489 section 14)", () => {
    const first = encodeBindingRequest({ username: "srv1:cli1", fingerprint: false })
    // Append a second USERNAME after the first (both before any MESSAGE-INTEGRITY).
    const extra = Buffer.alloc(4 + 12)
    extra.writeUInt16BE(0x0006, 0)
    extra.writeUInt16BE(9, 2)
    extra.write("evil:cli1", 4)
    const message = Buffer.concat([first, extra])
    message.writeUInt16BE(message.length - 20, 2)
    const parsed = parseStun(message)
    assert(typeof parsed !== "string")
    assert.strictEqual(parsed.username, "srv1:cli1")
  })
})
