// Real WebRTC peers (werift) through the real proxy in front of an SRS-shaped origin on IPv4, for the
// clients the common case leaves out: a client over IPv6 loopback (::1), the proxy's candidates from
// a PROXY_CANDIDATE_IP list of both families, and a client whose network blocks UDP, over ICE-TCP only
// (IPv4 and IPv6). IPv6 tests need the machine's ::1; without it they are skipped with a warning (a
// container without IPv6 is a fact of the machine, not a missing package, so CI=true skips them too).
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { networkInterfaces } from "node:os"
import type { ProxyConfigShape } from "../../src/Config.js"
import { startProxy, type TestProxy } from "../support/proxy.ts"
import { startSrsOrigin } from "../support/srsOrigin.ts"
import { waitUntil, withTimeout } from "../support/wait.ts"
import { type PeerOptions, play, publish } from "../support/webrtcPeers.ts"

const hasIpv6Loopback = Object.values(networkInterfaces()).flat().some((entry) => entry?.address === "::1")
if (!hasIpv6Loopback) {
  console.warn("\n*** IPv6 tests SKIPPED: this machine has no ::1 (IPv6 loopback); `ip -6 addr` shows what it has ***\n")
}

const acquire = <A extends { close: () => Promise<void> }>(open: () => Promise<A>) =>
  Effect.acquireRelease(Effect.promise(open), (resource) => Effect.promise(() => resource.close()))

const candidateLines = (sdp: string) => sdp.split(/\r?\n/).filter((line) => line.startsWith("a=candidate:"))
const withoutUdpCandidates = (sdp: string) => sdp.replace(/^a=candidate:\S+ \d+ udp .*\r?\n/gim, "")

/** A proxy with the given settings in front of an SRS-shaped origin on 127.0.0.1 that registered. */
const proxyAndOrigin = (overrides: Partial<ProxyConfigShape>) =>
  Effect.gen(function*() {
    const proxy = yield* startProxy(overrides)
    const origin = yield* acquire(() =>
      startSrsOrigin({ host: "127.0.0.1", heartbeat: { url: `${proxy.systemUrl}/api/v1/srs/register`, intervalMs: 1000 } })
    )
    yield* Effect.promise(() =>
      waitUntil("the origin registered", async () => (await Effect.runPromise(proxy.balancer.origins)).length > 0, 5000)
    )
    return { proxy, origin }
  })

/**
 * Publishes through `base` (the proxy's media URL as the client reaches it) and plays it back; both
 * peers use `peer`. Returns the answers each saw and the relay sessions while media flowed.
 */
const publishAndPlay = (proxy: TestProxy, base: string, stream: string, peer: PeerOptions) =>
  Effect.gen(function*() {
    const answers: Array<string> = []
    const options: PeerOptions = {
      ...peer,
      answer: (sdp) => {
        answers.push(sdp)
        return peer.answer?.(sdp) ?? sdp
      }
    }
    const publisher = yield* acquire(() => publish(`${base}/rtc/v1/whip/?app=live&stream=${stream}`, options))
    yield* Effect.promise(() => withTimeout("publisher connected", publisher.connected, 15_000))
    const player = yield* acquire(() => play(`${base}/rtc/v1/whep/?app=live&stream=${stream}`, options))
    yield* Effect.promise(() => waitUntil("30 packets at the player", () => player.receivedPackets() >= 30, 15_000))
    const sessions = yield* proxy.relay.sessions
    assert.strictEqual(sessions.length, 2)
    for (const session of sessions) {
      assert.isAbove(session.packetsFromClient, 0)
      assert.isAbove(session.packetsFromOrigin, 0)
      // The origin is IPv4 whatever the client is.
      assert.match(session.originMedia, /^127\.0\.0\.1:\d+$/)
    }
    return { answers, sessions }
  })

