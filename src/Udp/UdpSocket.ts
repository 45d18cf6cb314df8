/**
 * The proxy's WebRTC UDP port as a service. A client drops any reply that does not come from the
 * address it sent to, and Node cannot choose a datagram's source address (no IP_PKTINFO), so on a
 * wildcard host (`0.0.0.0`, `::`) the port is bound once per local address, kept in step with the
 * machine's addresses as they come and go, and every datagram is handed over with the socket it
 * arrived on: replies leave by that socket. Opening, sending and closing failures become one tagged
 * error with a reason.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as dgram from "node:dgram"
import { isIPv6 } from "node:net"
import { networkInterfaces } from "node:os"
import { ProxyConfig } from "../Config.js"

export class UdpSocketError extends Data.TaggedError("UdpSocketError")<{
  readonly reason: "Open" | "Read" | "Write" | "Close"
  readonly message: string
  readonly cause?: unknown
}> {}

/** A datagram and the local socket it arrived on, which is the one its reply must leave by. */
export type DatagramHandler = (msg: Buffer, rinfo: dgram.RemoteInfo, socket: dgram.Socket) => void

/** What the owner of the port (the relay) is told. Both calls are synchronous and must not throw. */
export interface Receiver {
  readonly datagram: DatagramHandler
  /** A local address went away: its socket is about to close, and nothing may be sent on it after. */
  readonly closing: (socket: dgram.Socket) => void
}

export interface UdpSocketShape {
  /** The host asked for (a wildcard when bound per address) and the port (the actual one when 0 was asked for). */
  readonly address: { readonly host: string; readonly port: number }
  /** The local addresses the port is bound on now, one socket each. */
  readonly boundAddresses: Effect.Effect<ReadonlyArray<string>>
  /** Hands every datagram to `receiver` until the scope ends; one receiver at a time. */
  readonly attach: (receiver: Receiver) => Effect.Effect<void, never, Scope.Scope>
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

/** Closes a socket now, detaching its readers; closing one already closed is no error. */
export const closeQuietly = (socket: dgram.Socket, done?: () => void) => {
  socket.removeAllListeners("message")
  try {
    socket.close(done)
  } catch {
    done?.() // already closed
  }
}

/** Opens a UDP socket that the caller closes (`closeQuietly`); `open` ties one to a scope. */
export const openUnscoped = (options: BindOptions): Effect.Effect<dgram.Socket, UdpSocketError> =>
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
      closeQuietly(socket)
      resume(Effect.fail(
        new UdpSocketError({
          reason: "Open",
          message: `cannot open UDP ${
            options.connect ? `to ${options.connect.host}:${options.connect.port}` : `on ${endpoint(options.host, options.port)}`
          }: ${(cause as Error)?.message ?? cause}`,
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
  })

/** Closes a socket and waits until it is closed. */
export const closeSocket = (socket: dgram.Socket): Effect.Effect<void> =>
  Effect.async<void>((resume) => closeQuietly(socket, () => resume(Effect.void)))

/**
 * Opens a UDP socket in the current scope. The socket is closed (and its listeners detached) when the
 * scope ends, however it ends.
 */
export const open = (options: BindOptions): Effect.Effect<dgram.Socket, UdpSocketError, Scope.Scope> =>
  Effect.acquireRelease(openUnscoped(options), closeSocket)

/** `host:port`, with an IPv6 host in brackets. */
export const endpoint = (host: string, port: number) => host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`

const isWildcard = (host: string) => host === "0.0.0.0" || host === "::"

/**
 * The machine's addresses a wildcard host stands for: IPv4 for `0.0.0.0`, both families for `::`.
 * IPv6 link-local addresses are left out: they need a zone, and no WebRTC candidate points at one.
 */
export const localAddresses = (wildcard: string): ReadonlyArray<string> => {
  const addresses: Array<string> = []
  for (const entries of Object.values(networkInterfaces())) {
    for (const entry of entries ?? []) {
      if (entry.family === "IPv4") addresses.push(entry.address)
      else if (wildcard === "::" && !/^fe[89ab]/i.test(entry.address)) addresses.push(entry.address)
    }
  }
  return [...new Set(addresses)]
}

/** How often a wildcard port looks for addresses that came or went (a floating IP moved here, a new interface). */
const RESCAN_EVERY = Duration.seconds(1)

/** Tries of a new ephemeral port when port 0 is asked for and the first port is taken on another address. */
const EPHEMERAL_TRIES = 10

interface PortOptions {
  readonly host: string
  readonly port: number
  readonly bufferBytes: number
  /** The addresses a wildcard host stands for now (read again at every rescan). */
  readonly addresses: Effect.Effect<ReadonlyArray<string>>
}

const isAddressInUse = (cause: unknown) => (cause as NodeJS.ErrnoException | undefined)?.code === "EADDRINUSE"

const make = (options: PortOptions): Effect.Effect<UdpSocketShape, UdpSocketError, Scope.Scope> =>
  Effect.gen(function*() {
    const supervise = yield* FiberSet.makeRuntime<never>()
    const sockets = new Map<string, dgram.Socket>()
    const noReceiver: Receiver = { datagram: () => {}, closing: () => {} }
    let receiver = noReceiver

    const bindOne = (host: string, port: number) =>
      Effect.tap(
        openUnscoped({
          host,
          port,
          bufferBytes: options.bufferBytes,
          ipLiteralDestinations: true,
          onError: (error) => supervise(Effect.logWarning(`WebRTC UDP port on ${host}: ${error.message}`))
        }),
        (socket) =>
          Effect.sync(() => {
            socket.on("message", (msg: Buffer, rinfo: dgram.RemoteInfo) => receiver.datagram(msg, rinfo, socket))
            sockets.set(host, socket)
          })
      )

    const closeAll = Effect.suspend(() => {
      const all = [...sockets.values()]
      sockets.clear()
      return Effect.forEach(all, closeSocket, { discard: true })
    })
    yield* Effect.addFinalizer(() => closeAll)

    // All or nothing: the port is usable once every current address has it.
    const bindAll = (hosts: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        let port = options.port
        for (const host of hosts) port = (yield* bindOne(host, port)).address().port
        return port
      }).pipe(
        Effect.onError(() => closeAll),
        // Port 0: the first address's ephemeral port may be taken on another; take another one.
        Effect.retry({ times: options.port === 0 ? EPHEMERAL_TRIES - 1 : 0, while: (error) => isAddressInUse(error.cause) })
      )

    const wildcard = isWildcard(options.host)
    const initial = wildcard ? yield* options.addresses : [options.host]
    // A machine without any address of the family: the wildcard itself is all there is.
    const port = yield* bindAll(initial.length === 0 ? [options.host] : initial)

    if (wildcard && initial.length > 0) {
      const warned = new Set<string>()
      const rescan = Effect.gen(function*() {
        const current = new Set(yield* options.addresses)
        for (const [host, socket] of sockets) {
          if (current.has(host)) continue
          sockets.delete(host)
          receiver.closing(socket)
          yield* closeSocket(socket)
          yield* Effect.logInfo(`WebRTC media: ${host} went away, no longer on udp://${endpoint(host, port)}`)
        }
        for (const host of current) {
          if (sockets.has(host)) continue
          const bound = yield* Effect.either(bindOne(host, port))
          if (Either.isRight(bound)) {
            warned.delete(host)
            yield* Effect.logInfo(`WebRTC media also on udp://${endpoint(host, port)} (a new local address)`)
          } else if (!warned.has(host)) {
            // Once per address: a port that another program holds stays held.
            warned.add(host)
            yield* Effect.logWarning(`WebRTC media: not on new local address ${host}: ${bound.left.message}`)
          }
        }
      })
      yield* rescan.pipe(Effect.delay(RESCAN_EVERY), Effect.forever, Effect.forkScoped)
    }

    return {
      address: { host: options.host, port },
      boundAddresses: Effect.sync(() => [...sockets.keys()]),
      attach: (next) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            receiver = next
          }),
          () =>
            Effect.sync(() => {
              receiver = noReceiver
            })
        )
    } satisfies UdpSocketShape
  })

