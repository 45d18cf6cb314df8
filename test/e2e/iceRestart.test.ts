// ICE restart in front of an origin that cannot do one (SRS has no PATCH), with real peers: a werift
// publisher restarts ICE mid-stream and moves to another local address; the proxy answers the PATCH
// itself and re-signs STUN between the publisher's new credentials and the origin's original ones.
// The player keeps receiving, and the origin only ever sees its original credentials.
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { chromiumPath, launchBrowser } from "../support/browser.ts"
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

// In the page: publish the fake camera over WHIP, then restart ICE as a WHIP client does with
// Chromium's own pc.restartIce(): the new offer's credentials in a PATCH, the 200's applied.
const PUBLISH_IN_PAGE = `async (whip) => {
  const gathered = (pc) => new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve()
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve())
  })
  const stream = await navigator.mediaDevices.getUserMedia({ video: true })
  const pc = new RTCPeerConnection()
  pc.addTransceiver(stream.getVideoTracks()[0], { direction: "sendonly", streams: [stream] })
  await pc.setLocalDescription(await pc.createOffer())
  await gathered(pc)
  const response = await fetch(whip, { method: "POST", headers: { "content-type": "application/sdp" }, body: pc.localDescription.sdp })
  if (response.status !== 201) throw new Error("POST answered " + response.status)
  const location = new URL(response.headers.get("location"), whip).href
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() })
  await new Promise((resolve, reject) => {
    const check = () => pc.connectionState === "connected" ? resolve() : pc.connectionState === "failed" ? reject(new Error("failed")) : undefined
    pc.addEventListener("connectionstatechange", check)
    check()
  })
  window.restartIce = async () => {
    pc.restartIce()
    await pc.setLocalDescription(await pc.createOffer())
    await gathered(pc)
    const lines = pc.localDescription.sdp.split("\\r\\n")
    const media = lines.findIndex((l) => l.startsWith("m="))
    const fragment = [
      ...lines.slice(0, media).filter((l) => l.startsWith("a=group:") || l.startsWith("a=ice-options:")),
      lines.find((l) => l.startsWith("a=ice-ufrag:")),
      lines.find((l) => l.startsWith("a=ice-pwd:")),
      ...lines.slice(media).filter((l) => /^(m=|a=mid:|a=candidate:|a=end-of-candidates)/.test(l))
    ].join("\\r\\n") + "\\r\\n"
    const patched = await fetch(location, {
      method: "PATCH",
      headers: { "content-type": "application/trickle-ice-sdpfrag", "if-match": "*" },
      body: fragment
    })
    const body = await patched.text()
    if (patched.status !== 200) return { status: patched.status, body }
    const value = (name) => new RegExp("^a=" + name + ":(\\\\S+)", "m").exec(body)[1]
    const candidate = body.split("\\r\\n").find((l) => l.startsWith("a=candidate:"))
    const remote = pc.remoteDescription.sdp
      .replace(/^a=ice-ufrag:.*$/gm, "a=ice-ufrag:" + value("ice-ufrag"))
      .replace(/^a=ice-pwd:.*$/gm, "a=ice-pwd:" + value("ice-pwd"))
      .replace(/^a=candidate:.*$/m, candidate)
    await pc.setRemoteDescription({ type: "answer", sdp: remote })
    return { status: 200, body, clientUfrag: /^a=ice-ufrag:(\\S+)/m.exec(fragment)[1] }
  }
  // Whether a nominated pair of the restarted generation (local candidate with the new ufrag) succeeded.
  window.restartedPairSucceeded = async (ufrag) => {
    const stats = [...(await pc.getStats()).values()]
    return stats.some((pair) => pair.type === "candidate-pair" && pair.state === "succeeded" && pair.nominated &&
      stats.find((c) => c.id === pair.localCandidateId)?.usernameFragment === ufrag)
  }
  return location
}`

describe.skipIf(chromiumPath === undefined)("ICE restart from Chromium in front of an origin without PATCH", () => {
  it.scopedLive("pc.restartIce() through the proxy: the new credentials are translated, the player keeps receiving", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy()
      const origin = yield* acquire(() =>
        startSrsOrigin({ heartbeat: { url: `${proxy.systemUrl}/api/v1/srs/register`, intervalMs: 1000 } })
      )
      const { browser } = yield* launchBrowser
      const page = yield* Effect.promise(() => browser.newPage())
      yield* Effect.promise(() => page.goto(`${proxy.mediaUrl}/`))
      yield* Effect.promise(() => page.evaluate(`(${PUBLISH_IN_PAGE})(${JSON.stringify(proxy.endpoint("whip", "chromium"))})`))
      const player = yield* acquire(() => play(proxy.endpoint("whep", "chromium")))
      yield* Effect.promise(() => withTimeout("first media packet at the player", player.firstPacket, 15_000))
      const originalUsernames = new Set(origin.checkUsernames)

      const restart = yield* Effect.promise(() =>
        page.evaluate<{ status: number; body: string; clientUfrag: string }>("window.restartIce()")
      )
      assert.strictEqual(restart.status, 200, restart.body)
      const newPair = `${/^a=ice-ufrag:(\S+)/m.exec(restart.body)![1]}:${restart.clientUfrag}`
      yield* Effect.promise(() =>
        waitUntil("Chromium checks with its new credentials", async () => {
          const [session] = (await Effect.runPromise(proxy.relay.sessions)).filter((s) => s.kind === "publish")
          return session?.ufragPairs.length === 1 && session.ufragPairs[0] === newPair
        })
      )
      // Chromium's checks with the new credentials were answered: the origin's responses, re-signed.
      yield* Effect.promise(() =>
        waitUntil("a nominated pair of the new ICE generation succeeded", () =>
          page.evaluate<boolean>(`window.restartedPairSucceeded(${JSON.stringify(restart.clientUfrag)})`))
      )
      const receivedAtRestart = player.receivedPackets()
      yield* Effect.promise(() =>
        waitUntil("100 more packets at the player after the restart", () => player.receivedPackets() >= receivedAtRestart + 100, 15_000)
      )
      assert.strictEqual((yield* proxy.relay.stats).drops["bad-integrity"], 0)
      assert.deepStrictEqual([...origin.checkUsernames].sort(), [...originalUsernames].sort())
    }), { timeout: 60_000 })
})
