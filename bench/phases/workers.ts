/**
 * The workers phase: one proxy process per --workers count (PROXY_RTC_WORKERS), all up at once,
 * each with --workers-sessions sessions. Per session count: --workers-rounds ramps per worker count,
 * alternating which goes first (the median counts), then CPU per packet at one fixed rate for all
 * (--fixed-share of the lowest maximum). The ratio to one worker is what the data plane scales by.
 */
import type { Bench } from "../bench.js"
import { config } from "../config.js"
import { fmtInt, log } from "../format.js"
import type { SessionGroup } from "../load.js"
import { type CpuRun, Measure, medianRamp, mergeRuns, type RampResult, type ThroughputResult } from "../measure.js"
import { type ProxyProcess, startProxy, stop } from "../processes.js"
import { threadsDiff, type ThreadTimes, threadTimes } from "../procStats.js"

export interface WorkersRow {
  readonly workers: number
  readonly sessions: number
  readonly throughput: ThroughputResult | undefined
  readonly cpu: CpuRun | undefined
  /** Highest relayed packets/s against the first worker count's (1 by default). */
  readonly ratio: number | undefined
  /** Proxy CPU per relayed packet against the first worker count's. */
  readonly cpuPerPacketRatio: number | undefined
  /** Where the proxy's CPU went during the fixed-rate runs, thread by thread, per 10,000 relayed packets. */
  readonly threads: ThreadBreakdown | undefined
  readonly error?: string
}

export interface ThreadShare {
  readonly cpuMsPer10k: number
  /** The part of it in the kernel (system calls, softirq work charged to the thread). */
  readonly systemMsPer10k: number
  readonly voluntarySwitchesPer10k: number
  readonly involuntarySwitchesPer10k: number
}

export interface ThreadBreakdown {
  /** The main thread: the control plane, and with one worker the data plane too. */
  readonly main: ThreadShare
  /** The busiest other threads, one per worker above 1: the data-plane workers' event loops. */
  readonly workers: ReadonlyArray<ThreadShare>
  /** Every other thread together (V8's GC and compiler helpers, libuv's pool). */
  readonly rest: ThreadShare
}

/** Per-thread totals over the runs (by thread id), as shares per 10,000 relayed packets. */
const breakdown = (pid: number, workers: number, byThread: ReadonlyMap<number, ThreadTimes>, relayedPackets: number): ThreadBreakdown | undefined => {
  if (relayedPackets === 0 || !byThread.has(pid)) return undefined
  const share = (threads: ReadonlyArray<ThreadTimes>): ThreadShare => {
    const sum = (f: (t: ThreadTimes) => number) => (threads.reduce((n, t) => n + f(t), 0) / relayedPackets) * 10_000
    return {
      cpuMsPer10k: sum((t) => t.cpuMs),
      systemMsPer10k: sum((t) => t.systemMs),
      voluntarySwitchesPer10k: sum((t) => t.voluntarySwitches),
      involuntarySwitchesPer10k: sum((t) => t.involuntarySwitches)
    }
  }
  const others = [...byThread.values()].filter((t) => t.tid !== pid).sort((a, b) => b.cpuMs - a.cpuMs || b.voluntarySwitches - a.voluntarySwitches)
  const workerThreads = workers > 1 ? others.slice(0, workers) : []
  return {
    main: share([byThread.get(pid)!]),
    workers: workerThreads.map((t) => share([t])),
    rest: share(others.slice(workerThreads.length))
  }
}

/** "61 ms (40 in the kernel), 5,200 waits + 300 preempted" */
export const fmtThread = (share: ThreadShare) =>
  `${share.cpuMsPer10k.toFixed(0)} ms (${share.systemMsPer10k.toFixed(0)} in the kernel), ${fmtInt(share.voluntarySwitchesPer10k)} waits + ${fmtInt(share.involuntarySwitchesPer10k)} preempted`

