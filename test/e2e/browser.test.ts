// A real browser as a person uses it: headless Chromium (Debian's) opens the proxy's own page, grants
// its fake camera, publishes with WHIP, and a second page plays the stream with WHEP and must decode
// video frames. The proxy runs on its default listen host (0.0.0.0, one socket per local address) in
// front of an ICE-lite origin (as SRS is); the page is opened by `localhost`, by `127.0.0.1` and by
// the machine's own non-loopback address, each with and without Chromium's
// --allow-loopback-in-peer-connection. A granted camera makes Chromium send from each interface's
// address, which is how a reply from the wrong source address (the kernel's choice on a wildcard
// socket) failed ICE before.
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { mkdirSync } from "node:fs"
import { networkInterfaces } from "node:os"
import { join } from "node:path"
import type { Page } from "playwright-core"
import { ALLOW_LOOPBACK, ARTIFACTS, chromiumPath, launchBrowserWith } from "../support/browser.ts"
import { startProxy, type TestProxy } from "../support/proxy.ts"
import { startSrsOrigin } from "../support/srsOrigin.ts"
import { waitUntil } from "../support/wait.ts"

/** The machine's first non-loopback IPv4 address, if it has one. */
const ownAddress = Object.values(networkInterfaces()).flat().find((entry) => entry?.family === "IPv4" && !entry.internal)
  ?.address

/** What `window.playerStats()` returns (the fields the test reads). */
interface PageFigures {
  readonly bitrateKbps: number | null
  readonly fps: number | null
  readonly width: number
  readonly packetsLost: number | null
}

const textOf = (page: Page, selector: string) => Effect.promise(() => page.textContent(selector))

/**
 * Publishes the fake camera from the page at `pageUrl` and plays it back from a second page; both
 * stop in the end, which deletes their sessions through the proxy.
 */
const publishAndPlay = (proxy: TestProxy, pageUrl: string, flags: ReadonlyArray<string>, screenshot: string) =>
  Effect.gen(function*() {
    const { browser } = yield* launchBrowserWith(flags)
    const publisher = yield* Effect.promise(() => browser.newPage())
    yield* Effect.promise(() => publisher.goto(pageUrl))
    yield* Effect.promise(() => publisher.click("#publish"))
    const published = yield* Effect.tryPromise(() =>
      publisher.waitForFunction(`document.getElementById("publish-status").textContent.includes("connected")`, null, {
        timeout: 15_000
      })
    ).pipe(Effect.either)
    if (published._tag === "Left") {
      assert.fail(`the publisher did not connect: ${yield* textOf(publisher, "#publish-status")}; drops ${
        JSON.stringify((yield* proxy.relay.stats).drops)
      }; sessions ${JSON.stringify(yield* proxy.relay.sessions)}`)
    }

    const player = yield* Effect.promise(() => browser.newPage())
    yield* Effect.promise(() => player.goto(pageUrl))
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
        publisher: yield* textOf(publisher, "#publish-status"),
        player: yield* textOf(player, "#play-status"),
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
    assert.match(String(yield* textOf(player, "#play-status")), /connected, playing\n.*kbit\/s.*fps.*\d+x\d+/s)
    assert.match(String(yield* textOf(publisher, "#publish-status")), /kbit\/s.*fps.*\d+x\d+/)
    mkdirSync(ARTIFACTS, { recursive: true })
    yield* Effect.promise(() => player.screenshot({ path: join(ARTIFACTS, screenshot), fullPage: true }))

    const sessions = yield* proxy.relay.sessions
    assert.strictEqual(sessions.length, 2)
    for (const session of sessions) assert.isAbove(session.packetsFromOrigin, 0)

    // Stopping in the page sends DELETE through the proxy: both relay sessions end at once.
    const deletedBefore = (yield* proxy.relay.stats).ended.deleted
    yield* Effect.promise(() => player.click("#stop-play"))
    yield* Effect.promise(() => publisher.click("#stop-publish"))
    yield* Effect.promise(() =>
      waitUntil("sessions deleted", async () => (await Effect.runPromise(proxy.relay.stats)).sessions === 0, 5000)
    )
    assert.strictEqual((yield* proxy.relay.stats).ended.deleted, deletedBefore + 2)
    assert.strictEqual(yield* textOf(player, "#play-status"), "player: stopped")
    assert.strictEqual(yield* textOf(publisher, "#publish-status"), "publisher: stopped")
  })

const hosts: ReadonlyArray<{ readonly name: string; readonly host: string | undefined }> = [
  { name: "localhost", host: "localhost" },
  { name: "127.0.0.1", host: "127.0.0.1" },
  { name: "the machine's own address", host: ownAddress }
]

describe.skipIf(chromiumPath === undefined)("a browser through the proxy, on its default settings", () => {
  for (const loopback of [true, false]) {
    for (const { host, name } of hosts) {
      const title = `Chromium${
        loopback ? " (loopback allowed)" : ""
      } publishes its camera from the page opened by ${name}; another page decodes it`
      it.scopedLive.skipIf(host === undefined)(title, () =>
        Effect.gen(function*() {
          // The defaults a person gets from `npm start`, on ports of the test's own.
          const proxy = yield* startProxy({ listenHost: "0.0.0.0", rateLimit: { perSecond: 20, burst: 50 } })
          yield* Effect.acquireRelease(
            Effect.promise(() =>
              startSrsOrigin({ heartbeat: { url: `${proxy.systemUrl}/api/v1/srs/register`, intervalMs: 1000 } })
            ),
            (origin) => Effect.promise(() => origin.close())
          )
          yield* Effect.promise(() =>
            waitUntil("the origin registered", async () => (await Effect.runPromise(proxy.balancer.origins)).length > 0, 5000)
          )
          const origin = `http://${host}:${proxy.mediaPort}`
          const flags = [
            ...(loopback ? [ALLOW_LOOPBACK] : []),
            // Neither localhost nor https: a person would need TLS for the camera; the test trusts the origin instead.
            ...(host === ownAddress ? [`--unsafely-treat-insecure-origin-as-secure=${origin}`] : [])
          ]
          const screenshot = `page-${host === ownAddress ? "own-address" : host}${loopback ? "-loopback" : ""}.png`
          yield* publishAndPlay(proxy, `${origin}/?app=live&stream=browser`, flags, screenshot)
        }), { timeout: 60_000 })
    }
  }
})
