/**
 * One plain HTTP request (node:http or node:https, no fetch rules on headers), as a Promise for
 * scripts and werift peers and as an Effect for Effect tests. Without an `agent`, each request has
 * its own connection, so no pooled keep-alive connection outlives a test.
 */
import * as Effect from "effect/Effect"
import * as http from "node:http"
import * as https from "node:https"

export interface HttpResult {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

export interface HttpOptions {
  readonly method?: string
  readonly headers?: Record<string, string>
  readonly body?: string
  /** Send the body chunked, without Content-Length. */
  readonly chunked?: boolean
  /** A keep-alive agent; absent or false: a new connection. */
  readonly agent?: http.Agent | false
  /** No answer by then fails the request (default 10 s). */
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
  /** For https: the certificate(s) to trust (PEM), instead of the system's. */
  readonly ca?: string
}

/**
 * A keep-alive connection that the server closed (idle timeout) just as it was reused fails before
 * the request reached the server: that request is sent once more on a new connection, as Node's
 * documentation advises (`request.reusedSocket`).
 */
export const httpRequestPromise = (url: string, options: HttpOptions = {}): Promise<HttpResult> =>
  requestOnce(url, options).catch((error: Error & { reusedSocket?: boolean; code?: string }) =>
    error.reusedSocket === true && (error.code === "ECONNRESET" || /socket hang up/.test(error.message))
      ? requestOnce(url, { ...options, agent: false })
      : Promise.reject(error)
  )

const requestOnce = (url: string, options: HttpOptions): Promise<HttpResult> =>
  new Promise((resolve, reject) => {
    const target = new URL(url)
    const method = options.method ?? "GET"
    const headers: Record<string, string> = { ...options.headers }
    if (!options.chunked && options.body !== undefined) headers["content-length"] = String(Buffer.byteLength(options.body))
    const lib = target.protocol === "https:" ? https : http
    const req = lib.request(target, {
      method,
      headers,
      agent: options.agent ?? false,
      ...(options.ca === undefined ? {} : { ca: options.ca }),
      ...(options.signal === undefined ? {} : { signal: options.signal })
    })
    const timeoutMs = options.timeoutMs ?? 10_000
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url}: no answer in ${timeoutMs / 1000} s`)))
    req.on("error", (error) => reject(Object.assign(error, { reusedSocket: req.reusedSocket })))
    req.on("response", (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("error", reject)
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }))
    })
    if (options.chunked && options.body !== undefined) req.write(options.body)
    req.end(options.chunked ? undefined : options.body)
  })

/** The request as an Effect: a failure is a defect; interrupting it destroys the request. */
export const httpRequest = (url: string, options: HttpOptions = {}): Effect.Effect<HttpResult> =>
  Effect.promise((signal) => httpRequestPromise(url, { ...options, signal }))
