/**
 * What a measurement takes around a run of the load generator: the CPU time of every process
 * (/proc/<pid>/stat), the cores other processes took (/proc/stat), the datagrams the kernel dropped
 * at each process's UDP receive buffers (/proc/net/udp) and the proxy's GC pauses; and the ramp,
 * latency and fixed-rate CPU runs built from such steps.
 */
import { config } from "./config.js"
import { describeDrops, fmtCores, fmtGc, fmtInt, fmtPct, fmtUs, log } from "./format.js"
import { type SessionGroup, sleep, type StepResult, summarize } from "./load.js"
import { cpuMillis, cpuWatch, diff, type GcSummary, udpDrops, udpSnmp } from "./procStats.js"

export type PathName = "proxy" | "bare" | "direct"

export interface RampStep {
  readonly rate: number
  readonly sent: number
  readonly received: number
  readonly lossRatio: number
  readonly achievedRate: number
  readonly generatorBehind: boolean
  readonly relayedPerSecond: number
  readonly rttP50Micros: number | undefined
  readonly rttP99Micros: number | undefined
  /** Median RTT of the step's last fifth minus its first fifth. */
  readonly queueGrowthMicros: number | undefined
  /** Failed because of a growing backlog (see --max-queue-growth-ms). */
  readonly backlog: boolean
  /** The proxy's garbage collections during the step (proxy steps only). */
  readonly proxyGc: GcSummary | undefined
  readonly pass: boolean
  /** 1, or more when a failed step was repeated because other processes took the CPU. */
  readonly attempt: number
  /** Cores used by each benchmark process during the step. */
  readonly cores: Record<string, number>
  /** Cores used by processes outside the benchmark during the step. */
  readonly foreignCores: number | undefined
  /** Datagrams the kernel dropped at each process's UDP receive buffers during the step. */
  readonly kernelDrops: Record<string, number>
  readonly udpSnmp: Record<string, number>
  /** Which ramp of the throughput phase (1-based). */
  readonly round: number
}

export interface RampResult {
  readonly sessions: number
  /** Highest offered client rate (one way) with loss under the threshold; 0 when none passed. */
  readonly maxClientRate: number
  /** Relayed packets per second at that rate (2 per echoed client packet). */
  readonly maxRelayedPerSecond: number
  readonly lossAtMax: number | undefined
  /** Lowest offered rate that failed. */
  readonly firstFailedRate: number | undefined
  readonly steps: Array<RampStep>
}

/** A relay's ramps in the throughput phase: the median one stands for it; every step is kept. */
export interface ThroughputResult extends RampResult {
  readonly rounds: ReadonlyArray<{ readonly maxClientRate: number; readonly maxRelayedPerSecond: number }>
}

export const mergeGc = (all: ReadonlyArray<GcSummary | undefined>): GcSummary | undefined => {
  const present = all.filter((gc): gc is GcSummary => gc !== undefined)
  if (present.length === 0) return undefined
  return {
    count: present.reduce((n, gc) => n + gc.count, 0),
    major: present.reduce((n, gc) => n + gc.major, 0),
    totalPauseMillis: present.reduce((n, gc) => n + gc.totalPauseMillis, 0),
    maxPauseMillis: Math.max(...present.map((gc) => gc.maxPauseMillis))
  }
}

export interface LatencyResult {
  readonly rate: number
  readonly sessions: number
  readonly rounds: number
  readonly lossRatio: number
  readonly rtt: StepResult["rtt"]
  readonly directLossRatio: number
  readonly directRtt: StepResult["rtt"]
  /** (relay percentile - direct percentile) / 2. */
  readonly addedOneWayP50Micros: number | undefined
  readonly addedOneWayP99Micros: number | undefined
  readonly addedOneWayMeanMicros: number | undefined
  readonly cores: Record<string, number>
  /** The most cores other processes took during any of the runs. */
  readonly foreignCores: number | undefined
  /** The proxy's garbage collections during its runs. */
  readonly proxyGc: GcSummary | undefined
}

