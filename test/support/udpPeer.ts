/**
 * A plain UDP socket on 127.0.0.1 for relay tests: a client of the shared port, or a fake ICE-lite
 * origin that records and (optionally) echoes what it receives.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as dgram from "node:dgram"

export interface Datagram {
  readonly msg: Buffer
  readonly address: string
  readonly port: number
}

export interface UdpPeer {
  readonly port: number
  /** Every datagram received, in order. */
  readonly received: Array<Datagram>
  readonly send: (msg: Uint8Array, port: number, host?: string) => void
  /** Sends to whoever sent the last datagram (an origin answering the relay). */
  readonly reply: (msg: Uint8Array) => void
  readonly close: Effect.Effect<void>
}

const closeSocket = (socket: dgram.Socket): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    try {
      socket.close(() => resume(Effect.void))
    } catch {
      resume(Effect.void) // already closed
    }
  })

/** Binds a UDP socket on 127.0.0.1 (or `host`; ephemeral port) for the current scope. */
export const udpPeer = (
  options: { readonly echo?: boolean; readonly host?: string } = {}
): Effect.Effect<UdpPeer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<dgram.Socket>((resume) => {
      const socket = dgram.createSocket(options.host?.includes(":") ? "udp6" : "udp4")
      socket.bind(0, options.host ?? "127.0.0.1", () => resume(Effect.succeed(socket)))
    }),
    closeSocket
  ).pipe(
    Effect.map((socket): UdpPeer => {
      const received: Array<Datagram> = []
      socket.on("message", (msg, rinfo) => {
        received.push({ msg, address: rinfo.address, port: rinfo.port })
        if (options.echo) socket.send(msg, rinfo.port, rinfo.address)
      })
      socket.on("error", () => {}) // ICMP unreachable after the relay closed: not a test failure
      return {
        port: socket.address().port,
        received,
        send: (msg, port, host = "127.0.0.1") => socket.send(msg, port, host),
        reply: (msg) => {
          const last = received[received.length - 1]
          if (last === undefined) throw new Error("reply: nothing received yet")
          socket.send(msg, last.port, last.address)
        },
        close: closeSocket(socket)
      }
    })
  )
