// Hostile input and every way a session can end, on real sockets: junk never disturbs live sessions,
// every drop is counted by reason, and thousands of sessions leave nothing behind.
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Scope from "effect/Scope"
import * as Exit from "effect/Exit"
import { randomBytes } from "node:crypto"
import { encodeBindingRequest } from "../src/Stun.js"
import { eventually, settledUdpHandles } from "./support/eventually.js"
import { binding, makeRecord, SERVER_PWD, startRelay } from "./support/relay.js"
import { udpPeer } from "./support/udpPeer.js"
import { testWorkers, withWorkers } from "./support/workers.js"

const quiet = <A, E, R>(effect: Effect.Effect<A, E, R>) => Logger.withMinimumLogLevel(effect, LogLevel.Error)

/** Deterministic pseudo-random numbers, so that a failing fuzz run can be replayed. */
const prng = (seed: number) => () => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff
  return seed / 0x7fffffff
}

/** Junk of every kind the demultiplexer must survive: random, truncated and mutated STUN, DTLS/RTP-like. */
const junkDatagram = (random: () => number, valid: Buffer): Buffer => {
  const kind = Math.floor(random() * 6)
  switch (kind) {
    case 0:
      return randomBytes(Math.floor(random() * 1300))
    case 1:
      return valid.subarray(0, Math.floor(random() * valid.length))
    case 2: {
      const mutated = Buffer.from(valid)
      for (let i = 0; i < 3; i++) mutated[Math.floor(random() * mutated.length)] = Math.floor(random() * 256)
      return mutated
    }
    case 3: {
      // A header that promises a huge attribute.
      const lying = Buffer.from(valid)
      lying.writeUInt16BE(0xfffc, 2)
      lying.writeUInt16BE(0xffff, 22)
      return lying
    }
    case 4:
      return Buffer.concat([Buffer.from([20 + Math.floor(random() * 44)]), randomBytes(Math.floor(random() * 200))])
    default:
      return Buffer.concat([Buffer.from([128 + Math.floor(random() * 64)]), randomBytes(Math.floor(random() * 1200))])
  }
}

