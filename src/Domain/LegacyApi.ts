/**
 * SRS's JSON API before WHIP (`/rtc/v1/publish/`, `/rtc/v1/play/`): the client's body
 * `{"api","tid","streamurl","clientip","sdp"}`, passed on to the origin, and the origin's answer
 * `{"code","sdp","sessionid",...}`, passed back. Fields the proxy does not read go through as they
 * are, in their order.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"

const Rest = Schema.Record({ key: Schema.String, value: Schema.Unknown })
const options = { propertyOrder: "original" } as const

/** The client's body: the stream is in `streamurl` (`webrtc://host/app/stream`), the offer in `sdp`. */
export const LegacyOffer = Schema.Struct({ streamurl: Schema.String, sdp: Schema.String }, Rest)
export type LegacyOffer = typeof LegacyOffer.Type

/** An origin's success answer (code 0, with the SDP answer). */
export const LegacyAnswer = Schema.Struct({ code: Schema.Literal(0), sdp: Schema.String }, Rest)
export type LegacyAnswer = typeof LegacyAnswer.Type

const decodeJson = Schema.decodeEither(Schema.parseJson())
const decodeOfferBody = Schema.decodeUnknownEither(LegacyOffer, options)

/** The client's body, or the sentence of a 400. */
export const decodeOffer = (text: string): Either.Either<LegacyOffer, string> =>
  Either.flatMap(
    Either.mapLeft(decodeJson(text), () => "the body is not JSON"),
    (body) => Either.mapLeft(decodeOfferBody(body), () => "the body needs \"streamurl\" and \"sdp\" strings")
  )

/** The body for the origin, as JSON text. */
export const encodeOffer: (offer: LegacyOffer) => string = Schema.encodeSync(Schema.parseJson(LegacyOffer), options)

const decodeAnswerJson = Schema.decodeUnknownEither(LegacyAnswer, options)

/**
 * The origin's answer: a success answer on the right, else (left) whatever else SRS said, to be
 * passed back as it is (its errors are 200 with a non-zero code). Fails when it is not JSON.
 */
export const decodeAnswer = (text: string): Either.Either<Either.Either<LegacyAnswer, unknown>, "not-json"> =>
  Either.map(
    Either.mapLeft(decodeJson(text), () => "not-json" as const),
    (json) => Either.mapLeft(decodeAnswerJson(json), () => json)
  )

/** A success answer as the JSON value sent back to the client. */
export const encodeAnswer: (answer: LegacyAnswer) => unknown = Schema.encodeSync(LegacyAnswer, options)
