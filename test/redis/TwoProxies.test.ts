// Several proxies sharing one real redis-server (PROXY_LOAD_BALANCER_TYPE=redis): a session signaled
// through proxy A is relayed by proxy B when the client's packets reach B (as behind a UDP load
// balancer), and a Redis that dies fails new offers with 503 without disturbing live sessions.
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { OriginId } from "../../src/Domain/Origin.ts"
import { SessionId, UfragPair } from "../../src/Domain/Session.ts"
import { StreamKey } from "../../src/Domain/StreamUrl.ts"
import { eventually, openUdpHandles, settledUdpHandles } from "../support/eventually.ts"
import { type FakeSrsApi, fakeSrsApi, srsAnswer } from "../support/fakeSrsApi.ts"
import { httpRequest } from "../support/http.ts"
import { startProxy, type TestProxy } from "../support/proxy.ts"
import { REDIS_SERVER, type RedisServer, redisServer } from "../support/redisServer.ts"
import { minimalOffer } from "../support/offers.ts"
import { parseStun, type StunMessage, verifyMessageIntegrity } from "../../src/Stun.ts"
import { binding } from "../support/relay.ts"
import { tcpPeer } from "../support/tcpPeer.ts"
import { type UdpPeer, udpPeer } from "../support/udpPeer.ts"


const rtp = (tag: string) => Buffer.concat([Buffer.from([0x80, 96, 0, 1]), Buffer.from(tag)])
const hex = (buf: Uint8Array) => Buffer.from(buf).toString("hex")

/**
 * A fake SRS origin whose answers point at an echoing UDP socket (its media port), registered
 * through `proxy` only.
 */
const echoOrigin = (proxy: TestProxy) =>
  Effect.gen(function*() {
    const media = yield* udpPeer({ echo: true })
    const origin: FakeSrsApi = yield* fakeSrsApi({ name: "shared" })
    let answered = 0
    origin.handler = (request, res, req) => {
      const url = new URL(request.url, "http://origin")
      if (request.method === "POST" && url.pathname === "/rtc/v1/whip/") {
        const ufrag = `srvE${++answered}`
        const clientUfrag = /^a=ice-ufrag:(\S+)/m.exec(request.body)?.[1]
        const stream = url.searchParams.get("stream")
        res.writeHead(201, {
          "Content-Type": "application/sdp",
          Location: `/rtc/v1/whip/?action=delete&token=T&app=live&stream=${stream}&session=${ufrag}:${clientUfrag}`
        })
        res.end(srsAnswer({ ufrag, mediaPort: media.port }))
        return
      }
      if (request.method === "PATCH") {
        // An ICE restart: new server credentials, as SRS answers them.
        res.writeHead(200, { "Content-Type": "application/trickle-ice-sdpfrag", ETag: "\"restarted\"" })
        res.end(
          `a=ice-ufrag:srvR${++answered}\r\na=ice-pwd:serverPasswordAfterRestart01\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\n` +
            `a=mid:0\r\na=candidate:0 1 udp 2130706431 127.0.0.1 ${media.port} typ host generation 0\r\n`
        )
        return
      }
      origin.srs(request, res, req)
    }
    const registered = yield* origin.register(proxy.systemUrl)
    assert.strictEqual(registered.status, 200, registered.body)
    return { origin, media, originId: `srv-shared-svc1-4242` }
  })

/** WHIP through `proxy`: the session URL, and the ufrag pair and password a client's checks use. */
const publish = (proxy: TestProxy, stream: string, clientUfrag: string) =>
  Effect.gen(function*() {
    const answer = yield* httpRequest(proxy.endpoint("whip", stream), {
      method: "POST",
      headers: { "content-type": "application/sdp" },
      body: minimalOffer(clientUfrag)
    })
    assert.strictEqual(answer.status, 201, answer.body)
    const serverUfrag = /^a=ice-ufrag:(\S+)/m.exec(answer.body)![1]!
    const pwd = /^a=ice-pwd:(\S+)/m.exec(answer.body)![1]!
    const location = answer.headers["location"] as string
    return { location, id: location.split("/").pop()!, pair: `${serverUfrag}:${clientUfrag}`, pwd }
  })

