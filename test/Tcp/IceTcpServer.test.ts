// ICE-TCP on real sockets: a TCP client (RFC 4571 frames) verified by its binding request, relayed to
// a UDP origin and back; junk, oversized frames, slow-loris and too many connections each close one
// connection, are counted, and leave a UDP session beside them untouched.
import { assert, describe } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { readFileSync } from "node:fs"
import { encodeBindingSuccess } from "../../src/Stun.js"
import { encodeFrame } from "../../src/Tcp/Framing.js"
import { MAX_FRAME_BYTES } from "../../src/Tcp/IceTcpServer.js"
import { eventually } from "../support/eventually.js"
import { live } from "../support/live.js"
import { binding, makeRecord, PAIR, SERVER_PWD, startRelayWithIceTcp } from "../support/relay.js"
import { tcpPeer } from "../support/tcpPeer.js"
import { udpPeer } from "../support/udpPeer.js"

const rtp = (tag: string) => Buffer.concat([Buffer.from([0x80, 96, 0, 1]), Buffer.from(tag)])
const OTHER_PAIR = "srvOther:cliOther"

/** This process's soft limit on open files (Linux), or a conservative guess elsewhere. */
const openFileLimit = (): number => {
  try {
    const line = readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"))
    return Number(line?.split(/\s+/)[3] ?? 1024)
  } catch {
    return 1024
  }
}

/** A UDP session beside the TCP one: a client that sent its binding request and media, echoed by its origin. */
const udpSessionBeside = (relay: Effect.Effect.Success<ReturnType<typeof startRelayWithIceTcp>>) =>
  Effect.gen(function*() {
    const origin = yield* udpPeer({ echo: true })
    yield* relay.relay.open(makeRecord(origin, { ufragPair: OTHER_PAIR }))
    const client = yield* udpPeer()
    client.send(binding(OTHER_PAIR, SERVER_PWD), relay.port)
    yield* eventually(() => assert.strictEqual(client.received.length, 1))
    /** Sends media and checks it comes back: the UDP session is untouched. */
    const stillRelays = (tag: string) =>
      Effect.gen(function*() {
        const before = client.received.length
        client.send(rtp(tag), relay.port)
        yield* eventually(() => assert.strictEqual(client.received.length, before + 1))
        assert.deepStrictEqual(client.received[before]!.msg, rtp(tag))
      })
    return { stillRelays }
  })

