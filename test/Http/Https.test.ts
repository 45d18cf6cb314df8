// The media API over TLS (PROXY_HTTPS_CERT / PROXY_HTTPS_KEY) on its own listener, checked by real
// TLS clients that trust only the test's self-signed certificate: WHIP and the page over https
// beside plain http, a renewed certificate served without a restart, a bad pair logged while the
// certificate in use stays, and the pairs that stop start-up.
import { assert, describe } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import { renameSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as tls from "node:tls"
import type { HttpsConfig, ProxyConfigShape } from "../../src/Config.js"
import { certificateDir, opensslPath, selfSigned, type TestCertificate } from "../support/certificates.js"
import { fakeSrsApi } from "../support/fakeSrsApi.js"
import { httpRequest } from "../support/http.js"
import { live } from "../support/live.js"
import { minimalOffer } from "../support/offers.js"
import { startProxy } from "../support/proxy.js"
import { eventually } from "../support/eventually.js"

/** The CN of the certificate a new TLS connection to `port` gets (verified against `ca`). */
const servedCn = (port: number, ca: string) =>
  Effect.async<string, Error>((resume) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ca, servername: "localhost" }, () => {
      const cn = socket.getPeerCertificate().subject.CN
      socket.end()
      resume(Effect.succeed(String(cn)))
    })
    socket.on("error", (error) => resume(Effect.fail(error)))
  })

/** Writes a pair the way a renewal does: each file replaced by a rename, so no reader sees half a file. */
const install = (dir: string, pair: { readonly cert: string; readonly key: string }, which: "both" | "cert" | "key" = "both") => {
  for (const [name, text] of [["server.crt", pair.cert], ["server.key", pair.key]] as const) {
    if (which !== "both" && !name.endsWith(which === "cert" ? ".crt" : ".key")) continue
    writeFileSync(join(dir, `${name}.new`), text)
    renameSync(join(dir, `${name}.new`), join(dir, name))
  }
}

const httpsSettings = (dir: string): HttpsConfig => ({
  host: Option.none(),
  port: 0,
  certFile: join(dir, "server.crt"),
  keyFile: join(dir, "server.key"),
  reloadInterval: Duration.millis(100)
})

/** Log lines of the code under test, from now to the end of the scope (warnings and above reach it). */
const captureLogs = Effect.gen(function*() {
  const lines: Array<string> = []
  const capture = Logger.make(({ logLevel, message }) => {
    lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
  })
  yield* Effect.locallyScopedWith(FiberRef.currentLoggers, HashSet.add(capture))
  return lines
})

const withHttps = (dir: string, overrides: Partial<ProxyConfigShape> = {}) =>
  startProxy({ https: Option.some(httpsSettings(dir)), ...overrides })