/** An ICE restart (PATCH with a new client ufrag) through `proxy`: the new ufrag pair and server password. */
const restartIce = (proxy: TestProxy, location: string, clientUfrag: string) =>
  Effect.gen(function*() {
    const restart = yield* httpRequest(`${proxy.mediaUrl}${location}`, {
      method: "PATCH",
      headers: { "content-type": "application/trickle-ice-sdpfrag", "if-match": "*" },
      body: `a=ice-ufrag:${clientUfrag}\r\na=ice-pwd:clientPasswordAfterRestart1\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n`
    })
    assert.strictEqual(restart.status, 200, restart.body)
    const newPair = `${/^a=ice-ufrag:(\S+)/m.exec(restart.body)![1]}:${clientUfrag}`
    const newPwd = /^a=ice-pwd:(\S+)/m.exec(restart.body)![1]!
    return { newPair, newPwd }
  })

/**
 * Sends a binding request to `port` until a reply comes back (the first one to a proxy that does not
 * relay the session yet only starts the store lookup, as a browser's first check would), at most 20
 * times, 150 ms apart. Returns how many were sent.
 */
const bind = (client: UdpPeer, port: number, pair: string, pwd: string) =>
  Effect.gen(function*() {
    const request = binding(pair, pwd)
    const before = client.received.length
    for (let sent = 1; sent <= 20; sent++) {
      client.send(request, port)
      const replied = yield* Effect.exit(eventually(() => assert.isAbove(client.received.length, before), 150))
      if (Exit.isSuccess(replied)) return { sent, request }
    }
    return assert.fail(`no answer to binding requests for ${pair} on port ${port}`)
  })

const twoProxies = (server: RedisServer, keyPrefix: string): Effect.Effect<[TestProxy, TestProxy], unknown, Scope.Scope> =>
  Effect.all([
    startProxy({ loadBalancer: "redis", redis: server.config(keyPrefix) }),
    startProxy({ loadBalancer: "redis", redis: server.config(keyPrefix) })
  ])

