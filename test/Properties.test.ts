// Property-based tests (fast-check through @effect/vitest's it.prop): random and mutated input never
// throws in the pure protocol code, and valid input round-trips.
import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Origin from "../src/Domain/Origin.ts"
import * as StreamUrl from "../src/Domain/StreamUrl.ts"
import * as Sdp from "../src/Sdp.ts"
import { encodeBindingRequest, parseStun, resign, verifyFingerprint, verifyMessageIntegrity } from "../src/Stun.ts"

const iceChars = FastCheck.stringMatching(/^[A-Za-z0-9+/]{4,32}$/)
const runs = { fastCheck: { numRuns: 500 } }

describe("STUN", () => {
  it.prop(
    "resign: any check signed again for other credentials is the check made with them, byte for byte",
    [iceChars, iceChars, iceChars, iceChars, iceChars, iceChars, FastCheck.boolean(), FastCheck.uint8Array({ minLength: 12, maxLength: 12 })],
    ([server, client, pwd, newServer, newClient, newPwd, useCandidate, transactionId]) => {
      const check = (username: string, password: string) =>
        encodeBindingRequest({ username, password, transactionId, priority: 1, iceControlling: 7n, useCandidate })
      const original = check(`${server}:${client}`, pwd)
      const parsed = parseStun(original)
      if (typeof parsed === "string") return assert.fail(parsed)
      const out = resign(original, parsed, { username: Buffer.from(`${newServer}:${newClient}`), key: newPwd })
      assert.strictEqual(out.toString("hex"), check(`${newServer}:${newClient}`, newPwd).toString("hex"))
    },
    runs
  )

  it.prop("resign: any well-formed message comes out parsed, verifying, with the new USERNAME where it had one", [
    FastCheck.array(
      FastCheck.tuple(
        // USERNAME, MESSAGE-INTEGRITY, FINGERPRINT, MESSAGE-INTEGRITY-SHA256 and PRIORITY often, anything else too.
        FastCheck.oneof(FastCheck.constantFrom(0x0006, 0x0008, 0x8028, 0x001c, 0x0024), FastCheck.integer({ min: 0, max: 0xffff })),
        FastCheck.uint8Array({ maxLength: 40 })
      ),
      { maxLength: 8 }
    )
  ], ([attributes]) => {
    const body = Buffer.concat(attributes.map(([type, value]) => {
      // MESSAGE-INTEGRITY and FINGERPRINT only with their own lengths, as parseStun requires.
      const v = type === 0x0008 ? Buffer.alloc(20, 1) : type === 0x8028 ? Buffer.alloc(4, 2) : Buffer.from(value)
      const a = Buffer.alloc(4 + ((v.length + 3) & ~3))
      a.writeUInt16BE(type, 0)
      a.writeUInt16BE(v.length, 2)
      v.copy(a, 4)
      return a
    }))
    const buf = Buffer.concat([Buffer.from([0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42]), Buffer.alloc(12, 9), body])
    buf.writeUInt16BE(body.length, 2)
    const message = parseStun(buf)
    if (typeof message === "string") return // e.g. a USERNAME that is not UTF-8
    const out = resign(buf, message, { username: Buffer.from("new:pair"), key: "key" })
    const again = parseStun(out)
    if (typeof again === "string") return assert.fail(again)
    assert.strictEqual(out.subarray(8, 20).toString("hex"), buf.subarray(8, 20).toString("hex"))
    assert.strictEqual(again.username, message.username === undefined ? undefined : "new:pair")
    assert.strictEqual(again.integrityOffset >= 0, message.integrityOffset >= 0)
    assert.strictEqual(again.fingerprintOffset >= 0, message.fingerprintOffset >= 0)
    if (message.integrityOffset >= 0) assert.isTrue(verifyMessageIntegrity(out, again, "key"))
    if (message.fingerprintOffset >= 0) assert.isTrue(verifyFingerprint(out, again))
  }, runs)

  it.prop("parseStun never throws on arbitrary bytes", [FastCheck.uint8Array({ maxLength: 600 })], ([bytes]) => {
    const parsed = parseStun(bytes)
    if (typeof parsed !== "string") {
      verifyMessageIntegrity(bytes, parsed, "key")
      verifyFingerprint(bytes, parsed)
    }
  }, runs)

  it.prop(
    "a mutated binding request is rejected or parsed, never thrown, and never verifies when its signed part changed",
    [iceChars, iceChars, iceChars, FastCheck.nat(), FastCheck.integer({ min: 0, max: 255 })],
    ([server, client, pwd, position, value]) => {
      const message = encodeBindingRequest({ username: `${server}:${client}`, password: pwd })
      const index = position % message.length
      const mutated = Buffer.from(message)
      mutated[index] = value
      const parsed = parseStun(mutated)
      if (typeof parsed === "string" || value === message[index]) return
      // A changed byte before MESSAGE-INTEGRITY's value must break the integrity check.
      if (parsed.integrityOffset >= 0 && index < parsed.integrityOffset + 24 && index !== 2 && index !== 3) {
        assert.isFalse(verifyMessageIntegrity(mutated, parsed, pwd))
      }
    },
    runs
  )

  it.prop("binding requests round-trip: USERNAME, integrity and fingerprint", [iceChars, iceChars, iceChars], ([server, client, pwd]) => {
    const message = encodeBindingRequest({ username: `${server}:${client}`, password: pwd, priority: 1, useCandidate: true })
    const parsed = parseStun(message)
    assert(typeof parsed !== "string")
    assert.strictEqual(parsed.username, `${server}:${client}`)
    assert.isTrue(verifyMessageIntegrity(message, parsed, pwd))
    assert.isTrue(verifyFingerprint(message, parsed))
  }, runs)
})

