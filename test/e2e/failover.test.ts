// Origin failover with two real test origins, on the memory and the Redis load balancer: the origin
// serving a stream dies; the next offers for it succeed through the other one in one request, the
// live session to the dead one ends with origin-lost, and the origin gets streams again once it is
// back and heartbeating after its hold-down. An origin that refuses one request during a restart
// loses only the streams that signaled while it was down.
import { assert, describe } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as net from "node:net"
import type { ProxyConfigShape } from "../../src/Config.js"
import { OriginId } from "../../src/Domain/Origin.js"
import { StreamKey } from "../../src/Domain/StreamUrl.js"
import { eventually } from "../support/eventually.js"
import { type FakeSrsApi, fakeSrsApi } from "../support/fakeSrsApi.js"
import { httpRequest } from "../support/http.js"
import { live } from "../support/live.js"
import { minimalOffer } from "../support/offers.js"
import { startProxy, type TestProxy } from "../support/proxy.js"
import { REDIS_SERVER, redisServer } from "../support/redisServer.js"
import { binding } from "../support/relay.js"
import { udpPeer } from "../support/udpPeer.js"

const SRS_ICE_PWD = "srsServerIcePassword0123456789ab"
const HOLD = Duration.seconds(1)

const originId = (name: string) => OriginId.make(`srv-${name}-svc1-4242`)

/** A fake origin in its own scope, so that a test can kill it. */
const killableOrigin = (name: string) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const origin = yield* Scope.extend(fakeSrsApi({ name, ufragPrefix: `${name}x` }), scope)
    return { origin, kill: Scope.close(scope, Exit.void) }
  })

const register = (proxy: TestProxy, origin: FakeSrsApi) =>
  Effect.gen(function*() {
    const registered = yield* origin.register(proxy.systemUrl)
    assert.strictEqual(registered.status, 200, registered.body)
  })

const offer = (proxy: TestProxy, kind: "whip" | "whep", stream: string, clientUfrag = "cli1") =>
  httpRequest(proxy.endpoint(kind, stream), {
    method: "POST",
    headers: { "content-type": "application/sdp" },
    body: minimalOffer(clientUfrag)
  })

const offersSeen = (origin: FakeSrsApi, stream: string) =>
  origin.requests.filter((r) => r.method === "POST" && r.url.includes(`stream=${stream}`)).length

const serverUfrag = (answer: string) => /^a=ice-ufrag:(\S+)/m.exec(answer)![1]!

type Backend = Pick<ProxyConfigShape, "loadBalancer"> & Partial<ProxyConfigShape>

const backends: ReadonlyArray<{ readonly name: string; readonly config: Effect.Effect<Backend, Error, Scope.Scope> }> = [
  { name: "memory", config: Effect.succeed({ loadBalancer: "memory" }) },
  ...(REDIS_SERVER === undefined && process.env["CI"] !== "true" ? [] : [{
    name: "redis",
    config: Effect.map(redisServer(), (server): Backend => ({ loadBalancer: "redis", redis: server.config("failover") }))
  }])
]

