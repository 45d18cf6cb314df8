/**
 * Relay sessions: each one opened by its request (an origin socket, keys registered in the data
 * plane), a fiber that waits for its end, and freed once (socket closed, keys gone, record removed)
 * when it ends: on DELETE, on idle timeout, when displaced, when its origin or its worker is lost,
 * or at shutdown.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as FiberSet from "effect/FiberSet"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import { ProxyConfig } from "../Config.js"
import { OriginFailed, type ServiceUnavailable } from "../Domain/Errors.js"
import type { OriginId } from "../Domain/Origin.js"
import { type IceKeys, type SessionEndReason, type SessionId, type SessionRecord, UfragPair } from "../Domain/Session.js"
import type { StreamKey } from "../Domain/StreamUrl.js"
import { LoadBalancer } from "../LoadBalancer/LoadBalancer.js"
import { SessionStore } from "../Session/SessionStore.js"
import { whenTracing } from "../Span.js"
import { WorkerPool } from "../Workers/WorkerPool.js"
import { describeClient } from "./ClientPath.js"
import * as DataPlane from "./DataPlane.js"
import type { DropReason } from "./Router.js"
import { endpoint, UdpSocket } from "./UdpSocket.js"

/** A live session as the admin view and tests see it. */
export interface RelaySessionView {
  readonly id: string
  readonly kind: SessionRecord["kind"]
  readonly streamUrl: string
  readonly originId: string
  readonly ufragPairs: ReadonlyArray<string>
  readonly client: string | undefined
  readonly originMedia: string
  /** Epoch milliseconds the session was signaled. */
  readonly createdAt: number
  readonly packetsFromClient: number
  readonly packetsFromOrigin: number
  readonly bytesFromClient: number
  readonly bytesFromOrigin: number
}

export interface RelayStats {
  readonly sessions: number
  readonly clientAddresses: number
  readonly ufragPairs: number
  readonly packetsRelayed: number
  readonly drops: Readonly<Record<DropReason, number>>
  readonly ended: Readonly<Record<SessionEndReason, number>>
  /** Datagrams and bytes relayed each way, by live and ended sessions. */
  readonly relayed: RelayedCounts
  /** Each data-plane worker, with PROXY_RTC_WORKERS above 1 (the figures above are their sums). */
  readonly workers?: ReadonlyArray<DataPlane.WorkerStats>
}

export interface RelayedCounts {
  readonly packetsFromClient: number
  readonly packetsFromOrigin: number
  readonly bytesFromClient: number
  readonly bytesFromOrigin: number
}

export interface RelayShape {
  /**
   * Starts relaying a session: stores its record, opens its origin socket and registers its keys.
   * Returns once packets can flow, with the worker it went to and the UDP port for its answer;
   * fails when the origin socket cannot be opened, or when a shared session store cannot take the
   * record.
   */
  readonly open: (record: SessionRecord) => Effect.Effect<DataPlane.Placement, OriginFailed | ServiceUnavailable>
  /** Ends a live session and waits until it is freed; false when this proxy relays no such session. */
  readonly close: (id: string, reason: SessionEndReason) => Effect.Effect<boolean>
  /**
   * ICE restart: the session also answers to a new ufrag pair (with its server password, and the ICE
   * state that says how to translate its STUN when the proxy carried the restart out itself); the old
   * pair keeps working until the first binding request with the new one arrives. The store gets the
   * new pair too, so that another proxy relaying the session learns it. False when neither this
   * proxy nor the store knows the session; fails when this proxy does not relay it and the store
   * cannot be written.
   */
  readonly rekey: (
    id: SessionId,
    keys: IceKeys
  ) => Effect.Effect<boolean, ServiceUnavailable>
  /** Where a session is relayed (its worker and answer port); for one not relayed here, worker 0's. */
  readonly placementOf: (id: string) => Effect.Effect<DataPlane.Placement>
  readonly sessions: Effect.Effect<ReadonlyArray<RelaySessionView>>
  /** The data path for client transports beside the shared UDP port (ICE-TCP). */
  readonly clientPaths: DataPlane.ClientPaths
  /** How many sessions it relays now (cheap: for a check on every offer). */
  readonly activeSessions: Effect.Effect<number>
  readonly stats: Effect.Effect<RelayStats>
}

export type { ClientPaths } from "./DataPlane.js"

