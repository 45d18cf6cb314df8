/**
 * The data-plane workers (PROXY_RTC_WORKERS above 1): one thread each, with its own event loop,
 * its own UDP port (PROXY_WEBRTC_SERVER + i) and the origin sockets of its sessions. Every session's
 * lifetime stays on the main thread (Relay.ts); this pool is its data plane: it places a session on
 * the least-loaded worker, opens and closes it there by message, brings its counters back once per
 * relay sweep, and replaces a worker that dies, whose sessions end with `worker-lost`.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { createRequire } from "node:module"
import { pathToFileURL } from "node:url"
import { Worker } from "node:worker_threads"
import { ProxyConfig } from "../Config.js"
import { OriginFailed } from "../Domain/Errors.js"
import type { SessionRecord } from "../Domain/Session.js"
import {
  type ClientPaths,
  type DataPlaneShape,
  type Placement,
  type PlaneEvents,
  type PlaneSession,
  type Registered,
  withKeys,
  type WorkerStats
} from "../Udp/DataPlane.js"
import { type DropReason, DropReasons } from "../Udp/Router.js"
import { endpoint, UdpSocket, UdpSocketError } from "../Udp/UdpSocket.js"
import * as Messages from "./Messages.js"
import { leastLoaded } from "./Placement.js"

export interface WorkerPoolShape {
  /** The pool as the relay's data plane; `events` get what the workers report until the scope ends. */
  readonly plane: (events: PlaneEvents) => Effect.Effect<DataPlaneShape, never, Scope.Scope>
  /** Ends worker `worker` as a crash would (tests; an operator's last resort): it is replaced. */
  readonly kill: (worker: number) => Effect.Effect<void>
  readonly workers: Effect.Effect<ReadonlyArray<WorkerStats>>
}

/** How long a worker may take to start, to answer a request, and to stop before it is terminated. */
const START_TIMEOUT = Duration.seconds(20)
const ANSWER_TIMEOUT = Duration.seconds(2)
const STOP_TIMEOUT = Duration.seconds(3)
/** Opening a session is one socket bind and connect: a worker slower than this is stuck. */
const OPEN_TIMEOUT = Duration.seconds(10)
/** Between tries to replace a worker whose port cannot be bound yet. */
const RESPAWN_DELAY = Duration.millis(500)

/** A session on a worker, as the main thread sees it: counters as of the worker's last report. */
class MirroredSession implements PlaneSession {
  readonly ufragPairs = new Map<string, string>()
  retiredUfrags: ReadonlyArray<string> = []
  clientAddress = ""
  clientPort = 0
  packetsFromClient = 0
  packetsFromOrigin = 0
  bytesFromClient = 0
  bytesFromOrigin = 0
  idleMark = -1
  quietSince = 0
  originMark = -1
  originQuietSince = 0

  constructor(public record: SessionRecord, readonly worker: number, readonly incarnation: number) {
    this.ufragPairs.set(record.ufragPair, record.serverPwd)
  }
}

const noClientPaths: ClientPaths = {
  fromClient: () => {},
  isBound: () => false,
  forget: () => {}
}

/** One worker's place in the pool; its thread changes when it is replaced (`incarnation`). */
class Slot {
  thread: Worker | undefined = undefined
  incarnation = 0
  up = false
  port = 0
  restarts = 0
  readonly sessions = new Map<string, MirroredSession>()
  readonly opening = new Map<string, Deferred.Deferred<string | undefined, OriginFailed>>()
  readonly closing = new Map<string, Deferred.Deferred<void>>()
  readonly reports = new Map<number, Deferred.Deferred<typeof Messages.Reported.Type>>()
  boundAddresses: ReadonlyArray<string> = []
  packetsRelayed = 0
  addressCount = 0
  ufragCount = 0
  sockets = 0
  heapUsed = 0
  heapTotal = 0
  drops: Record<string, number> = {}
  /** Counters of the threads this slot had before (a replaced worker's packets still count). */
  carriedPackets = 0
  readonly carriedDrops: Record<string, number> = {}
  packetRate = 0
  lastReportAt = 0
  /** Whether the latest report asked for arrived (else its sessions' counters are old). */
  reported = true

  constructor(readonly index: number, readonly askedPort: number) {}

  post(message: Messages.ToWorker): void {
    this.thread?.postMessage(message)
  }
}

/**
 * The worker's entry next to this module: compiled JavaScript in dist/, or the TypeScript sources
 * under tsx or vitest, where the thread loads tsx's loader before the entry.
 */
