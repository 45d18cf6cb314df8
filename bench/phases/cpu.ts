/**
 * The cpu phase: CPU time per 10,000 relayed packets and memory after warm-up and after --packets
 * relayed packets, at one fixed rate for every relay: the proxy (one worker), the bare relay and a
 * proxy with each --workers count above 1, which take turns chunk by chunk. For the proxies, the
 * JavaScript heap of every thread (the main one's and each worker's) besides the process's RSS.
 */
import { type Bench, fixedRate } from "../bench.js"
import { config } from "../config.js"
import { fmtInt, fmtMB, fmtMs, fmtPct, fmtSignedMB, log } from "../format.js"
import { type SessionGroup, sleep } from "../load.js"
import { type CpuRun, Measure, mergeRuns, type PathName } from "../measure.js"
import { gcFollower, rssBytes } from "../procStats.js"
import { type ProxyReading, readProxy } from "../proxyStats.js"
import type { ProxyProcess } from "../processes.js"

/** One relay of the phase, with whatever measures its process. */
interface Contender {
  readonly name: string
  readonly group: SessionGroup
  readonly measure: Measure
  /** Its process among the measure's pids. */
  readonly role: "proxy" | "bare"
  readonly pid: number
  readonly proxy: ProxyProcess | undefined
  readonly workers: number | undefined
}

export const cpuPhase = async (bench: Bench, groups: Record<PathName, SessionGroup>) => {
  const rate = fixedRate(bench)
  const clientPackets = Math.ceil(config.packets / 2)
  const contenders: Array<Contender> = [
    { name: "proxy", group: groups.proxy, measure: bench.measure, role: "proxy", pid: bench.proxy.pid, proxy: bench.proxy, workers: 1 },
    { name: "bare", group: groups.bare, measure: bench.measure, role: "bare", pid: bench.measure.pids["bare"]!, proxy: undefined, workers: undefined }
  ]
  // The same sessions on a proxy with each worker count above 1 (started for this, kept for the churn).
  const extra: Array<SessionGroup> = []
  for (const workers of config.workers.filter((count) => count > 1)) {
    const proxy = await bench.proxyWith(workers)
    const group = await bench.load.sessions({ kind: "proxy", host: "127.0.0.1", httpBase: `http://127.0.0.1:${proxy.httpPort}` }, config.sessions, `cpu${workers}w`)
    extra.push(group)
    await group.run({ rate: config.startRate, seconds: Math.min(1, config.stepSeconds) })
    const measure = new Measure(
      { proxy: proxy.pid, origin: bench.measure.pids["origin"]!, loadgen: bench.measure.pids["loadgen"]! },
      { proxy: proxy.udpPort },
      config.proxyTraceGc ? gcFollower(proxy.logFile) : undefined
    )
    contenders.push({ name: `proxy-${workers}w`, group, measure, role: "proxy", pid: proxy.pid, proxy, workers })
  }
  await bench.measure.waitQuiet("the cpu phase")
  log(
    `--- cpu and memory at ${fmtInt(rate)} client pps (${contenders.map((c) => c.name).join(", ")}): ` +
      `warm-up ${fmtInt(config.warmupPackets)}, then ${fmtInt(config.packets)} relayed`
  )
  const cpuMemory: Record<string, unknown> = { rate, sessions: config.sessions, relayedPackets: config.packets }
  const rssAfterWarmup = new Map<Contender, number | undefined>()
  const readingAfterWarmup = new Map<Contender, ProxyReading>()
  for (const c of contenders) await c.group.run({ rate, packets: Math.ceil(config.warmupPackets / 2), quietMillis: 100 })
  await sleep(config.settleMs)
  for (const c of contenders) {
    rssAfterWarmup.set(c, rssBytes(c.pid))
    if (c.proxy !== undefined) readingAfterWarmup.set(c, await readProxy(c.proxy))
  }
  // The relays take turns, chunk by chunk, so that all see the same conditions.
  const chunks = config.quick ? 1 : 5
  const perChunk = Math.ceil(clientPackets / chunks)
  const runs = new Map<Contender, Array<CpuRun>>(contenders.map((c) => [c, []]))
  for (let chunk = 0; chunk < chunks; chunk++) {
    for (const c of contenders) {
      const run = await c.measure.cpuRun(c.name, c.group, rate, perChunk)
      runs.get(c)!.push(run)
      const merged = mergeRuns(runs.get(c)!)
      log(
        `${c.name}: ${fmtInt(merged.relayedPackets)} relayed at ${fmtInt(rate)} client pps, ${fmtMs(run.cpuMsPer10k[c.role])} ` +
          `CPU per 10k in this chunk, loss so far ${fmtPct(merged.lossRatio)}`
      )
    }
  }
  await sleep(config.settleMs)
  const withWorkers: Array<Record<string, unknown>> = []
  for (const c of contenders) {
    const run = mergeRuns(runs.get(c)!)
    const rssAfterRun = rssBytes(c.pid)
    const warm = rssAfterWarmup.get(c)
    const growth = rssAfterRun !== undefined && warm !== undefined ? rssAfterRun - warm : undefined
    const perChunkCost = runs.get(c)!.map((r) => r.cpuMsPer10k[c.role]).filter((x): x is number => x !== undefined)
    const before = readingAfterWarmup.get(c)
    const after = c.proxy === undefined ? undefined : await readProxy(c.proxy)
    const row = {
      ...(c.workers === undefined ? {} : { workers: c.workers }),
      ...run,
      cpuMsPer10kRelayed: run.cpuMsPer10k[c.role],
      cpuMsPer10kByChunk: perChunkCost,
      rssAfterWarmupBytes: warm,
      rssAfterRunBytes: rssAfterRun,
      rssGrowthBytes: growth,
      ...(before === undefined || after === undefined ? {} : {
        memoryAfterWarmup: before,
        memoryAfterRun: after,
        heapUsedGrowthBytes: after.heapUsedAllThreads - before.heapUsedAllThreads
      })
    }
    if (c.workers === undefined || c.workers === 1) cpuMemory[c.name] = row
    else withWorkers.push(row)
    log(
      `${c.name}: ${fmtMs(run.cpuMsPer10k[c.role])} CPU per 10k relayed (chunks ${perChunkCost.map((x) => x.toFixed(0)).join(", ")}; ` +
        `origin ${fmtMs(run.cpuMsPer10k["origin"])}, load generator ${fmtMs(run.cpuMsPer10k["loadgen"])}), loss ` +
        `${fmtPct(run.lossRatio)}; RSS ${fmtMB(warm)} -> ${fmtMB(rssAfterRun)} (${fmtSignedMB(growth)})` +
        (before === undefined || after === undefined
          ? ""
          : `; JS heap used, every thread, ${fmtMB(before.heapUsedAllThreads)} -> ${fmtMB(after.heapUsedAllThreads)}`)
    )
  }
  cpuMemory["withWorkers"] = withWorkers
  await Promise.all(extra.map((group) => group.close()))
  return cpuMemory
}
