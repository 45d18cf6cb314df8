/**
 * Reading a request body with a size limit and a deadline: a body that is too large is answered 413
 * without being read to its end, and a client that trickles its body is cut off.
 *
 * @since 0.1.0
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { BadRequest, PayloadTooLarge, RequestTimeout } from "../Domain/Errors.js"

/**
 * @param limits the largest body accepted, and how long a client may take to send it once the
 *   headers are in
 */
export const readText = (
  limits: { readonly maxBodyBytes: number; readonly bodyTimeout: Duration.Duration }
): Effect.Effect<string, PayloadTooLarge | BadRequest | RequestTimeout, HttpServerRequest.HttpServerRequest> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const maxBytes = limits.maxBodyBytes
    const tooLarge = () =>
      new PayloadTooLarge({ message: `the body is larger than the ${maxBytes} bytes this proxy accepts` })
    const declared = Number(request.headers["content-length"])
    if (Number.isFinite(declared) && declared > maxBytes) return Effect.fail(tooLarge())
    const incoming = NodeHttpServerRequest.toIncomingMessage(request)
    const timeoutMillis = Duration.toMillis(limits.bodyTimeout)
    // The timer lives in the callback: a race with Effect.timeout would fork a fiber per request.
    return Effect.async<string, PayloadTooLarge | BadRequest | RequestTimeout>((resume) => {
      const chunks: Array<Buffer> = []
      let size = 0
      const detach = () => {
        clearTimeout(timer)
        incoming.off("data", onData)
        incoming.off("end", onEnd)
        incoming.off("error", onError)
      }
      const timer = setTimeout(() => {
        detach()
        // The rest of the body may still come: the 408 closes the connection (Connection: close).
        NodeHttpServerRequest.toServerResponse(request).shouldKeepAlive = false
        resume(Effect.fail(
          new RequestTimeout({ message: `the body did not arrive within ${Duration.format(limits.bodyTimeout)}` })
        ))
      }, timeoutMillis)
      const onData = (chunk: Buffer) => {
        size += chunk.length
        if (size > maxBytes) {
          detach()
          // Drain the rest so that the 413 can still be written on this connection.
          incoming.resume()
          resume(Effect.fail(tooLarge()))
          return
        }
        chunks.push(chunk)
      }
      const onEnd = () => {
        detach()
        resume(Effect.succeed(Buffer.concat(chunks).toString("utf8")))
      }
      const onError = (error: Error) => {
        detach()
        resume(Effect.fail(new BadRequest({ message: `the body could not be read: ${error.message}` })))
      }
      incoming.on("data", onData)
      incoming.on("end", onEnd)
      incoming.on("error", onError)
      return Effect.sync(detach)
    })
  })