describe.skipIf(opensslPath === undefined)("HTTPS listener", () => {
  const setup = Effect.gen(function*() {
    const dir = yield* certificateDir
    const first = selfSigned(dir, "first")
    install(dir, first)
    return { dir, first }
  })

  live("serves WHIP, session URLs, the page and /readyz over TLS beside plain http", () =>
    Effect.gen(function*() {
      const { dir, first } = yield* setup
      const origin = yield* fakeSrsApi()
      const proxy = yield* withHttps(dir, {
        defaultBackend: Option.some({ ip: "127.0.0.1", apiPort: origin.apiPort, rtcPort: origin.mediaPort })
      })
      assert.isDefined(proxy.httpsUrl)
      assert.notStrictEqual(proxy.httpsPort, proxy.mediaPort)
      assert.strictEqual(yield* servedCn(proxy.httpsPort!, first.cert), "first")

      const answer = yield* httpRequest(`${proxy.httpsUrl}/rtc/v1/whip/?app=live&stream=tls`, {
        method: "POST",
        headers: { "content-type": "application/sdp" },
        body: minimalOffer(),
        ca: first.cert
      })
      assert.strictEqual(answer.status, 201, answer.body)
      assert.match(String(answer.headers.location), /^\/rtc\/v1\/whip\/sessions\//)
      const deleted = yield* httpRequest(`${proxy.httpsUrl}${answer.headers.location}`, { method: "DELETE", ca: first.cert })
      assert.strictEqual(deleted.status, 200, deleted.body)

      const page = yield* httpRequest(`${proxy.httpsUrl}/`, { ca: first.cert })
      assert.strictEqual(page.status, 200)
      assert.include(page.body, "<html")
      const ready = yield* httpRequest(`${proxy.httpsUrl}/readyz`, { ca: first.cert })
      assert.strictEqual(ready.status, 200, ready.body)
      // Plain http is still served on its own port, and TLS is not spoken there (nor http on the TLS port).
      assert.strictEqual((yield* httpRequest(`${proxy.mediaUrl}/api/v1/versions`)).status, 200)
      const plainOnTls = yield* Effect.either(Effect.tryPromise(() => fetch(`http://127.0.0.1:${proxy.httpsPort}/healthz`)))
      assert.isTrue(plainOnTls._tag === "Left" || plainOnTls.right.status === 400)
    }))

  live("TLS 1.0 and 1.1 are refused", () =>
    Effect.gen(function*() {
      const { dir, first } = yield* setup
      const proxy = yield* withHttps(dir)
      const old = yield* Effect.either(Effect.async<void, Error>((resume) => {
        const socket = tls.connect({ host: "127.0.0.1", port: proxy.httpsPort!, ca: first.cert, maxVersion: "TLSv1.1", minVersion: "TLSv1" }, () => {
          socket.end()
          resume(Effect.void)
        })
        socket.on("error", (error) => resume(Effect.fail(error)))
      }))
      assert.isTrue(old._tag === "Left")
    }))

  live("a renewed certificate is served to new connections without a restart", () =>
    Effect.gen(function*() {
      const { dir, first } = yield* setup
      const logs = yield* captureLogs
      const proxy = yield* withHttps(dir)
      assert.strictEqual(yield* servedCn(proxy.httpsPort!, first.cert), "first")
      const second = selfSigned(dir, "second")
      install(dir, second)
      yield* eventually(Effect.map(servedCn(proxy.httpsPort!, second.cert), (cn) => assert.strictEqual(cn, "second")), 5000, 50)
      const ready = yield* httpRequest(`${proxy.httpsUrl}/readyz`, { ca: second.cert })
      assert.strictEqual(ready.status, 200)
      assert.isUndefined(logs.find((line) => line.startsWith("WARN")), logs.join("\n"))
      // Written in place (same inode) counts as a renewal too.
      const third = selfSigned(dir, "third")
      writeFileSync(join(dir, "server.key"), third.key)
      writeFileSync(join(dir, "server.crt"), third.cert)
      yield* eventually(Effect.map(servedCn(proxy.httpsPort!, third.cert), (cn) => assert.strictEqual(cn, "third")), 5000, 50)
    }))

  live("a key that does not match is logged and the certificate in use stays; the matching key then brings the pair", () =>
    Effect.gen(function*() {
      const { dir, first } = yield* setup
      const logs = yield* captureLogs
      const proxy = yield* withHttps(dir)
      const second = selfSigned(dir, "second")
      // A renewal that writes the certificate first: for a moment it does not match the old key.
      install(dir, second, "cert")
      yield* eventually(() => assert.isDefined(logs.find((line) => line.includes("not reloaded"))), 5000, 50)
      const warning = logs.find((line) => line.includes("not reloaded"))!
      assert.match(warning, /^WARN HTTPS certificate not reloaded: the key in PROXY_HTTPS_KEY \(.*server\.key\) does not belong to the certificate in PROXY_HTTPS_CERT/)
      assert.include(warning, "still serving CN=first")
      assert.strictEqual(yield* servedCn(proxy.httpsPort!, first.cert), "first")
      // Not retried while the files stay as they are: one line, not one per check.
      yield* Effect.sleep("400 millis")
      assert.lengthOf(logs.filter((line) => line.includes("not reloaded")), 1)

      install(dir, second, "key")
      yield* eventually(Effect.map(servedCn(proxy.httpsPort!, second.cert), (cn) => assert.strictEqual(cn, "second")), 5000, 50)
    }))

  live("files that go missing or hold junk are logged, the certificate in use stays", () =>
    Effect.gen(function*() {
      const { dir, first } = yield* setup
      const logs = yield* captureLogs
      const proxy = yield* withHttps(dir)
      writeFileSync(join(dir, "server.crt"), "not a certificate\n")
      yield* eventually(() => assert.isDefined(logs.find((line) => line.includes("holds no PEM certificate"))), 5000, 50)
      renameSync(join(dir, "server.key"), join(dir, "gone.key"))
      yield* eventually(() => assert.isDefined(logs.find((line) => /cannot read PROXY_HTTPS_KEY \(.*server\.key\): .*ENOENT/.test(line))), 5000, 50)
      assert.strictEqual(yield* servedCn(proxy.httpsPort!, first.cert), "first")
      assert.strictEqual((yield* httpRequest(`${proxy.httpsUrl}/healthz`, { ca: first.cert })).status, 200)
    }))

  live("start-up stops on a file that cannot be read, junk, or a key of another certificate, naming the variable", () =>
    Effect.gen(function*() {
      const { dir } = yield* setup
      const failure = (settings: Partial<HttpsConfig>) =>
        Effect.flip(startProxy({ https: Option.some({ ...httpsSettings(dir), ...settings }) }).pipe(Effect.scoped))
      const missing = yield* failure({ certFile: join(dir, "absent.crt") })
      assert.match(String((missing as Error).message), /^cannot read PROXY_HTTPS_CERT \(.*absent\.crt\): ENOENT/)

      writeFileSync(join(dir, "junk.key"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
      const junk = yield* failure({ keyFile: join(dir, "junk.key") })
      assert.match(String((junk as Error).message), /^PROXY_HTTPS_KEY \(.*junk\.key\) holds no unencrypted PEM private key/)

      const other: TestCertificate = selfSigned(dir, "other")
      writeFileSync(join(dir, "other.key"), other.key)
      const mismatch = yield* failure({ keyFile: join(dir, "other.key") })
      assert.match(String((mismatch as Error).message), /does not belong to the certificate in PROXY_HTTPS_CERT/)
    }))
})
