/**
 * Error answers: every failure a client can see becomes its status with a JSON body
 * `{"code": ..., "message": ...}` (and Retry-After or Allow where they belong).
 *
 * @since 0.1.0
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { HttpFailure } from "../Domain/Errors.js"

export const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson(body, { status, headers })

/** The answer for a failure the client should see. */
export const failure = (error: HttpFailure): HttpServerResponse.HttpServerResponse => {
  const headers: Record<string, string> = {}
  if (error._tag === "ServiceUnavailable" || error._tag === "TooManyRequests") {
    headers["retry-after"] = String(Math.max(1, Math.ceil(Duration.toSeconds(error.retryAfter))))
  }
  if (error._tag === "MethodNotAllowed") headers["allow"] = error.allow
  return json(error.status, { code: error.code, message: error.message }, headers)
}

/**
 * Turns the typed failures of a handler into answers, and anything unexpected into a 500 that says
 * nothing of internals (the cause goes to the log).
 */
export const handle = <R>(
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, HttpFailure, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  handler.pipe(
    Effect.tapError((error) => error.status >= 500 ? Effect.logWarning(error.message) : Effect.void),
    Effect.catchAll((error) => Effect.succeed(failure(error))),
    Effect.catchAllDefect((defect) =>
      Effect.as(
        Effect.logError("unexpected failure while handling a request", Cause.die(defect)),
        json(500, { code: "internal", message: "internal error; see the proxy's log" })
      )
    )
  )