describe(withWorkers("reliability"), () => {
  it.scopedLive("a UDP fuzz run leaves live sessions untouched and counts every drop", () =>
    quiet(Effect.gen(function*() {
      const { ports, relay } = yield* startRelay({ udpBufferBytes: 8 * 1024 * 1024 })
      const origins = [yield* udpPeer({ echo: true }), yield* udpPeer({ echo: true }), yield* udpPeer({ echo: true })]
      const clients = [yield* udpPeer(), yield* udpPeer(), yield* udpPeer()]
      const sessionPorts: Array<number> = []
      for (let i = 0; i < 3; i++) {
        const pair = `srv${i}:cli${i}`
        sessionPorts.push((yield* relay.open(makeRecord(origins[i]!, { ufragPair: pair }))).port)
        clients[i]!.send(binding(pair, SERVER_PWD), sessionPorts[i]!)
      }
      yield* eventually(() => clients.forEach((client) => assert.lengthOf(client.received, 1)))

      const attackers = [yield* udpPeer(), yield* udpPeer()]
      const random = prng(42)
      const valid = encodeBindingRequest({ username: "srv0:cli0", password: "wrong-password-123456" })
      // Sender and proxy share this event loop, and libuv reads at most 32 datagrams per socket per loop
      // turn: bursts stay under that, or the kernel drops what the loop has no turn to read.
      const ROUNDS = 2000
      const JUNK_PER_ROUND = 25
      for (let round = 0; round < ROUNDS; round++) {
        for (let j = 0; j < JUNK_PER_ROUND; j++) {
          attackers[j % 2]!.send(junkDatagram(random, valid), ports[j % ports.length]!)
        }
        // Between bursts every live session sends one media packet; it must come back.
        clients.forEach((client, i) => client.send(Buffer.from([0x80, 96, round >> 8, round & 0xff, i]), sessionPorts[i]!))
        yield* Effect.sleep(Duration.millis(1))
      }
      yield* eventually(() => clients.forEach((client) => assert.lengthOf(client.received, 1 + ROUNDS)), 10_000).pipe(
        Effect.tapErrorCause(() =>
          Effect.map(relay.sessions, (sessions) =>
            console.error("fuzz: client->proxy->origin packets per session",
              sessions.map((s) => [s.packetsFromClient, s.packetsFromOrigin]))
          )
        )
      )
      clients.forEach((client, i) => {
        const rounds = client.received.slice(1).map((d) => (d.msg[2]! << 8) | d.msg[3]!)
        assert.deepStrictEqual(rounds, Array.from({ length: ROUNDS }, (_, r) => r), `session ${i} lost or reordered media`)
        assert.isTrue(client.received.slice(1).every((d) => d.msg[4] === i), `session ${i} got another session's media`)
      })
      assert.isEmpty(attackers[0]!.received.concat(attackers[1]!.received), "an attacker received something")

      const stats = yield* relay.stats
      const drops = Object.values(stats.drops).reduce((a, b) => a + b, 0)
      // Loopback may drop a little under a burst, but what arrives is counted, nothing is relayed.
      assert.isAtLeast(drops, ROUNDS * JUNK_PER_ROUND * 0.9)
      assert.isAtMost(drops, ROUNDS * JUNK_PER_ROUND)
      assert.strictEqual(stats.sessions, 3)
      for (const session of yield* relay.sessions) assert.strictEqual(session.packetsFromClient, 1 + ROUNDS)
    })), { timeout: 30_000 })

  it.scopedLive("sessions ended every way (DELETE, idle, origin death, shutdown) leave no socket, entry or record", () =>
    quiet(Effect.gen(function*() {
      const before = yield* settledUdpHandles
      const PER_WAY = 300
      const relayScope = yield* Scope.make()
      // Opening 300 sessions on workers takes a message round trip each: the first must not idle out meanwhile.
      const idleTimeout = Duration.millis(testWorkers === 1 ? 400 : 3000)
      const idleWait = Duration.toMillis(idleTimeout) + 5000
      const { relay, store } = yield* startRelay({ relayIdleTimeout: idleTimeout }, relayScope)
      const origin = yield* udpPeer({ echo: true })
      const client = yield* udpPeer()
      // A client address belongs to one session at a time, so each deleted session gets its own client.
      const clients = yield* Effect.forEach(Array.from({ length: PER_WAY }), () => udpPeer())
      const open = (way: string, n: number) => {
        const record = makeRecord(origin, { ufragPair: `${way}${n}:cli${n}` })
        return Effect.map(relay.open(record), ({ port }) => ({ ...record, port }))
      }

      // DELETE: ended at once, with traffic having flowed.
      const deleted = yield* Effect.forEach(Array.from({ length: PER_WAY }, (_, n) => n), (n) => open("del", n))
      deleted.forEach((record, n) => clients[n]!.send(binding(record.ufragPair, SERVER_PWD), record.port))
      // 300 checks at once over loopback on a busy machine may lose one: a client without an answer
      // checks again (as an ICE agent would) every half second.
      let lastSent = Date.now()
      yield* eventually(() => {
        if (Date.now() - lastSent > 500) {
          lastSent = Date.now()
          deleted.forEach((record, n) => {
            if (clients[n]!.received.length === 0) clients[n]!.send(binding(record.ufragPair, SERVER_PWD), record.port)
          })
        }
        clients.forEach((c) => assert.isAtLeast(c.received.length, 1))
      }, 5000)
      yield* Effect.forEach(deleted, (record) => relay.close(record.id, "deleted"), { discard: true, concurrency: 16 })

      // Idle: never used by a client.
      yield* Effect.forEach(Array.from({ length: PER_WAY }, (_, n) => n), (n) => open("idle", n), { discard: true })
      yield* eventually(Effect.map(relay.stats, (stats) => assert.strictEqual(stats.ended.idle, PER_WAY)), idleWait)

      // Origin death: the origin goes away mid-session; the relay counts send failures and frees the sessions by idle.
      const doomed = yield* udpPeer({ echo: true })
      const dying = yield* Effect.forEach(Array.from({ length: PER_WAY }, (_, n) => n), (n) =>
        Effect.map(relay.open(makeRecord(doomed, { ufragPair: `dead${n}:cli${n}` })), ({ port }) => ({ pair: `dead${n}:cli${n}`, port })))
      for (const { pair, port } of dying) client.send(binding(pair, SERVER_PWD), port)
      yield* doomed.close
      yield* eventually(Effect.map(relay.stats, (stats) => assert.strictEqual(stats.ended.idle, 2 * PER_WAY)), idleWait)

      // Shutdown: live sessions end with the relay's scope.
      yield* Effect.forEach(Array.from({ length: PER_WAY }, (_, n) => n), (n) => open("live", n), { discard: true })
      assert.strictEqual((yield* relay.stats).sessions, PER_WAY)
      const last = yield* relay.stats
      yield* Scope.close(relayScope, Exit.void)

      assert.strictEqual(last.ended.deleted, PER_WAY)
      assert.strictEqual(last.clientAddresses, 0)
      assert.strictEqual(last.ufragPairs, PER_WAY)
      assert.lengthOf(yield* store.list, 0)
      // Every relay socket (one per session and the shared port) is closed.
      yield* eventually(Effect.map(settledUdpHandles, (open) => assert.strictEqual(open, before + 2 + PER_WAY)), 5000)
    })), { timeout: 60_000 })
})
