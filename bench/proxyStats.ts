/**
 * What the benchmark reads of a running proxy: its RSS and UDP sockets from /proc (every thread's),
 * and from its own `/api/v1/stats` the main thread's memory and, with data-plane workers, each
 * worker's open sockets and JavaScript heap (a worker thread has a V8 heap of its own).
 */
import { httpRequestPromise } from "../test/support/http.js"
import type { ProcessMemory } from "./format.js"
import type { ProxyProcess } from "./processes.js"
import { fdCounts, rssBytes } from "./procStats.js"

export interface WorkerReading {
  readonly worker: number
  readonly sessions: number
  /** UDP sockets open in the worker: its port, and one per session. */
  readonly sockets: number
  readonly heapUsed: number
  readonly heapTotal: number
}

export interface ProxyReading {
  readonly rssBytes: number | undefined
  /** UDP sockets of the whole process (every thread's), from /proc/<pid>/fd. */
  readonly udpSockets: number
  /** The main thread's process.memoryUsage(). */
  readonly memory: ProcessMemory
  /** Empty with one worker (no worker thread). */
  readonly workers: ReadonlyArray<WorkerReading>
  /** JavaScript heap in use over every thread: the main one and each worker's. */
  readonly heapUsedAllThreads: number
}

interface StatsBody {
  readonly process: { readonly memory: ProcessMemory }
  readonly relay: { readonly workers?: ReadonlyArray<WorkerReading> }
}

export const readProxy = async (proxy: ProxyProcess): Promise<ProxyReading> => {
  const stats = JSON.parse((await httpRequestPromise(`http://127.0.0.1:${proxy.systemPort}/api/v1/stats`)).body) as StatsBody
  const workers = (stats.relay.workers ?? []).map(({ heapTotal, heapUsed, sessions, sockets, worker }) => ({
    worker,
    sessions,
    sockets,
    heapUsed,
    heapTotal
  }))
  return {
    rssBytes: rssBytes(proxy.pid),
    udpSockets: fdCounts(proxy.pid).udp,
    memory: stats.process.memory,
    workers,
    heapUsedAllThreads: stats.process.memory.heapUsed + workers.reduce((sum, worker) => sum + worker.heapUsed, 0)
  }
}

/** Sockets each worker holds in `after` beyond `before` (0 each when none was left behind). */
export const workerSocketsLeft = (before: Pick<ProxyReading, "workers">, after: Pick<ProxyReading, "workers">): ReadonlyArray<number> =>
  after.workers.map((worker) => worker.sockets - (before.workers.find((w) => w.worker === worker.worker)?.sockets ?? 0))
