/**
 * The cpu phase: CPU time per 10,000 relayed packets and resident memory after warm-up and after
 * --packets relayed packets, at one fixed rate for both relays, which take turns chunk by chunk.
 */
import { type Bench, fixedRate } from "../bench.js"
import { config } from "../config.js"
import { fmtInt, fmtMB, fmtMs, fmtPct, fmtSignedMB, log } from "../format.js"
import { type SessionGroup, sleep } from "../load.js"
import { type CpuRun, mergeRuns, type PathName } from "../measure.js"
import { rssBytes } from "../procStats.js"

export const cpuPhase = async (bench: Bench, groups: Record<PathName, SessionGroup>) => {
  const rate = fixedRate(bench)
  const clientPackets = Math.ceil(config.packets / 2)
  await bench.measure.waitQuiet("the cpu phase")
  log(`--- cpu and memory at ${fmtInt(rate)} client pps: warm-up ${fmtInt(config.warmupPackets)}, then ${fmtInt(config.packets)} relayed`)
  const cpuMemory: Record<string, unknown> = { rate, sessions: config.sessions, relayedPackets: config.packets }
  const relays = ["proxy", "bare"] as const
  const rssAfterWarmup: Record<string, number | undefined> = {}
  for (const name of relays) await groups[name].run({ rate, packets: Math.ceil(config.warmupPackets / 2), quietMillis: 100 })
  await sleep(config.settleMs)
  for (const name of relays) rssAfterWarmup[name] = rssBytes(bench.measure.pids[name]!)
  // The two relays take turns, chunk by chunk, so that both see the same conditions.
  const chunks = config.quick ? 1 : 5
  const perChunk = Math.ceil(clientPackets / chunks)
  const runs: Record<string, Array<CpuRun>> = { proxy: [], bare: [] }
  for (let chunk = 0; chunk < chunks; chunk++) {
    for (const name of relays) {
      const run = await bench.measure.cpuRun(name, groups[name], rate, perChunk)
      runs[name]!.push(run)
      const merged = mergeRuns(runs[name]!)
      log(
        `${name}: ${fmtInt(merged.relayedPackets)} relayed at ${fmtInt(rate)} client pps, ${fmtMs(run.cpuMsPer10k[name])} ` +
          `CPU per 10k in this chunk, loss so far ${fmtPct(merged.lossRatio)}`
      )
    }
  }
  await sleep(config.settleMs)
  for (const name of relays) {
    const run = mergeRuns(runs[name]!)
    const rssAfterRun = rssBytes(bench.measure.pids[name]!)
    const warm = rssAfterWarmup[name]
    const growth = rssAfterRun !== undefined && warm !== undefined ? rssAfterRun - warm : undefined
    const perChunkCost = runs[name]!.map((r) => r.cpuMsPer10k[name]).filter((x): x is number => x !== undefined)
    cpuMemory[name] = {
      ...run,
      cpuMsPer10kRelayed: run.cpuMsPer10k[name],
      cpuMsPer10kByChunk: perChunkCost,
      rssAfterWarmupBytes: warm,
      rssAfterRunBytes: rssAfterRun,
      rssGrowthBytes: growth
    }
    log(
      `${name}: ${fmtMs(run.cpuMsPer10k[name])} CPU per 10k relayed (chunks ${perChunkCost.map((c) => c.toFixed(0)).join(", ")}; ` +
        `origin ${fmtMs(run.cpuMsPer10k["origin"])}, load generator ${fmtMs(run.cpuMsPer10k["loadgen"])}), loss ` +
        `${fmtPct(run.lossRatio)}; RSS ${fmtMB(warm)} -> ${fmtMB(rssAfterRun)} (${fmtSignedMB(growth)})`
    )
  }
  return cpuMemory
}
