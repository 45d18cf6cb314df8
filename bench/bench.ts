/**
 * What every phase of the benchmark is given: the processes and their measurements, the load
 * generator and where its paths go, and the maximum rates found so far.
 */
import { config } from "./config.js"
import type { LoadGenerator, LoadTarget } from "./load.js"
import type { Measure, PathName } from "./measure.js"
import type { OriginPorts, ProxyProcess } from "./processes.js"

export interface Bench {
  readonly measure: Measure
  readonly load: LoadGenerator
  readonly targets: Record<PathName, LoadTarget>
  readonly proxy: ProxyProcess
  readonly origin: OriginPorts
  /** Where logs of started processes go. */
  readonly workDir: string
  /** Makes the bare relay close every per-client socket. */
  readonly resetBare: () => Promise<void>
  /**
   * The proxy with this many data-plane workers (PROXY_RTC_WORKERS), for the cpu and churn phases:
   * `proxy` for 1, else one started at the first call and kept until `stopProxiesWith`.
   */
  readonly proxyWith: (workers: number) => Promise<ProxyProcess>
  readonly stopProxiesWith: () => Promise<void>
  /** The highest client rates of the throughput phase; without it, a guess from the knobs. */
  readonly maxRates: { proxy: number; bare: number }
}

/** The client rate of the cpu and scale phases: --fixed-rate, or --fixed-share of the lower maximum. */
export const fixedRate = (bench: Bench) =>
  config.fixedRate > 0
    ? config.fixedRate
    : Math.max(100, Math.round((Math.min(bench.maxRates.proxy, bench.maxRates.bare) * config.fixedShare) / 100) * 100)
