// The relay translating STUN of a session whose ICE restart the proxy carried out, over real UDP
// sockets: the client's checks with the new pair reach the origin with its original credentials, the
// origin's responses reach the client signed with the new server password, a full-ICE origin's
// checks reach the client with its new credentials, and DTLS/RTP pass byte for byte. A check with
// the new pair that does not verify is dropped, even from a known address.
import { assert, describe } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { type SessionIce, UfragPair } from "../../src/Domain/Session.ts"
import {
  encodeBindingRequest,
  encodeBindingSuccess,
  parseStun,
  type StunMessage,
  verifyFingerprint,
  verifyMessageIntegrity
} from "../../src/Stun.ts"
import { eventually } from "../support/eventually.ts"
import { live } from "../support/live.ts"
import { binding, makeRecord, PAIR, SERVER_PWD, startRelay } from "../support/relay.ts"
import { udpPeer } from "../support/udpPeer.ts"

const CLIENT_OLD_PWD = "clientOldPassword0123456"
const NEW_PAIR = UfragPair.make("srvMint:cliNew")
const MINTED_PWD = "proxyMintedPassword01234"
const CLIENT_NEW_PWD = "clientNewPassword0123456"

const parsed = (buf: Buffer): StunMessage => {
  const message = parseStun(buf)
  if (typeof message === "string") throw new Error(`not STUN: ${message}`)
  return message
}
const signedWith = (buf: Buffer, key: string) =>
  verifyMessageIntegrity(buf, parsed(buf), key) && verifyFingerprint(buf, parsed(buf))

const restartedIce: SessionIce = {
  clientPwd: CLIENT_NEW_PWD,
  etag: "\"after\"",
  lite: true,
  origin: { ufragPair: PAIR, serverPwd: SERVER_PWD, clientPwd: CLIENT_OLD_PWD }
}

describe("relay: ICE restart carried out by the proxy", () => {
  live("checks, responses and the origin's own checks are re-signed for each side; media passes untouched", () =>
    Effect.gen(function*() {
      const { port, relay } = yield* startRelay()
      const origin = yield* udpPeer()
      const client = yield* udpPeer()
      const moved = yield* udpPeer({ host: "127.0.0.2" })
      const record = makeRecord(origin, {
        ice: { clientPwd: CLIENT_OLD_PWD, etag: "\"before\"", lite: true }
      })
      yield* relay.open(record)
      const check = binding(PAIR, SERVER_PWD)
      client.send(check, port)
      yield* eventually(() => assert.strictEqual(origin.received.length, 1))
      assert.strictEqual(origin.received[0]!.msg.toString("hex"), check.toString("hex"), "no translation before a restart")

      assert.isTrue(yield* relay.rekey(record.id, { ufragPair: NEW_PAIR, serverPwd: MINTED_PWD, ice: restartedIce }))
      // The old pair still passes as it is until the client uses the new one.
      client.send(check, port)
      yield* eventually(() => assert.strictEqual(origin.received.length, 2))
      assert.strictEqual(origin.received[1]!.msg.toString("hex"), check.toString("hex"))

      // The client moves and checks with its new credentials: the origin gets its original ones.
      const newCheck = binding(NEW_PAIR, MINTED_PWD)
      moved.send(newCheck, port, "127.0.0.1")
      yield* eventually(() => assert.strictEqual(origin.received.length, 3))
      const atOrigin = origin.received[2]!.msg
      assert.strictEqual(parsed(atOrigin).username, PAIR)
      assert.isTrue(signedWith(atOrigin, SERVER_PWD))
      assert.strictEqual(atOrigin.subarray(8, 20).toString("hex"), newCheck.subarray(8, 20).toString("hex"))
      assert.deepStrictEqual((yield* relay.sessions)[0]?.ufragPairs, [NEW_PAIR], "the old pair retired")

      // The origin answers with its password; the moved client gets it signed with the minted one.
      origin.reply(encodeBindingSuccess({
        transactionId: atOrigin.subarray(8, 20),
        address: "127.0.0.1",
        port: 1,
        password: SERVER_PWD
      }))
      yield* eventually(() => assert.strictEqual(moved.received.length, 1))
      const response = moved.received[0]!.msg
      assert.isTrue(signedWith(response, MINTED_PWD))
      assert.strictEqual(response.subarray(8, 20).toString("hex"), newCheck.subarray(8, 20).toString("hex"))

      // DTLS and RTP go both ways byte for byte, from the new address.
      const dtls = Buffer.from([22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0])
      moved.send(dtls, port, "127.0.0.1")
      yield* eventually(() => assert.strictEqual(origin.received.length, 4))
      assert.strictEqual(origin.received[3]!.msg.toString("hex"), dtls.toString("hex"))
      const rtp = Buffer.from([0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0xaa])
      origin.reply(rtp)
      yield* eventually(() => assert.strictEqual(moved.received.length, 2))
      assert.strictEqual(moved.received[1]!.msg.toString("hex"), rtp.toString("hex"))

      // A full-ICE origin's own check reaches the client with the client's new pair and password, and
      // the client's answer goes back signed with the password the origin knows.
      origin.reply(encodeBindingRequest({ username: "cliUfrag:srvUfrag", password: CLIENT_OLD_PWD, priority: 1 }))
      yield* eventually(() => assert.strictEqual(moved.received.length, 3))
      const originCheck = moved.received[2]!.msg
      assert.strictEqual(parsed(originCheck).username, "cliNew:srvMint")
      assert.isTrue(signedWith(originCheck, CLIENT_NEW_PWD))
      moved.send(
        encodeBindingSuccess({ transactionId: originCheck.subarray(8, 20), address: "127.0.0.1", port: 2, password: CLIENT_NEW_PWD }),
        port,
        "127.0.0.1"
      )
      yield* eventually(() => assert.strictEqual(origin.received.length, 5))
      assert.isTrue(signedWith(origin.received[4]!.msg, CLIENT_OLD_PWD))

      // A check with the new pair that does not verify is dropped, even from the bound address: the
      // origin can no longer judge it, since the proxy would sign it.
      moved.send(binding(NEW_PAIR, "someoneElsesPassword0123"), port, "127.0.0.1")
      yield* eventually(Effect.map(relay.stats, (stats) => assert.strictEqual(stats.drops["bad-integrity"], 1)))
      assert.strictEqual(origin.received.length, 5)
    }))

  live("a session adopted from the store after a proxy-made restart translates from its first check", () =>
    Effect.gen(function*() {
      const { port, relay, store } = yield* startRelay()
      const origin = yield* udpPeer()
      const client = yield* udpPeer()
      // Signaled (and restarted) through another proxy: only the store knows it.
      yield* store.put(makeRecord(origin, { ufragPair: NEW_PAIR, serverPwd: MINTED_PWD, ice: restartedIce }))
      const check = binding(NEW_PAIR, MINTED_PWD)
      client.send(check, port)
      yield* eventually(Effect.map(relay.stats, (stats) => assert.strictEqual(stats.sessions, 1)))
      client.send(check, port)
      yield* eventually(() => assert.isAtLeast(origin.received.length, 1))
      const atOrigin = origin.received[0]!.msg
      assert.strictEqual(parsed(atOrigin).username, PAIR)
      assert.isTrue(signedWith(atOrigin, SERVER_PWD))
    }))
})
