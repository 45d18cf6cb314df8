// The try-it page in headless Chromium: it loads without console errors or 404s, keeps its share link
// up to date, says when a player is connected but nobody publishes, lists the stream, says "stopped"
// after Stop and nothing after that; names the unreachable candidate when ICE fails; on an insecure
// origin it explains why there is no camera.
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import type { Page } from "playwright-core"
import { TRY_PAGE } from "../../src/Http/Page.ts"
import { ARTIFACTS, chromiumPath, launchBrowser } from "../support/browser.ts"
import { freeUdpPort } from "../support/process.ts"
import { startProxy } from "../support/proxy.ts"
import { startSrsOrigin } from "../support/srsOrigin.ts"
import { waitUntil } from "../support/wait.ts"

/** Console errors, uncaught exceptions and 4xx/5xx answers the page saw. */
const recordProblems = (page: Page): Array<string> => {
  const problems: Array<string> = []
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`)
  })
  page.on("pageerror", (error) => problems.push(`exception: ${error.message}`))
  page.on("response", (response) => {
    if (response.status() >= 400) problems.push(`${response.status()} ${response.request().method()} ${response.url()}`)
  })
  return problems
}

const textOf = (page: Page, selector: string) => Effect.promise(async () => (await page.textContent(selector)) ?? "")

const waitForText = (page: Page, selector: string, text: string, timeout = 10_000) =>
  Effect.promise(() =>
    page.waitForFunction(
      `document.querySelector(${JSON.stringify(selector)})?.textContent?.includes(${JSON.stringify(text)}) === true`,
      null,
      { timeout }
    )
  )

/** A proxy with an SRS-shaped origin registered by its heartbeat, and a new page in Chromium. */
const proxyAndPage = Effect.gen(function*() {
  const proxy = yield* startProxy()
  yield* Effect.acquireRelease(
    Effect.promise(() => startSrsOrigin({ heartbeat: { url: `${proxy.systemUrl}/api/v1/srs/register`, intervalMs: 1000 } })),
    (origin) => Effect.promise(() => origin.close())
  )
  yield* Effect.promise(() =>
    waitUntil("the origin's heartbeat", async () => (await Effect.runPromise(proxy.balancer.origins)).length > 0)
  )
  const { browser } = yield* launchBrowser
  const page = yield* Effect.promise(() => browser.newPage())
  return { proxy, page }
})

describe.skipIf(chromiumPath === undefined)("the try-it page in Chromium", () => {
  it.scopedLive("a player with nobody publishing is told so, the stream is listed, and Stop says stopped", () =>
    Effect.gen(function*() {
      const { page, proxy } = yield* proxyAndPage
      const problems = recordProblems(page)
      yield* Effect.promise(() => page.goto(`${proxy.mediaUrl}/?app=live&stream=nobody`))

      assert.strictEqual(yield* textOf(page, "#share"), `${proxy.mediaUrl}/?app=live&stream=nobody`)
      yield* Effect.promise(() => page.fill("#stream", "some one"))
      assert.strictEqual(yield* textOf(page, "#share"), `${proxy.mediaUrl}/?app=live&stream=some%20one`)
      yield* Effect.promise(() => page.fill("#stream", "nobody"))

      yield* Effect.promise(() => page.click("#play"))
      yield* waitForText(page, "#play-status", "connected, no media yet: is anyone publishing this stream?", 15_000)
      yield* waitForText(page, "#streams", "live/nobody 0 publishers, 1 player", 5000)

      mkdirSync(ARTIFACTS, { recursive: true })
      yield* Effect.promise(() => page.screenshot({ path: join(ARTIFACTS, "page.png"), fullPage: true }))

      yield* Effect.promise(() => page.click("#stop-play"))
      assert.strictEqual(yield* textOf(page, "#play-status"), "player: stopped")
      // Nothing that arrives after Stop (a state change, a stats sample, the DELETE's answer) overwrites it.
      yield* Effect.sleep("1500 millis")
      assert.strictEqual(yield* textOf(page, "#play-status"), "player: stopped")
      assert.deepStrictEqual(problems, [])
    }), { timeout: 60_000 })

  it.scopedLive("when ICE fails, the page names the candidate's address and UDP port and what to check", () =>
    Effect.gen(function*() {
      const { page, proxy } = yield* proxyAndPage
      // The proxy's answer with its candidate moved to a UDP port where nothing listens.
      const unreachable = yield* Effect.promise(() => freeUdpPort())
      yield* Effect.promise(() =>
        page.route("**/rtc/v1/whep/?*", async (route) => {
          const response = await route.fetch()
          const body = (await response.text()).replace(new RegExp(` ${proxy.udpPort} typ host`, "g"), ` ${unreachable} typ host`)
          await route.fulfill({ response, body })
        })
      )
      yield* Effect.promise(() => page.goto(`${proxy.mediaUrl}/?app=live&stream=unreachable`))
      yield* Effect.promise(() => page.click("#play"))
      yield* waitForText(page, "#play-status", "player: ICE failed", 40_000)
      const status = yield* textOf(page, "#play-status")
      assert.include(status, `could not reach 127.0.0.1 UDP port ${unreachable} (the candidate in the proxy's answer)`)
      assert.include(status, "PROXY_CANDIDATE_IP")
      assert.include(status, "firewall")
    }), { timeout: 60_000 })

  it.scopedLive("on an insecure origin the page says the camera needs https or localhost, without a script error", () =>
    Effect.gen(function*() {
      const { browser } = yield* launchBrowser
      const page = yield* Effect.promise(() => browser.newPage())
      const problems = recordProblems(page)
      // A name that is not localhost, over http: Chromium hides navigator.mediaDevices there.
      yield* Effect.promise(() =>
        page.route("http://proxy.invalid/**", (route) =>
          route.fulfill(
            new URL(route.request().url()).pathname === "/rtc/v1/streams"
              ? { contentType: "application/json", body: "{\"streams\":[]}" }
              : { contentType: "text/html; charset=utf-8", body: TRY_PAGE }
          ))
      )
      yield* Effect.promise(() => page.goto("http://proxy.invalid/"))
      assert.include(yield* textOf(page, "#publish-status"), "the camera needs https or localhost")
      assert.isTrue(yield* Effect.promise(() => page.isDisabled("#publish")))
      yield* waitForText(page, "#streams-status", "none right now")
      assert.deepStrictEqual(problems, [])
    }), { timeout: 30_000 })
})
