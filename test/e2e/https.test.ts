// A browser on the proxy's own HTTPS listener, as a person behind no reverse proxy gets it: headless
// Chromium opens the page by an https URL with the machine's own address (not localhost, so the page
// is a secure context only because of TLS), publishes its fake camera with WHIP, and a second page
// decodes it with WHEP. The certificate is self-signed in the test; Chromium is told to trust its key
// (--ignore-certificate-errors-spki-list), not to ignore certificate errors altogether.
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { chromiumPath, ownAddress, publishAndPlay } from "../support/browser.ts"
import { certificateDir, opensslPath, selfSigned } from "../support/certificates.ts"
import { startProxy } from "../support/proxy.ts"
import { startSrsOrigin } from "../support/srsOrigin.ts"
import { waitUntil } from "../support/wait.ts"

const host = ownAddress ?? "127.0.0.1"

describe.skipIf(chromiumPath === undefined || opensslPath === undefined)("a browser on the HTTPS listener", () => {
  it.scopedLive(`Chromium publishes its camera from the page opened by https://${ownAddress === undefined ? "127.0.0.1" : "<own address>"}; another page decodes it`, () =>
    Effect.gen(function*() {
      const dir = yield* certificateDir
      const certificate = selfSigned(dir, "rtc-proxy-test", [host, "127.0.0.1"])
      writeFileSync(join(dir, "server.crt"), certificate.cert)
      writeFileSync(join(dir, "server.key"), certificate.key)
      const proxy = yield* startProxy({
        listenHost: "0.0.0.0",
        rateLimit: { perSecond: 20, burst: 50 },
        https: Option.some({
          host: Option.none(),
          port: 0,
          certFile: join(dir, "server.crt"),
          keyFile: join(dir, "server.key"),
          reloadInterval: Duration.seconds(10)
        })
      })
      yield* Effect.acquireRelease(
        Effect.promise(() => startSrsOrigin({ heartbeat: { url: `${proxy.systemUrl}/api/v1/srs/register`, intervalMs: 1000 } })),
        (origin) => Effect.promise(() => origin.close())
      )
      yield* Effect.promise(() =>
        waitUntil("the origin registered", async () => (await Effect.runPromise(proxy.balancer.origins)).length > 0, 5000)
      )
      const origin = `https://${host}:${proxy.httpsPort}`
      const flags = [`--ignore-certificate-errors-spki-list=${certificate.spki}`]
      yield* publishAndPlay(proxy, `${origin}/?app=live&stream=https`, flags, "page-https.png", (page) =>
        Effect.gen(function*() {
          const seen = yield* Effect.promise(() =>
            page.evaluate<{ protocol: string; secure: boolean; camera: boolean }>(
              "({ protocol: location.protocol, secure: window.isSecureContext, camera: navigator.mediaDevices !== undefined })"
            )
          )
          assert.deepStrictEqual(seen, { protocol: "https:", secure: true, camera: true })
        }))
    }), { timeout: 60_000 })
})
