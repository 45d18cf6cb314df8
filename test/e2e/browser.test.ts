// A real browser as a person uses it: headless Chromium (Debian's) opens the proxy's own page, grants
// its fake camera, publishes with WHIP, and a second page plays the stream with WHEP and must decode
// video frames. The proxy runs on its default listen host (0.0.0.0, one socket per local address) in
// front of an ICE-lite origin (as SRS is); the page is opened by `localhost`, by `127.0.0.1` and by
// the machine's own non-loopback address, each with and without Chromium's
// --allow-loopback-in-peer-connection. A granted camera makes Chromium send from each interface's
// address, which is how a reply from the wrong source address (the kernel's choice on a wildcard
// socket) failed ICE before.
import { describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { ALLOW_LOOPBACK, chromiumPath, ownAddress, publishAndPlay } from "../support/browser.ts"
import { startProxy } from "../support/proxy.ts"
import { startSrsOrigin } from "../support/srsOrigin.ts"
import { waitUntil } from "../support/wait.ts"

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