/** The shared WebRTC port. */
export class UdpSocket extends Context.Tag("rtc-proxy/UdpSocket")<UdpSocket, UdpSocketShape>() {
  /**
   * Binds PROXY_WEBRTC_SERVER on its host (else PROXY_LISTEN_HOST); a wildcard host is bound once per
   * local address.
   */
  static readonly layer: Layer.Layer<UdpSocket, UdpSocketError, ProxyConfig> = Layer.scoped(
    UdpSocket,
    Effect.flatMap(ProxyConfig, (config) =>
      UdpSocket.make({
        host: Option.getOrElse(config.udpHost, () => config.listenHost),
        port: config.udpPort,
        bufferBytes: config.udpBufferBytes
      }))
  )

  /**
   * The port on `host`; for a wildcard host, `addresses` says which local addresses it stands for
   * (by default the machine's own, read again every second; tests give their own).
   */
  static readonly make = (options: {
    readonly host: string
    readonly port: number
    readonly bufferBytes: number
    readonly addresses?: Effect.Effect<ReadonlyArray<string>>
  }): Effect.Effect<UdpSocketShape, UdpSocketError, Scope.Scope> =>
    Effect.gen(function*() {
      const shape = yield* make({
        ...options,
        addresses: options.addresses ?? Effect.sync(() => localAddresses(options.host))
      })
      const bound = yield* shape.boundAddresses
      yield* Effect.logInfo(
        `WebRTC media on udp://${endpoint(shape.address.host, shape.address.port)}` +
          (isWildcard(shape.address.host) ? ` (${bound.join(", ")})` : "")
      )
      return shape
    })
}
