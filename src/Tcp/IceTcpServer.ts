/**
 * ICE-TCP (RFC 6544) on one TCP port, for clients whose networks block UDP: answers then also carry a
 * passive TCP candidate, the client connects, and each connection carries RFC 4571 frames of STUN,
 * DTLS and SRTP. A connection is nobody's until its first binding request verifies for a session (the
 * same USERNAME and MESSAGE-INTEGRITY rule as a datagram from a new address); from then on it is one
 * of that session's client paths in the router, and the session's replies come back over it, framed.
 * The session's origin side is unchanged: its UDP socket. Plain callbacks on the data path, as on the
 * UDP port; the listener, the sweeper and the connections' lifetimes belong to the layer's scope.
 *
 * Bounded: connections at once (past the cap a new one is closed at once), a frame's size, what a
 * connection may hold back (one partial frame) and queue for writing (past it replies are dropped,
 * counted), the time to a verified binding request (slow-loris) and the time without a frame (idle).
 * Junk closes that connection only.
 *
 * @since 0.2.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as net from "node:net"
import { ProxyConfig } from "../Config.js"
import { type ClientPath, tcpClientAddress } from "../Udp/ClientPath.js"
import { type ClientPaths, Relay } from "../Udp/Relay.js"
import { endpoint } from "../Udp/UdpSocket.js"
import { encodeFrame, FrameDecoder } from "./Framing.js"

export class IceTcpError extends Data.TaggedError("IceTcpError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/** Why the proxy closed an ICE-TCP connection (or the client did); each is counted. */
export const CloseReasons = [
  "client",
  "oversized",
  "junk",
  "handshake-timeout",
  "idle",
  "session-ended",
  "shutdown"
] as const
export type CloseReason = typeof CloseReasons[number]

export interface IceTcpStats {
  /** Connections open now, and of those the ones a session has verified. */
  readonly connections: number
  readonly verified: number
  readonly accepted: number
  /** Closed at once: the connection cap was reached. */
  readonly refused: number
  readonly closed: Readonly<Record<CloseReason, number>>
  /** Replies dropped because the connection's write queue was over its limit (a client that does not read). */
  readonly backpressureDrops: number
}

export interface IceTcpServerShape {
  /** The port bound (the actual one when 0 was asked for); none: ICE-TCP is off. */
  readonly port: Option.Option<number>
  readonly stats: Effect.Effect<IceTcpStats>
}

/** WebRTC keeps its packets under the path MTU; a frame much larger is not a client's packet. */
export const MAX_FRAME_BYTES = 4096

/** Replies queued on a connection beyond this are dropped: it holds a few hundred packets. */
export const WRITE_QUEUE_LIMIT_BYTES = 256 * 1024

/** Frames a connection may send before one of them verifies; an ICE agent retransmits a handful. */
const MAX_FRAMES_BEFORE_BINDING = 16

interface Counters {
  accepted: number
  refused: number
  backpressureDrops: number
  readonly closed: Record<CloseReason, number>
}

/** One client connection: a client path once verified. Plain code, called on every frame. */
class IceTcpConnection implements ClientPath {
  private readonly decoder = new FrameDecoder(MAX_FRAME_BYTES)
  private framesBeforeBinding = 0
  verified = false
  closed = false
  /** Frames received, and the sweeper's marks (-1: not seen by the sweeper yet). */
  frames = 0
  idleMark = -1
  quietSince = 0
  openedAt = -1

  constructor(
    private readonly socket: net.Socket,
    /** The router's key for this client (see `tcpClientAddress`) and its port. */
    readonly address: string,
    readonly port: number,
    private readonly paths: ClientPaths,
    private readonly counters: Counters,
    private readonly onClose: (connection: IceTcpConnection) => void
  ) {
    socket.setNoDelay(true)
    socket.on("data", (chunk: Buffer) => {
      if (this.decoder.push(chunk, this.onFrame) !== undefined) this.close("oversized")
    })
    socket.on("error", () => {}) // 'close' follows, and says what there is to say
    socket.on("close", () => this.close("client"))
  }

  private readonly onFrame = (frame: Buffer): void => {
    if (this.closed) return
    this.frames++
    if (this.verified) return this.paths.fromClient(frame, this.address, this.port, this)
    // RFC 7983: before a binding request verifies, nothing but STUN belongs on the connection.
    if (frame[0]! > 3 || ++this.framesBeforeBinding > MAX_FRAMES_BEFORE_BINDING) return this.close("junk")
    this.paths.fromClient(frame, this.address, this.port, this)
    this.verified = this.paths.isBound(this.address, this.port)
  }

  // What the origin sends is a UDP datagram (at most 65,507 bytes): it always fits in one frame.
  send(msg: Buffer): void {
    if (this.closed) return
    if (this.socket.writableLength > WRITE_QUEUE_LIMIT_BYTES) {
      this.counters.backpressureDrops++
      return
    }
    this.socket.write(encodeFrame(msg))
  }

  /** The router no longer sends by this connection (its session ended or lost consent): it closes. */
  readonly released = (): void => this.close("session-ended")

  close(reason: CloseReason): void {
    if (this.closed) return
    this.closed = true
    this.counters.closed[reason]++
    this.socket.destroy()
    // A release came from the router itself, which has already let go of this path; at shutdown the
    // relay's sessions end next anyway.
    if (this.verified && reason !== "session-ended" && reason !== "shutdown") this.paths.forget(this)
    this.onClose(this)
  }
}

