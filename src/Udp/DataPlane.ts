/**
 * Where a relay session's packets flow: the seam between relay sessions (lifetimes, in Relay.ts) and
 * the synchronous router that forwards their datagrams. With one worker the router runs on this
 * thread, on the shared UDP port (`inProcess`); with PROXY_RTC_WORKERS above 1 each worker thread
 * runs its own router on its own port (src/Workers/WorkerPool.ts). Nothing here runs per packet.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { isIPv6 } from "node:net"
import { OriginFailed } from "../Domain/Errors.js"
import type { IceKeys, SessionRecord } from "../Domain/Session.js"
import type { ClientPath } from "./ClientPath.js"
import { type DropReason, LiveSession, Router } from "./Router.js"
import { closeQuietly, openUnscoped as openSocket, type UdpSocketShape } from "./UdpSocket.js"

/** A relay session as the relay reads it (sweeps, views): its keys and counters. */
export interface PlaneSession {
  record: SessionRecord
  readonly ufragPairs: ReadonlyMap<string, string>
  readonly retiredUfrags: ReadonlyArray<string>
  readonly clientAddress: string
  readonly clientPort: number
  readonly packetsFromClient: number
  readonly packetsFromOrigin: number
  readonly bytesFromClient: number
  readonly bytesFromOrigin: number
  /** The relay's idle bookkeeping (see its sweeper). */
  idleMark: number
  quietSince: number
  originMark: number
  originQuietSince: number
}

/** What the data plane tells the relay; synchronous, must not block. */
export interface PlaneEvents {
  /** A binding request whose ufrag pair no session here holds, on worker `worker`'s port. */
  readonly unknownUfrag: (ufragPair: string, worker: number) => void
  /** The session's origin refused its packets (ICMP port unreachable): the origin's media port is gone. */
  readonly originLost: (id: string) => void
  /** The worker relaying the session died. */
  readonly workerLost: (id: string) => void
}

/** One data-plane worker, for `/api/v1/stats` and `/metrics`. */
export interface WorkerStats {
  readonly worker: number
  readonly port: number
  readonly up: boolean
  readonly sessions: number
  readonly clientAddresses: number
  readonly packetsRelayed: number
  readonly drops: number
  /** UDP sockets open in the worker (its port, and one per session), as of its last report. */
  readonly sockets: number
  /** The worker thread's own JavaScript heap, bytes in use and held, as of its last report. */
  readonly heapUsed: number
  readonly heapTotal: number
  /** Times this worker died and was replaced. */
  readonly restarts: number
}

export interface PlaneStats {
  readonly clientAddresses: number
  readonly ufragPairs: number
  readonly packetsRelayed: number
  readonly drops: Readonly<Record<DropReason, number>>
  /** Present with PROXY_RTC_WORKERS above 1. */
  readonly workers?: ReadonlyArray<WorkerStats>
}

/** Plain synchronous calls into the router, as the UDP port makes them; none of them throws. */
export interface ClientPaths {
  /** A packet from the client at `address` and `port` (see `tcpClientAddress`) that came over `path`. */
  readonly fromClient: (msg: Buffer, address: string, port: number, path: ClientPath) => void
  /** Whether a verified binding request has bound that client to a session. */
  readonly isBound: (address: string, port: number) => boolean
  /** `path` closed: its clients are forgotten, their sessions carry on (they may come back another way). */
  readonly forget: (path: ClientPath) => void
}

/** A session just registered: where it went, and a live session that held the same ufrag pair. */
export interface Registered {
  readonly session: PlaneSession
  readonly displaced: string | undefined
  readonly placement: Placement
}

/** Where a session was placed: its worker, and the UDP port written into its answer (PROXY_CANDIDATE_PORT + worker when set). */
export interface Placement {
  readonly worker: number
  readonly port: number
}

export interface DataPlaneShape {
  /** Live sessions by id. */
  readonly sessions: ReadonlyMap<string, PlaneSession>
  /**
   * Opens the session's origin socket and registers its keys, on `worker` when given (the one its
   * client reached) else the least-loaded one. The caller owns it from then on: `unregister` frees it.
   */
  readonly register: (record: SessionRecord, worker?: number) => Effect.Effect<Registered, OriginFailed>
  /** Unregisters a registered session and closes its origin socket; called once per session. */
  readonly unregister: (session: PlaneSession) => Effect.Effect<void>
  /** Where a live session is relayed; for an unknown one, where worker 0 would relay it. */
  readonly placementOf: (id: string) => Placement
  /**
   * ICE restart: the session also answers to a new ufrag pair, and takes the new keys (`ice`: what
   * the router needs to re-sign STUN when the proxy carried out the restart).
   */
  readonly learnKeys: (session: PlaneSession, keys: IceKeys) => void
  /** The data path of ICE-TCP connections (main thread): only with the router on this thread. */
  readonly clientPaths: ClientPaths
  /** The relay's store lookup for an unknown ufrag pair ended: the next binding request with it may ask again. */
  readonly lookupDone: (ufragPair: string) => void
  /** Counted on the relay's side (a lookup it could not start). */
  readonly countDrop: (reason: DropReason) => void
  /** Once per relay sweep: the consent clock ticks; counters are brought up to date. */
  readonly sweep: (consentTicks: number) => Effect.Effect<void>
  /** Whether the session's counters are as of the last sweep (a worker may have missed its report). */
  readonly countersCurrent: (session: PlaneSession) => boolean
  /** Brings the sessions' counters up to date (a no-op when the router runs on this thread). */
  readonly refresh: Effect.Effect<void>
  readonly stats: () => PlaneStats
}

