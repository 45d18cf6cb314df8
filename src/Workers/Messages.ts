/**
 * The messages between the main thread and a data-plane worker (worker_threads, structured clone),
 * each one checked by schema where it is received. Control only: no message is sent per packet;
 * counters come back in one report per relay sweep.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { SessionIce, SessionRecord } from "../Domain/Session.js"

/** What a worker is started with (its `workerData`). */
export const WorkerInit = Schema.Struct({
  worker: Schema.Int,
  host: Schema.String,
  /** 0: an ephemeral port. */
  port: Schema.Int,
  /** Kernel buffer of the worker's port; a session's origin socket gets at most 1 MB of it. */
  bufferBytes: Schema.Int,
  /** The consent clock: one tick this often, and a client address lapses after this many ticks. */
  tickMillis: Schema.Number,
  consentTicks: Schema.Int
})
export interface WorkerInit extends Schema.Schema.Type<typeof WorkerInit> {}

// Main to worker.

/** Open the session's origin socket and register it in the worker's router. */
export const Open = Schema.TaggedStruct("Open", { record: SessionRecord })
/** Unregister the session and close its origin socket; answered by Closed (also for an unknown id). */
export const Close = Schema.TaggedStruct("Close", { id: Schema.String })
/**
 * ICE restart: the session also answers to this ufrag pair. `ice` is the session's new ICE state;
 * with `ice.origin` (a restart the proxy carried out) the worker's router re-signs STUN.
 */
export const AddUfrag = Schema.TaggedStruct("AddUfrag", {
  id: Schema.String,
  ufragPair: Schema.String,
  serverPwd: Schema.String,
  ice: Schema.optional(SessionIce)
})
/** The store lookup for this ufrag pair is over: its next binding request may ask again. */
export const LookupDone = Schema.TaggedStruct("LookupDone", { ufragPair: Schema.String })
/** Send the counters (answered by Reported with the same `seq`). */
export const Report = Schema.TaggedStruct("Report", { seq: Schema.Int })
/** Close every socket and exit. */
export const Stop = Schema.TaggedStruct("Stop", {})

export const ToWorker = Schema.Union(Open, Close, AddUfrag, LookupDone, Report, Stop)
export type ToWorker = typeof ToWorker.Type

// Worker to main.

export const Ready = Schema.TaggedStruct("Ready", {
  port: Schema.Int,
  boundAddresses: Schema.Array(Schema.String)
})
/** The port could not be bound: the worker exits after this. */
export const StartFailed = Schema.TaggedStruct("StartFailed", { message: Schema.String })
export const Opened = Schema.TaggedStruct("Opened", {
  id: Schema.String,
  /** A session of this worker that held the same ufrag pair. */
  displaced: Schema.UndefinedOr(Schema.String)
})
export const OpenFailed = Schema.TaggedStruct("OpenFailed", { id: Schema.String, message: Schema.String })
export const Closed = Schema.TaggedStruct("Closed", { id: Schema.String })
/** A binding request with a ufrag pair no session of this worker holds (once until LookupDone). */
export const UnknownUfrag = Schema.TaggedStruct("UnknownUfrag", { ufragPair: Schema.String })
/** The session's origin refused its packets (ICMP port unreachable, twice). */
export const OriginLost = Schema.TaggedStruct("OriginLost", { id: Schema.String })

/** Numbers per session in a report's `counters`, in the order of `ids`. */
export const COUNTERS_PER_SESSION = 5
/** packetsFromClient, packetsFromOrigin, bytesFromClient, bytesFromOrigin, clientPort. */
export const Reported = Schema.TaggedStruct("Reported", {
  seq: Schema.Int,
  ids: Schema.Array(Schema.String),
  counters: Schema.instanceOf(Float64Array),
  clientAddresses: Schema.Array(Schema.String),
  /** Sessions with more than one ufrag pair or a retired one (ICE restarts, rare). */
  rekeyed: Schema.Array(Schema.Struct({
    id: Schema.String,
    ufragPairs: Schema.Array(Schema.Tuple(Schema.String, Schema.String)),
    retired: Schema.Array(Schema.String)
  })),
  packetsRelayed: Schema.Number,
  addressCount: Schema.Int,
  ufragCount: Schema.Int,
  drops: Schema.Record({ key: Schema.String, value: Schema.Number }),
  /** UDP sockets open in the worker: its port (one per local address) and one per session. */
  sockets: Schema.Int,
  /** The worker thread's own JavaScript heap (its V8 isolate), in bytes: used, and held from the system. */
  heapUsed: Schema.Number,
  heapTotal: Schema.Number,
  boundAddresses: Schema.Array(Schema.String)
})
export const Log = Schema.TaggedStruct("Log", {
  level: Schema.Literal("Debug", "Info", "Warning", "Error"),
  message: Schema.String
})

export const FromWorker = Schema.Union(Ready, StartFailed, Opened, OpenFailed, Closed, UnknownUfrag, OriginLost, Reported, Log)
export type FromWorker = typeof FromWorker.Type

export const decodeToWorker = Schema.decodeUnknownEither(ToWorker)
export const decodeFromWorker = Schema.decodeUnknownEither(FromWorker)
export const decodeInit = Schema.decodeUnknownEither(WorkerInit)