export interface CpuRun {
  readonly rate: number
  readonly sessions: number
  readonly sent: number
  readonly received: number
  readonly lossRatio: number
  /** 2 x echoes received. */
  readonly relayedPackets: number
  readonly seconds: number
  /** utime+stime in ms, per process (the load generator from process.cpuUsage()). */
  readonly cpuMs: Record<string, number>
  /** utime+stime per 10,000 relayed packets, in ms, per process. */
  readonly cpuMsPer10k: Record<string, number | undefined>
  /** CPU use over the run as a share of one core, per process. */
  readonly coreShare: Record<string, number | undefined>
  /** The most cores processes outside the benchmark used during a counted chunk. */
  readonly foreignCores: number | undefined
  /** Chunks sent again because other processes took the CPU. */
  readonly chunksRepeated: number
  /** The proxy's garbage collections during the run (proxy runs only). */
  readonly proxyGc: GcSummary | undefined
  readonly kernelDrops: Record<string, number>
}

const derived = (cpuMs: Record<string, number>, relayedPackets: number, seconds: number) => ({
  cpuMsPer10k: Object.fromEntries(
    Object.entries(cpuMs).map(([who, ms]) => [who, relayedPackets === 0 ? undefined : (ms / relayedPackets) * 10_000])
  ),
  coreShare: Object.fromEntries(Object.entries(cpuMs).map(([who, ms]) => [who, ms / 1000 / seconds]))
})

/** The processes a benchmark watches, and the measured steps and runs over them. */
export class Measure {
  /** Cores other processes used during each measured step. */
  readonly foreignSamples: Array<number> = []

  constructor(
    /** Benchmark processes by name (`proxy`, `bare`, `origin`, `loadgen`). */
    readonly pids: Record<string, number>,
    /** The proxy's and the bare relay's listening ports, to tell their drops from those of their per-session sockets. */
    readonly sharedPorts: Record<string, number>,
    /** The proxy's GC activity since the previous call (from its --trace-gc log lines). */
    readonly proxyGc: () => GcSummary | undefined = () => undefined
  ) {}

  readonly measuredStep = async (
    group: SessionGroup,
    options: { rate: number; seconds?: number; packets?: number; keepRtts?: boolean }
  ) => {
    const dropsBefore = udpDrops(this.pids, this.sharedPorts)
    const snmpBefore = udpSnmp()
    const watch = cpuWatch(this.pids)
    this.proxyGc()
    const result = await group.run(options)
    const gc = this.proxyGc()
    const cpu = watch()
    if (cpu.foreignCores !== undefined) this.foreignSamples.push(cpu.foreignCores)
    return { result, cpu, gc, kernelDrops: diff(dropsBefore, udpDrops(this.pids, this.sharedPorts)), snmp: diff(snmpBefore, udpSnmp()) }
  }

  /**
   * Waits (at most `maxSeconds`) until processes outside the benchmark use under --foreign-tolerance
   * cores, so that a measurement does not start in the middle of someone's test run.
   */
  readonly waitQuiet = async (what: string, maxSeconds = config.waitQuietSeconds) => {
    const deadline = performance.now() + maxSeconds * 1000
    let told = false
    for (;;) {
      const watch = cpuWatch(this.pids)
      await sleep(maxSeconds > 0 ? 1000 : 300)
      const { foreignCores } = watch()
      if (foreignCores === undefined || foreignCores <= config.foreignTolerance) {
        if (told) log(`quiet again (${fmtCores(foreignCores)} cores elsewhere)`)
        return foreignCores
      }
      if (performance.now() >= deadline) {
        log(`warning: other processes use ${fmtCores(foreignCores)} cores before ${what}; measuring anyway, numbers will be noisy`)
        return foreignCores
      }
      if (!told) log(`other processes use ${fmtCores(foreignCores)} cores: waiting up to ${maxSeconds} s before ${what}`)
      told = true
    }
  }