describe.skipIf(REDIS_SERVER === undefined)("two proxies sharing one Redis (real redis-server)", () => {
  it.scopedLive("a session signaled through proxy A is relayed by proxy B, and its session URL works through B", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const [a, b] = yield* twoProxies(server, "e2e")
      const { media, origin, originId } = yield* echoOrigin(a)
      assert.isTrue(Option.isSome(yield* b.balancer.find(OriginId.make(originId))), "B knows the origin through Redis only")

      const session = yield* publish(a, "shared", "cli1")
      const client = yield* udpPeer()
      const { request, sent } = yield* bind(client, b.udpPort, session.pair, session.pwd)

      // B relayed the binding request to the origin, and the origin's answer came back through B.
      assert.isAtLeast(sent, 2, "the first binding request only starts B's lookup")
      assert.strictEqual(hex(client.received[0]!.msg), hex(request))
      assert.strictEqual(client.received[0]!.port, b.udpPort)
      assert.isAtLeast(media.received.length, 1)
      const [viewAtB] = yield* b.relay.sessions
      assert.strictEqual(viewAtB?.id, session.id)
      assert.strictEqual(viewAtB?.client, `127.0.0.1:${client.port}`)
      assert.strictEqual(viewAtB?.originId, originId)
      assert.isAtLeast((yield* b.relay.stats).drops["unknown-ufrag"], 1)
      const [viewAtA] = yield* a.relay.sessions
      assert.strictEqual(viewAtA?.id, session.id)
      assert.strictEqual(viewAtA?.client, undefined, "A signaled it but never saw the client")

      // Media flows both ways through B.
      const packet = rtp("through-b")
      const before = client.received.length
      client.send(packet, b.udpPort)
      yield* eventually(() => assert.strictEqual(client.received.length, before + 1))
      assert.strictEqual(hex(client.received[before]!.msg), hex(packet))

      // The session URL A handed out works through B: the origin is told, B frees its relay.
      const deleted = yield* httpRequest(`${b.mediaUrl}${session.location}`, { method: "DELETE" })
      assert.strictEqual(deleted.status, 200, deleted.body)
      assert.isTrue(origin.requests.some((r) => r.method === "DELETE" && r.url.includes(`session=${session.pair}`)))
      assert.deepStrictEqual(yield* b.relay.sessions, [])
      assert.isTrue(Option.isNone(yield* a.store.get(SessionId.make(session.id))))
      const again = yield* httpRequest(`${a.mediaUrl}${session.location}`, { method: "DELETE" })
      assert.strictEqual(again.status, 404)
    }), 20_000)

  it.scopedLive("a session signaled through proxy A reaches proxy B over ICE-TCP: found in Redis at a binding request on a TCP connection", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const config = { loadBalancer: "redis" as const, redis: server.config("tcp") }
      const a = yield* startProxy(config)
      const b = yield* startProxy({ ...config, iceTcp: Option.some({ host: Option.none(), port: 0 }) })
      yield* echoOrigin(a)
      const session = yield* publish(a, "shared-tcp", "cliT")
      const client = yield* tcpPeer(b.tcpPort!)
      const request = binding(session.pair, session.pwd)
      // The first request only starts B's lookup in Redis; the client's retransmission gets through.
      let sent = 0
      while (client.received.length === 0 && sent < 10) {
        client.send(request)
        sent++
        yield* Effect.exit(eventually(() => assert.isAbove(client.received.length, 0), 150))
      }
      assert.strictEqual(hex(client.received[0]!), hex(request))
      assert.isAtLeast(sent, 2)
      const [viewAtB] = yield* b.relay.sessions
      assert.strictEqual(viewAtB?.id, session.id)
      assert.match(viewAtB?.client ?? "", /^tcp:127\.0\.0\.1:\d+$/)
      client.send(rtp("through-b-over-tcp"))
      yield* eventually(() => assert.strictEqual(client.received.length, 2))
      assert.strictEqual(hex(client.received[1]!), hex(rtp("through-b-over-tcp")))
    }), 20_000)

  it.scopedLive("a DELETE through proxy B stops the relay on proxy A within a second (pushed, not polled)", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const [a, b] = yield* twoProxies(server, "ended")
      const { media, origin } = yield* echoOrigin(a)
      const session = yield* publish(a, "ended", "cli1")
      const client = yield* udpPeer()
      yield* bind(client, a.udpPort, session.pair, session.pwd)
      assert.strictEqual((yield* a.relay.stats).sessions, 1)
      const withSession = yield* settledUdpHandles

      const start = Date.now()
      const deleted = yield* httpRequest(`${b.mediaUrl}${session.location}`, { method: "DELETE" })
      assert.strictEqual(deleted.status, 200, deleted.body)
      // The end is counted once the session is freed everywhere, its store record released too: a
      // moment after it leaves the relay's sessions.
      yield* eventually(Effect.gen(function*() {
        const stats = yield* a.relay.stats
        assert.strictEqual(stats.sessions, 0)
        assert.strictEqual(stats.ended.deleted, 1)
      }), 1000, 20)
      assert.isBelow(Date.now() - start, 1000)
      yield* eventually(() => assert.strictEqual(openUdpHandles(), withSession - 1, "A's socket to the origin is closed"))
      assert.isTrue(origin.requests.some((r) => r.method === "DELETE"), "the origin was told")

      // A's socket to the origin is closed: the client's packets go nowhere now.
      const before = media.received.length
      client.send(rtp("after-delete"), a.udpPort)
      yield* Effect.sleep(200)
      assert.strictEqual(media.received.length, before)
      assert.deepStrictEqual(yield* b.relay.sessions, [])
    }), 20_000)

  it.scopedLive("an admin DELETE through proxy B stops the relay on proxy A too", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const [a, b] = yield* twoProxies(server, "admin-ended")
      yield* echoOrigin(a)
      const session = yield* publish(a, "ended", "cli1")
      const deleted = yield* httpRequest(`${b.systemUrl}/api/v1/sessions/${session.id}`, { method: "DELETE" })
      assert.strictEqual(deleted.status, 200, deleted.body)
      yield* eventually(Effect.gen(function*() {
        assert.strictEqual((yield* a.relay.stats).sessions, 0)
      }), 1000, 20)
    }), 20_000)

  it.scopedLive("an ICE restart signaled through proxy A reaches proxy B, which relays the session", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const [a, b] = yield* twoProxies(server, "restart")
      yield* echoOrigin(a)
      const session = yield* publish(a, "restarted", "cli1")
      const client = yield* udpPeer()
      yield* bind(client, b.udpPort, session.pair, session.pwd)

      // A signaled the session but never saw the client: its own copy ends (as it would, idle), and
      // the record stays, since B relays it now.
      assert.isTrue(yield* a.relay.close(session.id, "idle"))
      assert.isTrue(Option.isSome(yield* a.store.get(SessionId.make(session.id))))

      // The client restarts ICE through A, which forwards it to the origin and stores the new pair.
      const { newPair, newPwd } = yield* restartIce(a, session.location, "cli2")

      // Its checks with the new pair keep reaching B: B learns the pair from Redis, and the same
      // relay session (same origin socket) carries on; the old pair is retired.
      const { request, sent } = yield* bind(client, b.udpPort, newPair, newPwd)
      assert.isAtMost(sent, 3)
      assert.strictEqual(hex(client.received[client.received.length - 1]!.msg), hex(request))
      const [view] = yield* b.relay.sessions
      assert.strictEqual(view?.id, session.id)
      assert.deepStrictEqual(view?.ufragPairs, [newPair])
      assert.strictEqual((yield* b.relay.stats).ended.replaced, 0)
      const stored = yield* b.store.findByUfrag(UfragPair.make(newPair))
      assert.strictEqual(Option.getOrUndefined(stored)?.id, session.id)
    }), 20_000)

  it.scopedLive("an ICE restart the proxy carries out (origin without PATCH) through proxy A is translated by proxy B", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const [a, b] = yield* twoProxies(server, "translated")
      const { media, origin } = yield* echoOrigin(a)
      const srs = origin.handler
      origin.handler = (request, res, req) => {
        if (request.method !== "PATCH") return srs(request, res, req)
        res.writeHead(404, { "Content-Type": "application/json" })
        res.end(JSON.stringify({ code: 404 }))
      }
      const session = yield* publish(a, "translated", "cli1")
      const client = yield* udpPeer()
      yield* bind(client, b.udpPort, session.pair, session.pwd)
      assert.isTrue(yield* a.relay.close(session.id, "idle"))

      const { newPair, newPwd } = yield* restartIce(a, session.location, "cli2")
      assert.notStrictEqual(newPair.split(":")[0], session.pair.split(":")[0], "the proxy minted the server ufrag")

      // B learns the new pair from Redis at the first check with it, and re-signs it for the origin.
      const { request } = yield* bind(client, b.udpPort, newPair, newPwd)
      const atOrigin = media.received.filter((d) => d.msg.subarray(8, 20).equals(request.subarray(8, 20)))
      assert.isAtLeast(atOrigin.length, 1)
      const translated = parseStun(atOrigin[0]!.msg) as StunMessage
      assert.strictEqual(translated.username, session.pair)
      assert.isTrue(verifyMessageIntegrity(atOrigin[0]!.msg, translated, session.pwd))
      const [view] = yield* b.relay.sessions
      assert.deepStrictEqual(view?.ufragPairs, [newPair])
    }), 20_000)

  it.scopedLive("a WHIP through proxy B for a stream published through proxy A is a 409; after DELETE it is accepted", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const [a, b] = yield* twoProxies(server, "conflict")
      const { origin } = yield* echoOrigin(a)
      const first = yield* publish(a, "once", "cli1")

      const refused = yield* httpRequest(b.endpoint("whip", "once"), {
        method: "POST",
        headers: { "content-type": "application/sdp" },
        body: minimalOffer("cli2")
      })
      assert.strictEqual(refused.status, 409, refused.body)
      assert.deepStrictEqual(JSON.parse(refused.body), {
        code: "conflict",
        message:
          "stream __defaultVhost__/live/once already has a publisher; end it with DELETE on its session URL, or wait for it to end (a publisher gone without DELETE ends after 30s without packets)"
      })
      assert.strictEqual(origin.requests.filter((r) => r.method === "POST").length, 1, "the origin saw one offer")
      assert.deepStrictEqual(yield* b.relay.sessions, [])

      // A player is welcome through either proxy.
      const played = yield* httpRequest(b.endpoint("whep", "once"), {
        method: "POST",
        headers: { "content-type": "application/sdp" },
        body: minimalOffer("cli3")
      })
      assert.strictEqual(played.status, 201, played.body)

      const deleted = yield* httpRequest(`${b.mediaUrl}${first.location}`, { method: "DELETE" })
      assert.strictEqual(deleted.status, 200, deleted.body)
      const again = yield* publish(b, "once", "cli4")
      assert.match(again.location, /^\/rtc\/v1\/whip\/sessions\//)
    }), 20_000)

  it.scopedLive("after the proxy relaying a publisher shuts down, its kept record does not refuse a new WHIP", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const scopeA = yield* Scope.make()
      const a = yield* Effect.provideService(
        startProxy({ loadBalancer: "redis", redis: server.config("shutdown") }),
        Scope.Scope,
        scopeA
      )
      const b = yield* startProxy({ loadBalancer: "redis", redis: server.config("shutdown") })
      yield* echoOrigin(a)
      const orphan = yield* publish(a, "orphaned", "cli1")
      yield* Scope.close(scopeA, Exit.void)

      assert.isTrue(Option.isSome(yield* b.store.get(SessionId.make(orphan.id))), "kept for a takeover")
      assert.isTrue(Option.isNone(yield* b.store.publisherOf(StreamKey.make("__defaultVhost__/live/orphaned"))))
      const again = yield* publish(b, "orphaned", "cli2")
      assert.match(again.location, /^\/rtc\/v1\/whip\/sessions\//)
    }), 20_000)

  it.scopedLive("Redis dies mid-run: new offers get 503, live relayed sessions carry on, and it recovers", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const [a, b] = yield* twoProxies(server, "dies")
      const { origin, originId } = yield* echoOrigin(a)

      // One session relayed by A, where it was signaled; one taken over by B.
      const atA = yield* publish(a, "one", "cliA")
      const clientA = yield* udpPeer()
      yield* bind(clientA, a.udpPort, atA.pair, atA.pwd)
      const atB = yield* publish(a, "two", "cliB")
      const clientB = yield* udpPeer()
      yield* bind(clientB, b.udpPort, atB.pair, atB.pwd)

      yield* server.kill

      for (const proxy of [a, b]) {
        const refused = yield* httpRequest(proxy.endpoint("whip", "three"), {
          method: "POST",
          headers: { "content-type": "application/sdp" },
          body: minimalOffer("cliC")
        })
        assert.strictEqual(refused.status, 503, refused.body)
        assert.isDefined(refused.headers["retry-after"])
        const body = JSON.parse(refused.body) as { code: string; message: string }
        assert.strictEqual(body.code, "unavailable")
        assert.strictEqual(body.message, "the proxies' shared state (Redis) is unavailable; try again shortly")
      }
      // A session URL cannot be looked up either: 503, not 404 and not 500.
      assert.strictEqual((yield* httpRequest(`${a.mediaUrl}${atA.location}`, { method: "DELETE" })).status, 503)
      // Heartbeats are still answered (the next one after Redis is back registers the origin).
      assert.strictEqual((yield* origin.register(a.systemUrl)).status, 200)
      // The operator's view still shows what this proxy knows by itself, and says what is missing.
      const stats = yield* httpRequest(`${a.systemUrl}/api/v1/stats`)
      assert.strictEqual(stats.status, 200, stats.body)
      const view = JSON.parse(stats.body) as { origins: unknown; streams: unknown; sharedState: string; relay: { sessions: number } }
      assert.isNull(view.origins)
      assert.isNull(view.streams)
      assert.strictEqual(view.sharedState, "the proxies' shared state (Redis) is unavailable; try again shortly")
      assert.strictEqual(view.relay.sessions, 2)

      // Past a sweep of the relays (which renews live sessions in Redis, and fails to), media still flows.
      yield* Effect.sleep(1200)
      for (const [client, port] of [[clientA, a.udpPort], [clientB, b.udpPort]] as const) {
        const packet = rtp(`after-redis-${port}`)
        const before = client.received.length
        client.send(packet, port)
        yield* eventually(() => assert.strictEqual(client.received.length, before + 1))
        assert.strictEqual(hex(client.received[before]!.msg), hex(packet))
      }
      assert.strictEqual((yield* a.relay.stats).sessions, 2)
      assert.strictEqual((yield* b.relay.stats).sessions, 1)
      assert.strictEqual((yield* httpRequest(`${b.mediaUrl}/api/v1/versions`)).status, 200)

      // Redis is back (empty): the proxies reconnect by themselves, the next heartbeat registers the
      // origin again, and offers are answered again.
      yield* redisServer({ port: server.port })
      yield* eventually(
        Effect.gen(function*() {
          assert.strictEqual((yield* origin.register(a.systemUrl)).status, 200)
          assert.isTrue(Option.isSome(yield* b.balancer.find(OriginId.make(originId))))
        }),
        10_000,
        200
      )
      const again = yield* publish(b, "three", "cliC")
      assert.match(again.location, /^\/rtc\/v1\/whip\/sessions\//)
    }), 20_000)
})
