/**
 * A data-plane worker thread: it owns one UDP port and its sessions' origin sockets, and runs the
 * synchronous router (Router.ts) on them, on its own event loop. The main thread keeps every
 * session's lifetime and tells this one, by message, what to open and close (Messages.ts); the
 * per-packet path never leaves this thread.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberMap from "effect/FiberMap"
import * as FiberSet from "effect/FiberSet"
import * as Logger from "effect/Logger"
import type * as LogLevel from "effect/LogLevel"
import { getHeapStatistics } from "node:v8"
import { parentPort, workerData } from "node:worker_threads"
import type { SessionRecord } from "../Domain/Session.js"
import { openOriginSocket, originErrorHandler, withKeys } from "../Udp/DataPlane.js"
import { LiveSession, Router } from "../Udp/Router.js"
import { closeSocket, UdpSocket } from "../Udp/UdpSocket.js"
import * as Messages from "./Messages.js"

/** Unknown ufrag pairs reported at once and not yet looked up; past this, binding requests just drop. */
const MAX_PENDING_LOOKUPS = 256

const levels: Partial<Record<LogLevel.LogLevel["label"], typeof Messages.Log.Type["level"]>> = {
  DEBUG: "Debug",
  INFO: "Info",
  WARN: "Warning",
  ERROR: "Error",
  FATAL: "Error"
}