export const workersPhase = async (bench: Bench): Promise<Array<WorkersRow>> => {
  const counts = config.workers
  log(`--- workers: PROXY_RTC_WORKERS ${counts.join(", ")}; sessions ${config.workersSessions.join(", ")}; ${config.workersRounds} ramps each`)
  const proxies = new Map<number, { process: ProxyProcess; measure: Measure }>()
  for (const workers of counts) {
    const process = await startProxy(bench.origin, bench.workDir, {
      name: `proxy-${workers}w`,
      env: { PROXY_RTC_WORKERS: String(workers) }
    })
    log(`proxy with ${workers} worker(s): pid ${process.pid}, http :${process.httpPort}, udp :${process.udpPort}`)
    const pids = { proxy: process.pid, origin: bench.measure.pids["origin"]!, loadgen: bench.measure.pids["loadgen"]! }
    proxies.set(workers, { process, measure: new Measure(pids, { proxy: process.udpPort }) })
  }
  const rows: Array<WorkersRow> = []
  try {
    for (const sessions of config.workersSessions) {
      const groups = new Map<number, SessionGroup>()
      const errors = new Map<number, string>()
      for (const workers of counts) {
        const { process } = proxies.get(workers)!
        try {
          const group = await bench.load.sessions(
            { kind: "proxy", host: "127.0.0.1", httpBase: `http://127.0.0.1:${process.httpPort}` },
            sessions,
            `w${workers}x${sessions}`
          )
          await group.run({ rate: config.startRate, seconds: Math.min(1, config.stepSeconds) })
          groups.set(workers, group)
        } catch (error) {
          errors.set(workers, (error as Error).message)
          log(`${workers} worker(s) with ${sessions} sessions: could not open them: ${(error as Error).message}`)
        }
      }
      await bench.measure.waitQuiet(`the workers phase at ${sessions} sessions`)
      const ramps = new Map<number, Array<RampResult>>()
      for (let round = 1; round <= config.workersRounds; round++) {
        const order = round % 2 === 1 ? counts : [...counts].reverse()
        for (const workers of order) {
          const group = groups.get(workers)
          if (group === undefined) continue
          const ramp = await proxies.get(workers)!.measure.ramp(`proxy ${workers}w`, group, {
            start: config.startRate,
            bisections: config.bisections,
            round
          })
          ramps.set(workers, [...(ramps.get(workers) ?? []), ramp])
        }
      }
      const throughput = new Map([...ramps].map(([workers, all]) => [workers, medianRamp(all)]))
      const lowest = Math.min(...[...throughput.values()].map((ramp) => ramp.maxClientRate).filter((rate) => rate > 0))
      const rate = config.fixedRate > 0
        ? config.fixedRate
        : Math.max(100, Math.round((Number.isFinite(lowest) ? lowest : config.startRate) * config.fixedShare / 100) * 100)
      const cpu = new Map<number, CpuRun>()
      const perRun = Math.round((rate * config.scaleSeconds) / Math.max(1, config.scaleRounds))
      const runs = new Map<number, Array<CpuRun>>()
      const threads = new Map<number, Map<number, ThreadTimes>>()
      for (let round = 0; round < config.scaleRounds; round++) {
        for (const workers of round % 2 === 0 ? counts : [...counts].reverse()) {
          const group = groups.get(workers)
          if (group === undefined) continue
          const pid = proxies.get(workers)!.process.pid
          const threadsBefore = threadTimes(pid)
          const run = await proxies.get(workers)!.measure.cpuRun(`proxy ${workers}w x${sessions}`, group, rate, perRun)
          const byThread = threads.get(workers) ?? new Map<number, ThreadTimes>()
          for (const t of threadsDiff(threadsBefore, threadTimes(pid))) {
            const sum = byThread.get(t.tid)
            byThread.set(t.tid, sum === undefined ? t : {
              tid: t.tid,
              cpuMs: sum.cpuMs + t.cpuMs,
              userMs: sum.userMs + t.userMs,
              systemMs: sum.systemMs + t.systemMs,
              voluntarySwitches: sum.voluntarySwitches + t.voluntarySwitches,
              involuntarySwitches: sum.involuntarySwitches + t.involuntarySwitches
            })
          }
          threads.set(workers, byThread)
          runs.set(workers, [...(runs.get(workers) ?? []), run])
        }
      }
      for (const [workers, all] of runs) cpu.set(workers, mergeRuns(all))
      const base = counts[0]!
      const baseMax = throughput.get(base)?.maxRelayedPerSecond
      const basePer = cpu.get(base)?.cpuMsPer10k["proxy"]
      for (const workers of counts) {
        const ramp = throughput.get(workers)
        const per = cpu.get(workers)?.cpuMsPer10k["proxy"]
        const row: WorkersRow = {
          workers,
          sessions,
          throughput: ramp,
          cpu: cpu.get(workers),
          ratio: ramp !== undefined && baseMax !== undefined && baseMax > 0 ? ramp.maxRelayedPerSecond / baseMax : undefined,
          cpuPerPacketRatio: per !== undefined && basePer !== undefined && basePer > 0 ? per / basePer : undefined,
          threads: breakdown(proxies.get(workers)!.process.pid, workers, threads.get(workers) ?? new Map(), cpu.get(workers)?.relayedPackets ?? 0),
          ...(errors.has(workers) ? { error: errors.get(workers)! } : {})
        }
        rows.push(row)
        log(
          `workers ${workers} x ${sessions} sessions: ${fmtInt(ramp?.maxRelayedPerSecond)} relayed/s` +
            `${row.ratio === undefined ? "" : ` (${row.ratio.toFixed(2)}x)`}, proxy CPU ${per?.toFixed(0) ?? "?"} ms per 10k` +
            `${row.cpuPerPacketRatio === undefined ? "" : ` (${row.cpuPerPacketRatio.toFixed(2)}x)`}` +
            `${row.threads === undefined ? "" : `; per 10k, main thread ${fmtThread(row.threads.main)}` +
              `${row.threads.workers.map((w, i) => `, worker ${i} ${fmtThread(w)}`).join("")}, other threads ${fmtThread(row.threads.rest)}`}`
        )
      }
      await Promise.all([...groups.values()].map((group) => group.close()))
    }
  } finally {
    await Promise.all([...proxies.values()].map(({ process }) => stop(process.child, 10_000)))
  }
  return rows
}
