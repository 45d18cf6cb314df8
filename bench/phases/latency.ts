/**
 * The latency phase: round trips through each relay and straight to the origin at one rate (half of
 * the lower maximum), added one-way = half the difference.
 */
import type { Bench } from "../bench.js"
import { fmtInt, log } from "../format.js"
import type { SessionGroup } from "../load.js"
import type { PathName } from "../measure.js"

export const latencyPhase = async (bench: Bench, groups: Record<PathName, SessionGroup>) => {
  await bench.measure.waitQuiet("the latency phase")
  // One rate for both relays (half of the platform's ceiling, or of the proxy's when lower): the
  // tail of the round trip grows steeply with the machine's load, so unequal rates compare nothing.
  const latencyRate = Math.round(Math.min(bench.maxRates.proxy, bench.maxRates.bare) / 2)
  log(`--- latency at ${fmtInt(latencyRate)} client pps (half of the lower maximum), against the direct path at the same rate`)
  return {
    method: "added one-way = (relay RTT percentile - direct RTT percentile) / 2, each at the same offered rate",
    proxy: await bench.measure.latencyAt("proxy", groups.proxy, groups.direct, latencyRate),
    bare: await bench.measure.latencyAt("bare", groups.bare, groups.direct, latencyRate)
  }
}
