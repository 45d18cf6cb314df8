// The relay on data-plane worker threads (PROXY_RTC_WORKERS=2): real threads, real UDP on 127.0.0.1.
import { assert, describe } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as dgram from "node:dgram"
import { UfragPair } from "../../src/Domain/Session.js"
import { Relay } from "../../src/Udp/Relay.js"
import { UdpSocket } from "../../src/Udp/UdpSocket.js"
import { WorkerPool } from "../../src/Workers/WorkerPool.js"
import { eventually } from "../support/eventually.js"
import { live } from "../support/live.js"
import { binding, makeRecord, relayLayer, SERVER_PWD } from "../support/relay.js"
import { SessionStore } from "../../src/Session/SessionStore.js"
import { udpPeer } from "../support/udpPeer.js"
import { fakeSrsApi } from "../support/fakeSrsApi.js"
import { httpRequest } from "../support/http.js"
import { minimalOffer } from "../support/offers.js"
import { startProxy } from "../support/proxy.js"

const rtp = (tag: string) => Buffer.concat([Buffer.from([0x80, 96, 0, 1]), Buffer.from(tag)])

/** The relay on two workers, in `scope` (the test's when omitted). */
const startPool = (overrides: Parameters<typeof relayLayer>[0] = {}, scope?: Scope.Scope) =>
  Effect.gen(function*() {
    const layer = relayLayer({ rtcWorkers: 2, ...overrides })
    const context = scope === undefined ? yield* Layer.build(layer) : yield* Layer.buildWithScope(layer, scope)
    return {
      relay: Context.get(context, Relay),
      store: Context.get(context, SessionStore),
      // Provided beside the UdpSocket by the pool's layer, which the relay layer's type does not name.
      pool: Context.unsafeGet(context, WorkerPool),
      udp: Context.get(context, UdpSocket)
    }
  })

/** A port that nothing holds now (bound and released at once). */
const freePort = Effect.async<number>((resume) => {
  const socket = dgram.createSocket("udp4")
  socket.bind(0, "127.0.0.1", () => {
    const { port } = socket.address()
    socket.close(() => resume(Effect.succeed(port)))
  })
})

/** Whether `port` can be bound on 127.0.0.1 now. */
const canBind = (port: number) =>
  Effect.async<boolean>((resume) => {
    const socket = dgram.createSocket("udp4")
    socket.once("error", () => resume(Effect.succeed(false)))
    socket.bind(port, "127.0.0.1", () => socket.close(() => resume(Effect.succeed(true))))
  })

