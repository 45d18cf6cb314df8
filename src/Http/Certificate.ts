/**
 * The HTTPS listener's certificate: PROXY_HTTPS_CERT and PROXY_HTTPS_KEY read and checked as a pair,
 * then watched, so that a renewed certificate is served without a restart. A pair that cannot be read
 * or does not match stops start-up; at a reload it is logged and the certificate in use stays.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import { createPrivateKey, X509Certificate } from "node:crypto"
import { readFile, stat } from "node:fs/promises"
import { createSecureContext, type Server as TlsServer } from "node:tls"

/** PROXY_HTTPS_CERT / PROXY_HTTPS_KEY cannot be read, or do not hold a matching certificate and key. */
export class CertificateError extends Data.TaggedError("CertificateError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

export interface CertificateFiles {
  readonly certFile: string
  readonly keyFile: string
}

/** A checked pair, as `tls` takes it, and what the logs say of it. */
export interface CertificatePair {
  readonly cert: Buffer
  readonly key: Buffer
  readonly subject: string
  readonly validTo: Date
}

const expiry = Metric.gauge("rtc_proxy_https_certificate_expiry_timestamp_seconds", {
  description: "When the certificate the HTTPS listener serves expires (Unix time)"
})
const reloads = Metric.counter("rtc_proxy_https_certificate_reloads_total", {
  description: "Changes of the certificate files seen, by outcome (reloaded, failed: the previous certificate stays)",
  incremental: true
})

const reasonOf = (error: unknown) => error instanceof Error ? error.message : String(error)

const readOne = (variable: string, file: string) =>
  Effect.tryPromise({
    try: () => readFile(file),
    catch: (cause) => new CertificateError({ message: `cannot read ${variable} (${file}): ${reasonOf(cause)}`, cause })
  })

const check = <A>(what: () => A, message: (reason: string) => string) =>
  Effect.try({ try: what, catch: (cause) => new CertificateError({ message: message(reasonOf(cause)), cause }) })

/** Reads both files and checks that they make a pair a TLS server can serve. */
export const load = (files: CertificateFiles): Effect.Effect<CertificatePair, CertificateError> =>
  Effect.gen(function*() {
    const [cert, key] = yield* Effect.all([readOne("PROXY_HTTPS_CERT", files.certFile), readOne("PROXY_HTTPS_KEY", files.keyFile)])
    const certificate = yield* check(
      () => new X509Certificate(cert),
      (reason) => `PROXY_HTTPS_CERT (${files.certFile}) holds no PEM certificate: ${reason}`
    )
    const privateKey = yield* check(
      () => createPrivateKey(key),
      (reason) => `PROXY_HTTPS_KEY (${files.keyFile}) holds no unencrypted PEM private key: ${reason}`
    )
    if (!certificate.checkPrivateKey(privateKey)) {
      return yield* new CertificateError({
        message: `the key in PROXY_HTTPS_KEY (${files.keyFile}) does not belong to the certificate in PROXY_HTTPS_CERT (${files.certFile})`
      })
    }
    // What the listener will do with them: catches the rest (a chain in the wrong order, a key too weak).
    yield* check(
      () => createSecureContext({ cert, key }),
      (reason) => `PROXY_HTTPS_CERT and PROXY_HTTPS_KEY cannot be served: ${reason}`
    )
    return { cert, key, subject: certificate.subject.replace(/\n/g, ", "), validTo: new Date(certificate.validTo) }
  })

/** One line for the logs: whom the certificate names and until when. */
export const summary = (pair: CertificatePair): string => `${pair.subject}, valid until ${pair.validTo.toISOString()}`

/** Logs the pair now in use (a warning when it has expired) and sets the expiry gauge. */
export const announce = (pair: CertificatePair, verb: string) =>
  Effect.zipRight(
    pair.validTo.getTime() < Date.now()
      ? Effect.logWarning(`HTTPS certificate ${verb}: ${summary(pair)}, which has EXPIRED: clients will refuse it`)
      : Effect.logInfo(`HTTPS certificate ${verb}: ${summary(pair)}`),
    Metric.set(expiry, Math.floor(pair.validTo.getTime() / 1000))
  )

// What identifies a file's content without reading it: a renewal writes a new file (certbot: a new
// target of the symlink) or rewrites it, and either changes one of these.
const stampOf = (files: CertificateFiles) =>
  Effect.promise(() =>
    Promise.all([files.certFile, files.keyFile].map((file) =>
      stat(file).then(
        (s) => `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`,
        (error: NodeJS.ErrnoException) => `missing ${error.code ?? reasonOf(error)}`
      )
    ))
  ).pipe(Effect.map((stamps) => stamps.join(" ")))

/** The pair as the files hold it now, and their stamp (taken first: a change while reading is seen at the next check). */
export interface LoadedPair {
  readonly pair: CertificatePair
  readonly stamp: string
}

/** {@link load}, with the files' stamp for {@link watch}. */
export const loadStamped = (files: CertificateFiles): Effect.Effect<LoadedPair, CertificateError> =>
  Effect.flatMap(stampOf(files), (stamp) => Effect.map(load(files), (pair) => ({ pair, stamp })))

/**
 * Checks the files every `interval`, in the scope's lifetime. When they changed, the new pair goes to
 * `server` for new connections (connections open keep theirs); a pair that fails is logged and the
 * certificate in use stays. A pair is retried only once its files change again: a renewal that wrote
 * the certificate before the key gets a mismatch first, and then the key's change brings the pair.
 */
export const watch = (server: TlsServer, files: CertificateFiles, interval: Duration.DurationInput, initial: LoadedPair) =>
  Effect.gen(function*() {
    let tried = initial.stamp
    let current = initial.pair
    const serve = (pair: CertificatePair) =>
      check(
        () => server.setSecureContext({ cert: pair.cert, key: pair.key }),
        (reason) => `PROXY_HTTPS_CERT and PROXY_HTTPS_KEY cannot be served: ${reason}`
      )
    const poll = Effect.gen(function*() {
      const stamp = yield* stampOf(files)
      if (stamp === tried) return
      tried = stamp
      const loaded = yield* Effect.either(Effect.tap(load(files), serve))
      if (loaded._tag === "Left") {
        yield* Metric.increment(Metric.tagged(reloads, "outcome", "failed"))
        return yield* Effect.logWarning(
          `HTTPS certificate not reloaded: ${loaded.left.message}; still serving ${summary(current)}`
        )
      }
      current = loaded.right
      yield* Metric.increment(Metric.tagged(reloads, "outcome", "reloaded"))
      yield* announce(current, "reloaded")
    })
    yield* Effect.forkScoped(Effect.repeat(poll, Schedule.spaced(interval)))
  })