for (const backend of backends) {
  describe(`origin failover (${backend.name})`, () => {
    live("a dead origin's streams move within one request; its live session ends with origin-lost; it comes back after the hold-down", () =>
      Effect.gen(function*() {
        const proxy = yield* startProxy({ ...(yield* backend.config), originDownHold: HOLD })
        const a = yield* killableOrigin("a")
        const b = yield* fakeSrsApi({ name: "b", ufragPrefix: "bx" })
        // Only a is known when the streams are first signaled: both are mapped to it.
        yield* register(proxy, a.origin)
        const published = yield* offer(proxy, "whip", "s", "pub1")
        assert.strictEqual(published.status, 201, published.body)
        assert.strictEqual((yield* offer(proxy, "whep", "t")).status, 201)
        yield* register(proxy, b)

        // The publisher's client checks reach the origin through the relay, as a browser's keep doing.
        const client = yield* udpPeer()
        const check = binding(`${serverUfrag(published.body)}:pub1`, SRS_ICE_PWD)
        const checking = yield* Effect.sync(() => client.send(check, proxy.udpPort)).pipe(
          Effect.repeat(Schedule.spaced("100 millis")),
          Effect.fork
        )
        yield* eventually(Effect.map(proxy.relay.sessions, (sessions) => assert.isAbove(sessions[0]!.packetsFromClient, 0)))

        yield* a.kill
        const killedAt = Date.now()
        const played = yield* offer(proxy, "whep", "s")
        assert.strictEqual(played.status, 201, played.body)
        assert.isBelow(Date.now() - killedAt, 2000)
        assert.strictEqual(offersSeen(b, "s"), 1)

        // The session relayed to the dead origin ends, and the stream takes a new publisher on b.
        yield* eventually(
          Effect.map(proxy.relay.stats, (stats) => assert.strictEqual(stats.ended["origin-lost"], 1)),
          5000,
          50
        )
        assert.isBelow(Date.now() - killedAt, 5000)
        yield* Fiber.interrupt(checking)
        const republished = yield* offer(proxy, "whip", "s", "pub2")
        assert.strictEqual(republished.status, 201, republished.body)
        assert.strictEqual(offersSeen(b, "s"), 2)
        // A stream of the dead origin that signals now moves at once (the origin is marked down).
        assert.strictEqual((yield* offer(proxy, "whep", "t")).status, 201)
        assert.strictEqual(offersSeen(b, "t"), 1)

        const failover = yield* proxy.balancer.failover
        assert.strictEqual(failover.markedDown, 1)
        assert.strictEqual(failover.reroutes, 2)

        // Restarted (same origin id), heartbeating: still down during the hold-down, then back.
        const restarted = yield* fakeSrsApi({ name: "a", ufragPrefix: "ay" })
        yield* register(proxy, restarted)
        const during = yield* proxy.balancer.origins
        assert.isTrue(during.find((s) => s.origin.id === originId("a"))!.down)
        yield* Effect.sleep(Duration.sum(HOLD, Duration.millis(100)))
        yield* register(proxy, restarted)
        const after = yield* proxy.balancer.origins
        assert.isFalse(after.find((s) => s.origin.id === originId("a"))!.down)
        assert.strictEqual((yield* proxy.balancer.failover).cameBack, 1)
        const picked = yield* Effect.forEach(
          Array.from({ length: 30 }, (_, i) => StreamKey.make(`__defaultVhost__/live/new${i}`)),
          (stream) => Effect.map(proxy.balancer.pick(stream), (origin) => origin.id)
        )
        assert.include(picked, originId("a"))
      }), 20_000)

    live("an origin that refuses one request during a restart keeps the streams that did not signal meanwhile", () =>
      Effect.gen(function*() {
        const proxy = yield* startProxy({ ...(yield* backend.config), originDownHold: HOLD })
        const a = yield* fakeSrsApi({ name: "a", ufragPrefix: "ax" })
        const b = yield* fakeSrsApi({ name: "b", ufragPrefix: "bx" })
        // a's API behind a TCP forwarder that can refuse connections for a moment.
        const gate = yield* tcpGate(a.apiPort)
        const heartbeat = { ...a.heartbeatBody, api: [String(gate.port)] }
        const registerA = httpRequest(`${proxy.systemUrl}/api/v1/srs/register`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(heartbeat)
        })
        yield* registerA
        for (const stream of ["s1", "s2", "s3"]) assert.strictEqual((yield* offer(proxy, "whep", stream)).status, 201)
        yield* register(proxy, b)

        yield* gate.refuse
        const moved = yield* offer(proxy, "whep", "s1")
        assert.strictEqual(moved.status, 201, moved.body)
        assert.strictEqual(offersSeen(b, "s1"), 1)
        yield* gate.open

        // After the hold-down and a heartbeat, a is up, and the other streams never left it.
        yield* Effect.sleep(Duration.sum(HOLD, Duration.millis(100)))
        yield* registerA
        for (const stream of ["s2", "s3"]) {
          assert.strictEqual((yield* offer(proxy, "whep", stream)).status, 201)
          assert.strictEqual(offersSeen(a, stream), 2)
          assert.strictEqual(offersSeen(b, stream), 0)
        }
        const failover = yield* proxy.balancer.failover
        assert.deepStrictEqual(failover, { reroutes: 1, markedDown: 1, cameBack: 1 })
      }), 20_000)

    live("an origin with sessions whose API stops answering its probes is marked down, and its silent sessions end", () =>
      Effect.gen(function*() {
        const proxy = yield* startProxy({
          ...(yield* backend.config),
          originDownHold: HOLD,
          originProbe: { path: "/api/v1/versions", interval: Duration.millis(100), timeout: Duration.millis(200), failures: 3 }
        })
        const a = yield* fakeSrsApi({ name: "a", ufragPrefix: "ax" })
        const gate = yield* tcpGate(a.apiPort)
        const registered = yield* httpRequest(`${proxy.systemUrl}/api/v1/srs/register`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ ...a.heartbeatBody, api: [String(gate.port)] })
        })
        assert.strictEqual(registered.status, 200)
        assert.strictEqual((yield* offer(proxy, "whep", "s")).status, 201)
        yield* eventually(() => assert.isAbove(a.requests.filter((r) => r.url === "/api/v1/versions").length, 0), 2000)
        assert.strictEqual((yield* proxy.balancer.failover).markedDown, 0)

        yield* gate.refuse
        yield* eventually(Effect.map(proxy.balancer.failover, (failover) => assert.strictEqual(failover.markedDown, 1)), 2000)
        // Nothing comes from that origin: its session ends.
        yield* eventually(
          Effect.map(proxy.relay.stats, (stats) => assert.strictEqual(stats.ended["origin-lost"], 1)),
          5000,
          50
        )
      }), 20_000)

    live("legacy play fails over too; a hang-up on a publish is passed on, not a reason to mark the origin down", () =>
      Effect.gen(function*() {
        const proxy = yield* startProxy({ ...(yield* backend.config), originDownHold: HOLD })
        const a = yield* killableOrigin("a")
        const b = yield* fakeSrsApi({ name: "b", ufragPrefix: "bx" })
        yield* register(proxy, a.origin)
        assert.strictEqual((yield* offer(proxy, "whep", "legacy")).status, 201)
        assert.strictEqual((yield* offer(proxy, "whep", "hangup")).status, 201)
        yield* register(proxy, b)
        // a hangs up on every offer (as SRS does on a second publisher) before it dies.
        a.origin.handler = (_request, res) => res.socket?.destroy()
        const hungUp = yield* offer(proxy, "whip", "hangup", "pub2")
        assert.strictEqual(hungUp.status, 502, hungUp.body)
        assert.strictEqual(offersSeen(b, "hangup"), 0)
        assert.strictEqual((yield* proxy.balancer.failover).markedDown, 0)

        yield* a.kill
        const played = yield* httpRequest(`${proxy.mediaUrl}/rtc/v1/play/`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ streamurl: "webrtc://127.0.0.1/live/legacy", sdp: minimalOffer("cli9") })
        })
        assert.strictEqual(played.status, 200, played.body)
        assert.strictEqual(JSON.parse(played.body).code, 0)
        assert.strictEqual(b.requests.filter((r) => r.url === "/rtc/v1/play/").length, 1)
        assert.strictEqual((yield* proxy.balancer.failover).markedDown, 1)
      }), 20_000)
  })
}

