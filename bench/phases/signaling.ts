/**
 * The signaling phase: sessions signaled and ended as fast as --signaling-concurrency clients go
 * (WHIP POST with a minimal offer, then DELETE on its Location, each client one session after the
 * other on a keep-alive connection), against the proxy, the plain-Node floor (bench/signalingFloor.ts;
 * --signaling-floor off leaves it out) and, with --go-proxy, the SRS Go proxy, all in front of the same
 * origin. Per concurrency: sessions per second, POST and DELETE latency
 * (request start to answer end), and the proxy's CPU time (utime+stime) per session.
 */
import * as http from "node:http"
import { performance } from "node:perf_hooks"
import type { Bench } from "../bench.js"
import { config } from "../config.js"
import { fmtCores, fmtInt, fmtMs, log } from "../format.js"
import { mapLimit, postAndDelete, type RttSummary, summarize } from "../load.js"
import type { ProxyProcess } from "../processes.js"
import { cpuMillis, cpuWatch } from "../procStats.js"

/** One concurrency against one proxy. */
export interface SignalingLevel {
  readonly concurrency: number
  readonly sessions: number
  /** Sessions whose POST and DELETE both succeeded. */
  readonly completed: number
  readonly seconds: number
  readonly sessionsPerSecond: number
  /** Request start to answer end, µs (the `Micros` fields). */
  readonly post: RttSummary | undefined
  readonly delete: RttSummary | undefined
  /** utime+stime of the proxy process over the run / sessions. */
  readonly proxyCpuMsPerSession: number | undefined
  /** Cores used by each benchmark process (and the Go proxy) during the run. */
  readonly cores: Record<string, number>
  readonly otherProcessesCores: number | undefined
  readonly errors: Record<string, number>
  /** 1, or more when the run was repeated because other processes took the CPU. */
  readonly attempt: number
}

export interface SignalingResult {
  readonly pid: number
  readonly version: string
  readonly levels: Array<SignalingLevel & { readonly rounds: ReadonlyArray<SignalingRound>; readonly failedInAnyRound: number }>
}

const run = async (
  target: ProxyProcess,
  watched: Record<string, number>,
  concurrency: number,
  streams: ReadonlyArray<string>
) => {
  // One connection per client, kept alive, as a client that signals again would.
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  const base = `http://127.0.0.1:${target.httpPort}`
  const posts: Array<number> = []
  const deletes: Array<number> = []
  const errors: Record<string, number> = {}
  const watch = cpuWatch(watched)
  const cpuBefore = cpuMillis(target.pid)
  const started = performance.now()
  await mapLimit(streams, concurrency, async (stream) => {
    const signaled = await postAndDelete(base, "signaling", stream, agent)
    if ("error" in signaled) errors[signaled.error] = (errors[signaled.error] ?? 0) + 1
    else {
      posts.push(signaled.postMicros)
      deletes.push(signaled.deleteMicros)
    }
  })
  const seconds = (performance.now() - started) / 1000
  const cpuAfter = cpuMillis(target.pid)
  const cpu = watch()
  agent.destroy()
  return {
    concurrency,
    sessions: streams.length,
    completed: posts.length,
    seconds,
    sessionsPerSecond: posts.length / seconds,
    post: summarize(Float64Array.from(posts)),
    delete: summarize(Float64Array.from(deletes)),
    proxyCpuMsPerSession: cpuBefore === undefined || cpuAfter === undefined ? undefined : (cpuAfter - cpuBefore) / streams.length,
    cores: cpu.cores,
    otherProcessesCores: cpu.foreignCores,
    errors
  }
}

const ms = (micros: number | undefined) => fmtMs(micros === undefined ? undefined : micros / 1000)

/** What each round of a level measured: the spread the row's median run sits in. */
export interface SignalingRound {
  readonly sessionsPerSecond: number
  readonly proxyCpuMsPerSession: number | undefined
  readonly postP99Micros: number | undefined
}

/** The run with the median CPU per session (a run without a CPU reading counts as the slowest). */
const medianRun = <A extends { readonly proxyCpuMsPerSession: number | undefined }>(runs: ReadonlyArray<A>): A => {
  const sorted = [...runs].sort((a, b) => (a.proxyCpuMsPerSession ?? Infinity) - (b.proxyCpuMsPerSession ?? Infinity))
  return sorted[Math.floor((sorted.length - 1) / 2)]!
}

/**
 * Every concurrency against `target`, after a warm-up, `config.signalingRounds` times, the
 * concurrencies taking turns (16, 64, 16, 64, ...) so that a slow minute on a shared machine falls on
 * one round of each rather than on all rounds of one. A run disturbed by other processes is repeated
 * (twice at most). Each level is the run with the median CPU per session, with every round's figures.
 */
