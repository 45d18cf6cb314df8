// Headless Chromium over ICE-TCP only: the proxy's page publishes the fake camera with WHIP and a
// second page plays it with WHEP, through the proxy in front of an ICE-lite origin (as SRS is), while
// each answer reaches the page without its UDP candidates, as if the network blocked UDP. The proxy
// never checks first (ICE-lite toward the client), so the only way in is the passive TCP candidate:
// every packet of both sessions must cross RFC 4571-framed TCP connections. Given both candidates,
// Chromium keeps to UDP.
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { Page } from "playwright-core"
import { ALLOW_LOOPBACK, chromiumPath, launchBrowserWith } from "../support/browser.ts"
import { startProxy } from "../support/proxy.ts"
import { startSrsOrigin } from "../support/srsOrigin.ts"
import { waitUntil } from "../support/wait.ts"

const UDP_CANDIDATE = /^a=candidate:\S+ \d+ udp .*\r?\n/gim

/** A proxy with ICE-TCP on, on the default listen host, in front of an ICE-lite origin that registered. */
const proxyWithIceTcp = Effect.gen(function*() {
  const proxy = yield* startProxy({ listenHost: "0.0.0.0", iceTcp: Option.some({ host: Option.none(), port: 0 }) })
  yield* Effect.acquireRelease(
    Effect.promise(() => startSrsOrigin({ heartbeat: { url: `${proxy.systemUrl}/api/v1/srs/register`, intervalMs: 1000 } })),
    (origin) => Effect.promise(() => origin.close())
  )
  yield* Effect.promise(() =>
    waitUntil("the origin registered", async () => (await Effect.runPromise(proxy.balancer.origins)).length > 0, 5000)
  )
  return proxy
})

/** Hands the page each WHIP/WHEP answer without its UDP candidates; `answers` gets what the page saw. */
const withoutUdpCandidates = (page: Page, answers: Array<string>) =>
  Effect.promise(() =>
    page.route(/\/rtc\/v1\/(whip|whep)\/\?/, async (route) => {
      const response = await route.fetch()
      const body = (await response.text()).replace(UDP_CANDIDATE, "")
      answers.push(body)
      await route.fulfill({ response, body })
    })
  )

const textOf = (page: Page, selector: string) => Effect.promise(() => page.textContent(selector))

describe.skipIf(chromiumPath === undefined)("Chromium and the proxy's ICE-TCP candidate", () => {
  it.scopedLive("Chromium given only the proxy's TCP candidate publishes its camera; another page decodes it over ICE-TCP", () =>
    Effect.gen(function*() {
      const proxy = yield* proxyWithIceTcp
      assert.isDefined(proxy.tcpPort)
      const { browser } = yield* launchBrowserWith([ALLOW_LOOPBACK])
      const pageUrl = `http://localhost:${proxy.mediaPort}/?app=live&stream=tcp-only`
      const answers: Array<string> = []

      const publisher = yield* Effect.promise(() => browser.newPage())
      yield* withoutUdpCandidates(publisher, answers)
      yield* Effect.promise(() => publisher.goto(pageUrl))
      yield* Effect.promise(() => publisher.click("#publish"))
      const published = yield* Effect.tryPromise(() =>
        publisher.waitForFunction(`document.getElementById("publish-status").textContent.includes("connected")`, null, {
          timeout: 20_000
        })
      ).pipe(Effect.either)
      if (published._tag === "Left") {
        assert.fail(`the publisher did not connect: ${yield* textOf(publisher, "#publish-status")}; ICE-TCP ${
          JSON.stringify(yield* proxy.iceTcp.stats)
        }; drops ${JSON.stringify((yield* proxy.relay.stats).drops)}`)
      }

      const player = yield* Effect.promise(() => browser.newPage())
      yield* withoutUdpCandidates(player, answers)
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
        assert.fail(`no decoded frames at the player: ${
          JSON.stringify({
            player: yield* textOf(player, "#play-status"),
            iceTcp: yield* proxy.iceTcp.stats,
            sessions: yield* proxy.relay.sessions
          })
        }`)
      }

      // Each page saw one candidate: the passive TCP one at the proxy's ICE-TCP port.
      assert.strictEqual(answers.length, 2)
      for (const answer of answers) {
        const candidates = answer.split(/\r?\n/).filter((line) => line.startsWith("a=candidate:"))
        assert.isAtLeast(candidates.length, 1, answer)
        for (const line of candidates) assert.match(line, new RegExp(` tcp \\d+ \\S+ ${proxy.tcpPort} typ host tcptype passive`))
      }
      // Both sessions' way back is a TCP connection, and media crossed it both ways.
      const sessions = yield* proxy.relay.sessions
      assert.strictEqual(sessions.length, 2)
      for (const session of sessions) {
        assert.match(session.client ?? "", /^tcp:/)
        assert.isAbove(session.packetsFromClient, 0)
        assert.isAbove(session.packetsFromOrigin, 0)
      }
      const tcp = yield* proxy.iceTcp.stats
      assert.isAtLeast(tcp.verified, 2)

      // Stopping deletes both sessions, which closes their TCP connections.
      yield* Effect.promise(() => player.click("#stop-play"))
      yield* Effect.promise(() => publisher.click("#stop-publish"))
      yield* Effect.promise(() =>
        waitUntil("sessions deleted", async () => (await Effect.runPromise(proxy.relay.stats)).sessions === 0, 5000)
      )
      yield* Effect.promise(() =>
        waitUntil("their TCP connections closed", async () => (await Effect.runPromise(proxy.iceTcp.stats)).verified === 0, 5000)
      )
    }), { timeout: 90_000 })

  it.scopedLive("given both candidates, Chromium publishes over UDP: the TCP candidate's lower priority keeps it a fallback", () =>
    Effect.gen(function*() {
      const proxy = yield* proxyWithIceTcp
      const { browser } = yield* launchBrowserWith([ALLOW_LOOPBACK])
      const publisher = yield* Effect.promise(() => browser.newPage())
      yield* Effect.promise(() => publisher.goto(`http://localhost:${proxy.mediaPort}/?app=live&stream=both`))
      yield* Effect.promise(() => publisher.click("#publish"))
      yield* Effect.promise(() =>
        publisher.waitForFunction(`document.getElementById("publish-status").textContent.includes("connected")`, null, {
          timeout: 20_000
        })
      )
      // Media (DTLS, SRTP) sets the way back: it settles on the UDP pair.
      yield* Effect.promise(() =>
        waitUntil("media from the publisher", async () => {
          const [session] = await Effect.runPromise(proxy.relay.sessions)
          return session !== undefined && session.packetsFromClient > 50
        }, 10_000)
      )
      const [session] = yield* proxy.relay.sessions
      assert.notMatch(session?.client ?? "", /^tcp:/)
      yield* Effect.promise(() => publisher.click("#stop-publish"))
    }), { timeout: 60_000 })
})