describe("Relay on data-plane workers", () => {
  live("sessions spread over the workers, each relayed on its worker's port; stats sum over workers", () =>
    Effect.gen(function*() {
      const { relay } = yield* startPool()
      const origin = yield* udpPeer({ echo: true })
      const sessions = yield* Effect.forEach([0, 1, 2, 3], (n) =>
        Effect.gen(function*() {
          const record = makeRecord(origin, { ufragPair: `srv${n}:cli${n}` })
          const placement = yield* relay.open(record)
          return { record, placement, client: yield* udpPeer() }
        }))
      const workers = sessions.map((s) => s.placement.worker).sort()
      assert.deepStrictEqual(workers, [0, 0, 1, 1], "two sessions on each worker")
      const ports = new Set(sessions.map((s) => s.placement.port))
      assert.strictEqual(ports.size, 2, "each worker has its own port")
      for (const { client, placement, record } of sessions) client.send(binding(record.ufragPair, SERVER_PWD), placement.port)
      yield* eventually(() => sessions.forEach((s) => assert.lengthOf(s.client.received, 1)))
      for (const { client, placement } of sessions) client.send(rtp("media"), placement.port)
      yield* eventually(() => sessions.forEach((s) => assert.lengthOf(s.client.received, 2)))
      // Every reply came from the port the client sent to.
      for (const { client, placement } of sessions) assert.isTrue(client.received.every((d) => d.port === placement.port))

      const stats = yield* relay.stats
      assert.strictEqual(stats.sessions, 4)
      assert.strictEqual(stats.packetsRelayed, 16)
      assert.strictEqual(stats.relayed.packetsFromClient, 8)
      assert.lengthOf(stats.workers ?? [], 2)
      assert.deepStrictEqual(stats.workers!.map((w) => [w.sessions, w.packetsRelayed, w.up]), [[2, 8, true], [2, 8, true]])
      const views = yield* relay.sessions
      assert.isTrue(views.every((view) => view.packetsFromClient === 2 && view.client !== undefined))
    }), 30_000)

  live("worker i takes PROXY_WEBRTC_SERVER + i, and answers name PROXY_CANDIDATE_PORT + i", () =>
    Effect.gen(function*() {
      const base = yield* freePort
      const { relay, udp } = yield* startPool({ udpPort: base, candidatePort: { _tag: "Some", value: 50_000 } as never })
      const origin = yield* udpPeer({ echo: true })
      assert.strictEqual(udp.address.port, base)
      const placements = yield* Effect.forEach([0, 1], (n) => relay.open(makeRecord(origin, { ufragPair: `p${n}:c${n}` })))
      assert.deepStrictEqual(placements.map((p) => p.port).sort(), [50_000, 50_001])
      const stats = yield* relay.stats
      assert.deepStrictEqual(stats.workers!.map((w) => w.port), [base, base + 1])
      assert.isNotEmpty(yield* udp.boundAddresses)
    }), 30_000)

  live("junk on any worker's port is dropped and counted; a client on the wrong worker's port is not relayed", () =>
    Effect.gen(function*() {
      const { relay } = yield* startPool()
      const origin = yield* udpPeer({ echo: true })
      const client = yield* udpPeer()
      const stats0 = yield* relay.stats
      const [port0, port1] = stats0.workers!.map((w) => w.port)
      const record = makeRecord(origin, { ufragPair: "srvJ:cliJ" })
      const placement = yield* relay.open(record)
      const other = placement.port === port0 ? port1! : port0!
      client.send(Buffer.from([7, 7, 7]), port0!)
      client.send(Buffer.from([200, 1]), port1!)
      client.send(binding(record.ufragPair, SERVER_PWD), other)
      yield* eventually(Effect.map(relay.stats, (stats) => {
        assert.strictEqual(stats.drops.unclassified, 2)
        assert.strictEqual(stats.drops["unknown-ufrag"], 1)
      }))
      assert.isEmpty(client.received)
      // The same request on its own worker's port goes through.
      client.send(binding(record.ufragPair, SERVER_PWD), placement.port)
      yield* eventually(() => assert.lengthOf(client.received, 1))
    }), 30_000)

  live("a session in the store is adopted by the worker whose port its client reached", () =>
    Effect.gen(function*() {
      const { relay, store } = yield* startPool()
      const origin = yield* udpPeer({ echo: true })
      const client = yield* udpPeer()
      const ports = (yield* relay.stats).workers!.map((w) => w.port)
      const record = makeRecord(origin, { ufragPair: UfragPair.make("srvA:cliA") })
      yield* store.put(record)
      client.send(binding(record.ufragPair, SERVER_PWD), ports[1]!)
      yield* eventually(() => assert.isAtLeast(client.received.length, 0))
      yield* eventually(Effect.map(relay.placementOf(record.id), (p) => assert.strictEqual(p.worker, 1)))
      // The client retransmits its check, as ICE does; it now goes through worker 1.
      client.send(binding(record.ufragPair, SERVER_PWD), ports[1]!)
      yield* eventually(() => assert.lengthOf(client.received, 1))
      assert.strictEqual(client.received[0]!.port, ports[1])
    }), 30_000)

  live("a worker killed under load: its sessions end worker-lost, the others keep relaying, a new worker takes new sessions", () =>
    Effect.gen(function*() {
      const { pool, relay } = yield* startPool()
      const origin = yield* udpPeer({ echo: true })
      const sessions = yield* Effect.forEach([0, 1, 2, 3, 4, 5], (n) =>
        Effect.gen(function*() {
          const record = makeRecord(origin, { ufragPair: `srvK${n}:cliK${n}` })
          const placement = yield* relay.open(record)
          const client = yield* udpPeer()
          client.send(binding(record.ufragPair, SERVER_PWD), placement.port)
          return { record, placement, client }
        }))
      yield* eventually(() => sessions.forEach((s) => assert.lengthOf(s.client.received, 1)))
      // Load: every client sends media all along.
      let round = 0
      const load = setInterval(() => {
        round++
        for (const { client, placement } of sessions) client.send(rtp(`r${round}`), placement.port)
      }, 5)
      yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(load)))
      yield* eventually(() => sessions.forEach((s) => assert.isAtLeast(s.client.received.length, 20)))

      const port0 = (yield* relay.stats).workers![0]!.port
      yield* pool.kill(0)
      yield* eventually(Effect.map(relay.stats, (stats) => {
        assert.strictEqual(stats.ended["worker-lost"], 3)
        assert.strictEqual(stats.sessions, 3)
      }), 5000)
      const survivors = sessions.filter((s) => s.placement.worker === 1)
      const lost = sessions.filter((s) => s.placement.worker === 0)
      const counts = survivors.map((s) => s.client.received.length)
      yield* eventually(() => survivors.forEach((s, i) => assert.isAtLeast(s.client.received.length, counts[i]! + 20)))

      // The replacement holds worker 0's port again, and takes the next session (the least loaded).
      yield* eventually(Effect.map(relay.stats, (stats) => {
        assert.isTrue(stats.workers![0]!.up)
        assert.strictEqual(stats.workers![0]!.restarts, 1)
        assert.strictEqual(stats.workers![0]!.port, port0)
      }), 10_000)
      const record = makeRecord(origin, { ufragPair: "srvNew:cliNew" })
      const placement = yield* relay.open(record)
      assert.strictEqual(placement.worker, 0)
      assert.strictEqual(placement.port, port0)
      const client = yield* udpPeer()
      client.send(binding(record.ufragPair, SERVER_PWD), placement.port)
      yield* eventually(() => assert.lengthOf(client.received, 1))
      // The lost sessions' clients get nothing more (their relay is gone, until they signal again).
      const lostCounts = lost.map((s) => s.client.received.length)
      yield* Effect.sleep(Duration.millis(100))
      lost.forEach((s, i) => assert.strictEqual(s.client.received.length, lostCounts[i]))
    }), 40_000)

  live("churn leaves no socket in any worker; shutdown stops every worker and frees its port", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { relay } = yield* startPool({}, scope)
      const origin = yield* udpPeer({ echo: true })
      const idle = yield* Effect.map(relay.stats, (stats) => stats.workers!.map((w) => w.sockets))
      yield* Effect.forEach(Array.from({ length: 200 }, (_, n) => n), (n) =>
        Effect.gen(function*() {
          const record = makeRecord(origin, { ufragPair: `srvC${n}:cliC${n}` })
          yield* relay.open(record)
          if (n % 2 === 0) yield* relay.close(record.id, "deleted")
        }), { concurrency: 8, discard: true })
      const open = yield* relay.stats
      assert.strictEqual(open.sessions, 100)
      assert.strictEqual(open.workers!.reduce((n, w) => n + w.sockets, 0), idle[0]! + idle[1]! + 100)
      yield* Effect.forEach(yield* relay.sessions, (view) => relay.close(view.id, "deleted"), { concurrency: 8, discard: true })
      const closed = yield* relay.stats
      assert.strictEqual(closed.sessions, 0)
      assert.strictEqual(closed.ended.deleted, 200)
      // A worker acknowledges a close once its socket's close event fired; libuv drops the handle from
      // the worker's active resources (what it counts) one loop turn later, so the count may lag a report.
      yield* eventually(
        Effect.map(relay.stats, (stats) => assert.deepStrictEqual(stats.workers!.map((w) => w.sockets), idle))
      )

      // Two more sessions for the shutdown to end.
      yield* relay.open(makeRecord(origin, { ufragPair: "srvS1:cliS1" }))
      yield* relay.open(makeRecord(origin, { ufragPair: "srvS2:cliS2" }))
      const ports = closed.workers!.map((w) => w.port)
      yield* Scope.close(scope, { _tag: "Success", value: undefined } as never)
      for (const port of ports) assert.isTrue(yield* canBind(port), `port ${port} is free after shutdown`)
    }), 40_000)

  live("through the whole proxy: each answer names its worker's port; /api/v1/stats, /metrics and /readyz see every worker", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy({ rtcWorkers: 2 })
      const origin = yield* fakeSrsApi()
      yield* origin.register(proxy.systemUrl)
      const ports = yield* Effect.forEach(["a", "b"], (stream) =>
        Effect.gen(function*() {
          const answer = yield* httpRequest(proxy.endpoint("whip", stream), {
            method: "POST",
            headers: { "content-type": "application/sdp" },
            body: minimalOffer()
          })
          assert.strictEqual(answer.status, 201, answer.body)
          return Number(/a=candidate:\S+ 1 udp \d+ \S+ (\d+) typ host/.exec(answer.body)![1])
        }))
      const stats = JSON.parse((yield* httpRequest(`${proxy.systemUrl}/api/v1/stats`)).body)
      const workers: Array<{ port: number; sessions: number; up: boolean }> = stats.relay.workers
      assert.deepStrictEqual([...ports].sort(), workers.map((w) => w.port).sort(), "one session on each worker's port")
      assert.deepStrictEqual(workers.map((w) => [w.sessions, w.up]), [[1, true], [1, true]])
      // Each worker thread reports its own JavaScript heap.
      for (const worker of stats.relay.workers as Array<{ heapUsed: number; heapTotal: number }>) {
        assert.isAbove(worker.heapUsed, 1_000_000)
        assert.isAtLeast(worker.heapTotal, worker.heapUsed)
      }
      assert.strictEqual(proxy.udpPort, workers[0]!.port)
      const metrics = (yield* httpRequest(`${proxy.systemUrl}/metrics`)).body
      for (const worker of ["0", "1"]) {
        assert.match(metrics, new RegExp(`rtc_proxy_worker_sessions\\{worker="${worker}"[^}]*\\} 1`))
        assert.match(metrics, new RegExp(`rtc_proxy_worker_up\\{worker="${worker}"[^}]*\\} 1`))
        assert.match(metrics, new RegExp(`rtc_proxy_worker_heap_used_bytes\\{worker="${worker}"[^}]*\\} [1-9]\\d{6,}`))
      }
      assert.strictEqual((yield* httpRequest(`${proxy.systemUrl}/readyz`)).status, 200)
    }), 40_000)
})