  readonly ramp = async (
    name: string,
    group: SessionGroup,
    options: { readonly start: number; readonly bisections: number; readonly round?: number }
  ): Promise<RampResult> => {
    const steps: Array<RampStep> = []
    const minRate = 100
    const attempt = async (rawRate: number) => {
      const rate = Math.max(minRate, Math.round(rawRate / 10) * 10)
      for (let tryNo = 1; ; tryNo++) {
        const { cpu, gc, kernelDrops, result, snmp } = await this.measuredStep(group, { rate, seconds: config.stepSeconds })
        const ownGc = group.target.kind === "proxy" ? gc : undefined
        const backlog = result.queueGrowthMicros !== undefined && result.queueGrowthMicros > config.maxQueueGrowthMicros
        const pass = result.lossRatio < config.lossThreshold && !result.generatorBehind && !backlog
        steps.push({
          rate,
          sent: result.sent,
          received: result.received,
          lossRatio: result.lossRatio,
          achievedRate: result.achievedRate,
          generatorBehind: result.generatorBehind,
          relayedPerSecond: result.relayedPerSecond,
          rttP50Micros: result.rtt?.p50Micros,
          rttP99Micros: result.rtt?.p99Micros,
          queueGrowthMicros: result.queueGrowthMicros,
          backlog,
          proxyGc: ownGc,
          pass,
          attempt: tryNo,
          cores: cpu.cores,
          foreignCores: cpu.foreignCores,
          kernelDrops,
          udpSnmp: snmp,
          round: options.round ?? 1
        })
        const drops = describeDrops(kernelDrops)
        const disturbed = !pass && cpu.foreignCores !== undefined && cpu.foreignCores > config.foreignTolerance
        log(
          `${name}: ${fmtInt(rate)} client pps x ${group.size} sessions -> loss ${fmtPct(result.lossRatio)}` +
            `${result.generatorBehind ? ` (generator behind: ${fmtInt(result.achievedRate)} pps)` : ""}` +
            `, rtt p50 ${fmtUs(result.rtt?.p50Micros)} p99 ${fmtUs(result.rtt?.p99Micros)}` +
            `, backlog growth ${fmtUs(result.queueGrowthMicros)}${backlog ? " (too much)" : ""}` +
            `, cores ${Object.entries(cpu.cores).filter(([, c]) => c >= 0.01).map(([w, c]) => `${w} ${fmtCores(c)}`).join(" ")}` +
            ` other ${fmtCores(cpu.foreignCores)}` +
            `${ownGc === undefined ? "" : `, proxy GC ${fmtGc(ownGc)}`}` +
            `${drops === "" ? "" : `, kernel drops: ${drops}`} ${pass ? "ok" : "FAIL"}${disturbed && tryNo < 3 ? " (other processes busy: again)" : ""}`
        )
        if (pass || !disturbed || tryNo >= 3) {
          await sleep(200)
          return { pass, rate }
        }
        await this.waitQuiet("repeating the step", Math.max(2, Math.min(10, config.waitQuietSeconds)))
      }
    }
    let lo = 0
    let hi: number | undefined
    let rate = options.start
    const first = await attempt(rate)
    if (first.pass) {
      lo = first.rate
      while (rate * 2 <= config.maxRate) {
        rate *= 2
        const next = await attempt(rate)
        if (next.pass) lo = next.rate
        else {
          hi = next.rate
          break
        }
      }
    } else {
      hi = first.rate
      while (rate / 2 >= minRate) {
        rate /= 2
        const next = await attempt(rate)
        if (next.pass) {
          lo = next.rate
          break
        }
        hi = next.rate
      }
    }
    for (let i = 0; i < options.bisections && lo > 0 && hi !== undefined && hi - lo > 20; i++) {
      const next = await attempt((lo + hi) / 2)
      if (next.pass) lo = Math.max(lo, next.rate)
      else hi = next.rate
    }
    const best = steps.filter((s) => s.pass && s.rate === lo).sort((a, b) => b.relayedPerSecond - a.relayedPerSecond)[0]
    return {
      sessions: group.size,
      maxClientRate: lo,
      maxRelayedPerSecond: best?.relayedPerSecond ?? 0,
      lossAtMax: best?.lossRatio,
      firstFailedRate: hi,
      steps
    }
  }

