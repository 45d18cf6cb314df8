/**
 * Headless Chromium (Debian's) for browser tests: its path, or undefined (with a loud warning) when it
 * is not installed, and a persistent context with a fake camera in the test's scope.
 */
import * as Effect from "effect/Effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { chromium } from "playwright-core"
import { systemBinary } from "./systemPackages.ts"

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
