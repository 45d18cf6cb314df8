/**
 * Signaling to origins: the offer, DELETE and PATCH forwarded to an origin's HTTP API under the
 * origin request timeout. Transport failures become 502 and silence 504, each with a sentence that
 * names the origin and what happened, never a stack or "EOF".
 *
 * The live layer speaks Node's HTTP directly, over keep-alive agents owned by the layer's scope: one
 * request costs a third or less of the CPU it takes through @effect/platform's HttpClient
 * (`bench/originClient.ts`: 0.3 ms against 1.1 ms over undici and 2 ms over node:http), and
 * signaling does one or two per session. `layerFromClient` runs over any HttpClient instead.
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as http from "node:http"
import * as https from "node:https"
import { ProxyConfig } from "../Config.js"
import { OriginFailed, OriginTimeout } from "../Domain/Errors.js"
import { whenTracing } from "../Span.js"
import { answeredOutcome, measureOrigin, type OriginOutcome, recordOrigin } from "./Metrics.js"

/** What the origin answered. Header names are lower-case. */
export interface OriginResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

export interface OriginRequest {
  readonly method: "GET" | "POST" | "DELETE" | "PATCH"
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body?: { readonly contentType: string; readonly text: string }
}

export interface OriginClientShape {
  readonly send: (request: OriginRequest) => Effect.Effect<OriginResponse, OriginFailed | OriginTimeout>
}

/** Longest origin answer read (an SDP answer is a few KiB). */
const MAX_ANSWER_BYTES = 1024 * 1024

const CLOSED = "closed the connection without answering"

// undici and Node put the useful code (ECONNREFUSED, UND_ERR_SOCKET) a few causes deep.
const describeCause = (cause: unknown): string => {
  const seen = new Set<unknown>()
  let current: unknown = cause
  while (current !== null && typeof current === "object" && !seen.has(current)) {
    seen.add(current)
    const code = (current as { code?: unknown }).code
    if (typeof code === "string") {
      switch (code) {
        case "ECONNREFUSED":
          return "connection refused"
        case "ECONNRESET":
        case "UND_ERR_SOCKET":
          return CLOSED
        case "EHOSTUNREACH":
        case "ENETUNREACH":
          return "host unreachable"
        case "ENOTFOUND":
        case "EAI_AGAIN":
          return "its name does not resolve"
        default:
          return code
      }
    }
    current = (current as { cause?: unknown }).cause
  }
  return "the request failed"
}

/** Keep-alive connection pools for origins, one per scheme. */
export interface OriginAgents {
  readonly http: http.Agent
  readonly https: https.Agent
}

const UNREACHABLE = new Set(["connection refused", "host unreachable"])

const failed = (where: string, cause: unknown) => {
  const description = describeCause(cause)
  return description === CLOSED
    ? new OriginFailed({ message: `${where} ${CLOSED}`, closedWithoutAnswer: true })
    : UNREACHABLE.has(description)
    ? new OriginFailed({ message: `${where}: ${description}`, unreachable: true })
    : new OriginFailed({ message: `${where}: ${description}` })
}

const timedOut = (where: string, timeout: Duration.Duration) =>
  new OriginTimeout({ message: `${where} did not answer within ${Duration.format(timeout)}` })

const flattenHeaders = (headers: http.IncomingHttpHeaders): Record<string, string> => {
  const flat: Record<string, string> = {}
  for (const name in headers) {
    const value = headers[name]
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(", ") : value
  }
  return flat
}

/**
 * Over Node's HTTP stack: the request is destroyed when the timeout fires or the caller is
 * interrupted (a client that hung up), and an answer is read up to MAX_ANSWER_BYTES. Each request is
 * timed into `rtc_proxy_origin_request_duration_seconds` from Node's callbacks, which costs the
 * fiber nothing (`measureOrigin` wraps the HttpClient-based one).
 */