export class Relay extends Context.Tag("rtc-proxy/Relay")<Relay, RelayShape>() {
  /** On the shared UDP port, or on the workers' ports when a WorkerPool is provided (PROXY_RTC_WORKERS). */
  static readonly layer: Layer.Layer<Relay, never, ProxyConfig | UdpSocket | SessionStore | LoadBalancer> = Layer.scoped(
    Relay,
    Effect.suspend(() => make)
  )
}

const sessionsEnded = Metric.counter("rtc_proxy_sessions_ended_total", {
  description: "Relay sessions ended, by reason and kind",
  incremental: true
})
const sessionsOpened = Metric.counter("rtc_proxy_sessions_opened_total", {
  description: "Relay sessions opened, by kind",
  incremental: true
})

const addRelayed = (
  total: { -readonly [K in keyof RelayedCounts]: number },
  session: RelayedCounts
): { -readonly [K in keyof RelayedCounts]: number } => {
  total.packetsFromClient += session.packetsFromClient
  total.packetsFromOrigin += session.packetsFromOrigin
  total.bytesFromClient += session.bytesFromClient
  total.bytesFromOrigin += session.bytesFromOrigin
  return total
}

/** A session of an origin marked down ends once nothing came from that origin for this long. */
const ORIGIN_QUIET_MS = 3000

/** A live session and its lifetime: the fiber that waits for its end, and whether it was freed. */
interface SessionFiber {
  readonly live: DataPlane.PlaneSession
  readonly end: Deferred.Deferred<SessionEndReason>
  /**
   * What its fiber logs with: the annotations of whoever opened it (a request's client) and the
   * session's id, stream and kind.
   */
  readonly annotations: HashMap.HashMap<string, unknown>
  finished: boolean
  fiber: Fiber.RuntimeFiber<void, never> | undefined
}

/** Concurrent lookups of unknown ufrag pairs in the store; past this, binding requests just drop. */
const MAX_PENDING_LOOKUPS = 256

/** Removals remembered for the lookups in flight (see `removedDuringLookups`). */
const MAX_REMOVALS_REMEMBERED = 4096