const measureProxy = async (bench: Bench, name: string, target: ProxyProcess, watched: Record<string, number>) => {
  // Warm-up: JIT and the first connections to the origin; not counted.
  const warmup = Array.from({ length: config.signalingWarmup }, (_, i) => `w${i}`)
  await run(target, watched, Math.max(...config.signalingConcurrency), warmup)
  const runs = new Map<number, Array<SignalingLevel>>(config.signalingConcurrency.map((concurrency) => [concurrency, []]))
  for (let round = 1; round <= config.signalingRounds; round++) {
    for (const concurrency of config.signalingConcurrency) {
      for (let attempt = 1; ; attempt++) {
        const streams = Array.from({ length: config.signalingSessions }, (_, i) => `c${concurrency}-r${round}-${attempt}-${i}`)
        const level = { ...(await run(target, watched, concurrency, streams)), attempt }
        const disturbed = level.otherProcessesCores !== undefined && level.otherProcessesCores > config.foreignTolerance
        log(
          `${name} x${concurrency}${config.signalingRounds > 1 ? ` (round ${round})` : ""}: ` +
            `${fmtInt(level.sessionsPerSecond)} sessions/s, POST p50 ${ms(level.post?.p50Micros)} ` +
            `p99 ${ms(level.post?.p99Micros)}, DELETE p50 ${ms(level.delete?.p50Micros)} p99 ${ms(level.delete?.p99Micros)}, ` +
            `CPU ${fmtMs(level.proxyCpuMsPerSession)} per session, other processes ${fmtCores(level.otherProcessesCores)} cores` +
            `${Object.keys(level.errors).length === 0 ? "" : `, errors ${JSON.stringify(level.errors)}`}` +
            `${disturbed && attempt < 3 ? " (other processes busy: again)" : ""}`
        )
        if (level.otherProcessesCores !== undefined) bench.measure.foreignSamples.push(level.otherProcessesCores)
        if (!disturbed || attempt >= 3) {
          runs.get(concurrency)!.push(level)
          break
        }
        await bench.measure.waitQuiet("repeating the run", Math.max(2, Math.min(10, config.waitQuietSeconds)))
      }
    }
  }
  const levels = config.signalingConcurrency.map((concurrency) => {
    const all = runs.get(concurrency)!
    const rounds: Array<SignalingRound> = all.map((level) => ({
      sessionsPerSecond: level.sessionsPerSecond,
      proxyCpuMsPerSession: level.proxyCpuMsPerSession,
      postP99Micros: level.post?.p99Micros
    }))
    // Sessions that failed in any round count: the median run alone could hide them.
    const failed = all.reduce((n, level) => n + level.sessions - level.completed, 0)
    const median = medianRun(all)
    return { ...median, rounds, failedInAnyRound: failed }
  })
  return { pid: target.pid, version: target.version, levels }
}

/** How `proxy` compares with `other`, level by level: sessions/s and CPU per session as ratios. */
const ratioOf = (proxy: SignalingResult, other: SignalingResult) =>
  proxy.levels.map((level, i) => {
    const theirs = other.levels[i]!
    return {
      concurrency: level.concurrency,
      sessionsPerSecond: theirs.sessionsPerSecond > 0 ? level.sessionsPerSecond / theirs.sessionsPerSecond : null,
      cpuPerSession: level.proxyCpuMsPerSession !== undefined && theirs.proxyCpuMsPerSession !== undefined &&
          theirs.proxyCpuMsPerSession > 0
        ? level.proxyCpuMsPerSession / theirs.proxyCpuMsPerSession
        : null
    }
  })

export const signalingPhase = async (
  bench: Bench,
  others: { readonly go: ProxyProcess | undefined; readonly floor: ProxyProcess | undefined }
) => {
  await bench.measure.waitQuiet("the signaling phase")
  log(
    `--- signaling: WHIP POST + DELETE, ${config.signalingConcurrency.join(" and ")} clients at a time, ` +
      `${fmtInt(config.signalingSessions)} sessions each after ${fmtInt(config.signalingWarmup)} to warm up`
  )
  const proxy = await measureProxy(bench, "proxy", bench.proxy, bench.measure.pids)
  const floor = others.floor === undefined
    ? undefined
    : await measureProxy(bench, "plain Node floor", others.floor, { ...bench.measure.pids, floor: others.floor.pid })
  const go = others.go === undefined
    ? undefined
    : await measureProxy(bench, "Go proxy", others.go, { ...bench.measure.pids, go: others.go.pid })
  return {
    method: "each client: WHIP POST with a minimal offer, then DELETE on its Location, one session after the other on a keep-alive connection",
    sessions: config.signalingSessions,
    warmup: config.signalingWarmup,
    rounds: config.signalingRounds,
    proxy,
    ...(floor === undefined ? {} : { floor, floorRatio: ratioOf(proxy, floor) }),
    ...(go === undefined ? {} : { go: { ...go, binary: config.goProxy }, ratio: ratioOf(proxy, go) })
  }
}