describe("IPv6 clients", () => {
  it.scopedLive.skipIf(!hasIpv6Loopback)(
    "a client on ::1 gets a ::1 candidate from the request's Host on a `::` proxy, and is relayed to the IPv4 origin",
    () =>
      Effect.gen(function*() {
        const { origin, proxy } = yield* proxyAndOrigin({ listenHost: "::" })
        const { answers, sessions } = yield* publishAndPlay(proxy, `http://[::1]:${proxy.mediaPort}`, "v6", { host: "::1" })
        for (const answer of answers) {
          assert.deepStrictEqual(candidateLines(answer).map((line) => line.split(" ").slice(4, 6).join(" ")), [
            `::1 ${proxy.udpPort}`
          ])
          assert.notInclude(answer, "127.0.0.1")
        }
        for (const session of sessions) assert.match(session.client ?? "", /^\[::1\]:\d+$/)
        // The origin learns the client's IPv6 address as the proxy's peer.
        const offer = origin.requests.find((r) => r.method === "POST" && r.url.startsWith("/rtc/v1/whip/"))!
        assert.strictEqual(offer.headers["x-real-ip"], "::1")
      }),
    30_000
  )

  it.scopedLive.skipIf(!hasIpv6Loopback)(
    "a PROXY_CANDIDATE_IP list of both families: every answer carries both, an IPv6 publisher and an IPv4 player each use their own",
    () =>
      Effect.gen(function*() {
        const { proxy } = yield* proxyAndOrigin({ listenHost: "::", candidateIps: ["127.0.0.1", "::1"] })
        const answers: Array<string> = []
        const record = (sdp: string) => {
          answers.push(sdp)
          return sdp
        }
        const publisher = yield* acquire(() =>
          publish(`${proxy.mediaUrl}/rtc/v1/whip/?app=live&stream=both`, { host: "::1", answer: record })
        )
        yield* Effect.promise(() => withTimeout("publisher connected", publisher.connected, 15_000))
        const player = yield* acquire(() => play(`${proxy.mediaUrl}/rtc/v1/whep/?app=live&stream=both`, { answer: record }))
        yield* Effect.promise(() => waitUntil("30 packets at the player", () => player.receivedPackets() >= 30, 15_000))
        for (const answer of answers) {
          assert.deepStrictEqual(candidateLines(answer).map((line) => line.split(" ").slice(4, 6).join(" ")), [
            `127.0.0.1 ${proxy.udpPort}`,
            `::1 ${proxy.udpPort}`
          ])
        }
        const clients = (yield* proxy.relay.sessions).map((session) => session.client ?? "")
        assert.sameMembers(clients.map((client) => client.startsWith("[::1]") ? "v6" : "v4"), ["v6", "v4"])
      }),
    30_000
  )
})

describe("clients whose network blocks UDP, over ICE-TCP", () => {
  const iceTcp = Option.some({ host: Option.none(), port: 0 })

  it.scopedLive("werift given only the TCP candidate publishes and plays over framed TCP connections", () =>
    Effect.gen(function*() {
      const { proxy } = yield* proxyAndOrigin({ iceTcp })
      const { answers, sessions } = yield* publishAndPlay(proxy, proxy.mediaUrl, "tcp", { tcp: true, answer: withoutUdpCandidates })
      for (const answer of answers) {
        // The proxy offers both; the UDP one is lost on the way, as on a network that blocks UDP.
        const candidates = candidateLines(answer).map((line) => line.split(" "))
        assert.deepStrictEqual(candidates.map((fields) => [fields[2], fields[4], fields[5], fields[7]].join(" ")), [
          `udp 127.0.0.1 ${proxy.udpPort} host`,
          `tcp 127.0.0.1 ${proxy.tcpPort} host`
        ])
        assert.isBelow(Number(candidates[1]![3]), Number(candidates[0]![3]))
        assert.include(answer, "tcptype passive")
      }
      for (const session of sessions) assert.match(session.client ?? "", /^tcp:127\.0\.0\.1:\d+$/)
      const stats = yield* proxy.iceTcp.stats
      assert.strictEqual(stats.verified, 2)
      assert.strictEqual(stats.backpressureDrops, 0)
    }), 30_000)

  it.scopedLive.skipIf(!hasIpv6Loopback)("an IPv6 client over ICE-TCP on a `::` proxy, to the IPv4 origin", () =>
    Effect.gen(function*() {
      const { proxy } = yield* proxyAndOrigin({ listenHost: "::", iceTcp })
      const { sessions } = yield* publishAndPlay(proxy, `http://[::1]:${proxy.mediaPort}`, "tcp-v6", {
        host: "::1",
        tcp: true,
        answer: withoutUdpCandidates
      })
      for (const session of sessions) assert.match(session.client ?? "", /^tcp:\[::1\]:\d+$/)
    }), 30_000)
})