const run = (port: NonNullable<typeof parentPort>, init: Messages.WorkerInit) =>
  Effect.gen(function*() {
    const post = (message: Messages.FromWorker) => port.postMessage(message)
    const supervise = yield* FiberSet.makeRuntime<never>()
    const fibers = yield* FiberMap.make<string, void, never>()
    const enders = new Map<string, Deferred.Deferred<void>>()
    const pendingLookups = new Set<string>()
    const router: Router = new Router((ufragPair) => {
      if (pendingLookups.has(ufragPair)) return
      if (pendingLookups.size >= MAX_PENDING_LOOKUPS) {
        router.drops["lookup-overload"]++
        return
      }
      pendingLookups.add(ufragPair)
      post({ _tag: "UnknownUfrag", ufragPair })
    })

    const udp = yield* UdpSocket.make({ host: init.host, port: init.port, bufferBytes: init.bufferBytes })
    yield* udp.attach({
      datagram: (msg, rinfo, socket) => router.fromClient(msg, rinfo.address, rinfo.port, socket),
      closing: (socket) => router.forgetSocket(socket)
    })
    yield* Effect.sync(() => router.expireConsent(init.consentTicks)).pipe(
      Effect.delay(Duration.millis(init.tickMillis)),
      Effect.forever,
      Effect.forkScoped
    )

    const session = (record: SessionRecord) =>
      Effect.gen(function*() {
        const end = yield* Deferred.make<void>()
        const backend = yield* Effect.acquireRelease(
          openOriginSocket(record, init.bufferBytes, originErrorHandler(router, () => post({ _tag: "OriginLost", id: record.id }))),
          closeSocket
        )
        const live = new LiveSession(record, backend)
        const displaced = yield* Effect.acquireRelease(
          Effect.sync(() => {
            enders.set(record.id, end)
            return router.add(live)
          }),
          () =>
            Effect.sync(() => {
              router.remove(live)
              if (enders.get(record.id) === end) enders.delete(record.id)
            })
        )
        post({ _tag: "Opened", id: record.id, displaced: displaced?.record.id })
        yield* Deferred.await(end)
      }).pipe(
        Effect.scoped,
        // After the scope: the socket is closed by the time the main thread hears of it.
        Effect.matchCause({
          onFailure: (cause) =>
            Cause.isInterruptedOnly(cause)
              ? post({ _tag: "Closed", id: record.id })
              : post({ _tag: "OpenFailed", id: record.id, message: Cause.squash(cause) instanceof Error ? (Cause.squash(cause) as Error).message : String(Cause.squash(cause)) }),
          onSuccess: () => post({ _tag: "Closed", id: record.id })
        })
      )

    const report = (seq: number): Messages.FromWorker => {
      const ids: Array<string> = []
      const clientAddresses: Array<string> = []
      const counters = new Float64Array(router.byId.size * Messages.COUNTERS_PER_SESSION)
      const rekeyed: Array<{ id: string; ufragPairs: Array<[string, string]>; retired: Array<string> }> = []
      let i = 0
      for (const live of router.byId.values()) {
        ids.push(live.record.id)
        clientAddresses.push(live.clientAddress)
        counters[i++] = live.packetsFromClient
        counters[i++] = live.packetsFromOrigin
        counters[i++] = live.bytesFromClient
        counters[i++] = live.bytesFromOrigin
        counters[i++] = live.clientPort
        if (live.ufragPairs.size > 1 || live.retiredUfrags.length > 0) {
          rekeyed.push({ id: live.record.id, ufragPairs: [...live.ufragPairs], retired: [...live.retiredUfrags] })
        }
      }
      const heap = getHeapStatistics()
      return {
        _tag: "Reported",
        seq,
        ids,
        counters,
        clientAddresses,
        rekeyed,
        packetsRelayed: router.packetsRelayed,
        addressCount: router.addressCount,
        ufragCount: router.ufragCount,
        drops: { ...router.drops },
        sockets: process.getActiveResourcesInfo().filter((name) => name.toUpperCase() === "UDPWRAP").length,
        heapUsed: heap.used_heap_size,
        heapTotal: heap.total_heap_size,
        boundAddresses: []
      }
    }

    const stopped = yield* Deferred.make<void>()
    const onMessage = (raw: unknown) => {
      const decoded = Messages.decodeToWorker(raw)
      if (Either.isLeft(decoded)) {
        post({ _tag: "Log", level: "Error", message: `worker ${init.worker}: a message it cannot read: ${decoded.left.message}` })
        return
      }
      const message = decoded.right
      switch (message._tag) {
        case "Open":
          supervise(FiberMap.run(fibers, message.record.id, session(message.record)))
          return
        case "Close": {
          const end = enders.get(message.id)
          if (end === undefined) post({ _tag: "Closed", id: message.id })
          else Deferred.unsafeDone(end, Exit.void)
          return
        }
        case "AddUfrag": {
          const live = router.byId.get(message.id)
          if (live === undefined || live.ufragPairs.get(message.ufragPair) === message.serverPwd) return
          router.addUfrag(live, message.ufragPair, message.serverPwd)
          // With `ice`, a restart carried out by the proxy: this router re-signs the session's STUN from now on.
          live.record = withKeys(live.record, {
            ufragPair: message.ufragPair as SessionRecord["ufragPair"],
            serverPwd: message.serverPwd,
            ice: message.ice
          })
          return
        }
        case "LookupDone":
          pendingLookups.delete(message.ufragPair)
          return
        case "Report":
          supervise(Effect.map(udp.boundAddresses, (bound) => {
            const reported = report(message.seq)
            post({ ...reported, boundAddresses: bound } as Messages.FromWorker)
          }))
          return
        case "Stop":
          Deferred.unsafeDone(stopped, Exit.void)
          return
      }
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => port.on("message", onMessage)),
      () => Effect.sync(() => port.off("message", onMessage))
    )
    post({ _tag: "Ready", port: udp.address.port, boundAddresses: [...yield* udp.boundAddresses] })
    yield* Deferred.await(stopped)
  }).pipe(Effect.scoped)

const port = parentPort
if (port === null) throw new Error("WorkerMain.ts runs as a worker thread of the proxy")
const post = (message: Messages.FromWorker) => port.postMessage(message)

// The worker's lines go to the main thread's logger, which annotates them with the worker.
const forwardLogs = Logger.replace(
  Logger.defaultLogger,
  Logger.make(({ logLevel, message }) => {
    const level = levels[logLevel.label]
    if (level === undefined) return
    const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
    post({ _tag: "Log", level, message: text })
  })
)

const init = Messages.decodeInit(workerData)
if (Either.isLeft(init)) {
  post({ _tag: "StartFailed", message: `bad worker data: ${init.left.message}` })
} else {
  run(port, init.right).pipe(
    Effect.tapErrorCause((cause) =>
      Effect.sync(() => {
        const error = Cause.squash(cause)
        post({ _tag: "StartFailed", message: error instanceof Error ? error.message : String(error) })
      })
    ),
    Effect.provide(forwardLogs),
    NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
  )
}
