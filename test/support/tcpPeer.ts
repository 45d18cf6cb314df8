/**
 * A plain ICE-TCP client for tests (RFC 4571 frames over a TCP connection): what a browser behind a
 * UDP-blocking network does with the proxy's passive TCP candidate, driven by hand.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as net from "node:net"
import { encodeFrame, FrameDecoder } from "../../src/Tcp/Framing.js"

export interface TcpPeer {
  /** The client's own address and port (what the proxy sees). */
  readonly localAddress: string
  readonly localPort: number
  /** Every frame received, in order. */
  readonly received: Array<Buffer>
  /** Sends `msg` framed. */
  readonly send: (msg: Uint8Array) => void
  /** Writes bytes as they are, no framing (for junk). */
  readonly sendRaw: (bytes: Uint8Array) => void
  /** Resolves when the proxy closed the connection (or it failed). */
  readonly closed: Promise<void>
  readonly isClosed: () => boolean
  /** Stops reading: the proxy's writes queue up. */
  readonly pause: () => void
  readonly socket: net.Socket
}

/** Connects to `port` on `host` (127.0.0.1 by default) for the current scope. */
export const tcpPeer = (port: number, host = "127.0.0.1"): Effect.Effect<TcpPeer, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<net.Socket, Error>((resume) => {
      const socket = net.connect({ port, host })
      socket.once("error", (error) => resume(Effect.fail(error)))
      socket.once("connect", () => resume(Effect.succeed(socket)))
    }),
    (socket) => Effect.sync(() => socket.destroy())
  ).pipe(
    Effect.map((socket): TcpPeer => {
      const received: Array<Buffer> = []
      const decoder = new FrameDecoder(0xffff)
      let closed = false
      socket.on("data", (chunk: Buffer) => decoder.push(chunk, (frame) => received.push(Buffer.from(frame))))
      socket.on("error", () => {})
      return {
        localAddress: socket.localAddress!,
        localPort: socket.localPort!,
        received,
        send: (msg) => socket.write(encodeFrame(msg)),
        sendRaw: (bytes) => socket.write(bytes),
        closed: new Promise<void>((resolve) =>
          socket.once("close", () => {
            closed = true
            resolve()
          })
        ),
        isClosed: () => closed,
        pause: () => socket.pause(),
        socket
      }
    })
  )