export const makeNode = (agents: OriginAgents, timeout: Duration.Duration): OriginClientShape => {
  const timeoutMillis = Duration.toMillis(timeout)
  return {
    send: (request) =>
      Effect.async<OriginResponse, OriginFailed | OriginTimeout>((resume) => {
        const started = performance.now()
        let done = false
        const end = (outcome: OriginOutcome) => {
          done = true
          recordOrigin(request.method, outcome, performance.now() - started)
        }
        let target: URL
        try {
          target = new URL(request.url)
        } catch {
          end("failed")
          resume(Effect.fail(new OriginFailed({ message: `the origin's URL ${request.url} is not valid` })))
          return
        }
        const where = `origin ${target.host}`
        let outgoing: http.ClientRequest | undefined
        const fail = (error: OriginFailed | OriginTimeout) => {
          if (done) return
          end(error._tag === "OriginTimeout" ? "timeout" : "failed")
          clearTimeout(timer)
          resume(Effect.fail(error))
        }
        const timer = setTimeout(() => {
          fail(timedOut(where, timeout))
          outgoing?.destroy()
        }, timeoutMillis)
        const headers: Record<string, string> = { ...request.headers }
        if (request.body !== undefined) {
          headers["content-type"] = request.body.contentType
          headers["content-length"] = String(Buffer.byteLength(request.body.text))
        }
        const isHttps = target.protocol === "https:"
        try {
          outgoing = (isHttps ? https : http).request(target, {
            method: request.method,
            headers,
            agent: isHttps ? agents.https : agents.http
          }, (response) => {
            const chunks: Array<Buffer> = []
            let size = 0
            const answered = () => {
              if (done) return
              const status = response.statusCode ?? 502
              end(answeredOutcome(status))
              clearTimeout(timer)
              resume(Effect.succeed({
                status,
                headers: flattenHeaders(response.headers),
                body: Buffer.concat(chunks, Math.min(size, MAX_ANSWER_BYTES)).toString("utf8")
              }))
            }
            response.on("data", (chunk: Buffer) => {
              chunks.push(chunk)
              size += chunk.length
              // An answer past the limit is cut there; the rest is not read.
              if (size >= MAX_ANSWER_BYTES) {
                answered()
                response.destroy()
              }
            })
            response.on("end", answered)
            response.on("error", (error) => fail(failed(where, error)))
            response.on("aborted", () => fail(failed(where, { code: "ECONNRESET" })))
          })
        } catch (error) {
          fail(failed(where, error))
          return
        }
        outgoing.on("error", (error) => fail(failed(where, error)))
        outgoing.end(request.body?.text)
        return Effect.sync(() => {
          if (!done) end("interrupted")
          clearTimeout(timer)
          outgoing?.destroy()
        })
      }).pipe(whenTracing("OriginClient.send", { captureStackTrace: false }))
  }
}

/** Over any @effect/platform HttpClient. */
export const make = (client: HttpClient.HttpClient, timeout: Duration.Duration): OriginClientShape => ({
  send: Effect.fn("OriginClient.send")(function*(request: OriginRequest) {
    const target = new URL(request.url)
    const where = `origin ${target.host}`
    let outgoing = HttpClientRequest.make(request.method)(request.url).pipe(HttpClientRequest.setHeaders(request.headers))
    if (request.body !== undefined) {
      outgoing = HttpClientRequest.bodyText(outgoing, request.body.text, request.body.contentType)
    }
    return yield* client.execute(outgoing).pipe(
      Effect.flatMap((response) =>
        Effect.map(response.text, (body) => ({
          status: response.status,
          headers: response.headers as Readonly<Record<string, string>>,
          body: body.length > MAX_ANSWER_BYTES ? body.slice(0, MAX_ANSWER_BYTES) : body
        }))
      ),
      Effect.scoped,
      Effect.timeoutFail({ duration: timeout, onTimeout: () => timedOut(where, timeout) }),
      Effect.catchTags({
        RequestError: (error) => Effect.fail(failed(where, error.cause)),
        ResponseError: (error) => Effect.fail(failed(where, error.cause))
      })
    )
  })
})

/** Every request timed into `rtc_proxy_origin_request_duration_seconds`. */
const measured = (client: OriginClientShape): OriginClientShape => ({
  send: (request) => measureOrigin(request, client.send(request))
})

export class OriginClient extends Context.Tag("rtc-proxy/OriginClient")<OriginClient, OriginClientShape>() {
  /** Over any HttpClient, with the origin request timeout from the configuration. */
  static readonly layerFromClient: Layer.Layer<OriginClient, never, HttpClient.HttpClient | ProxyConfig> = Layer.effect(
    OriginClient,
    Effect.gen(function*() {
      const config = yield* ProxyConfig
      return measured(make(yield* HttpClient.HttpClient, config.originTimeout))
    })
  )

  /** Over Node's HTTP stack, with keep-alive agents that are destroyed when the layer's scope ends. */
  static readonly layer: Layer.Layer<OriginClient, never, ProxyConfig> = Layer.scoped(
    OriginClient,
    Effect.gen(function*() {
      const config = yield* ProxyConfig
      const agents = yield* Effect.acquireRelease(
        // An idle connection is closed after 4 s, before a server's usual 5 s keep-alive timeout can
        // close it under a request being sent (undici's default too).
        Effect.sync((): OriginAgents => ({
          http: new http.Agent({ keepAlive: true, scheduling: "lifo", timeout: 4000 }),
          https: new https.Agent({ keepAlive: true, scheduling: "lifo", timeout: 4000 })
        })),
        (agents) =>
          Effect.sync(() => {
            agents.http.destroy()
            agents.https.destroy()
          })
      )
      return makeNode(agents, config.originTimeout)
    })
  )
}
