/**
 * Signaling to origins: the offer, DELETE and PATCH forwarded to an origin's HTTP API under the
 * origin request timeout. Transport failures become 502 and silence 504, each with a sentence that
 * names the origin and what happened, never a stack or "EOF".
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { ProxyConfig } from "../Config.js"
import { OriginFailed, OriginTimeout } from "../Domain/Errors.js"

/** What the origin answered. Header names are lower-case. */
export interface OriginResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

export interface OriginRequest {
  readonly method: "POST" | "DELETE" | "PATCH"
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body?: { readonly contentType: string; readonly text: string }
}

export interface OriginClientShape {
  readonly send: (request: OriginRequest) => Effect.Effect<OriginResponse, OriginFailed | OriginTimeout>
}

/** Longest origin answer read (an SDP answer is a few KiB). */
const MAX_ANSWER_BYTES = 1024 * 1024

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
          return "it closed the connection without answering"
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
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () =>
          new OriginTimeout({ message: `${where} did not answer within ${Duration.format(timeout)}` })
      }),
      Effect.catchTags({
        RequestError: (error) =>
          Effect.fail(new OriginFailed({ message: `${where}: ${describeCause(error.cause)}` })),
        ResponseError: (error) =>
          Effect.fail(new OriginFailed({ message: `${where}: ${describeCause(error.cause)}` }))
      })
    )
  })
})

export class OriginClient extends Context.Tag("rtc-proxy/OriginClient")<OriginClient, OriginClientShape>() {
  /** Over any HttpClient, with the origin request timeout from the configuration. */
  static readonly layerFromClient: Layer.Layer<OriginClient, never, HttpClient.HttpClient | ProxyConfig> = Layer.effect(
    OriginClient,
    Effect.gen(function*() {
      const config = yield* ProxyConfig
      return make(yield* HttpClient.HttpClient, config.originTimeout)
    })
  )

  /** Over Node's HTTP stack (undici). */
  static readonly layer: Layer.Layer<OriginClient, never, ProxyConfig> = OriginClient.layerFromClient.pipe(
    Layer.provide(NodeHttpClient.layerUndici)
  )
}
