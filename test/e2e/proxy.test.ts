// WHIP and WHEP through the real proxy with real WebRTC peers (werift) and an SRS-shaped origin that
// registers itself by heartbeat: the player must receive the publisher's media, relayed both ways
// through the proxy's single UDP port.
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { startSrsOrigin } from "../support/srsOrigin.ts"
import { startProxy } from "../support/proxy.ts"
import { waitUntil, withTimeout } from "../support/wait.ts"
import { httpRequestPromise } from "../support/http.ts"
import { play, publish } from "../support/webrtcPeers.ts"

const acquire = <A extends { close: () => Promise<void> }>(open: () => Promise<A>) =>
  Effect.acquireRelease(Effect.promise(open), (resource) => Effect.promise(() => resource.close()))

describe("WHIP/WHEP through the proxy", () => {
  it.scopedLive("a player receives a publisher's media through one UDP port; DELETE frees both sessions", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy()
      const origin = yield* acquire(() =>
        startSrsOrigin({ heartbeat: { url: `${proxy.systemUrl}/api/v1/srs/register`, intervalMs: 1000 } })
      )
      const started = Date.now()
      const publisher = yield* acquire(() =>
        publish(proxy.endpoint("whip", "e2e"), { headers: { Authorization: "Bearer pub" } })
      )
      yield* Effect.promise(() => withTimeout("publisher connected", publisher.connected))
      const publishConnectMs = Date.now() - started
      const player = yield* acquire(() => play(proxy.endpoint("whep", "e2e")))
      yield* Effect.promise(() => withTimeout("first media packet at the player", player.firstPacket))
      const playFirstPacketMs = Date.now() - started - publishConnectMs
      yield* Effect.promise(() => waitUntil("50 packets at the player", () => player.receivedPackets() >= 50))

      // Both sessions go through the proxy: every media packet crossed the relay.
      const sessions = yield* proxy.relay.sessions
      assert.strictEqual(sessions.length, 2)
      for (const session of sessions) {
        assert.isDefined(session.client)
        assert.isAbove(session.packetsFromClient, 0)
        assert.isAbove(session.packetsFromOrigin, 0)
      }
      assert.match(publisher.location, /\/rtc\/v1\/whip\/sessions\/[\w-]{20,}$/)
      assert.match(player.location, /\/rtc\/v1\/whep\/sessions\/[\w-]{20,}$/)

      // The origin saw the proxy's forwarding: no client candidates, Authorization and X-Forwarded-For.
      const offer = origin.requests.find((r) => r.method === "POST" && r.url.startsWith("/rtc/v1/whip/"))!
      assert.strictEqual(offer.headers["authorization"], "Bearer pub")
      assert.strictEqual(offer.headers["x-forwarded-for"], "127.0.0.1")
      assert.notMatch(offer.body, /^a=candidate:/m)

      for (const location of [player.location, publisher.location]) {
        const deleted = yield* Effect.promise(() => httpRequestPromise(location, { method: "DELETE" }))
        assert.strictEqual(deleted.status, 200)
      }
      const stats = yield* proxy.relay.stats
      assert.strictEqual(stats.sessions, 0)
      assert.strictEqual(stats.ended.deleted, 2)
      yield* Effect.promise(() => waitUntil("origin sessions closed", () => origin.sessions() === 0))
      yield* Effect.log(
        `e2e: publisher connected in ${publishConnectMs} ms, player's first packet ${playFirstPacketMs} ms later; ` +
          `${stats.packetsRelayed} packets relayed`
      )
    }), { timeout: 30_000 })

  it.scopedLive("an idle session is freed after the relay idle timeout", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy({ relayIdleTimeout: Duration.seconds(1) })
      yield* acquire(() =>
        startSrsOrigin({ heartbeat: { url: `${proxy.systemUrl}/api/v1/srs/register`, intervalMs: 1000 } })
      )
      const publisher = yield* acquire(() => publish(proxy.endpoint("whip", "idle")))
      yield* Effect.promise(() => withTimeout("publisher connected", publisher.connected))
      assert.strictEqual((yield* proxy.relay.stats).sessions, 1)
      // The client goes away without DELETE: after the timeout the relay frees its session.
      yield* Effect.promise(() => publisher.close())
      yield* Effect.promise(() =>
        waitUntil("idle session freed", async () => (await Effect.runPromise(proxy.relay.stats)).sessions === 0, 5000)
      )
      assert.strictEqual((yield* proxy.relay.stats).ended.idle, 1)
      assert.strictEqual((yield* proxy.store.list).length, 0)
    }), { timeout: 30_000 })
})