  /**
   * Round trips through a relay and straight to the origin at the same rate, interleaved in
   * --latency-rounds rounds (so that a disturbance hits both alike), all samples of a path pooled.
   */
  readonly latencyAt = async (name: string, group: SessionGroup, direct: SessionGroup, rate: number): Promise<LatencyResult> => {
    const rounds = Math.max(1, config.latencyRounds)
    const seconds = config.latencySeconds / rounds
    const relayRtts: Array<Float64Array> = []
    const directRtts: Array<Float64Array> = []
    let relaySent = 0
    let relayReceived = 0
    let directSent = 0
    let directReceived = 0
    const foreign: Array<number> = []
    const gcs: Array<GcSummary | undefined> = []
    let cores: Record<string, number> = {}
    for (let round = 0; round < rounds; round++) {
      const relayStep = await this.measuredStep(group, { rate, seconds, keepRtts: true })
      if (group.target.kind === "proxy") gcs.push(relayStep.gc)
      await sleep(100)
      const directStep = await this.measuredStep(direct, { rate, seconds, keepRtts: true })
      await sleep(100)
      relayRtts.push(relayStep.result.rtts!)
      directRtts.push(directStep.result.rtts!)
      relaySent += relayStep.result.sent
      relayReceived += relayStep.result.received
      directSent += directStep.result.sent
      directReceived += directStep.result.received
      if (relayStep.cpu.foreignCores !== undefined) foreign.push(relayStep.cpu.foreignCores)
      if (directStep.cpu.foreignCores !== undefined) foreign.push(directStep.cpu.foreignCores)
      cores = relayStep.cpu.cores
    }
    const pool = (parts: Array<Float64Array>) => {
      const all = new Float64Array(parts.reduce((n, part) => n + part.length, 0))
      let offset = 0
      for (const part of parts) {
        all.set(part, offset)
        offset += part.length
      }
      return summarize(all)
    }
    const rtt = pool(relayRtts)
    const directRtt = pool(directRtts)
    const half = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : (a - b) / 2)
    const result: LatencyResult = {
      rate,
      sessions: group.size,
      rounds,
      lossRatio: (relaySent - relayReceived) / Math.max(1, relaySent),
      rtt,
      directLossRatio: (directSent - directReceived) / Math.max(1, directSent),
      directRtt,
      addedOneWayP50Micros: half(rtt?.p50Micros, directRtt?.p50Micros),
      addedOneWayP99Micros: half(rtt?.p99Micros, directRtt?.p99Micros),
      addedOneWayMeanMicros: half(rtt?.meanMicros, directRtt?.meanMicros),
      cores,
      foreignCores: foreign.length === 0 ? undefined : Math.max(...foreign),
      proxyGc: mergeGc(gcs)
    }
    log(
      `${name} at ${fmtInt(rate)} client pps: rtt p50 ${fmtUs(rtt?.p50Micros)} p99 ${fmtUs(rtt?.p99Micros)}; ` +
        `direct p50 ${fmtUs(directRtt?.p50Micros)} p99 ${fmtUs(directRtt?.p99Micros)}; added one-way p50 ` +
        `${fmtUs(result.addedOneWayP50Micros)} p99 ${fmtUs(result.addedOneWayP99Micros)}; other processes at most ` +
        `${fmtCores(result.foreignCores)} cores${result.proxyGc === undefined ? "" : `; proxy GC ${fmtGc(result.proxyGc)}`}`
    )
    return result
  }

  /**
   * One fixed-rate chunk of `clientPackets` with the CPU time of every process measured around it
   * (/proc/<pid>/stat utime+stime, which Linux keeps equal to the scheduler's exact run time). A chunk
   * during which other processes took more than --foreign-tolerance cores is not counted and is sent
   * again (three times at most), so that someone else's test run does not end up in the cost.
   */
  readonly cpuRun = async (name: string, group: SessionGroup, rate: number, clientPackets: number): Promise<CpuRun> => {
    const watched = { ...this.pids }
    const dropsBefore = udpDrops(watched, this.sharedPorts)
    for (let redone = 0; ; redone++) {
      const before = Object.fromEntries(Object.entries(watched).map(([who, pid]) => [who, cpuMillis(pid)]))
      const selfBefore = process.cpuUsage()
      const watch = cpuWatch(watched)
      this.proxyGc()
      const result = await group.run({ rate, packets: clientPackets, quietMillis: 100 })
      const gc = group.target.kind === "proxy" ? this.proxyGc() : undefined
      const { foreignCores, seconds } = watch()
      const self = process.cpuUsage(selfBefore)
      if (foreignCores !== undefined && foreignCores > config.foreignTolerance && redone < 3) {
        log(`${name}: other processes took ${fmtCores(foreignCores)} cores during this run: not counted, again`)
        await this.waitQuiet("repeating the run", Math.max(2, Math.min(10, config.waitQuietSeconds)))
        continue
      }
      if (foreignCores !== undefined) this.foreignSamples.push(foreignCores)
      const cpuMs: Record<string, number> = {}
      for (const [who, pid] of Object.entries(watched)) {
        const after = cpuMillis(pid)
        if (who !== "loadgen" && after !== undefined && before[who] !== undefined) cpuMs[who] = after - before[who]!
      }
      cpuMs["loadgen"] = (self.user + self.system) / 1000
      const relayedPackets = 2 * result.received
      return {
        rate,
        sessions: group.size,
        sent: result.sent,
        received: result.received,
        lossRatio: result.lossRatio,
        relayedPackets,
        seconds,
        cpuMs,
        ...derived(cpuMs, relayedPackets, seconds),
        foreignCores,
        chunksRepeated: redone,
        proxyGc: gc,
        kernelDrops: diff(dropsBefore, udpDrops(watched, this.sharedPorts))
      }
    }
  }
}

