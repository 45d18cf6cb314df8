/**
 * Every error a client of the proxy can see. Each carries its HTTP status and a stable code, and
 * knows its own answer (`HttpServerRespondable`): `{"code": ..., "message": ...}` as JSON, with
 * Retry-After or Allow where they belong. Clear, and without internals.
 *
 * @since 0.1.0
 */
import * as HttpServerRespondable from "@effect/platform/HttpServerRespondable"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/** The answer an error gives: its status, `{code, message}`, and the headers its fields call for. */
const answer = (error: {
  readonly status: number
  readonly code: string
  readonly message: string
  readonly retryAfter?: Duration.Duration
  readonly allow?: string
}) => {
  const headers: Record<string, string> = {}
  if (error.retryAfter !== undefined) {
    headers["retry-after"] = String(Math.max(1, Math.ceil(Duration.toSeconds(error.retryAfter))))
  }
  if (error.allow !== undefined) headers["allow"] = error.allow
  // RFC 9110 section 15.5.2: a 401 names the scheme it takes (RFC 6750's Bearer).
  if (error.status === 401) headers["www-authenticate"] = "Bearer realm=\"rtc-proxy\""
  return Effect.succeed(
    HttpServerResponse.unsafeJson({ code: error.code, message: error.message }, { status: error.status, headers })
  )
}

/** 400: the request (SDP, query, JSON) cannot be used. */
export class BadRequest extends Data.TaggedError("BadRequest")<{ readonly message: string }> {
  readonly status = 400
  readonly code = "bad-request";
  [HttpServerRespondable.symbol]() {
    return answer(this)
  }
}

/** 401: a bearer token was required and not given or wrong. */
export class Unauthorized extends Data.TaggedError("Unauthorized")<{ readonly message: string }> {
  readonly status = 401
  readonly code = "unauthorized";
  [HttpServerRespondable.symbol]() {
    return answer(this)
  }
}

/** 404: no such session (or route). */
export class NotFound extends Data.TaggedError("NotFound")<{ readonly message: string }> {
  readonly status = 404
  readonly code = "not-found";
  [HttpServerRespondable.symbol]() {
    return answer(this)
  }
}

/** 405 */
export class MethodNotAllowed extends Data.TaggedError("MethodNotAllowed")<{
  readonly message: string
  readonly allow: string
}> {
  readonly status = 405
  readonly code = "method-not-allowed";
  [HttpServerRespondable.symbol]() {
    return answer(this)
  }
}

/** 408: the client took too long to send its request body. */
export class RequestTimeout extends Data.TaggedError("RequestTimeout")<{ readonly message: string }> {
  readonly status = 408
  readonly code = "request-timeout";
  [HttpServerRespondable.symbol]() {
    return answer(this)
  }
}

/**
 * 409: the request conflicts with what the stream already has (a second publisher: SRS would close
 * the connection without an answer).
 */
export class Conflict extends Data.TaggedError("Conflict")<{ readonly message: string }> {
  readonly status = 409
  readonly code = "conflict";
  [HttpServerRespondable.symbol]() {
    return answer(this)
  }
}

/** 412: If-Match names an entity-tag that is not the session's (RFC 9725 section 4.3.1). */
export class PreconditionFailed extends Data.TaggedError("PreconditionFailed")<{ readonly message: string }> {
  readonly status = 412
  readonly code = "precondition-failed";
  [HttpServerRespondable.symbol]() {
    return answer(this)
  }
}

/** 422: a kind of PATCH this session does not support (RFC 9725 section 4.3.1). */
export class UnprocessableContent extends Data.TaggedError("UnprocessableContent")<{ readonly message: string }> {
  readonly status = 422
  readonly code = "unprocessable-content";
  [HttpServerRespondable.symbol]() {
    return answer(this)
  }
}

/** 428: an ICE restart without If-Match (RFC 9725 section 4.3.3). */
export class PreconditionRequired extends Data.TaggedError("PreconditionRequired")<{ readonly message: string }> {
  readonly status = 428
  readonly code = "precondition-required";
  [HttpServerRespondable.symbol]() {
    return answer(this)
  }
}

