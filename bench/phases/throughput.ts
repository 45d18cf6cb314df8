/**
 * The throughput phase: the highest offered rate each relay carries with loss under --loss and no
 * growing backlog (ramp: doubling, then bisecting), in --throughput-rounds ramps per relay.
 */
import type { Bench } from "../bench.js"
import { config } from "../config.js"
import { fmtInt, fmtPct, log } from "../format.js"
import type { SessionGroup } from "../load.js"
import { medianRamp, type PathName, type RampResult } from "../measure.js"

export const throughputPhase = async (bench: Bench, groups: Record<PathName, SessionGroup>) => {
  await bench.measure.waitQuiet("the throughput phase")
  log("--- throughput: highest offered rate with loss under " + fmtPct(config.lossThreshold, 2))
  // The maximum of one ramp moves by 10-20% from run to run on a shared 2-core machine: several
  // ramps, alternating which relay goes first so that drift weighs on both alike, and the medians.
  const ramps: Record<"proxy" | "bare", Array<RampResult>> = { proxy: [], bare: [] }
  for (let round = 1; round <= config.throughputRounds; round++) {
    const order = round % 2 === 1 ? (["proxy", "bare"] as const) : (["bare", "proxy"] as const)
    for (const name of order) {
      if (config.throughputRounds > 1) log(`throughput round ${round} of ${config.throughputRounds}: ${name}`)
      ramps[name].push(await bench.measure.ramp(name, groups[name], { start: config.startRate, bisections: config.bisections, round }))
    }
  }
  const proxyRamp = medianRamp(ramps.proxy)
  const bareRamp = medianRamp(ramps.bare)
  bench.maxRates.proxy = proxyRamp.maxClientRate
  bench.maxRates.bare = bareRamp.maxClientRate
  log(
    `throughput: proxy ${fmtInt(proxyRamp.maxRelayedPerSecond)} relayed/s, bare ${fmtInt(bareRamp.maxRelayedPerSecond)} relayed/s`
  )
  return {
    counting: "relayed packets per second = 2 x client packets echoed per second (client->origin and origin->client)",
    proxy: proxyRamp,
    bare: bareRamp,
    ratio: bareRamp.maxRelayedPerSecond > 0 ? proxyRamp.maxRelayedPerSecond / bareRamp.maxRelayedPerSecond : null
  }
}