export const medianRamp = (ramps: ReadonlyArray<RampResult>): ThroughputResult => {
  const sorted = [...ramps].sort((a, b) => a.maxRelayedPerSecond - b.maxRelayedPerSecond)
  const median = sorted[Math.floor((sorted.length - 1) / 2)]!
  return {
    ...median,
    rounds: ramps.map((r) => ({ maxClientRate: r.maxClientRate, maxRelayedPerSecond: r.maxRelayedPerSecond })),
    steps: ramps.flatMap((r) => r.steps)
  }
}

/** Several runs of the same relay as one. */
export const mergeRuns = (runs: ReadonlyArray<CpuRun>): CpuRun => {
  const sum = (f: (run: CpuRun) => number) => runs.reduce((total, run) => total + f(run), 0)
  const cpuMs: Record<string, number> = {}
  const kernelDrops: Record<string, number> = {}
  for (const run of runs) {
    for (const [who, ms] of Object.entries(run.cpuMs)) cpuMs[who] = (cpuMs[who] ?? 0) + ms
    for (const [who, n] of Object.entries(run.kernelDrops)) kernelDrops[who] = (kernelDrops[who] ?? 0) + n
  }
  const sent = sum((run) => run.sent)
  const received = sum((run) => run.received)
  const seconds = sum((run) => run.seconds)
  return {
    rate: runs[0]!.rate,
    sessions: runs[0]!.sessions,
    sent,
    received,
    lossRatio: (sent - received) / Math.max(1, sent),
    relayedPackets: 2 * received,
    seconds,
    cpuMs,
    ...derived(cpuMs, 2 * received, seconds),
    foreignCores: Math.max(0, ...runs.map((run) => run.foreignCores ?? 0)),
    chunksRepeated: sum((run) => run.chunksRepeated),
    proxyGc: mergeGc(runs.map((run) => run.proxyGc)),
    kernelDrops
  }
}

export const medianOf = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return undefined
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