describe("ICE-TCP", () => {
  live("a TCP client verified by its binding request is relayed to the UDP origin and back, framed", () =>
    Effect.gen(function*() {
      const proxy = yield* startRelayWithIceTcp()
      const origin = yield* udpPeer()
      yield* proxy.relay.open(makeRecord(origin))
      const client = yield* tcpPeer(proxy.tcpPort)

      const request = binding(PAIR, SERVER_PWD)
      client.send(request)
      yield* eventually(() => assert.strictEqual(origin.received.length, 1))
      assert.deepStrictEqual(origin.received[0]!.msg, request)
      // The origin's binding response goes back over the connection, framed.
      const response = encodeBindingSuccess({ transactionId: request.subarray(8, 20), address: "127.0.0.1", port: 1, password: SERVER_PWD })
      origin.reply(response)
      yield* eventually(() => assert.strictEqual(client.received.length, 1))
      assert.deepStrictEqual(client.received[0], response)

      // Media both ways; a frame split over two writes arrives whole.
      const media = encodeFrame(rtp("from the client over tcp"))
      client.sendRaw(media.subarray(0, 5))
      yield* Effect.sleep(Duration.millis(20))
      client.sendRaw(media.subarray(5))
      yield* eventually(() => assert.strictEqual(origin.received.length, 2))
      assert.deepStrictEqual(origin.received[1]!.msg, rtp("from the client over tcp"))
      origin.reply(rtp("from the origin"))
      origin.reply(rtp("and again"))
      yield* eventually(() => assert.strictEqual(client.received.length, 3))
      assert.deepStrictEqual(client.received.slice(1), [rtp("from the origin"), rtp("and again")])

      const [session] = yield* proxy.relay.sessions
      assert.strictEqual(session?.client, `tcp:127.0.0.1:${client.localPort}`)
      const stats = yield* proxy.tcp.stats
      assert.strictEqual(stats.connections, 1)
      assert.strictEqual(stats.verified, 1)
      assert.strictEqual(stats.accepted, 1)
    }))

  live("a binding request that does not verify binds nothing: no media passes, and the connection stays until its deadline", () =>
    Effect.gen(function*() {
      const proxy = yield* startRelayWithIceTcp()
      const origin = yield* udpPeer()
      yield* proxy.relay.open(makeRecord(origin))
      const client = yield* tcpPeer(proxy.tcpPort)
      client.send(binding(PAIR, "not the server password"))
      client.send(binding(PAIR, undefined))
      yield* eventually(Effect.map(proxy.relay.stats, (stats) => assert.strictEqual(stats.drops["bad-integrity"], 2)))
      assert.strictEqual(origin.received.length, 0)
      assert.strictEqual((yield* proxy.tcp.stats).verified, 0)
      assert.isFalse(client.isClosed())
    }))

  live("junk, a frame that is not STUN before the binding request, and an oversized frame each close their connection only", () =>
    Effect.gen(function*() {
      const proxy = yield* startRelayWithIceTcp()
      const beside = yield* udpSessionBeside(proxy)

      const junk = yield* tcpPeer(proxy.tcpPort)
      junk.sendRaw(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
      const media = yield* tcpPeer(proxy.tcpPort)
      media.send(rtp("media before any binding request"))
      const oversized = yield* tcpPeer(proxy.tcpPort)
      oversized.sendRaw(Buffer.from([(MAX_FRAME_BYTES + 1) >> 8, (MAX_FRAME_BYTES + 1) & 0xff]))
      yield* Effect.promise(() => Promise.all([junk.closed, media.closed, oversized.closed]))

      const stats = yield* proxy.tcp.stats
      // "GET " reads as a 18245-byte frame: oversized too.
      assert.strictEqual(stats.closed.oversized, 2)
      assert.strictEqual(stats.closed.junk, 1)
      yield* eventually(Effect.map(proxy.tcp.stats, (s) => assert.strictEqual(s.connections, 0)))
      yield* beside.stillRelays("after the junk")
    }))

  live("too many STUN frames without one that verifies close the connection", () =>
    Effect.gen(function*() {
      const proxy = yield* startRelayWithIceTcp()
      const client = yield* tcpPeer(proxy.tcpPort)
      for (let i = 0; i < 17; i++) client.send(binding("srvNobody:cliNobody", SERVER_PWD))
      yield* Effect.promise(() => client.closed)
      assert.strictEqual((yield* proxy.tcp.stats).closed.junk, 1)
    }))

  live("slow-loris: a connection without a verified binding request within the deadline is closed", () =>
    Effect.gen(function*() {
      const proxy = yield* startRelayWithIceTcp({ iceTcpHandshakeTimeout: Duration.millis(300) })
      const beside = yield* udpSessionBeside(proxy)
      const silent = yield* tcpPeer(proxy.tcpPort)
      const trickling = yield* tcpPeer(proxy.tcpPort)
      // One byte of a header: never a frame.
      trickling.sendRaw(Buffer.from([0]))
      const started = Date.now()
      yield* Effect.promise(() => Promise.all([silent.closed, trickling.closed]))
      assert.isAtLeast(Date.now() - started, 250)
      assert.strictEqual((yield* proxy.tcp.stats).closed["handshake-timeout"], 2)
      yield* beside.stillRelays("after the slow-loris")
    }))

  live("past the connection cap new connections are closed at once and counted; a freed slot takes a new one", () =>
    Effect.gen(function*() {
      const proxy = yield* startRelayWithIceTcp({ iceTcpMaxConnections: 3 })
      const held = [yield* tcpPeer(proxy.tcpPort), yield* tcpPeer(proxy.tcpPort), yield* tcpPeer(proxy.tcpPort)]
      yield* eventually(Effect.map(proxy.tcp.stats, (s) => assert.strictEqual(s.connections, 3)))
      const refused = [yield* tcpPeer(proxy.tcpPort), yield* tcpPeer(proxy.tcpPort)]
      yield* Effect.promise(() => Promise.all(refused.map((peer) => peer.closed)))
      const stats = yield* proxy.tcp.stats
      assert.strictEqual(stats.refused, 2)
      assert.strictEqual(stats.connections, 3)
      for (const peer of held) assert.isFalse(peer.isClosed())

      held[0]!.socket.destroy()
      yield* eventually(Effect.map(proxy.tcp.stats, (s) => assert.strictEqual(s.connections, 2)))
      const next = yield* tcpPeer(proxy.tcpPort)
      yield* eventually(Effect.map(proxy.tcp.stats, (s) => assert.strictEqual(s.connections, 3)))
      assert.isFalse(next.isClosed())
      assert.strictEqual((yield* proxy.tcp.stats).closed.client, 1)
    }))

  live("10,000 idle connections: past the cap refused at once and counted, the rest held without harm, a UDP session untouched", () =>
    Effect.gen(function*() {
      // Both ends are in this process: a descriptor per connection, two per accepted one (10,000 fit
      // under this machine's limit of 20,000; a lower limit gets a smaller flood).
      const flood = Math.min(10_000, Math.floor((openFileLimit() - 400) / 1.1))
      const cap = Math.min(1000, Math.floor(flood / 4))
      const proxy = yield* startRelayWithIceTcp({ iceTcpMaxConnections: cap, iceTcpHandshakeTimeout: Duration.minutes(1) })
      const beside = yield* udpSessionBeside(proxy)
      const peers = yield* Effect.forEach(Array.from({ length: flood }), () => tcpPeer(proxy.tcpPort), { concurrency: 200 })
      yield* beside.stillRelays("during the flood")
      yield* eventually(Effect.map(proxy.tcp.stats, (stats) => assert.strictEqual(stats.accepted + stats.refused, flood)), 30_000)
      const stats = yield* proxy.tcp.stats
      assert.strictEqual(stats.accepted, cap)
      assert.strictEqual(stats.refused, flood - cap)
      assert.strictEqual(stats.connections, cap)
      yield* eventually(() => assert.strictEqual(peers.filter((peer) => !peer.isClosed()).length, cap), 10_000)
      // The held ones go when their clients do (or at the handshake deadline: see the slow-loris test).
      for (const peer of peers) peer.socket.destroy()
      yield* eventually(Effect.map(proxy.tcp.stats, (s) => assert.strictEqual(s.connections, 0)), 10_000)
      assert.strictEqual((yield* proxy.tcp.stats).closed.client, cap)
      yield* beside.stillRelays("after the flood")
    }), 60_000)

  live("ending the session closes its TCP connection", () =>
    Effect.gen(function*() {
      const proxy = yield* startRelayWithIceTcp()
      const origin = yield* udpPeer()
      const record = makeRecord(origin)
      yield* proxy.relay.open(record)
      const client = yield* tcpPeer(proxy.tcpPort)
      client.send(binding(PAIR, SERVER_PWD))
      yield* eventually(Effect.map(proxy.tcp.stats, (s) => assert.strictEqual(s.verified, 1)))
      assert.isTrue(yield* proxy.relay.close(record.id, "deleted"))
      yield* Effect.promise(() => client.closed)
      assert.strictEqual((yield* proxy.tcp.stats).closed["session-ended"], 1)
    }))

  live("a closed TCP connection leaves its session: the client comes back over UDP", () =>
    Effect.gen(function*() {
      const proxy = yield* startRelayWithIceTcp()
      const origin = yield* udpPeer({ echo: true })
      yield* proxy.relay.open(makeRecord(origin))
      const client = yield* tcpPeer(proxy.tcpPort)
      client.send(binding(PAIR, SERVER_PWD))
      yield* eventually(() => assert.strictEqual(client.received.length, 1))
      client.socket.destroy()
      yield* eventually(Effect.map(proxy.tcp.stats, (s) => assert.strictEqual(s.connections, 0)))
      const sessions = yield* proxy.relay.sessions
      assert.strictEqual(sessions.length, 1)
      assert.isUndefined(sessions[0]!.client)

      const overUdp = yield* udpPeer()
      overUdp.send(binding(PAIR, SERVER_PWD), proxy.port)
      overUdp.send(rtp("back over udp"), proxy.port)
      yield* eventually(() => assert.strictEqual(overUdp.received.length, 2))
      assert.strictEqual((yield* proxy.relay.sessions)[0]!.client, `127.0.0.1:${overUdp.port}`)
    }))

  live("a verified connection that goes quiet is closed at the idle timeout", () =>
    Effect.gen(function*() {
      // The session's idle timeout and the connection's are one setting: whichever ends first closes it.
      const proxy = yield* startRelayWithIceTcp({ relayIdleTimeout: Duration.millis(400) })
      const origin = yield* udpPeer()
      yield* proxy.relay.open(makeRecord(origin))
      const client = yield* tcpPeer(proxy.tcpPort)
      client.send(binding(PAIR, SERVER_PWD))
      yield* eventually(Effect.map(proxy.tcp.stats, (s) => assert.strictEqual(s.verified, 1)))
      yield* Effect.promise(() => client.closed)
      const closed = (yield* proxy.tcp.stats).closed
      assert.strictEqual(closed.idle + closed["session-ended"], 1)
    }))

  live("a client that does not read: replies past the write queue limit are dropped and counted, the connection stays", () =>
    Effect.gen(function*() {
      const proxy = yield* startRelayWithIceTcp()
      const origin = yield* udpPeer()
      yield* proxy.relay.open(makeRecord(origin))
      const client = yield* tcpPeer(proxy.tcpPort)
      client.send(binding(PAIR, SERVER_PWD))
      yield* eventually(() => assert.strictEqual(origin.received.length, 1))
      client.pause()
      // The kernel's buffers on both ends of the loopback connection take some megabytes first.
      const packet = Buffer.concat([rtp("x"), Buffer.alloc(1200)])
      for (let burst = 0; burst < 400; burst++) {
        for (let i = 0; i < 100; i++) origin.reply(packet)
        yield* Effect.sleep(Duration.millis(2))
        if ((yield* proxy.tcp.stats).backpressureDrops > 0) break
      }
      yield* eventually(Effect.map(proxy.tcp.stats, (s) => assert.isAbove(s.backpressureDrops, 0)), 5000)
      assert.isFalse(client.isClosed())
    }), 30_000)
})
