/**
 * The proxy's single WebRTC UDP port as a service: bound when the layer is built, closed when its
 * scope ends. Opening, sending and closing failures become one tagged error with a reason.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as dgram from "node:dgram"
import { isIPv6 } from "node:net"
import { ProxyConfig } from "../Config.js"

export class UdpSocketError extends Data.TaggedError("UdpSocketError")<{
  readonly reason: "Open" | "Read" | "Write" | "Close"
  readonly message: string
  readonly cause?: unknown
}> {}

export interface UdpSocketShape {
  readonly socket: dgram.Socket
  /** The address it is bound to (the actual port when 0 was asked for). */
  readonly address: { readonly host: string; readonly port: number }
}

export interface BindOptions {
  readonly host: string
  readonly port: number
  /** Kernel receive/send buffer size; the kernel may grant less (net.core.rmem_max). */
  readonly bufferBytes?: number
  /** For sockets connected to one peer (a relay session's origin side). */
  readonly connect?: { readonly host: string; readonly port: number }
  /**
   * Errors after opening (a send that failed: ICMP unreachable, a full buffer). Attached for the
   * socket's whole life, so such an error can never become an uncaught exception.
   */
  readonly onError: (error: Error) => void
  /**
   * Every destination is an IP literal (replies to the address a datagram came from): the address
   * lookup that dgram does before each send is skipped. Node's default answers an IP literal on the
   * next tick, which costs a tick and a closure per packet.
   */
  readonly ipLiteralDestinations?: boolean
}

const literalLookup = (address: string, _options: unknown, callback: (error: null, address: string, family: number) => void) =>
  callback(null, address, address.includes(":") ? 6 : 4)

/**
 * Opens a UDP socket in the current scope. The socket is closed (and its listeners detached) when the
 * scope ends, however it ends.
 */
export const open = (options: BindOptions): Effect.Effect<dgram.Socket, UdpSocketError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<dgram.Socket, UdpSocketError>((resume) => {
      const family = isIPv6(options.connect?.host ?? options.host) ? "udp6" : "udp4"
      const socket = dgram.createSocket({
        type: family,
        ...(options.ipLiteralDestinations ? { lookup: literalLookup as unknown as dgram.SocketOptions["lookup"] } : {}),
        ...(options.bufferBytes === undefined
          ? {}
          : { recvBufferSize: options.bufferBytes, sendBufferSize: options.bufferBytes })
      })
      const fail = (cause: unknown) => {
        socket.removeAllListeners()
        try {
          socket.close()
        } catch {
          // already closed
        }
        resume(Effect.fail(
          new UdpSocketError({
            reason: "Open",
            message: `cannot open UDP ${options.connect ? `to ${options.connect.host}:${options.connect.port}` : `on ${options.host}:${options.port}`}: ${(cause as Error)?.message ?? cause}`,
            cause
          })
        ))
      }
      socket.once("error", fail)
      socket.bind(options.port, options.host, () => {
        if (options.connect === undefined) {
          socket.off("error", fail)
          socket.on("error", options.onError)
          resume(Effect.succeed(socket))
          return
        }
        // Node passes a lookup or connect failure to this callback although its types say otherwise.
        socket.connect(options.connect.port, options.connect.host, ((error?: Error) => {
          if (error) return fail(error)
          socket.off("error", fail)
          socket.on("error", options.onError)
          resume(Effect.succeed(socket))
        }) as () => void)
      })
    }),
    (socket) =>
      Effect.async<void>((resume) => {
        socket.removeAllListeners("message")
        try {
          socket.close(() => resume(Effect.void))
        } catch {
          resume(Effect.void) // already closed
        }
      })
  )

/** The shared WebRTC port. */
export class UdpSocket extends Context.Tag("rtc-proxy/UdpSocket")<UdpSocket, UdpSocketShape>() {
  /** Binds PROXY_LISTEN_HOST:PROXY_WEBRTC_SERVER. */
  static readonly layer: Layer.Layer<UdpSocket, UdpSocketError, ProxyConfig> = Layer.scoped(
    UdpSocket,
    Effect.gen(function*() {
      const config = yield* ProxyConfig
      const runtime = yield* Effect.runtime<never>()
      const socket = yield* open({
        host: config.listenHost,
        port: config.udpPort,
        bufferBytes: config.udpBufferBytes,
        ipLiteralDestinations: true,
        onError: (error) => Runtime.runFork(runtime)(Effect.logWarning(`WebRTC UDP port: ${error.message}`))
      })
      const bound = socket.address()
      yield* Effect.logInfo(`WebRTC media on udp://${bound.address}:${bound.port}`)
      return { socket, address: { host: bound.address, port: bound.port } }
    })
  )
}