const startThread = (init: Messages.WorkerInit): Worker => {
  const here = import.meta.url
  if (!here.endsWith(".ts")) return new Worker(new URL("./WorkerMain.js", here), { workerData: init })
  // tsx's ESM API (its `require` export is CommonJS, which cannot register the ESM hooks here).
  const tsx = pathToFileURL(createRequire(here).resolve("tsx/esm/api").replace(/\.cjs$/, ".mjs")).href
  const entry = new URL("./WorkerMain.ts", here).href
  return new Worker(`import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}) })`, {
    eval: true,
    // Not the parent's flags: a test runner's own loaders are not for this thread.
    execArgv: [],
    workerData: init
  })
}

const noEvents: PlaneEvents = { unknownUfrag: () => {}, originLost: () => {}, workerLost: () => {} }

const logLevels = {
  Debug: LogLevel.Debug,
  Info: LogLevel.Info,
  Warning: LogLevel.Warning,
  Error: LogLevel.Error
} as const

const make = Effect.gen(function*() {
  const config = yield* ProxyConfig
  const supervise = yield* FiberSet.makeRuntime<never>()
  const host = Option.getOrElse(config.udpHost, () => config.listenHost)
  const idleMillis = Duration.toMillis(config.relayIdleTimeout)
  // The relay's sweep period, which is also the consent clock's tick (see Relay.ts).
  const tickMillis = Math.min(1000, Math.max(50, idleMillis / 4))
  const consentTicks = Math.ceil(idleMillis / tickMillis)
  const candidatePort = Option.getOrUndefined(config.candidatePort)
  const slots = Array.from(
    { length: config.rtcWorkers },
    (_, i) => new Slot(i, config.udpPort === 0 ? 0 : config.udpPort + i)
  )
  let events = noEvents
  let stopping = false
  let reportSeq = 0

  const onMessage = (slot: Slot, raw: unknown) => {
    const decoded = Messages.decodeFromWorker(raw)
    if (Either.isLeft(decoded)) {
      supervise(Effect.logError(`data-plane worker ${slot.index} sent a message that is not one: ${decoded.left.message}`))
      return
    }
    const message = decoded.right
    switch (message._tag) {
      case "Opened": {
        const opening = slot.opening.get(message.id)
        if (opening !== undefined) Deferred.unsafeDone(opening, Exit.succeed(message.displaced))
        return
      }
      case "OpenFailed": {
        const opening = slot.opening.get(message.id)
        if (opening !== undefined) Deferred.unsafeDone(opening, Exit.fail(new OriginFailed({ message: message.message })))
        return
      }
      case "Closed": {
        const closing = slot.closing.get(message.id)
        if (closing !== undefined) Deferred.unsafeDone(closing, Exit.void)
        return
      }
      case "UnknownUfrag":
        return events.unknownUfrag(message.ufragPair, slot.index)
      case "OriginLost":
        return events.originLost(message.id)
      case "Reported": {
        const report = slot.reports.get(message.seq)
        if (report !== undefined) Deferred.unsafeDone(report, Exit.succeed(message))
        return
      }
      case "Log":
        supervise(Effect.logWithLevel(logLevels[message.level], message.message).pipe(Effect.annotateLogs("worker", slot.index)))
        return
      case "Ready":
      case "StartFailed":
        return
    }
  }

  // A worker that exits while the pool runs has died: its sessions end, and another takes its place.
  const onExit = (slot: Slot, thread: Worker, code: number) => {
    if (slot.thread !== thread) return
    slot.up = false
    slot.thread = undefined
    slot.carriedPackets += slot.packetsRelayed
    for (const [reason, count] of Object.entries(slot.drops)) slot.carriedDrops[reason] = (slot.carriedDrops[reason] ?? 0) + count
    slot.packetsRelayed = 0
    slot.drops = {}
    slot.addressCount = 0
    slot.ufragCount = 0
    slot.sockets = 0
    slot.heapUsed = 0
    slot.heapTotal = 0
    slot.packetRate = 0
    const lost = new OriginFailed({ message: `data-plane worker ${slot.index} died before the session started` })
    for (const opening of slot.opening.values()) Deferred.unsafeDone(opening, Exit.fail(lost))
    for (const closing of slot.closing.values()) Deferred.unsafeDone(closing, Exit.void)
    slot.opening.clear()
    slot.closing.clear()
    slot.reports.clear()
    if (stopping) return
    slot.restarts++
    const ids = [...slot.sessions.keys()]
    for (const id of ids) events.workerLost(id)
    supervise(
      Effect.logError(
        `data-plane worker ${slot.index} (udp ${slot.port}) died (exit code ${code}); ${ids.length} session(s) end (worker-lost); replacing it`
      ).pipe(
        Effect.zipRight(spawn(slot).pipe(
          Effect.tapError((error) => Effect.logWarning(`data-plane worker ${slot.index}: ${error.message}; trying again`)),
          Effect.retry(Schedule.spaced(RESPAWN_DELAY).pipe(Schedule.whileInput(() => !stopping)))
        )),
        Effect.zipRight(Effect.logInfo(`data-plane worker ${slot.index} replaced, on udp ${slot.port}`)),
        Effect.ignore
      )
    )
  }

  /** Starts the slot's thread and waits for its port to be bound. */
  const spawn = (slot: Slot): Effect.Effect<void, UdpSocketError> =>
    Effect.async<void, UdpSocketError>((resume) => {
      const init: Messages.WorkerInit = {
        worker: slot.index,
        host,
        // A replaced worker takes the port its clients know, even when the first one was ephemeral.
        port: slot.port === 0 ? slot.askedPort : slot.port,
        bufferBytes: config.udpBufferBytes,
        tickMillis,
        consentTicks
      }
      const thread = startThread(init)
      // One listener of each kind for the thread's life: a Worker without a 'message' listener
      // stops delivering messages promptly (its port is unref'd), even once a new one is added.
      let started = false
      const failed = (message: string) => {
        started = true
        slot.thread = undefined
        void thread.terminate()
        resume(Effect.fail(new UdpSocketError({ reason: "Open", message: `data-plane worker ${slot.index}: ${message}` })))
      }
      thread.on("message", (raw: unknown) => {
        if (started) return slot.thread === thread ? onMessage(slot, raw) : undefined
        const decoded = Messages.decodeFromWorker(raw)
        if (Either.isLeft(decoded)) return failed(`a start message that is not one: ${decoded.left.message}`)
        const message = decoded.right
        if (message._tag === "StartFailed") return failed(message.message)
        if (message._tag === "Log") return onMessage(slot, message)
        if (message._tag !== "Ready") return
        started = true
        slot.thread = thread
        slot.incarnation++
        slot.up = true
        slot.port = message.port
        slot.boundAddresses = message.boundAddresses
        slot.lastReportAt = Date.now()
        resume(Effect.void)
      })
      thread.on("error", (error) => {
        if (!started) return failed(error.message)
        // An uncaught exception in the worker: its exit follows, and that is where it is handled.
        supervise(Effect.logError(`data-plane worker ${slot.index}: ${error.message}`))
      })
      thread.on("exit", (code) => {
        if (!started) return failed(`exited while starting (code ${code})`)
        onExit(slot, thread, code)
      })
      return Effect.sync(() => {
        started = true
        void thread.terminate()
      })
    }).pipe(
      Effect.timeoutFail({
        duration: START_TIMEOUT,
        onTimeout: () => new UdpSocketError({ reason: "Open", message: `data-plane worker ${slot.index} did not start within 20 s` })
      })
    )

  const stopSlot = (slot: Slot) =>
    Effect.gen(function*() {
      const thread = slot.thread
      if (thread === undefined) return
      slot.up = false
      const exited = yield* Deferred.make<void>()
      thread.once("exit", () => Deferred.unsafeDone(exited, Exit.void))
      slot.post({ _tag: "Stop" })
      const stopped = yield* Deferred.await(exited).pipe(Effect.timeout(STOP_TIMEOUT), Effect.option)
      if (Option.isNone(stopped)) yield* Effect.promise(() => thread.terminate())
      slot.thread = undefined
    })

  yield* Effect.addFinalizer(() =>
    Effect.suspend(() => {
      stopping = true
      return Effect.forEach(slots, stopSlot, { concurrency: "unbounded", discard: true })
    })
  )
  yield* Effect.forEach(slots, spawn, { concurrency: "unbounded", discard: true })
  yield* Effect.logInfo(
    `WebRTC media on ${slots.length} data-plane workers: ${slots.map((slot) => `udp://${endpoint(host, slot.port)}`).join(", ")}`
  )

  const workerStats = (): ReadonlyArray<WorkerStats> =>
    slots.map((slot) => ({
      worker: slot.index,
      port: slot.port,
      up: slot.up,
      sessions: slot.sessions.size,
      clientAddresses: slot.addressCount,
      packetsRelayed: slot.carriedPackets + slot.packetsRelayed,
      drops: Object.values(slot.drops).reduce((a, b) => a + b, 0) +
        Object.values(slot.carriedDrops).reduce((a, b) => a + b, 0),
      sockets: slot.sockets,
      heapUsed: slot.heapUsed,
      heapTotal: slot.heapTotal,
      restarts: slot.restarts
    }))

  const apply = (slot: Slot, report: typeof Messages.Reported.Type) => {
    const now = Date.now()
    const elapsed = (now - slot.lastReportAt) / 1000
    if (elapsed > 0.05) {
      slot.packetRate = Math.max(0, report.packetsRelayed - slot.packetsRelayed) / elapsed
      slot.lastReportAt = now
    }
    slot.packetsRelayed = report.packetsRelayed
    slot.addressCount = report.addressCount
    slot.ufragCount = report.ufragCount
    slot.sockets = report.sockets
    slot.heapUsed = report.heapUsed
    slot.heapTotal = report.heapTotal
    slot.drops = report.drops
    slot.boundAddresses = report.boundAddresses
    const counters = report.counters
    for (let i = 0; i < report.ids.length; i++) {
      const session = slot.sessions.get(report.ids[i]!)
      if (session === undefined) continue
      const base = i * Messages.COUNTERS_PER_SESSION
      session.packetsFromClient = counters[base]!
      session.packetsFromOrigin = counters[base + 1]!
      session.bytesFromClient = counters[base + 2]!
      session.bytesFromOrigin = counters[base + 3]!
      session.clientPort = counters[base + 4]!
      session.clientAddress = report.clientAddresses[i]!
    }
    for (const rekeyed of report.rekeyed) {
      const session = slot.sessions.get(rekeyed.id)
      if (session === undefined) continue
      session.ufragPairs.clear()
      for (const [pair, pwd] of rekeyed.ufragPairs) session.ufragPairs.set(pair, pwd)
      session.retiredUfrags = rekeyed.retired
    }
  }

  const askReport = (slot: Slot) =>
    Effect.gen(function*() {
      if (!slot.up) return
      const seq = ++reportSeq
      const answer = yield* Deferred.make<typeof Messages.Reported.Type>()
      slot.reports.set(seq, answer)
      slot.post({ _tag: "Report", seq })
      const report = yield* Deferred.await(answer).pipe(Effect.timeout(ANSWER_TIMEOUT), Effect.option)
      slot.reports.delete(seq)
      if (Option.isNone(report)) yield* Effect.logWarning(`data-plane worker ${slot.index} did not report within 2 s`)
      slot.reported = Option.isSome(report)
      if (Option.isSome(report)) apply(slot, report.value)
    })
  const refresh = Effect.forEach(slots, askReport, { concurrency: "unbounded", discard: true })

  const plane = (attached: PlaneEvents) =>
    Effect.gen(function*() {
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          events = attached
        }),
        () =>
          Effect.sync(() => {
            events = noEvents
          })
      )
      const sessions = new Map<string, MirroredSession>()
      const byUfrag = new Map<string, MirroredSession>()
      const drops: Record<DropReason, number> = Object.fromEntries(DropReasons.map((r) => [r, 0])) as Record<DropReason, number>

      const openOn = (slot: Slot, session: MirroredSession) =>
        Effect.gen(function*() {
          const id = session.record.id
          const opened = yield* Deferred.make<string | undefined, OriginFailed>()
          slot.opening.set(id, opened)
          slot.post({ _tag: "Open", record: session.record })
          const displaced = yield* Deferred.await(opened).pipe(
            Effect.timeoutFail({
              duration: OPEN_TIMEOUT,
              onTimeout: () => new OriginFailed({ message: `data-plane worker ${slot.index} did not open the session in time` })
            }),
            // A worker that answers late must not keep a session nobody owns (Closed answers an unknown id too).
            Effect.tapError(() => Effect.sync(() => slot.post({ _tag: "Close", id }))),
            Effect.ensuring(Effect.sync(() => slot.opening.delete(id)))
          )
          slot.sessions.set(id, session)
          sessions.set(id, session)
          return displaced
        })

      const closeOn = (slot: Slot, session: MirroredSession) =>
        Effect.gen(function*() {
          const id = session.record.id
          if (sessions.get(id) === session) sessions.delete(id)
          if (slot.sessions.get(id) === session) slot.sessions.delete(id)
          for (const pair of session.ufragPairs.keys()) if (byUfrag.get(pair) === session) byUfrag.delete(pair)
          // A worker that died took the socket with it; its replacement never knew the session.
          if (!slot.up || slot.incarnation !== session.incarnation) return
          const closed = yield* Deferred.make<void>()
          slot.closing.set(id, closed)
          slot.post({ _tag: "Close", id })
          yield* Deferred.await(closed).pipe(Effect.timeout(ANSWER_TIMEOUT), Effect.ignore)
          slot.closing.delete(id)
        })

      const placementOn = (slot: Slot): Placement => ({
        worker: slot.index,
        port: candidatePort === undefined ? slot.port : candidatePort + slot.index
      })

      const choose = (preferred: number | undefined): Slot | undefined => {
        if (preferred !== undefined && slots[preferred]?.up) return slots[preferred]
        const index = leastLoaded(slots.map((slot) => ({ up: slot.up, sessions: slot.sessions.size + slot.opening.size, packetRate: slot.packetRate })))
        return index === undefined ? undefined : slots[index]
      }

      return {
        sessions,
        register: (record, preferred) =>
          Effect.gen(function*() {
            const slot = choose(preferred)
            if (slot === undefined) return yield* new OriginFailed({ message: "no data-plane worker is up" })
            const session = new MirroredSession(record, slot.index, slot.incarnation)
            const displacedHere = yield* openOn(slot, session)
            // A session on another worker with the same ufrag pair is displaced as one on the same would be.
            const holder = byUfrag.get(record.ufragPair)
            byUfrag.set(record.ufragPair, session)
            const displaced = displacedHere ?? (holder !== undefined && holder !== session ? holder.record.id : undefined)
            return { session, displaced, placement: placementOn(slot) } satisfies Registered
          }),
        unregister: (planeSession) => {
          const session = planeSession as MirroredSession
          return closeOn(slots[session.worker]!, session)
        },
        placementOf: (id) => placementOn(slots[sessions.get(id)?.worker ?? 0]!),
        learnKeys: (planeSession, keys) => {
          const session = planeSession as MirroredSession
          session.ufragPairs.set(keys.ufragPair, keys.serverPwd)
          session.record = withKeys(session.record, keys)
          byUfrag.set(keys.ufragPair, session)
          const slot = slots[session.worker]!
          if (slot.incarnation === session.incarnation) {
            slot.post({ _tag: "AddUfrag", id: session.record.id, ufragPair: keys.ufragPair, serverPwd: keys.serverPwd, ice: keys.ice })
          }
        },
        // ICE-TCP is refused at start-up with workers (Config.ts): no TCP connection reaches this.
        clientPaths: noClientPaths,
        lookupDone: (ufragPair) => {
          for (const slot of slots) slot.post({ _tag: "LookupDone", ufragPair })
        },
        countDrop: (reason) => {
          drops[reason]++
        },
        sweep: () => refresh,
        countersCurrent: (session) => {
          const slot = slots[(session as MirroredSession).worker]!
          return slot.up && slot.reported
        },
        refresh,
        stats: () => {
          const total = { ...drops }
          let clientAddresses = 0
          let ufragPairs = 0
          let packetsRelayed = 0
          for (const slot of slots) {
            clientAddresses += slot.addressCount
            ufragPairs += slot.ufragCount
            packetsRelayed += slot.carriedPackets + slot.packetsRelayed
            for (const reason of DropReasons) total[reason] += (slot.drops[reason] ?? 0) + (slot.carriedDrops[reason] ?? 0)
          }
          return { clientAddresses, ufragPairs, packetsRelayed, drops: total, workers: workerStats() }
        }
      } satisfies DataPlaneShape
    })

  const udp = {
    address: { host, port: slots[0]!.port },
    // Ready only while every worker holds its port.
    boundAddresses: Effect.sync(() =>
      slots.every((slot) => slot.up) ? [...new Set(slots.flatMap((slot) => slot.boundAddresses))] : []
    ),
    attach: () => Effect.dieMessage("with data-plane workers, each worker's router owns its port")
  } satisfies Context.Tag.Service<UdpSocket>

  return {
    pool: {
      plane,
      kill: (worker) =>
        Effect.promise(async () => {
          await slots[worker]?.thread?.terminate()
        }),
      workers: Effect.zipRight(refresh, Effect.sync(workerStats))
    } satisfies WorkerPoolShape,
    udp
  }
})

export class WorkerPool extends Context.Tag("rtc-proxy/WorkerPool")<WorkerPool, WorkerPoolShape>() {
  /**
   * PROXY_RTC_WORKERS threads, worker i on PROXY_WEBRTC_SERVER + i; also the UdpSocket the rest of
   * the proxy reads (worker 0's port; bound while every worker is up).
   */
  static readonly layer: Layer.Layer<WorkerPool | UdpSocket, UdpSocketError, ProxyConfig> = Layer.scopedContext(
    Effect.map(make, ({ pool, udp }) => Context.make(WorkerPool, pool).pipe(Context.add(UdpSocket, udp)))
  )
}
