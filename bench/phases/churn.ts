/**
 * The churn phase: --churn sessions created (WHIP POST) and ended (DELETE), --churn-concurrency at a
 * time, against the proxy; its RSS, JS heap and descriptors at rest before, right after, and after
 * some idle time: what leaks shows here. (Speed and latency of signaling: the signaling phase.)
 */
import { performance } from "node:perf_hooks"
import { httpRequestPromise } from "../../test/support/http.js"
import type { Bench } from "../bench.js"
import { config } from "../config.js"
import { fmtInt, fmtMB, log, type ProcessMemory } from "../format.js"
import { mapLimit, postAndDelete, sleep } from "../load.js"
import { cpuMillis, cpuWatch, fdCounts, rssBytes } from "../procStats.js"

export const churnPhase = async (bench: Bench) => {
  await bench.measure.waitQuiet("the churn phase")
  log(`--- churn: ${fmtInt(config.churn)} sessions created (POST) and ended (DELETE), ${config.churnConcurrency} at a time`)
  bench.load.resetAgent()
  // "Before" is read at rest, as "after" is: the earlier phases leave garbage that V8 frees only
  // once allocation has been quiet for a while.
  if (config.churnIdleSeconds > 0) log(`churn: ${config.churnIdleSeconds} s idle first, so that memory is read at rest`)
  await sleep(Math.max(config.settleMs, config.churnIdleSeconds * 1000))
  const proxy = bench.proxy
  const originStats = async () =>
    JSON.parse((await httpRequestPromise(`http://127.0.0.1:${bench.origin.apiPort}/api/v1/stats`)).body) as { active: number }
  const proxyMemory = async () => {
    const stats = JSON.parse((await httpRequestPromise(`http://127.0.0.1:${proxy.systemPort}/api/v1/stats`)).body) as {
      process: { memory: ProcessMemory }
    }
    return stats.process.memory
  }
  const before = {
    rssBytes: rssBytes(proxy.pid),
    fds: fdCounts(proxy.pid),
    originActive: (await originStats()).active,
    memory: await proxyMemory()
  }
  const errors: Record<string, number> = {}
  const countError = (what: string) => {
    errors[what] = (errors[what] ?? 0) + 1
  }
  const started = performance.now()
  const churnWatch = cpuWatch(bench.measure.pids)
  const cpuBefore = cpuMillis(proxy.pid)
  const progress: Array<{ sessions: number; rssBytes: number | undefined; fds: number }> = []
  let done = 0
  const agent = bench.load.httpAgent
  await mapLimit(Array.from({ length: config.churn }, (_, i) => i), config.churnConcurrency, async (i) => {
    const signaled = await postAndDelete(bench.targets.proxy.httpBase!, "churn", `c${i}`, agent)
    if ("error" in signaled) countError(signaled.error)
    if (++done % Math.max(1, Math.round(config.churn / 5)) === 0) {
      const point = { sessions: done, rssBytes: rssBytes(proxy.pid), fds: fdCounts(proxy.pid).total }
      progress.push(point)
      log(`churn: ${fmtInt(done)} sessions, proxy RSS ${fmtMB(point.rssBytes)}, fds ${point.fds}`)
    }
  })
  const seconds = (performance.now() - started) / 1000
  const cpuAfter = cpuMillis(proxy.pid)
  const churnCpu = churnWatch()
  const rightAfter = { rssBytes: rssBytes(proxy.pid), fds: fdCounts(proxy.pid) }
  bench.load.resetAgent()
  await sleep(config.settleMs)
  const after = {
    rssBytes: rssBytes(proxy.pid),
    fds: fdCounts(proxy.pid),
    originActive: (await originStats()).active,
    memory: await proxyMemory()
  }
  // V8 gives freed heap pages back once allocation has been quiet for a while (its memory reducer).
  const idle: Array<{ seconds: number; rssBytes: number | undefined; memory: ProcessMemory }> = []
  for (let waited = 0; waited < config.churnIdleSeconds;) {
    const step = Math.min(10, config.churnIdleSeconds - waited)
    await sleep(step * 1000)
    waited += step
    idle.push({ seconds: waited, rssBytes: rssBytes(proxy.pid), memory: await proxyMemory() })
    log(`churn: ${waited} s idle, proxy RSS ${fmtMB(idle[idle.length - 1]!.rssBytes)}, heap used ${fmtMB(idle[idle.length - 1]!.memory.heapUsed)}`)
  }
  const settled = idle.length === 0 ? after : idle[idle.length - 1]!
  const churn = {
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
    udpSocketsLeft: after.fds.udp - before.fds.udp,
    fdsLeft: after.fds.total - before.fds.total,
    originSessionsLeft: after.originActive - before.originActive,
    settleMs: config.settleMs
  }
  log(
    `churn: ${fmtInt(config.churn)} in ${seconds.toFixed(1)} s (${fmtInt(config.churn / seconds)}/s), errors ${JSON.stringify(errors)}; ` +
      `RSS ${fmtMB(before.rssBytes)} -> ${fmtMB(after.rssBytes)}, fds ${before.fds.total} -> ${after.fds.total} ` +
      `(udp ${before.fds.udp} -> ${after.fds.udp})`
  )
  return churn
}
