// ICE restart in front of an origin that cannot do one (SRS has no PATCH), with real peers: a werift
// publisher restarts ICE mid-stream and moves to another local address; the proxy answers the PATCH
// itself and re-signs STUN between the publisher's new credentials and the origin's original ones.
// The player keeps receiving, and the origin only ever sees its original credentials.
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { startSrsOrigin, type SrsOriginOptions } from "../support/srsOrigin.ts"
import { startProxy } from "../support/proxy.ts"
import { waitUntil, withTimeout } from "../support/wait.ts"
import { play, publish } from "../support/webrtcPeers.ts"

const acquire = <A extends { close: () => Promise<void> }>(open: () => Promise<A>) =>
  Effect.acquireRelease(Effect.promise(open), (resource) => Effect.promise(() => resource.close()))

const restartThroughProxy = (stream: string, originOptions: Pick<SrsOriginOptions, "patch" | "iceLite">) =>
  Effect.gen(function*() {
    const proxy = yield* startProxy()
    const origin = yield* acquire(() =>
      startSrsOrigin({ ...originOptions, heartbeat: { url: `${proxy.systemUrl}/api/v1/srs/register`, intervalMs: 1000 } })
    )
    const publisher = yield* acquire(() => publish(proxy.endpoint("whip", stream)))
    yield* Effect.promise(() => withTimeout("publisher connected", publisher.connected))
    const player = yield* acquire(() => play(proxy.endpoint("whep", stream)))
    yield* Effect.promise(() => withTimeout("first media packet at the player", player.firstPacket))
    const [before] = (yield* proxy.relay.sessions).filter((s) => s.kind === "publish")
    const originalUsernames = new Set(origin.checkUsernames)
    assert.strictEqual(publisher.localAddress(), "127.0.0.1")

    // The publisher leaves its network: new sockets on 127.0.0.2, new credentials.
    const response = yield* Effect.promise(() => publisher.restartIce({ moveTo: "127.0.0.2" }))
    assert.strictEqual(response.status, 200, response.body)
    assert.match(String(response.headers["content-type"]), /^application\/trickle-ice-sdpfrag/)
    assert.match(String(response.headers["etag"]), /^"[\w-]{16,}"$/)
    assert.match(response.body, new RegExp(`^a=candidate:\\S+ 1 udp \\d+ 127\\.0\\.0\\.1 ${proxy.udpPort} typ host`, "m"))
    if (originOptions.iceLite === false) assert.notMatch(response.body, /^a=ice-lite/m)
    else assert.match(response.body, /^a=ice-lite\r$/m, "mirrored from SRS's answer")

    // Media flows again from the new address, through the same relay session and origin session.
    yield* Effect.promise(() => waitUntil("the publisher nominated its new address", () => publisher.localAddress() === "127.0.0.2"))
    const receivedAtRestart = player.receivedPackets()
    yield* Effect.promise(() =>
      waitUntil("100 more packets at the player after the restart", () => player.receivedPackets() >= receivedAtRestart + 100, 15_000)
    )
    const [after] = (yield* proxy.relay.sessions).filter((s) => s.kind === "publish")
    assert.strictEqual(after?.id, before?.id)
    assert.match(after!.client!, /^127\.0\.0\.2:\d+$/)
    assert.lengthOf(after!.ufragPairs, 1, "the old pair retired once the new one was used")
    assert.notStrictEqual(after!.ufragPairs[0], before!.ufragPairs[0])
    assert.strictEqual((yield* proxy.relay.stats).drops["bad-integrity"], 0)

    // The origin was asked (and could not), and only ever saw the credentials of the offer and answer.
    assert.lengthOf(origin.requests.filter((r) => r.method === "PATCH"), 1)
    assert.deepStrictEqual([...origin.checkUsernames].sort(), [...originalUsernames].sort())
    assert.strictEqual(origin.sessions(), 2)
  })

describe("ICE restart in front of an origin without PATCH", () => {
  it.scopedLive("SRS answers 404: the proxy restarts ICE itself, the publisher moves to 127.0.0.2, the player keeps receiving", () =>
    restartThroughProxy("restart404", { patch: "not-found" }), { timeout: 40_000 })

  it.scopedLive("the origin hangs up on the PATCH: the same", () =>
    restartThroughProxy("restartHangUp", { patch: "hang-up" }), { timeout: 40_000 })

  it.scopedLive("a full-ICE origin answering 405: its own checks reach the publisher re-signed, and the answers go back", () =>
    restartThroughProxy("restartFullIce", { patch: "method-not-allowed", iceLite: false }), { timeout: 40_000 })
})