const make = Effect.gen(function*() {
  const config = yield* ProxyConfig
  const udp = yield* UdpSocket
  const pool = yield* Effect.serviceOption(WorkerPool)
  const store = yield* SessionStore
  const loadBalancer = yield* LoadBalancer
  const sessions = new Map<string, SessionFiber>()
  // The origin socket is opened by the request, before the session's fiber exists; a fiber
  // interrupted at shutdown before its first step never runs its finalizer, so this one frees
  // whatever is left. Added before the sets of fibers: it runs after they are interrupted.
  yield* Effect.addFinalizer(() =>
    Effect.forEach([...sessions.values()], (session) =>
      // Here outside the session's fiber: its line gets the session's annotations all the same.
      Effect.locally(finish(session, "shutdown"), FiberRef.currentLogAnnotations, session.annotations), {
      discard: true,
      // A worker answers each close: side by side, shutdown waits for one round trip, not one per session.
      concurrency: Option.isSome(pool) ? "unbounded" : 1
    })
  )
  const sessionFibers = yield* FiberSet.make<void, never>()

  // Work started from the data path (store lookups, closing a displaced session) belongs to the
  // relay's scope: shutdown interrupts it (first), so none of it can write to a store after the relay closed.
  const supervise = yield* FiberSet.makeRuntime<never>()
  // Session fibers start from the relay's own runtime, not from the request that opened them: a fiber
  // forked from a request inherits the request's context (its Node request and response objects) and
  // keeps it alive for the session's lifetime. Starting them here saved about 9 % of a signaled
  // session's CPU in one process; what the opener annotated its logs with is given to the fiber at its birth (`start`).
  const runSession = yield* FiberSet.runtime(sessionFibers)<never>()
  const ended: Record<SessionEndReason, number> = {
    deleted: 0,
    idle: 0,
    shutdown: 0,
    replaced: 0,
    "socket-error": 0,
    "origin-lost": 0,
    "worker-lost": 0
  }
  // One tagged counter per reason and kind, made once: tagging builds a new metric key each time.
  const endedCounters = new Map<string, Metric.Metric.Counter<number>>()
  const endedCounter = (reason: SessionEndReason, kind: SessionRecord["kind"]) => {
    let counter = endedCounters.get(`${reason} ${kind}`)
    if (counter === undefined) {
      counter = Metric.tagged(Metric.tagged(sessionsEnded, "reason", reason), "kind", kind)
      endedCounters.set(`${reason} ${kind}`, counter)
    }
    return counter
  }
  const openedCounters = {
    publish: Metric.tagged(sessionsOpened, "kind", "publish"),
    play: Metric.tagged(sessionsOpened, "kind", "play")
  }
  const pendingLookups = new Set<string>()
  // Sessions removed through another proxy while lookups were pending, by the count of removals then:
  // a lookup that started before a session's removal may answer with its stale record.
  const removedDuringLookups = new Map<string, number>()
  let removals = 0
  const relayedByEnded = { packetsFromClient: 0, packetsFromOrigin: 0, bytesFromClient: 0, bytesFromOrigin: 0 }

  // A binding request for a session this proxy does not relay: it may have been signaled through
  // another proxy sharing the store. The lookup runs beside the data path, never in it.
  const onUnknownUfrag = (ufragPair: string, worker: number) => {
    if (pendingLookups.has(ufragPair)) return
    if (pendingLookups.size >= MAX_PENDING_LOOKUPS) {
      plane.countDrop("lookup-overload")
      return
    }
    pendingLookups.add(ufragPair)
    const startedAt = removals
    supervise(
      store.findByUfrag(UfragPair.make(ufragPair)).pipe(
        Effect.flatMap(Option.match({
          onNone: () => Effect.void,
          onSome: (record) => {
            // A session relayed here whose ICE restart was signaled through another proxy; a stale
            // record (a store write that failed) must not bring back a pair the session retired.
            const live = plane.sessions.get(record.id)
            if (live !== undefined) return live.retiredUfrags.includes(record.ufragPair) ? Effect.void : learnKeys(live, record)
            // Removed (DELETE through another proxy) while the answer was on its way: opening it
            // would bring the session back, and its record with it.
            if ((removedDuringLookups.get(record.id) ?? -1) > startedAt) return Effect.void
            // Adopted on the worker whose port the client reached.
            return sessions.has(record.id) ? Effect.void : open(record, worker)
          }
        })),
        Effect.catchAll((error) => Effect.logWarning(`cannot relay stored session for ${ufragPair}: ${error.message}`)),
        Effect.ensuring(Effect.sync(() => {
          pendingLookups.delete(ufragPair)
          plane.lookupDone(ufragPair)
          if (pendingLookups.size === 0) removedDuringLookups.clear()
        }))
      )
    )
  }
  const endNow = (reason: SessionEndReason) => (id: string) => {
    const session = sessions.get(id)
    if (session !== undefined) Deferred.unsafeDone(session.end, Exit.succeed(reason))
  }
  const events: DataPlane.PlaneEvents = {
    unknownUfrag: onUnknownUfrag,
    originLost: endNow("origin-lost"),
    workerLost: endNow("worker-lost")
  }
  const candidatePort = Option.getOrUndefined(config.candidatePort)
  const plane: DataPlane.DataPlaneShape = Option.isSome(pool)
    ? yield* pool.value.plane(events)
    : yield* DataPlane.inProcess(udp, { bufferBytes: config.udpBufferBytes, candidatePort }, events)
  // A session deleted through another proxy on a shared store: it ends here too.
  yield* store.onRemoved((id) => {
    if (sessions.has(id)) return supervise(close(id, "deleted"))
    if (pendingLookups.size === 0) return
    removedDuringLookups.set(id, ++removals)
    // Lookups end within the store's timeout; this bounds the map under a storm of them meanwhile.
    if (removedDuringLookups.size > MAX_REMOVALS_REMEMBERED) removedDuringLookups.delete(removedDuringLookups.keys().next().value!)
  })

  const learnKeys = (live: DataPlane.PlaneSession, keys: IceKeys) =>
    Effect.suspend(() => {
      if (live.ufragPairs.get(keys.ufragPair) === keys.serverPwd) return Effect.void
      plane.learnKeys(live, keys)
      return Effect.logInfo(
        `relay session ${live.record.id} now also answers to ${keys.ufragPair} (ICE restart${
          live.record.ice?.origin === undefined ? "" : `, translated to the origin's ${live.record.ice.origin.ufragPair}`
        })`
      )
    })

  /**
   * Frees a session exactly once: its keys leave the data plane, its origin socket closes, and the
   * end is counted, logged and told to the store.
   */
  const finish = (session: SessionFiber, reason: SessionEndReason): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (session.finished) return Effect.void
      session.finished = true
      const { live } = session
      if (sessions.get(live.record.id) === session) sessions.delete(live.record.id)
      // Counted once freed everywhere: whoever sees the end in the stats can signal the stream again.
      return plane.unregister(live).pipe(
        Effect.zipRight(Effect.sync(() => addRelayed(relayedByEnded, live))),
        Effect.zipRight(store.release(live.record.id, reason)),
        Effect.zipRight(Effect.sync(() => {
          ended[reason]++
          endedCounter(reason, live.record.kind).unsafeUpdate(1, [])
        })),
        Effect.zipRight(
          Effect.logInfo(
            `relay session ended (${reason}, ${live.packetsFromClient} packets from client, ${live.packetsFromOrigin} from origin)`
          )
        )
      )
    })

  // A session is a fiber that waits for its end (DELETE, idle, displaced, origin or worker lost) and
  // frees the session when it ends or is interrupted (shutdown). The request that signaled it opens
  // the origin socket and registers the keys in the data plane, so that the answer goes out only
  // once packets can flow.
  const start = (
    registered: DataPlane.Registered,
    end: Deferred.Deferred<SessionEndReason>,
    openedWith: HashMap.HashMap<string, unknown>
  ) =>
    Effect.sync(() => {
      const { record } = registered.session
      const annotations = openedWith.pipe(
        HashMap.set("session", record.id as unknown),
        HashMap.set("stream", record.streamUrl as unknown),
        HashMap.set("kind", record.kind as unknown)
      )
      const session: SessionFiber = { live: registered.session, end, annotations, finished: false, fiber: undefined }
      sessions.set(record.id, session)
      if (registered.displaced !== undefined) supervise(close(registered.displaced, "replaced"))
      const lifetime = Effect.onExit(
        Effect.interruptible(Deferred.await(end)),
        (exit) => finish(session, Exit.isSuccess(exit) ? exit.value : "shutdown")
      )
      // The fiber is born with the session's log annotations: no step of its own to set them.
      session.fiber = runSession(lifetime, {
        updateRefs: (refs, fiberId) =>
          FiberRefs.updateAs(refs, { fiberId, fiberRef: FiberRef.currentLogAnnotations, value: annotations })
      })
      return registered.placement
    })

  const open = (record: SessionRecord, worker?: number): Effect.Effect<DataPlane.Placement, OriginFailed | ServiceUnavailable> =>
    Effect.gen(function*() {
      yield* store.put(record)
      const end = yield* Deferred.make<SessionEndReason>()
      const openedWith = yield* FiberRef.get(FiberRef.currentLogAnnotations)
      // From the socket's opening to its fiber's start, nothing may interrupt: the socket has an owner.
      const placement = yield* Effect.uninterruptible(Effect.flatMap(
        plane.register(record, worker).pipe(Effect.tapError(() => store.remove(record.id))),
        (registered) => start(registered, end, openedWith)
      ))
      openedCounters[record.kind].unsafeUpdate(1, [])
      return placement
    }).pipe(whenTracing("Relay.open", { captureStackTrace: false }))

  const close = (id: string, reason: SessionEndReason): Effect.Effect<boolean> =>
    Effect.suspend(() => {
      const session = sessions.get(id)
      if (session === undefined) return Effect.succeed(false)
      Deferred.unsafeDone(session.end, Exit.succeed(reason))
      // Returns once the session is freed (its socket closed), whoever ended it first.
      return session.fiber === undefined ? Effect.succeed(true) : Effect.as(Fiber.await(session.fiber), true)
    })

  // The store is told even when this proxy does not relay the session: the proxy that does learns
  // the new pair from it when the client's first check with that pair arrives. When this proxy relays
  // it, a store failure only costs the other proxies the news; otherwise the store is the only way.
  const rekey = (id: SessionId, keys: IceKeys) =>
    Effect.gen(function*() {
      const live = plane.sessions.get(id)
      if (live === undefined) return Option.isSome(yield* store.rekey(id, keys))
      yield* learnKeys(live, keys)
      yield* store.rekey(id, keys).pipe(
        Effect.catchAll((error) => Effect.logWarning(`session ${id}: new ufrag pair not stored: ${error.message}`))
      )
      return true
    })

  // A dead host sends no ICMP: its sessions end when it is marked down and nothing comes from it.
  const endSessionsOfDownOrigins = (quiet: ReadonlyArray<DataPlane.PlaneSession>) =>
    quiet.length === 0 ? Effect.void : Effect.gen(function*() {
      const down = yield* loadBalancer.downOrigins([...new Set(quiet.map((live) => live.record.originId))])
      if (down.size === 0) return
      yield* Effect.forEach(
        quiet.filter((live) => down.has(live.record.originId)),
        (live) => close(live.record.id, "origin-lost"),
        { discard: true, concurrency: "unbounded" }
      )
    })

  // One sweeper for every session, so ten thousand sessions cost one timer and not ten thousand.
  const idleMillis = Duration.toMillis(config.relayIdleTimeout)
  const sweepEvery = Duration.millis(Math.min(1000, Math.max(50, idleMillis / 4)))
  // A client address keeps its consent for as long as a session may stay idle (30 s by default, RFC 7675).
  const consentTicks = Math.ceil(idleMillis / Duration.toMillis(sweepEvery))
  const sweep = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const idle: Array<string> = []
    const alive: Array<SessionRecord> = []
    const streams = new Map<StreamKey, OriginId>()
    const originQuiet: Array<DataPlane.PlaneSession> = []
    yield* plane.sweep(consentTicks)
    for (const live of plane.sessions.values()) {
      streams.set(live.record.streamUrl, live.record.originId)
      // Counters a worker did not report this time are old: the session is not judged on them.
      if (!plane.countersCurrent(live)) {
        alive.push(live.record)
        continue
      }
      if (live.originMark !== live.packetsFromOrigin) {
        live.originMark = live.packetsFromOrigin
        live.originQuietSince = now
      } else if (now - live.originQuietSince >= ORIGIN_QUIET_MS) {
        originQuiet.push(live)
      }
      if (live.idleMark !== live.packetsFromClient) {
        live.quietSince = live.idleMark === -1 ? live.record.createdAt : now
        live.idleMark = live.packetsFromClient
        alive.push(live.record)
      } else if (now - live.quietSince >= idleMillis) {
        idle.push(live.record.id)
      } else {
        alive.push(live.record)
      }
    }
    yield* Effect.forEach(idle, (id) => close(id, "idle"), { discard: true, concurrency: "unbounded" })
    // Side by side: a shared store that hangs holds the sweep (and with it idle and consent timing)
    // for one command timeout, not two. Streams whose sessions ended in this sweep still count once.
    yield* Effect.all([store.touch(alive), loadBalancer.keepStreams(streams), endSessionsOfDownOrigins(originQuiet)], {
      concurrency: 3,
      discard: true
    })
  })
  yield* sweep.pipe(Effect.delay(sweepEvery), Effect.forever, Effect.forkScoped, Effect.interruptible)

  return {
    open,
    close,
    rekey,
    placementOf: (id) => Effect.sync(() => plane.placementOf(id)),
    sessions: Effect.zipRight(plane.refresh, Effect.sync(() =>
      [...plane.sessions.values()].map((live): RelaySessionView => ({
        id: live.record.id,
        kind: live.record.kind,
        streamUrl: live.record.streamUrl,
        originId: live.record.originId,
        ufragPairs: [...live.ufragPairs.keys()],
        client: live.clientPort === 0 ? undefined : describeClient(live.clientAddress, live.clientPort),
        originMedia: endpoint(live.record.originMedia.host, live.record.originMedia.port),
        createdAt: live.record.createdAt,
        packetsFromClient: live.packetsFromClient,
        packetsFromOrigin: live.packetsFromOrigin,
        bytesFromClient: live.bytesFromClient,
        bytesFromOrigin: live.bytesFromOrigin
      }))
    )),
    clientPaths: plane.clientPaths,
    activeSessions: Effect.sync(() => plane.sessions.size),
    stats: Effect.zipRight(plane.refresh, Effect.sync((): RelayStats => {
      const { workers, ...counts } = plane.stats()
      return {
        sessions: plane.sessions.size,
        ...counts,
        ended: { ...ended },
        relayed: [...plane.sessions.values()].reduce(addRelayed, { ...relayedByEnded }),
        ...(workers === undefined ? {} : { workers })
      }
    }))
  } satisfies RelayShape
})
