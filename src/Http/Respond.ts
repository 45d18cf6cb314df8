/**
 * What happens to a failed request besides its answer: errors know their own answers
 * (`HttpServerRespondable`, in Domain/Errors.ts); here they are logged (the origin's and the proxy's
 * own failures, 5xx), and anything unexpected becomes a 500 that says nothing of internals (the
 * cause goes to the log).
 *
 * @since 0.1.0
 */
import * as HttpServerRespondable from "@effect/platform/HttpServerRespondable"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { HttpFailure } from "../Domain/Errors.js"

const internalError = HttpServerResponse.unsafeJson(
  { code: "internal", message: "internal error; see the proxy's log" },
  { status: 500 }
)

/**
 * Logs what deserves it and answers every failure, so that no request ends without an answer. One
 * handler of the whole cause rather than three catch steps: it runs on every request that fails.
 */
export const handle = <R>(
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, HttpFailure, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  Effect.catchAllCause(handler, (cause) => {
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure)) {
      const error = failure.value
      const answer = HttpServerRespondable.toResponse(error)
      return error.status >= 500 ? Effect.zipRight(Effect.logWarning(error.message), answer) : answer
    }
    const defect = Cause.dieOption(cause)
    if (Option.isSome(defect)) {
      return Effect.as(Effect.logError("unexpected failure while handling a request", Cause.die(defect.value)), internalError)
    }
    // Interrupted (the client hung up): nothing to answer.
    return Effect.failCause(cause as Cause.Cause<never>)
  })
