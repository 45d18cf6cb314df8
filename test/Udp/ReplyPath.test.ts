// Replies take the way the client's packets came: from the local address the client sent to (a
// browser drops a reply from any other), and each STUN response to the address that sent its request.
// Real sockets on loopback addresses (Linux answers the whole of 127.0.0.0/8).
import { assert, describe } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import { encodeBindingSuccess } from "../../src/Stun.js"
import { eventually, settledUdpHandles } from "../support/eventually.js"
import { binding, makeRecord, PAIR, SERVER_PWD, startRelay, wildcardPort } from "../support/relay.js"
import { udpPeer } from "../support/udpPeer.js"
import { live } from "../support/live.js"

const rtp = (tag: string) => Buffer.concat([Buffer.from([0x80, 96, 0, 1]), Buffer.from(tag)])

/** The transaction id of a STUN message. */
const transactionId = (msg: Uint8Array) => Buffer.from(msg.subarray(8, 20)).toString("hex")

describe("the way back to a client", () => {
  live("on a wildcard port every reply leaves from the local address the client sent to", () =>
    Effect.gen(function*() {
      const { port, relay, udp } = yield* startRelay({}, undefined, wildcardPort(Effect.succeed(["127.0.0.1", "127.0.0.2"])))
      assert.sameMembers([...yield* udp.boundAddresses], ["127.0.0.1", "127.0.0.2"])
      const origin = yield* udpPeer({ echo: true })
      yield* relay.open(makeRecord(origin))

      // The client sends from 127.0.0.1 to the candidate 127.0.0.2: a socket bound to the wildcard
      // would answer from 127.0.0.1, the kernel's choice toward the client.
      const client = yield* udpPeer()
      client.send(binding(PAIR, SERVER_PWD), port, "127.0.0.2")
      client.send(rtp("media"), port, "127.0.0.2")
      yield* eventually(() => assert.strictEqual(client.received.length, 2))
      for (const reply of client.received) {
        assert.strictEqual(reply.address, "127.0.0.2")
        assert.strictEqual(reply.port, port)
      }

      // The same client moves to the other candidate (ICE picked another pair): replies follow.
      client.send(binding(PAIR, SERVER_PWD), port, "127.0.0.1")
      client.send(rtp("media again"), port, "127.0.0.1")
      yield* eventually(() => assert.strictEqual(client.received.length, 4))
      assert.deepStrictEqual(client.received.slice(2).map((d) => d.address), ["127.0.0.1", "127.0.0.1"])
    }))

  live("on `::` both families are bound per address: an IPv6 client's replies come from the IPv6 address it reached", () =>
    Effect.gen(function*() {
      const { port, relay, udp } = yield* startRelay({}, undefined, wildcardPort(Effect.succeed(["127.0.0.1", "::1"]), "::"))
      assert.sameMembers([...yield* udp.boundAddresses], ["127.0.0.1", "::1"])
      const origin = yield* udpPeer({ echo: true })
      yield* relay.open(makeRecord(origin))
      const client = yield* udpPeer({ host: "::1" })
      client.send(binding(PAIR, SERVER_PWD), port, "::1")
      client.send(rtp("media"), port, "::1")
      yield* eventually(() => assert.strictEqual(client.received.length, 2))
      for (const reply of client.received) assert.strictEqual(reply.address, "::1")
      assert.strictEqual((yield* relay.sessions)[0]?.client, `[::1]:${client.port}`)
    }))

  live("two addresses of one session check at once: each binding response reaches the address that sent its request", () =>
    Effect.gen(function*() {
      const { port, relay } = yield* startRelay()
      const origin = yield* udpPeer()
      yield* relay.open(makeRecord(origin))
      const first = yield* udpPeer({ host: "127.0.0.1" })
      const second = yield* udpPeer({ host: "127.0.0.3" })

      const fromFirst = binding(PAIR, SERVER_PWD)
      const fromSecond = binding(PAIR, SERVER_PWD)
      first.send(fromFirst, port)
      second.send(fromSecond, port)
      yield* eventually(() => assert.strictEqual(origin.received.length, 2))
      // The origin (ICE-lite) answers both, in the reverse order; each request nominated its pair,
      // so the session's way back is the second client's address whichever came last.
      const answer = (request: Buffer) =>
        encodeBindingSuccess({ transactionId: request.subarray(8, 20), address: "127.0.0.1", port: 1, password: SERVER_PWD })
      origin.reply(answer(fromSecond))
      origin.reply(answer(fromFirst))
      yield* eventually(() => {
        assert.deepStrictEqual(first.received.map((d) => transactionId(d.msg)), [transactionId(fromFirst)])
        assert.deepStrictEqual(second.received.map((d) => transactionId(d.msg)), [transactionId(fromSecond)])
      })

      // A response to no recent request (a duplicate) and media take the session's way back.
      origin.reply(answer(fromFirst))
      origin.reply(rtp("to the client"))
      yield* eventually(() =>
        assert.sameMembers([first.received.length, second.received.length], [1, 3], "both to the session's way back")
      )
      assert.strictEqual((yield* relay.stats).drops["origin-before-client"], 0)
    }))

  live("a wildcard port follows the machine's addresses: a new one is bound, a gone one closed and forgotten", () =>
    Effect.gen(function*() {
      const handlesBefore = yield* settledUdpHandles
      const addresses = yield* Ref.make<ReadonlyArray<string>>(["127.0.0.1"])
      const { port, relay, udp } = yield* startRelay({}, undefined, wildcardPort(Ref.get(addresses)))
      const origin = yield* udpPeer({ echo: true })
      yield* relay.open(makeRecord(origin))
      const client = yield* udpPeer()

      yield* Ref.set(addresses, ["127.0.0.1", "127.0.0.4"])
      yield* eventually(Effect.map(udp.boundAddresses, (bound) => assert.sameMembers([...bound], ["127.0.0.1", "127.0.0.4"])), 3000)
      client.send(binding(PAIR, SERVER_PWD), port, "127.0.0.4")
      yield* eventually(() => assert.strictEqual(client.received.length, 1))
      assert.strictEqual(client.received[0]!.address, "127.0.0.4")

      // The address goes: its socket closes, and the session no longer knows the client by it.
      yield* Ref.set(addresses, ["127.0.0.1"])
      yield* eventually(Effect.map(udp.boundAddresses, (bound) => assert.deepStrictEqual([...bound], ["127.0.0.1"])), 3000)
      const [view] = yield* relay.sessions
      assert.strictEqual(view?.client, undefined)
      assert.strictEqual((yield* relay.stats).clientAddresses, 0)
      // Media from the origin now has no way back: dropped and counted, never sent on a closed socket.
      origin.send(rtp("nowhere"), origin.received[0]!.port)
      yield* eventually(Effect.map(relay.stats, (stats) => assert.strictEqual(stats.drops["origin-before-client"], 1)))

      // The client checks again through the address that is left.
      client.send(binding(PAIR, SERVER_PWD), port, "127.0.0.1")
      yield* eventually(() => assert.strictEqual(client.received.length, 2))
      assert.strictEqual(client.received[1]!.address, "127.0.0.1")
      // Shared port (1) + origin socket + the two test peers.
      assert.strictEqual(yield* settledUdpHandles, handlesBefore + 4)
    }), 15_000)
})
