// A real browser as the client: headless Chromium (Debian's) publishes its fake camera with WHIP from
// the proxy's own page and a second page plays it with WHEP, through the proxy and an SRS-shaped
// origin. The player must decode video frames.
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { chromiumPath, launchBrowser } from "../support/browser.ts"
import { startProxy } from "../support/proxy.ts"
import { startSrsOrigin } from "../support/srsOrigin.ts"
import { waitUntil } from "../support/wait.ts"

/** What `window.playerStats()` returns (the fields the test reads). */
interface PageFigures {
  readonly bitrateKbps: number | null
  readonly fps: number | null
  readonly width: number
  readonly packetsLost: number | null
}

describe.skipIf(chromiumPath === undefined)("a browser through the proxy", () => {
  it.scopedLive("Chromium publishes its camera from the proxy's page and another page decodes it", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy()
      yield* Effect.acquireRelease(
        Effect.promise(() => startSrsOrigin({ heartbeat: { url: `${proxy.systemUrl}/api/v1/srs/register`, intervalMs: 1000 } })),
        (origin) => Effect.promise(() => origin.close())
      )
      const { browser } = yield* launchBrowser
      const page = `${proxy.mediaUrl}/?app=live&stream=browser`

      const publisher = yield* Effect.promise(() => browser.newPage())
      yield* Effect.promise(() => publisher.goto(page))
      yield* Effect.promise(() => publisher.click("#publish"))
      yield* Effect.promise(() =>
        publisher.waitForFunction(`document.getElementById("publish-status").textContent.includes("connected")`, null, {
          timeout: 15_000
        })
      )

      const player = yield* Effect.promise(() => browser.newPage())
      yield* Effect.promise(() => player.goto(page))
      yield* Effect.promise(() => player.click("#play"))
      const decoded = yield* Effect.tryPromise(() =>
        waitUntil(
          "video frames decoded by the player",
          async () => (await player.evaluate<number>("window.playerFramesDecoded()")) >= 10,
          30_000
        )
      ).pipe(Effect.either)
      if (decoded._tag === "Left") {
        // Say what each side saw, so that a failure here can be told apart from a slow machine.
        const diagnosis = {
          publisher: yield* Effect.promise(() => publisher.textContent("#publish-status")),
          player: yield* Effect.promise(() => player.textContent("#play-status")),
          frames: yield* Effect.promise(() => player.evaluate<number>("window.playerFramesDecoded()")),
          sessions: yield* proxy.relay.sessions,
          drops: (yield* proxy.relay.stats).drops
        }
        assert.fail(`no decoded frames at the player: ${JSON.stringify(diagnosis)}`)
      }

      // The page shows live figures from getStats on both sides.
      yield* Effect.promise(() =>
        waitUntil("the player's figures", async () => {
          const figures = await player.evaluate<PageFigures | null>("window.playerStats()")
          return figures !== null && (figures.bitrateKbps ?? 0) > 0 && figures.width > 0 && figures.fps !== null
        }, 10_000)
      )
      const figures = yield* Effect.promise(() => player.evaluate<PageFigures>("window.playerStats()"))
      assert.isNotNull(figures.packetsLost)
      assert.match(String(yield* Effect.promise(() => player.textContent("#play-status"))), /connected, playing\n.*kbit\/s.*fps.*\d+x\d+/s)
      assert.match(String(yield* Effect.promise(() => publisher.textContent("#publish-status"))), /kbit\/s.*fps.*\d+x\d+/)

      const sessions = yield* proxy.relay.sessions
      assert.strictEqual(sessions.length, 2)
      for (const session of sessions) assert.isAbove(session.packetsFromOrigin, 0)

      // Stopping in the page sends DELETE through the proxy: both relay sessions end at once.
      yield* Effect.promise(() => player.click("#stop-play"))
      yield* Effect.promise(() => publisher.click("#stop-publish"))
      yield* Effect.promise(() =>
        waitUntil("sessions deleted", async () => (await Effect.runPromise(proxy.relay.stats)).sessions === 0, 5000)
      )
      assert.strictEqual((yield* proxy.relay.stats).ended.deleted, 2)
      assert.strictEqual(yield* Effect.promise(() => player.textContent("#play-status")), "player: stopped")
      assert.strictEqual(yield* Effect.promise(() => publisher.textContent("#publish-status")), "publisher: stopped")
    }), { timeout: 60_000 })
})