/**
 * A TCP forwarder to `target` on a fixed port that can stop listening (connections are then refused,
 * as by an origin that is restarting) and listen again.
 */
const tcpGate = (target: number) =>
  Effect.gen(function*() {
    const sockets = new Set<net.Socket>()
    let server: net.Server | undefined
    const listen = (port: number) =>
      Effect.async<number>((resume) => {
        const next = net.createServer((socket) => {
          const upstream = net.connect(target, "127.0.0.1")
          sockets.add(socket).add(upstream)
          socket.pipe(upstream).pipe(socket)
          const done = () => {
            socket.destroy()
            upstream.destroy()
            sockets.delete(socket)
            sockets.delete(upstream)
          }
          socket.on("error", done).on("close", done)
          upstream.on("error", done).on("close", done)
        })
        next.listen(port, "127.0.0.1", () => {
          server = next
          resume(Effect.succeed((next.address() as net.AddressInfo).port))
        })
      })
    const close = Effect.async<void>((resume) => {
      for (const socket of sockets) socket.destroy()
      sockets.clear()
      if (server === undefined) return resume(Effect.void)
      server.close(() => resume(Effect.void))
      server = undefined
    })
    const port = yield* Effect.acquireRelease(listen(0), () => close)
    return { port, refuse: close, open: Effect.asVoid(listen(port)) }
  })
