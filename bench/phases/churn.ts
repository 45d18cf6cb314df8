/**
 * The churn phase: --churn sessions created (WHIP POST) and ended (DELETE), --churn-concurrency at a
 * time, against the proxy, then again against a proxy with each --workers count above 1; its RSS,
 * JS heap (every thread's), descriptors and, with workers, each worker's UDP sockets at rest before,
 * right after, and after some idle time: what leaks shows here. (Speed and latency of signaling: the
 * signaling phase.)
 */
import { performance } from "node:perf_hooks"
import { httpRequestPromise } from "../../test/support/http.js"
import type { Bench } from "../bench.js"
import { config } from "../config.js"
import { fmtInt, fmtMB, log } from "../format.js"
import { mapLimit, postAndDelete, sleep } from "../load.js"
import type { ProxyProcess } from "../processes.js"
import { cpuMillis, cpuWatch, fdCounts, rssBytes } from "../procStats.js"
import { readProxy, workerSocketsLeft } from "../proxyStats.js"

/** The proxy (one worker) as the phase's own fields, each other worker count's run in `withWorkers`. */
export const churnPhase = async (bench: Bench) => {
  const main = await churnRun(bench, bench.proxy, 1)
  const withWorkers: Array<Record<string, unknown>> = []
  for (const workers of config.workers.filter((count) => count > 1)) {
    withWorkers.push(await churnRun(bench, await bench.proxyWith(workers), workers))
  }
  return { ...main, withWorkers }
}

const churnRun = async (bench: Bench, proxy: ProxyProcess, workers: number) => {
  const label = workers === 1 ? "churn" : `churn, ${workers} workers`
  await bench.measure.waitQuiet(`the ${label} phase`)
  log(`--- ${label}: ${fmtInt(config.churn)} sessions created (POST) and ended (DELETE), ${config.churnConcurrency} at a time`)
  bench.load.resetAgent()
  // "Before" is read at rest, as "after" is: the earlier phases leave garbage that V8 frees only
  // once allocation has been quiet for a while.
  if (config.churnIdleSeconds > 0) log(`${label}: ${config.churnIdleSeconds} s idle first, so that memory is read at rest`)
  await sleep(Math.max(config.settleMs, config.churnIdleSeconds * 1000))
  const originStats = async () =>
    JSON.parse((await httpRequestPromise(`http://127.0.0.1:${bench.origin.apiPort}/api/v1/stats`)).body) as { active: number }
  // The proxy's memory, descriptors and the origin's sessions, read once before the churn and once after.
  const snapshot = async () => {
    const reading = await readProxy(proxy)
    return {
      rssBytes: rssBytes(proxy.pid),
      fds: fdCounts(proxy.pid),
      originActive: (await originStats()).active,
      memory: reading.memory,
      heapUsedAllThreads: reading.heapUsedAllThreads,
      workers: reading.workers
    }
  }
  const before = await snapshot()
  const errors: Record<string, number> = {}
  const countError = (what: string) => {
    errors[what] = (errors[what] ?? 0) + 1
  }
  const started = performance.now()
  const churnWatch = cpuWatch({ ...bench.measure.pids, proxy: proxy.pid })
  const cpuBefore = cpuMillis(proxy.pid)
  const progress: Array<{ sessions: number; rssBytes: number | undefined; fds: number }> = []
  let done = 0
  const agent = bench.load.httpAgent
  const httpBase = `http://127.0.0.1:${proxy.httpPort}`
  await mapLimit(Array.from({ length: config.churn }, (_, i) => i), config.churnConcurrency, async (i) => {
    const signaled = await postAndDelete(httpBase, "churn", `c${workers}w${i}`, agent)
    if ("error" in signaled) countError(signaled.error)
    if (++done % Math.max(1, Math.round(config.churn / 5)) === 0) {
      const point = { sessions: done, rssBytes: rssBytes(proxy.pid), fds: fdCounts(proxy.pid).total }
      progress.push(point)
      log(`${label}: ${fmtInt(done)} sessions, proxy RSS ${fmtMB(point.rssBytes)}, fds ${point.fds}`)
    }
  })
  const seconds = (performance.now() - started) / 1000
  const cpuAfter = cpuMillis(proxy.pid)
  const churnCpu = churnWatch()
  const rightAfter = { rssBytes: rssBytes(proxy.pid), fds: fdCounts(proxy.pid) }
  bench.load.resetAgent()
  await sleep(config.settleMs)
  const after = await snapshot()
  // V8 gives freed heap pages back once allocation has been quiet for a while (its memory reducer).
  const idle: Array<{ seconds: number; rssBytes: number | undefined; memory: typeof after.memory; heapUsedAllThreads: number }> = []
  for (let waited = 0; waited < config.churnIdleSeconds;) {
    const step = Math.min(10, config.churnIdleSeconds - waited)
    await sleep(step * 1000)
    waited += step
    const reading = await readProxy(proxy)
    idle.push({ seconds: waited, rssBytes: reading.rssBytes, memory: reading.memory, heapUsedAllThreads: reading.heapUsedAllThreads })
    log(`${label}: ${waited} s idle, proxy RSS ${fmtMB(reading.rssBytes)}, heap used ${fmtMB(reading.memory.heapUsed)}`)
  }
  const settled = idle.length === 0 ? after : idle[idle.length - 1]!
  const churn = {
    workers,
    sessions: config.churn,
    concurrency: config.churnConcurrency,
    seconds,
    sessionsPerSecond: config.churn / seconds,
    errors,
    proxyCpuMsPerSession: cpuBefore === undefined || cpuAfter === undefined ? undefined : (cpuAfter - cpuBefore) / config.churn,
    cores: churnCpu.cores,
    otherProcessesCores: churnCpu.foreignCores,
    progress,
    before,
    rightAfter,
    after,
    idle,
    rssGrowthBytes: after.rssBytes !== undefined && before.rssBytes !== undefined ? after.rssBytes - before.rssBytes : undefined,
    rssGrowthAfterIdleBytes:
      settled.rssBytes !== undefined && before.rssBytes !== undefined ? settled.rssBytes - before.rssBytes : undefined,
    heapUsedGrowthAfterIdleBytes: settled.memory.heapUsed - before.memory.heapUsed,
    /** Every thread's heap: the main one's and each worker's. */
    heapUsedAllThreadsGrowthAfterIdleBytes: settled.heapUsedAllThreads - before.heapUsedAllThreads,
    udpSocketsLeft: after.fds.udp - before.fds.udp,
    /** Per worker, from its own count (empty with one worker). */
    workerSocketsLeft: workerSocketsLeft(before, after),
    fdsLeft: after.fds.total - before.fds.total,
    originSessionsLeft: after.originActive - before.originActive,
    settleMs: config.settleMs
  }
  log(
    `${label}: ${fmtInt(config.churn)} in ${seconds.toFixed(1)} s (${fmtInt(config.churn / seconds)}/s), errors ${JSON.stringify(errors)}; ` +
      `RSS ${fmtMB(before.rssBytes)} -> ${fmtMB(after.rssBytes)}, fds ${before.fds.total} -> ${after.fds.total} ` +
      `(udp ${before.fds.udp} -> ${after.fds.udp}` +
      `${before.workers.length === 0 ? "" : `; per worker ${before.workers.map((w) => w.sockets).join("/")} -> ${after.workers.map((w) => w.sockets).join("/")}`})`
  )
  return churn
}
