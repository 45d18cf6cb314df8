/**
 * Self-signed certificates for HTTPS tests, made by the `openssl` CLI (Debian's `openssl`), in a
 * throw-away folder of the test's scope.
 */
import * as Effect from "effect/Effect"
import { execFileSync } from "node:child_process"
import { createHash, X509Certificate } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { systemBinary } from "./systemPackages.ts"

export const opensslPath = systemBinary("openssl", "openssl", "/usr/bin/openssl")

export interface TestCertificate {
  readonly cn: string
  readonly cert: string
  readonly key: string
  /** base64 SHA-256 of the public key (what Chromium's --ignore-certificate-errors-spki-list takes). */
  readonly spki: string
}

/** A folder removed with the scope. */
export const certificateDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "rtc-proxy-tls-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/**
 * An EC P-256 certificate for `cn`, valid for a day, naming `ips` and localhost, as PEM text (nothing
 * written to disk but openssl's temporary files in `dir`).
 */
export const selfSigned = (dir: string, cn: string, ips: ReadonlyArray<string> = ["127.0.0.1"]): TestCertificate => {
  const certFile = join(dir, `${cn}.crt.tmp`)
  const keyFile = join(dir, `${cn}.key.tmp`)
  const altNames = ["DNS:localhost", ...ips.map((ip) => `IP:${ip}`)].join(",")
  execFileSync(opensslPath!, [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
    "-subj", `/CN=${cn}`, "-addext", `subjectAltName=${altNames}`, "-keyout", keyFile, "-out", certFile
  ], { stdio: "pipe" })
  const cert = readFileSync(certFile, "utf8")
  const key = readFileSync(keyFile, "utf8")
  rmSync(certFile)
  rmSync(keyFile)
  const publicKey = new X509Certificate(cert).publicKey.export({ type: "spki", format: "der" })
  return { cn, cert, key, spki: createHash("sha256").update(publicKey).digest("base64") }
}