/**
 * A session whose origin socket reports this many ICMP port unreachables (ECONNREFUSED) within
 * ORIGIN_REFUSED_WINDOW_MS has lost its origin: one alone may be a restart's moment.
 */
const ORIGIN_REFUSALS = 2
const ORIGIN_REFUSED_WINDOW_MS = 5000

/**
 * The error handler of a session's connected origin socket: every error is a counted send failure
 * (errors come from the kernel, not per packet), and repeated refusals call `onLost` once.
 */
export const originErrorHandler = (router: Router, onLost: () => void) => {
  let refusals = 0
  let firstRefusalAt = 0
  return (error: Error) => {
    router.countSendError()
    if ((error as NodeJS.ErrnoException).code !== "ECONNREFUSED") return
    const now = Date.now()
    if (refusals === 0 || now - firstRefusalAt > ORIGIN_REFUSED_WINDOW_MS) {
      refusals = 0
      firstRefusalAt = now
    }
    if (++refusals >= ORIGIN_REFUSALS) onLost()
  }
}

/**
 * Opens a session's socket connected to its origin; the caller closes it. The kernel's default
 * buffer (about 200 KB) holds under 100 full datagrams: a 10 ms pause of the event loop at 10,000
 * packets/s would overflow it. The size is a cap, not an allocation.
 */
export const openOriginSocket = (record: SessionRecord, bufferBytes: number, onError: (error: Error) => void) =>
  openSocket({
    host: isIPv6(record.originMedia.host) ? "::" : "0.0.0.0",
    port: 0,
    connect: record.originMedia,
    bufferBytes: Math.min(bufferBytes, 1024 * 1024),
    onError
  }).pipe(Effect.mapError((error) => new OriginFailed({ message: error.message })))

/** A session's record after an ICE restart: its newest keys (a new record brings its own translation). */
export const withKeys = (record: SessionRecord, keys: IceKeys): SessionRecord => ({
  ...record,
  ufragPair: keys.ufragPair,
  serverPwd: keys.serverPwd,
  ...(keys.ice === undefined ? {} : { ice: keys.ice })
})

/** The router on this thread, on the shared port `udp`: one worker, no thread (the default). */
export const inProcess = (
  udp: UdpSocketShape,
  options: { readonly bufferBytes: number; readonly candidatePort: number | undefined },
  events: PlaneEvents
): Effect.Effect<DataPlaneShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const router: Router = new Router((ufragPair) => events.unknownUfrag(ufragPair, 0))
    yield* udp.attach({
      datagram: (msg, rinfo, socket) => router.fromClient(msg, rinfo.address, rinfo.port, socket),
      closing: (socket) => router.forgetSocket(socket)
    })
    const placement: Placement = { worker: 0, port: options.candidatePort ?? udp.address.port }
    return {
      sessions: router.byId,
      register: (record) =>
        Effect.map(
          openOriginSocket(record, options.bufferBytes, originErrorHandler(router, () => events.originLost(record.id))),
          (backend): Registered => {
            const live = new LiveSession(record, backend)
            const displaced = router.add(live)
            return { session: live, displaced: displaced?.record.id, placement }
          }
        ),
      unregister: (session) =>
        Effect.sync(() => {
          const live = session as LiveSession
          router.remove(live)
          closeQuietly(live.backend)
        }),
      placementOf: () => placement,
      learnKeys: (session, keys) => {
        const live = session as LiveSession
        router.addUfrag(live, keys.ufragPair, keys.serverPwd)
        live.record = withKeys(live.record, keys)
      },
      clientPaths: {
        fromClient: (msg, address, port, path) => router.fromClient(msg, address, port, path),
        isBound: (address, port) => router.isBound(address, port),
        forget: (path) => router.forgetSocket(path)
      },
      lookupDone: () => {},
      countDrop: (reason) => {
        router.drops[reason]++
      },
      sweep: (consentTicks) => Effect.sync(() => router.expireConsent(consentTicks)),
      countersCurrent: () => true,
      refresh: Effect.void,
      stats: () => ({
        clientAddresses: router.addressCount,
        ufragPairs: router.ufragCount,
        packetsRelayed: router.packetsRelayed,
        drops: { ...router.drops }
      })
    } satisfies DataPlaneShape
  })
