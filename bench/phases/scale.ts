/**
 * The scale phase: 1, 100 and 1,000 sessions (--scale-sessions) open together; CPU per packet at a
 * fixed rate in interleaved rounds, then a ramp per session count; memory and sockets as they open
 * and once they are closed.
 */
import { type Bench, fixedRate } from "../bench.js"
import { config } from "../config.js"
import { fmtInt, fmtMB, fmtMs, fmtPct, log } from "../format.js"
import { type SessionGroup, sleep } from "../load.js"
import { type CpuRun, medianOf, mergeRuns } from "../measure.js"
import { fdCounts, rssBytes } from "../procStats.js"

export const scalePhase = async (bench: Bench): Promise<Array<Record<string, unknown>>> => {
  const rate = fixedRate(bench)
  const sizes = config.scaleSessions
  log(
    `--- scale: sessions ${sizes.join(", ")}, all open together; CPU at ${fmtInt(rate)} client pps in ` +
      `${config.scaleRounds} interleaved rounds, then a ramp per session count`
  )
  await bench.measure.waitQuiet("the scale phase")
  const scaling: Array<Record<string, unknown>> = []
  const paths = config.scaleBare === "off" ? (["proxy"] as const) : (["proxy", "bare"] as const)
  const groups = new Map<string, SessionGroup>()
  const key = (name: string, sessions: number) => `${name}/${sessions}`
  const rows = new Map<number, Record<string, unknown>>(sizes.map((sessions) => [sessions, { sessions, rate }]))
  const entry = (name: string, sessions: number) => {
    const row = rows.get(sessions)!
    return (row[name] ??= {}) as Record<string, unknown>
  }
  // Open them one count after the other, noting the relay's memory and sockets as they grow.
  for (const name of paths) {
    for (const sessions of sizes) {
      try {
        groups.set(key(name, sessions), await bench.load.sessions(bench.targets[name], sessions, `scale${sessions}`))
        await groups.get(key(name, sessions))!.run({ rate, seconds: Math.min(1, config.scaleSeconds), quietMillis: 100 })
        Object.assign(entry(name, sessions), { rssAfterOpenBytes: rssBytes(bench.measure.pids[name]!), udpSocketsOpen: fdCounts(bench.measure.pids[name]!).udp })
      } catch (error) {
        // A relay that cannot take this many sessions is a result too: noted, and the run goes on.
        const message = (error as Error).message
        log(`${name} with ${sessions} sessions: could not open them: ${message}`)
        entry(name, sessions).error = message
      }
    }
  }
  // CPU per packet: every (relay, session count) in turn, round after round; the median counts.
  const runs = new Map<string, Array<CpuRun>>()
  const perRun = Math.round((rate * config.scaleSeconds) / Math.max(1, config.scaleRounds))
  for (let round = 0; round < config.scaleRounds; round++) {
    // Odd rounds run the counts in reverse, so that a drift of the machine over the phase weighs
    // on every count alike instead of on the last one.
    for (const sessions of round % 2 === 0 ? sizes : [...sizes].reverse()) {
      for (const name of paths) {
        const group = groups.get(key(name, sessions))
        if (group === undefined) continue
        const run = await bench.measure.cpuRun(`${name} x${sessions}`, group, rate, perRun)
        runs.set(key(name, sessions), [...(runs.get(key(name, sessions)) ?? []), run])
      }
    }
    log(
      `scale round ${round + 1}: ` +
        sizes.map((sessions) =>
          `${sessions}: ` +
          paths.map((name) => `${name} ${fmtMs(runs.get(key(name, sessions))?.at(-1)?.cpuMsPer10k[name])}`).join(" ")
        ).join("; ") + " CPU per 10k relayed"
    )
  }
  for (const sessions of sizes) {
    for (const name of paths) {
      const all = runs.get(key(name, sessions))
      if (all === undefined) continue
      const costs = all.map((run) => run.cpuMsPer10k[name]).filter((x): x is number => x !== undefined)
      Object.assign(entry(name, sessions), {
        cpuMsPer10kRelayed: medianOf(costs),
        cpuMsPer10kByRound: costs,
        cpuRun: mergeRuns(all)
      })
    }
  }
  // Maximum rate per session count (the proxy; the bare relay too with --scale-bare full).
  for (const sessions of sizes) {
    for (const name of paths) {
      const group = groups.get(key(name, sessions))
      if (group === undefined || (name === "bare" && config.scaleBare !== "full")) continue
      const start = Math.max(500, Math.round(((name === "proxy" ? bench.maxRates.proxy : bench.maxRates.bare) * 0.75) / 100) * 100)
      const scaleRamp = await bench.measure.ramp(`${name} x${sessions}`, group, { start, bisections: config.scaleBisections })
      Object.assign(entry(name, sessions), {
        maxClientRate: scaleRamp.maxClientRate,
        maxRelayedPerSecond: scaleRamp.maxRelayedPerSecond,
        ramp: scaleRamp
      })
    }
  }
  for (const name of paths) {
    const rssAfterLoad = rssBytes(bench.measure.pids[name]!)
    for (const sessions of sizes) await groups.get(key(name, sessions))?.close()
    if (name === "bare") await bench.resetBare()
    await sleep(500)
    for (const sessions of sizes) {
      Object.assign(entry(name, sessions), {
        rssAfterLoadBytes: rssAfterLoad,
        rssAfterCloseBytes: rssBytes(bench.measure.pids[name]!),
        udpSocketsAfterClose: fdCounts(bench.measure.pids[name]!).udp
      })
    }
  }
  for (const sessions of sizes) {
    const row = rows.get(sessions)!
    for (const name of paths) {
      const e = row[name] as Record<string, any> | undefined // eslint-disable-line @typescript-eslint/no-explicit-any
      if (e === undefined || e.error !== undefined) continue
      log(
        `${name} with ${sessions} sessions: ${fmtMs(e.cpuMsPer10kRelayed)} CPU per 10k relayed (median of ` +
          `${(e.cpuMsPer10kByRound as Array<number>).map((c) => c.toFixed(0)).join(", ")}; loss ${fmtPct(e.cpuRun?.lossRatio)})` +
          (e.maxRelayedPerSecond === undefined ? "" : `, max ${fmtInt(e.maxRelayedPerSecond)} relayed/s`) +
          `; RSS ${fmtMB(e.rssAfterOpenBytes)} once open`
      )
    }
    scaling.push(row)
  }
  return scaling
}