/** 413 */
export class PayloadTooLarge extends Data.TaggedError("PayloadTooLarge")<{ readonly message: string }> {
  readonly status = 413
  readonly code = "payload-too-large";
  [HttpServerRespondable.symbol]() {
    return answer(this)
  }
}

/** 415 */
export class UnsupportedMediaType extends Data.TaggedError("UnsupportedMediaType")<{ readonly message: string }> {
  readonly status = 415
  readonly code = "unsupported-media-type";
  [HttpServerRespondable.symbol]() {
    return answer(this)
  }
}

/** 429: this client sent too many state-changing requests; retry later. */
export class TooManyRequests extends Data.TaggedError("TooManyRequests")<{
  readonly message: string
  readonly retryAfter: Duration.Duration
}> {
  readonly status = 429
  readonly code = "too-many-requests";
  [HttpServerRespondable.symbol]() {
    return answer(this)
  }
}

/** 503: no healthy origin can take the stream (or the proxy is full); try again later. */
export class ServiceUnavailable extends Data.TaggedError("ServiceUnavailable")<{
  readonly message: string
  readonly retryAfter: Duration.Duration
}> {
  readonly status = 503
  readonly code = "unavailable";
  [HttpServerRespondable.symbol]() {
    return answer(this)
  }
}

/** 503: the proxies' shared state cannot be used now (the details are for the log only). */
export const sharedStateUnavailable = (): ServiceUnavailable =>
  new ServiceUnavailable({
    message: "the proxies' shared state (Redis) is unavailable; try again shortly",
    retryAfter: Duration.seconds(5)
  })

/**
 * At the boundary of a service on shared state (Redis): its failure is logged with the details and
 * becomes the 503 a client sees, which says nothing of internals.
 */
export const orSharedStateUnavailable = <A, E extends { readonly message: string }, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, ServiceUnavailable, R> =>
  effect.pipe(
    Effect.tapError((error) => Effect.logWarning(error.message)),
    Effect.mapError(sharedStateUnavailable)
  )

/** 502: the origin refused, failed, closed the connection, or answered something unusable. */
export class OriginFailed extends Data.TaggedError("OriginFailed")<{
  readonly message: string
  /** The origin closed the connection without an HTTP answer (what SRS does to an offer it refuses). */
  readonly closedWithoutAnswer?: boolean
  /**
   * The origin could not be reached at all (connection refused, host or network unreachable): a
   * health signal, unlike an answer it gave or a hang-up.
   */
  readonly unreachable?: boolean
}> {
  readonly status = 502
  readonly code = "origin-failed";
  [HttpServerRespondable.symbol]() {
    return answer(this)
  }
}

/** 504: the origin did not answer within the origin request timeout. */
export class OriginTimeout extends Data.TaggedError("OriginTimeout")<{ readonly message: string }> {
  readonly status = 504
  readonly code = "origin-timeout";
  [HttpServerRespondable.symbol]() {
    return answer(this)
  }
}

/**
 * A signaling failure that says the origin is down rather than that it refused this request: it
 * could not be reached, or it did not answer in time. A hang-up (`closedWithoutAnswer`) is not one:
 * SRS hangs up on a second publisher and on an offer it cannot parse.
 */
export const isOriginDown = (error: unknown): error is OriginFailed | OriginTimeout =>
  error instanceof OriginTimeout || (error instanceof OriginFailed && error.unreachable === true)

/** Everything that becomes an HTTP error answer. */
export type HttpFailure =
  | BadRequest
  | Unauthorized
  | NotFound
  | MethodNotAllowed
  | Conflict
  | PreconditionFailed
  | PayloadTooLarge
  | UnprocessableContent
  | PreconditionRequired
  | RequestTimeout
  | UnsupportedMediaType
  | TooManyRequests
  | ServiceUnavailable
  | OriginFailed
  | OriginTimeout