/** Listens; from then on errors are failed accepts, handed to `onAcceptError`. */
const listen = (server: net.Server, host: string, port: number, onAcceptError: (error: Error) => void) =>
  Effect.async<number, IceTcpError>((resume) => {
    const fail = (cause: Error) =>
      resume(Effect.fail(new IceTcpError({ message: `cannot listen for ICE-TCP on tcp://${endpoint(host, port)}: ${cause.message}`, cause })))
    server.once("error", fail)
    // On `::` Node accepts IPv4 too (IPv4-mapped), so one wildcard listener serves both families. A
    // deep accept queue (the kernel caps it at somaxconn) lets a burst of connections wait to be
    // counted and refused instead of overflowing, which leaves clients retrying their handshakes.
    server.listen({ host, port, backlog: 4096 }, () => {
      server.off("error", fail)
      server.on("error", onAcceptError)
      resume(Effect.succeed((server.address() as net.AddressInfo).port))
    })
  })

const make = (options: {
  readonly host: string
  readonly port: number
  readonly maxConnections: number
  readonly handshakeTimeout: Duration.Duration
  readonly idleTimeout: Duration.Duration
}) =>
  Effect.gen(function*() {
    const relay = yield* Relay
    const connections = new Set<IceTcpConnection>()
    const counters: Counters = {
      accepted: 0,
      refused: 0,
      backpressureDrops: 0,
      closed: Object.fromEntries(CloseReasons.map((reason) => [reason, 0])) as Record<CloseReason, number>
    }
    const forgetConnection = (connection: IceTcpConnection) => connections.delete(connection)

    const server = net.createServer()
    server.on("connection", (socket) => {
      const remote = socket.remoteAddress
      if (connections.size >= options.maxConnections || remote === undefined) {
        counters.refused++
        socket.on("error", () => {})
        socket.destroy()
        return
      }
      counters.accepted++
      const address = tcpClientAddress(remote.replace(/^::ffff:/, ""))
      connections.add(new IceTcpConnection(socket, address, socket.remotePort ?? 0, relay.clientPaths, counters, forgetConnection))
    })
    // A failed accept (EMFILE: out of descriptors) leaves the server serving. Said at most every 10 s,
    // so that a flood does not flood the log as well.
    const supervise = yield* FiberSet.makeRuntime<never>()
    let acceptErrors = 0
    let lastWarned = 0
    const onAcceptError = (error: Error) => {
      acceptErrors++
      const now = Date.now()
      if (now - lastWarned < 10_000) return
      lastWarned = now
      supervise(Effect.logWarning(`ICE-TCP: cannot accept connections (${acceptErrors} so far): ${error.message}`))
    }

    const port = yield* Effect.acquireRelease(listen(server, options.host, options.port, onAcceptError), () =>
      Effect.async<void>((resume) => {
        for (const connection of [...connections]) connection.close("shutdown")
        server.close(() => resume(Effect.void))
      }))

    // One sweeper for every connection: slow-loris and idle timeouts.
    const handshakeMillis = Duration.toMillis(options.handshakeTimeout)
    const idleMillis = Duration.toMillis(options.idleTimeout)
    const sweepEvery = Duration.millis(Math.min(1000, Math.max(50, Math.min(handshakeMillis, idleMillis) / 4)))
    const sweep = Effect.map(Clock.currentTimeMillis, (now) => {
      for (const connection of [...connections]) {
        if (connection.openedAt === -1) connection.openedAt = now
        if (!connection.verified && now - connection.openedAt >= handshakeMillis) {
          connection.close("handshake-timeout")
        } else if (connection.idleMark !== connection.frames) {
          connection.idleMark = connection.frames
          connection.quietSince = now
        } else if (now - connection.quietSince >= idleMillis) {
          connection.close("idle")
        }
      }
    })
    yield* sweep.pipe(Effect.delay(sweepEvery), Effect.forever, Effect.forkScoped, Effect.interruptible)
    yield* Effect.logInfo(`WebRTC media also over ICE-TCP on tcp://${endpoint(options.host, port)}`)

    return {
      port: Option.some(port),
      stats: Effect.sync((): IceTcpStats => {
        let verified = 0
        for (const connection of connections) if (connection.verified) verified++
        return {
          connections: connections.size,
          verified,
          accepted: counters.accepted,
          refused: counters.refused,
          closed: { ...counters.closed },
          backpressureDrops: counters.backpressureDrops
        }
      })
    } satisfies IceTcpServerShape
  })

const off: IceTcpServerShape = {
  port: Option.none(),
  stats: Effect.succeed({
    connections: 0,
    verified: 0,
    accepted: 0,
    refused: 0,
    closed: Object.fromEntries(CloseReasons.map((reason) => [reason, 0])) as Record<CloseReason, number>,
    backpressureDrops: 0
  })
}

/** The ICE-TCP port, when PROXY_WEBRTC_TCP is set. */
export class IceTcpServer extends Context.Tag("rtc-proxy/IceTcpServer")<IceTcpServer, IceTcpServerShape>() {
  /**
   * Listens on PROXY_WEBRTC_TCP (its host, else PROXY_LISTEN_HOST) and hands verified connections'
   * frames to the relay's router; without the variable, ICE-TCP is off and nothing listens.
   */
  static readonly layer: Layer.Layer<IceTcpServer, IceTcpError, ProxyConfig | Relay> = Layer.scoped(
    IceTcpServer,
    Effect.gen(function*() {
      const config = yield* ProxyConfig
      if (Option.isNone(config.iceTcp)) return off
      return yield* make({
        host: Option.getOrElse(config.iceTcp.value.host, () => config.listenHost),
        port: config.iceTcp.value.port,
        maxConnections: config.iceTcpMaxConnections,
        handshakeTimeout: config.iceTcpHandshakeTimeout,
        idleTimeout: config.relayIdleTimeout
      })
    })
  )
}
