/**
 * Headless Chromium (Debian's) for browser tests: its path, or undefined (with a loud warning) when it
 * is not installed, a persistent context with a fake camera in the test's scope, and the proxy's
 * page driven as a person does (publish, play, stop).
 */
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { networkInterfaces, tmpdir } from "node:os"
import { join } from "node:path"
import { chromium, type Page } from "playwright-core"
import type { TestProxy } from "./proxy.ts"
import { systemBinary } from "./systemPackages.ts"
import { waitUntil } from "./wait.ts"

export const chromiumPath = systemBinary("chromium", "chromium", "/usr/bin/chromium")

/** Where browser tests put their screenshots (not committed). */
export const ARTIFACTS = join(import.meta.dirname, "..", "artifacts")

const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream"
]

/** Without it Chromium gathers no candidate on a host that has only loopback. */
export const ALLOW_LOOPBACK = "--allow-loopback-in-peer-connection"

/**
 * A Chromium context with a throw-away profile, closed with the scope; `flags` are added to the
 * headless, fake-camera ones (by default, loopback candidates allowed).
 */
export const launchBrowserWith = (flags: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const profile = mkdtempSync(join(tmpdir(), "rtc-proxy-chromium-"))
      const browser = await chromium.launchPersistentContext(profile, {
        executablePath: chromiumPath!,
        headless: true,
        args: [...CHROMIUM_FLAGS, ...flags]
      })
      return { browser, profile }
    }),
    ({ browser, profile }) =>
      Effect.promise(async () => {
        await browser.close()
        rmSync(profile, { recursive: true, force: true })
      })
  )

export const launchBrowser = launchBrowserWith([ALLOW_LOOPBACK])

/** The machine's first non-loopback IPv4 address, if it has one. */
export const ownAddress = Object.values(networkInterfaces()).flat().find((entry) => entry?.family === "IPv4" && !entry.internal)
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
export const publishAndPlay = (
  proxy: TestProxy,
  pageUrl: string,
  flags: ReadonlyArray<string>,
  screenshot: string,
  /** Checks of the publisher's page once it has loaded, before it publishes. */
  checkPage: (page: Page) => Effect.Effect<void> = () => Effect.void
) =>
  Effect.gen(function*() {
    const { browser } = yield* launchBrowserWith(flags)
    const publisher = yield* Effect.promise(() => browser.newPage())
    yield* Effect.promise(() => publisher.goto(pageUrl))
    yield* checkPage(publisher)
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