const sdpLine = FastCheck.oneof(
  FastCheck.constantFrom("v=0", "m=video 9 UDP/TLS/RTP/SAVPF 96", "m=audio 0 RTP/AVP 0", "c=IN IP4 10.1.2.3", "a=end-of-candidates"),
  FastCheck.tuple(FastCheck.ipV4(), FastCheck.integer({ min: 0, max: 70000 }), FastCheck.constantFrom("udp", "tcp", "UDP"))
    .map(([ip, port, transport]) => `a=candidate:1 1 ${transport} 2130706431 ${ip} ${port} typ host generation 0`),
  FastCheck.string({ maxLength: 40 })
)
const sdpText = FastCheck.tuple(FastCheck.array(sdpLine, { maxLength: 30 }), FastCheck.constantFrom("\r\n", "\n"))
  .map(([lines, eol]) => lines.join(eol) + eol)

describe("SDP", () => {
  it.prop("rewriting and stripping never throw on arbitrary text", [FastCheck.string({ maxLength: 400 })], ([text]) => {
    Sdp.validateOffer(text)
    Sdp.stripCandidates(text)
    Sdp.rewriteAnswer(text, { ip: "203.0.113.9", port: 18000 })
    Sdp.candidates(text)
  }, runs)

  it.prop("after rewriting, every candidate is the proxy's and the other lines are unchanged", [sdpText], ([sdp]) => {
    const rewritten = Sdp.rewriteAnswer(sdp, { ip: "203.0.113.9", port: 18000 })
    for (const candidate of Sdp.candidates(rewritten)) {
      assert.strictEqual(candidate.address, "203.0.113.9")
      assert.strictEqual(candidate.port, 18000)
      assert.strictEqual(candidate.transport, "udp")
    }
    const unchanged = (text: string) =>
      text.split(/\r?\n/).filter((line) => !line.startsWith("a=candidate:") && !line.startsWith("c=IN "))
    assert.deepStrictEqual(unchanged(rewritten), unchanged(sdp))
  }, runs)

  it.prop("stripCandidates removes every candidate and is idempotent", [sdpText], ([sdp]) => {
    const stripped = Sdp.stripCandidates(sdp)
    assert.notMatch(stripped, /^a=candidate:|^a=end-of-candidates$/m)
    assert.strictEqual(Sdp.stripCandidates(stripped), stripped)
  }, runs)
})

const name = FastCheck.stringMatching(/^[A-Za-z0-9_-]{1,20}$/)

describe("stream URLs", () => {
  it.prop("never throw on arbitrary query and host", [FastCheck.string(), FastCheck.string(), FastCheck.option(FastCheck.string())], ([app, stream, host]) => {
    StreamUrl.fromRequest(new URLSearchParams({ app, stream }), host ?? undefined)
    StreamUrl.fromWebrtcUrl(`webrtc://${host ?? ""}/${app}/${stream}`)
  }, runs)

  it.prop("valid names round-trip, and the Host port never changes the key", [name, name, FastCheck.domain(), FastCheck.integer({ min: 1, max: 65535 })], ([app, stream, domain, port]) => {
    const withoutPort = StreamUrl.fromRequest(new URLSearchParams({ app, stream }), domain)
    const withPort = StreamUrl.fromRequest(new URLSearchParams({ app, stream }), `${domain}:${port}`)
    assert(Either.isRight(withoutPort) && Either.isRight(withPort))
    assert.strictEqual(withoutPort.right.key, withPort.right.key)
    assert.strictEqual(withoutPort.right.app, app)
    assert.strictEqual(withoutPort.right.stream, stream)
  }, runs)
})

describe("origins", () => {
  it.prop("listen strings never throw; valid forms give back their port", [FastCheck.string(), FastCheck.integer({ min: 1, max: 65535 }), FastCheck.constantFrom("", "udp://", "tcp://", "udp:", "udp://0.0.0.0:", "[::]:", "0.0.0.0:")], ([junk, port, prefix]) => {
    Origin.parseListen(junk)
    const parsed = Origin.parseListen(`${prefix}${port}`)
    assert(Either.isRight(parsed))
    assert.strictEqual(parsed.right.port, port)
  }, runs)

  it.prop("a registration body never throws, whatever the JSON", [FastCheck.jsonValue()], ([body]) => {
    Origin.fromRegistration(body)
  }, runs)

  it.prop("mutated SRS heartbeats are accepted or refused with a reason", [
    FastCheck.record({
      ip: FastCheck.oneof(FastCheck.ipV4(), FastCheck.string(), FastCheck.constant(undefined)),
      server: FastCheck.oneof(name, FastCheck.constant("")),
      service: name,
      pid: FastCheck.oneof(FastCheck.nat().map(String), FastCheck.nat()),
      rtmp: FastCheck.array(FastCheck.oneof(FastCheck.constant("1935"), FastCheck.string()), { maxLength: 3 }),
      api: FastCheck.array(FastCheck.oneof(FastCheck.constant("1985"), FastCheck.string()), { maxLength: 2 }),
      rtc: FastCheck.array(FastCheck.oneof(FastCheck.constant("udp://8000"), FastCheck.string()), { maxLength: 2 })
    })
  ], ([body]) => {
    const result = Origin.fromRegistration(body)
    if (Either.isLeft(result)) assert.isAbove(result.left.length, 0)
    else assert.strictEqual(result.right.id, `${body.server}-${body.service}-${body.pid}`)
  }, runs)
})
