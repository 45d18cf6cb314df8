/**
 * The benchmark's report: what every phase found (JSON), the informational targets, the notes, and
 * the markdown the README's Performance table is built from.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import { type BenchConfig, root } from "./config.js"
import {
  describeDrops,
  fmtCores,
  fmtGc,
  fmtHeap,
  fmtInt,
  fmtMB,
  fmtMs,
  fmtPct,
  fmtSignedMB,
  fmtUs,
  table
} from "./format.js"
import type { RampStep, ThroughputResult } from "./measure.js"
import type { ProxyReading } from "./proxyStats.js"
import { fmtThread, type WorkersRow } from "./phases/workers.js"
import { type summarize as summarizeProfile, toMarkdown as profileMarkdown } from "./profileSummary.js"

export interface Report {
  machine: Record<string, unknown>
  config: Omit<BenchConfig, "phases"> & { phases: Array<string> }
  processes: Record<string, unknown>
  throughput: Record<string, unknown>
  latency: Record<string, unknown>
  cpuMemory: Record<string, unknown>
  scaling: Array<Record<string, unknown>>
  churn: Record<string, unknown>
  signaling: Record<string, unknown>
  workers: ReadonlyArray<WorkersRow>
  targets: Array<{ name: string; target: string; measured: string; met: boolean | undefined }>
  notes: Array<string>
  profile: string | undefined
  profileSummary?: ReturnType<typeof summarizeProfile> & { skippedStartupMillis: number }
  durationSeconds: number
}

const workersLabel = (workers: number) => `${workers} worker${workers === 1 ? "" : "s"}`

/** JS heap in use over every thread, two readings, with the workers' share: "30.1 -> 30.4 MB (workers 8.2 -> 8.3 MB)". */
const heapOfThreads = (before: ProxyReading, after: ProxyReading | undefined) => {
  const workers = (reading: ProxyReading | undefined) => reading?.workers.reduce((sum, worker) => sum + worker.heapUsed, 0)
  return `${fmtMB(before.heapUsedAllThreads)} -> ${fmtMB(after?.heapUsedAllThreads)}` +
    (before.workers.length === 0 ? "" : ` (workers ${fmtMB(workers(before))} -> ${fmtMB(workers(after))})`)
}

/**
 * The range of a figure over a row's runs, to print beside the median run's own (a shared machine
 * drifts by 20-40 % between runs); nothing with fewer than two runs.
 */
const spreadOf = (values: ReadonlyArray<number | undefined>, format: (n: number) => string) => {
  const known = values.filter((v): v is number => v !== undefined)
  return known.length < 2 ? "" : ` (${format(Math.min(...known))}-${format(Math.max(...known))})`
}

/** µs as ms: signaling latency is milliseconds. */
const fmtLatency = (micros: number | undefined) => fmtMs(micros === undefined ? undefined : micros / 1000)

type AnyRecord = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

export const targetsOf = (report: Report): Report["targets"] => {
  const t = report.throughput as AnyRecord
  const l = report.latency as AnyRecord
  const c = report.cpuMemory as AnyRecord
  const ch = report.churn as AnyRecord
  const targets: Report["targets"] = []
  if (typeof t.ratio === "number") {
    targets.push({ name: "proxy throughput / bare relay", target: ">= 85%", measured: fmtPct(t.ratio, 1), met: t.ratio >= 0.85 })
  }
  if (l.proxy !== undefined) {
    const p99 = l.proxy.addedOneWayP99Micros as number | undefined
    targets.push({
      name: "added one-way latency p99 at half load (proxy)",
      target: "< 1000 µs",
      measured: fmtUs(p99),
      met: p99 === undefined ? undefined : p99 < 1000
    })
  }
  // Memory and sockets: the proxy (one worker) and a proxy with each other --workers count, one target row each.
  const memoryRows = c.proxy === undefined ? [] : [c.proxy as AnyRecord, ...((c.withWorkers ?? []) as Array<AnyRecord>)]
  for (const row of memoryRows) {
    const growth = row.rssGrowthBytes as number | undefined
    targets.push({
      name: `proxy RSS growth over ${fmtInt(c.relayedPackets)} relayed packets, ${workersLabel(row.workers ?? 1)}`,
      target: "<= 10 MB",
      measured: fmtSignedMB(growth),
      met: growth === undefined ? undefined : growth <= 10 * 1024 * 1024
    })
  }
  const churnRows = ch.sessions === undefined ? [] : [ch, ...((ch.withWorkers ?? []) as Array<AnyRecord>)]
  for (const run of churnRows) {
    // Memory "back" once the proxy is idle again: V8 returns freed pages some seconds after the burst.
    const idle = run.idle as Array<{ seconds: number }> | undefined
    const idleSeconds = idle === undefined || idle.length === 0 ? undefined : idle[idle.length - 1]!.seconds
    const growth = idleSeconds === undefined ? run.rssGrowthBytes : run.rssGrowthAfterIdleBytes
    const workers = workersLabel(run.workers ?? 1)
    targets.push({
      name: `proxy RSS growth after ${fmtInt(run.sessions)} sessions churned${
        idleSeconds === undefined ? ` (${run.settleMs} ms after)` : ` (${idleSeconds} s idle after)`
      }, ${workers}`,
      target: "<= 10 MB",
      measured: fmtSignedMB(growth),
      met: growth === undefined ? undefined : growth <= 10 * 1024 * 1024
    })
    const perWorker = (run.workerSocketsLeft ?? []) as Array<number>
    targets.push({
      name: perWorker.length === 0
        ? `UDP sockets left after ${fmtInt(run.sessions)} sessions churned, ${workers}`
        : `UDP sockets left in any worker after ${fmtInt(run.sessions)} sessions churned, ${workers}`,
      target: "0",
      measured: perWorker.length === 0
        ? String(run.udpSocketsLeft)
        : `${perWorker.join(" / ")} (per worker); ${run.udpSocketsLeft} in the process`,
      met: run.udpSocketsLeft <= 0 && perWorker.every((left) => left <= 0)
    })
  }
  for (const row of report.workers) {
    if (row.workers === 1 || row.ratio === undefined) continue
    targets.push({
      name: `${row.workers} workers / 1 worker, relayed packets/s at ${fmtInt(row.sessions)} sessions`,
      target: ">= 1.2x",
      measured: `${row.ratio.toFixed(2)}x`,
      met: row.ratio >= 1.2
    })
    if (row.cpuPerPacketRatio !== undefined) {
      targets.push({
        name: `${row.workers} workers / 1 worker, proxy CPU per packet at ${fmtInt(row.sessions)} sessions`,
        target: "<= 1.10x",
        measured: `${row.cpuPerPacketRatio.toFixed(2)}x`,
        met: row.cpuPerPacketRatio <= 1.1
      })
    }
  }
  const sg = report.signaling as AnyRecord
  if (sg.proxy !== undefined) {
    const levels = sg.proxy.levels as Array<{ sessions: number; completed: number; failedInAnyRound?: number }>
    const failed = levels.reduce((n, level) => n + (level.failedInAnyRound ?? level.sessions - level.completed), 0)
    targets.push({
      name: "signaling sessions that failed (proxy, every concurrency)",
      target: "0",
      measured: String(failed),
      met: failed === 0
    })
    // The control plane's targets (issue 11), at 16 to 64 concurrent clients against the fast origin.
    for (const level of sg.proxy.levels as Array<AnyRecord>) {
      if (level.concurrency < 16 || level.concurrency > 64) continue
      const cpu = level.proxyCpuMsPerSession as number | undefined
      targets.push({
        name: `proxy CPU per POST + DELETE, ${level.concurrency} clients`,
        target: "<= 1.5 ms",
        measured: cpu === undefined ? "n/a" : `${cpu.toFixed(2)} ms`,
        met: cpu === undefined ? undefined : cpu <= 1.5
      })
      targets.push({
        name: `signaling sessions/s, ${level.concurrency} clients`,
        target: ">= 700",
        measured: fmtInt(level.sessionsPerSecond),
        met: level.sessionsPerSecond >= 700
      })
      if (level.concurrency === 16) {
        const p99 = level.post?.p99Micros as number | undefined
        targets.push({
          name: "POST p99, 16 clients",
          target: "< 50 ms",
          measured: p99 === undefined ? "n/a" : `${(p99 / 1000).toFixed(1)} ms`,
          met: p99 === undefined ? undefined : p99 < 50_000
        })
      }
    }
  }
  const one = report.scaling.find((row) => row.sessions === 1) as AnyRecord | undefined
  const many = report.scaling.find((row) => row.sessions === 1000) as AnyRecord | undefined
  if (one?.proxy?.cpuMsPer10kRelayed !== undefined && many?.proxy?.cpuMsPer10kRelayed !== undefined) {
    const ratio = many.proxy.cpuMsPer10kRelayed / one.proxy.cpuMsPer10kRelayed
    const pct = (r: number) => `${r >= 1 ? "+" : ""}${((r - 1) * 100).toFixed(0)}%`
    const bare = one.bare?.cpuMsPer10kRelayed !== undefined && many.bare?.cpuMsPer10kRelayed !== undefined
      ? ` (bare relay: ${pct(many.bare.cpuMsPer10kRelayed / one.bare.cpuMsPer10kRelayed)})`
      : ""
    targets.push({
      name: "proxy CPU per packet, 1,000 sessions vs 1",
      target: "<= +15%",
      measured: `${pct(ratio)}${bare}`,
      met: ratio <= 1.15
    })
  }
  return targets
}

export const notesOf = (report: Report): Array<string> => {
  const notes: Array<string> = [String(report.machine.note)]
  const t = report.throughput as AnyRecord
  const c = report.cpuMemory as AnyRecord
  if (c.proxy?.cpuMsPer10kRelayed !== undefined && c.bare?.cpuMsPer10kRelayed !== undefined) {
    const ratio = c.proxy.cpuMsPer10kRelayed / c.bare.cpuMsPer10kRelayed
    notes.push(
      `CPU per relayed packet at the same fixed rate, proxy vs bare relay: ${ratio >= 1 ? "+" : ""}${((ratio - 1) * 100).toFixed(1)}% ` +
        `(${(c.proxy.cpuMsPer10kRelayed / 10).toFixed(1)} vs ${(c.bare.cpuMsPer10kRelayed / 10).toFixed(1)} µs): on a shared 2-core machine ` +
        "this is the steadier comparison; the maximum rate of one ramp moves by 10-20% from one ramp to the next."
    )
  }
  for (const name of ["proxy", "bare"]) {
    const steps = (t[name]?.steps ?? []) as Array<RampStep>
    const failed = steps.filter((s) => !s.pass)
    if (failed.length === 0) continue
    const sum: Record<string, number> = {}
    let lost = 0
    for (const step of failed) {
      lost += step.sent - step.received
      for (const [who, n] of Object.entries(step.kernelDrops)) sum[who] = (sum[who] ?? 0) + n
    }
    const kernel = Object.entries(sum).filter(([who]) => !who.includes(":")).reduce((a, [, b]) => a + b, 0)
    const behind = failed.filter((s) => s.generatorBehind).length
    notes.push(
      `${name}: in the ${failed.length} failed ramp step(s), ${fmtInt(lost)} packets were lost; the kernel dropped ` +
        `${fmtInt(kernel)} at full UDP receive buffers (${describeDrops(sum) || "none"})` +
        `${kernel < lost ? `; ${fmtInt(lost - kernel)} lost elsewhere (in a process, or still queued at the end of the step)` : ""}` +
        `${behind > 0 ? `; in ${behind} step(s) the load generator could not keep the offered rate (CPU shared)` : ""}.`
    )
  }
  return notes
}

export const toMarkdown = (report: Report): string => {
  const m = report.machine
  const t = report.throughput as AnyRecord
  const l = report.latency as AnyRecord
  const c = report.cpuMemory as AnyRecord
  const ch = report.churn as AnyRecord
  const out: Array<string> = []
  out.push(`# rtc-proxy relay benchmark${report.config.quick ? " (quick)" : ""}`)
  out.push("")
  out.push(
    `${m.cpuModel}, ${m.cores} cores, ${fmtMB(m.totalMemoryBytes as number)} RAM, ${m.os}, node ${m.node}, ${m.date}. ` +
      `${report.config.payload}-byte datagrams over 127.0.0.1. **The load generator, the echo origin and the relay share the ` +
      `${m.cores} cores**: results are for the whole system, and the bare dgram relay is this platform's ceiling under the same load.`
  )
  out.push("")
  const other = m.otherProcessesCores as { mean?: number; max?: number; stepsAboveTolerance: number; steps: number } | undefined
  if (other?.mean !== undefined) {
    out.push(
      `Other processes on the machine used ${fmtCores(other.mean)} cores on average during the measured steps (max ${fmtCores(other.max)}; ` +
        `${other.stepsAboveTolerance} of ${other.steps} steps above ${report.config.foreignTolerance}).` +
        (other.stepsAboveTolerance > 0 ? " **Those steps are disturbed; failed ramp steps were repeated up to twice.**" : "")
    )
    out.push("")
  }
  out.push("A client packet echoed by the origin crosses a relay twice: **relayed packets = 2 x echoed client packets**.")
  if (t.proxy !== undefined) {
    out.push("")
    out.push(
      `## Throughput (highest offered rate with loss under ${fmtPct(report.config.lossThreshold, 1)} and no growing backlog, ` +
        `${t.proxy.sessions} sessions, ${report.config.stepSeconds} s steps; the median of ${(t.proxy.rounds ?? [0]).length} ramp(s) per relay, alternating which goes first)`
    )
    out.push("")
    out.push(
      table(
        ["path", "client pps (one way)", "relayed pps", "loss at max", "first failing client pps", "vs bare", "every ramp (relayed pps)"],
        (["proxy", "bare"] as const).map((name) => [
          name === "proxy" ? "proxy" : "bare dgram relay",
          fmtInt(t[name].maxClientRate),
          fmtInt(t[name].maxRelayedPerSecond),
          fmtPct(t[name].lossAtMax),
          fmtInt(t[name].firstFailedRate),
          name === "proxy" ? fmtPct(t.ratio, 1) : "100%",
          ((t[name].rounds ?? []) as ThroughputResult["rounds"]).map((r) => fmtInt(r.maxRelayedPerSecond)).join(", ")
        ])
      )
    )
  }
  if (l.proxy !== undefined) {
    out.push("")
    out.push("## Added one-way latency at half of the lower maximum rate (both relays at one rate, vs the direct path at that rate)")
    out.push("")
    out.push(
      table(
        ["path", "client pps", "RTT p50", "RTT p99", "direct RTT p50", "direct RTT p99", "added one-way p50", "added one-way p99", "loss", "other processes (max cores)", "proxy GC: count, pauses, max"],
        (["proxy", "bare"] as const).map((name) => [
          name === "proxy" ? "proxy" : "bare dgram relay",
          fmtInt(l[name].rate),
          fmtUs(l[name].rtt?.p50Micros),
          fmtUs(l[name].rtt?.p99Micros),
          fmtUs(l[name].directRtt?.p50Micros),
          fmtUs(l[name].directRtt?.p99Micros),
          fmtUs(l[name].addedOneWayP50Micros),
          fmtUs(l[name].addedOneWayP99Micros),
          fmtPct(l[name].lossRatio),
          fmtCores(l[name].foreignCores),
          name === "proxy" ? fmtGc(l[name].proxyGc) : ""
        ])
      )
    )
    out.push("")
    out.push(
      `Added one-way = (relay RTT percentile - direct RTT percentile) / 2; relay and direct runs alternate in ${l.proxy.rounds} rounds, ` +
        "samples pooled per path."
    )
  }
  if (c.proxy !== undefined) {
    out.push("")
    out.push(
      `## CPU and memory at a fixed ${fmtInt(c.rate)} client pps (${fmtInt(c.rate * 2)} relayed/s), ${c.sessions} sessions, ` +
        `${fmtInt(c.relayedPackets)} relayed packets`
    )
    out.push("")
    out.push(
      table(
        ["relay", "CPU per 10k relayed", "per chunk (ms)", "relay core use", "origin CPU per 10k", "load gen CPU per 10k", "RSS after warm-up", "RSS after run", "growth", "JS heap used, every thread (warm-up -> run)", "loss", "other processes (cores)", "proxy GC: count, pauses, max"],
        [
          ["proxy", c.proxy, "proxy"] as const,
          ["bare dgram relay", c.bare, "bare"] as const,
          ...((c.withWorkers ?? []) as Array<AnyRecord>).map((row) => [`proxy, ${workersLabel(row.workers)}`, row, "proxy"] as const)
        ].map(([label, row, role]) => [
          label,
          fmtMs(row.cpuMsPer10kRelayed),
          ((row.cpuMsPer10kByChunk ?? []) as Array<number>).map((x) => x.toFixed(0)).join(", "),
          fmtPct(row.coreShare?.[role], 0),
          fmtMs(row.cpuMsPer10k?.origin),
          fmtMs(row.cpuMsPer10k?.loadgen),
          fmtMB(row.rssAfterWarmupBytes),
          fmtMB(row.rssAfterRunBytes),
          fmtSignedMB(row.rssGrowthBytes),
          row.memoryAfterWarmup === undefined ? "" : heapOfThreads(row.memoryAfterWarmup, row.memoryAfterRun),
          fmtPct(row.lossRatio),
          fmtCores(row.foreignCores),
          role === "proxy" ? fmtGc(row.proxyGc) : ""
        ])
      )
    )
    out.push("")
    out.push(
      "CPU: utime+stime from /proc/<pid>/stat around each chunk (Linux keeps their sum equal to the scheduler's run time); the " +
        "relays take turns chunk by chunk. RSS: VmRSS after a pause (of the whole process: a proxy's worker threads included); " +
        "JS heap: in use, summed over the main thread and every worker thread (each worker reports its own)."
    )
  }
  if (report.scaling.length > 0) {
    out.push("")
    out.push(
      `## Concurrent sessions (all open together; CPU at a fixed ${fmtInt(report.scaling[0]!.rate as number)} client pps, ` +
        `median of ${report.config.scaleRounds} interleaved runs; then a ramp)`
    )
    out.push("")
    const base = report.scaling[0] as AnyRecord
    const rows: Array<Array<string>> = []
    for (const name of ["proxy", "bare"] as const) {
      for (const row of report.scaling as Array<AnyRecord>) {
        const e = row[name] as AnyRecord | undefined
        if (e === undefined) continue
        const label = name === "proxy" ? "proxy" : "bare dgram relay"
        if (e.error !== undefined) {
          rows.push([label, fmtInt(row.sessions), `failed: ${e.error}`, "", "", "", "", "", "", "", ""])
          continue
        }
        const cost = e.cpuMsPer10kRelayed as number | undefined
        const baseCost = base[name]?.cpuMsPer10kRelayed as number | undefined
        rows.push([
          label,
          fmtInt(row.sessions),
          fmtMs(cost),
          ((e.cpuMsPer10kByRound ?? []) as Array<number>).map((c) => c.toFixed(0)).join(", "),
          cost !== undefined && baseCost !== undefined ? `${cost >= baseCost ? "+" : ""}${((cost / baseCost - 1) * 100).toFixed(0)}%` : "n/a",
          fmtPct(e.cpuRun?.lossRatio),
          fmtInt(e.maxRelayedPerSecond),
          fmtInt(e.maxClientRate),
          `${fmtMB(e.rssAfterOpenBytes)} / ${e.udpSocketsOpen ?? "n/a"}`,
          fmtCores(e.cpuRun?.foreignCores),
          name === "proxy" ? fmtGc(e.cpuRun?.proxyGc) : ""
        ])
      }
    }
    out.push(
      table(
        [
          "relay",
          "sessions",
          "CPU per 10k relayed (median)",
          "runs (ms)",
          `vs ${fmtInt(base.sessions)} session(s)`,
          "loss at fixed rate",
          "max relayed pps",
          "max client pps",
          "RSS / UDP sockets once open",
          "other processes (cores)",
          "proxy GC in the runs: count, pauses, max"
        ],
        rows
      )
    )
    const proxyRow = report.scaling.find((row) => (row as AnyRecord).proxy?.rssAfterLoadBytes !== undefined) as AnyRecord | undefined
    if (proxyRow !== undefined) {
      out.push("")
      out.push(
        `Sessions are opened in this order and stay open together (RSS and UDP sockets are cumulative). After the phase the proxy's ` +
          `RSS was ${fmtMB(proxyRow.proxy.rssAfterLoadBytes)}, and ${fmtMB(proxyRow.proxy.rssAfterCloseBytes)} with ` +
          `${proxyRow.proxy.udpSocketsAfterClose} UDP socket(s) once every session was deleted.`
      )
    }
  }
  for (const run of ch.sessions === undefined ? [] : [ch, ...((ch.withWorkers ?? []) as Array<AnyRecord>)]) {
    const withWorkers = (run.workers ?? 1) > 1
    const perWorker = (reading: AnyRecord) =>
      withWorkers ? [((reading.workers ?? []) as Array<{ sockets: number }>).map((worker) => String(worker.sockets)).join(" / ")] : []
    const allThreads = (reading: AnyRecord) => withWorkers ? [fmtMB(reading.heapUsedAllThreads)] : []
    out.push("")
    out.push(
      `## Session churn against the proxy${withWorkers ? ` with ${workersLabel(run.workers)}` : ""} ` +
        `(${fmtInt(run.sessions)} x POST + DELETE, ${run.concurrency} at a time)`
    )
    out.push("")
    out.push(
      table(
        [
          "",
          "RSS",
          withWorkers ? "JS heap used / total, main thread" : "JS heap used / total",
          ...(withWorkers ? ["JS heap used, every thread"] : []),
          "open fds",
          "UDP sockets",
          ...(withWorkers ? ["UDP sockets per worker"] : []),
          "TCP sockets",
          "origin sessions"
        ],
        [
          ["before", fmtMB(run.before.rssBytes), fmtHeap(run.before.memory), ...allThreads(run.before), String(run.before.fds.total), String(run.before.fds.udp), ...perWorker(run.before), String(run.before.fds.tcp), String(run.before.originActive)],
          ["right after", fmtMB(run.rightAfter.rssBytes), "", ...(withWorkers ? [""] : []), String(run.rightAfter.fds.total), String(run.rightAfter.fds.udp), ...(withWorkers ? [""] : []), String(run.rightAfter.fds.tcp), ""],
          [`after ${run.settleMs} ms`, fmtMB(run.after.rssBytes), fmtHeap(run.after.memory), ...allThreads(run.after), String(run.after.fds.total), String(run.after.fds.udp), ...perWorker(run.after), String(run.after.fds.tcp), String(run.after.originActive)],
          ...((run.idle ?? []) as Array<AnyRecord>).map((point) => [
            `${point.seconds} s idle`,
            fmtMB(point.rssBytes),
            fmtHeap(point.memory),
            ...allThreads(point),
            "",
            "",
            ...(withWorkers ? [""] : []),
            "",
            ""
          ])
        ]
      )
    )
    out.push("")
    out.push(
      `${fmtInt(run.sessionsPerSecond)} sessions/s (${run.seconds.toFixed(1)} s; cores: proxy ${fmtCores(run.cores?.proxy)}, origin ` +
        `${fmtCores(run.cores?.origin)}, load generator ${fmtCores(run.cores?.loadgen)}, other processes ${fmtCores(run.otherProcessesCores)}), ` +
        `proxy CPU ${fmtMs(run.proxyCpuMsPerSession)} per session ` +
        `(POST + DELETE); RSS during the churn: ${
          (run.progress as Array<{ sessions: number; rssBytes: number }>).map((p) => `${fmtInt(p.sessions)}: ${fmtMB(p.rssBytes)}`).join(", ")
        }; errors: ${
        Object.keys(run.errors).length === 0 ? "none" : JSON.stringify(run.errors)
      }; RSS ${fmtSignedMB(run.rssGrowthBytes)} after ${run.settleMs} ms${
        run.rssGrowthAfterIdleBytes === undefined || (run.idle ?? []).length === 0
          ? ""
          : `, ${fmtSignedMB(run.rssGrowthAfterIdleBytes)} after ${run.idle[run.idle.length - 1].seconds} s idle (JS heap used ${
            fmtSignedMB(withWorkers ? run.heapUsedAllThreadsGrowthAfterIdleBytes : run.heapUsedGrowthAfterIdleBytes)
          }${withWorkers ? ", every thread" : ""})`
      }, fds ${run.fdsLeft >= 0 ? "+" : ""}${run.fdsLeft}, UDP sockets ${run.udpSocketsLeft >= 0 ? "+" : ""}${run.udpSocketsLeft}` +
        `${withWorkers ? ` (per worker: ${(run.workerSocketsLeft as Array<number>).map((n) => `${n >= 0 ? "+" : ""}${n}`).join(" / ")})` : ""}.`
    )
  }
  // The rows of the cpu and churn phases side by side, one per worker count.
  const counts = [...new Set([
    ...(c.proxy === undefined ? [] : [1, ...((c.withWorkers ?? []) as Array<AnyRecord>).map((row) => row.workers as number)]),
    ...(ch.sessions === undefined ? [] : [1, ...((ch.withWorkers ?? []) as Array<AnyRecord>).map((run) => run.workers as number)])
  ])]
  if (counts.length > 1) {
    const memoryOf = (workers: number): AnyRecord | undefined =>
      workers === 1 ? c.proxy : ((c.withWorkers ?? []) as Array<AnyRecord>).find((row) => row.workers === workers)
    const churnOf = (workers: number): AnyRecord | undefined =>
      ch.sessions === undefined ? undefined : workers === 1 ? ch : ((ch.withWorkers ?? []) as Array<AnyRecord>).find((run) => run.workers === workers)
    out.push("")
    out.push(
      `## Memory and sockets by data-plane worker count (${fmtInt(c.relayedPackets)} relayed packets at ${fmtInt(c.rate)} client pps; ` +
        `${fmtInt(ch.sessions)} sessions churned)`
    )
    out.push("")
    out.push(
      table(
        ["workers", "RSS after warm-up -> after the packets", "growth", "JS heap used, every thread", "churn: RSS growth at rest after", "JS heap, every thread", "UDP sockets left (process; per worker)", "churn sessions/s"],
        counts.map((workers) => {
          const memory = memoryOf(workers)
          const churn = churnOf(workers)
          const perWorker = (churn?.workerSocketsLeft ?? []) as Array<number>
          return [
            String(workers),
            memory === undefined ? "n/a" : `${fmtMB(memory.rssAfterWarmupBytes)} -> ${fmtMB(memory.rssAfterRunBytes)}`,
            fmtSignedMB(memory?.rssGrowthBytes),
            memory?.memoryAfterWarmup === undefined ? "n/a" : heapOfThreads(memory.memoryAfterWarmup, memory.memoryAfterRun),
            fmtSignedMB(churn === undefined ? undefined : (churn.idle ?? []).length === 0 ? churn.rssGrowthBytes : churn.rssGrowthAfterIdleBytes),
            fmtSignedMB(churn?.heapUsedAllThreadsGrowthAfterIdleBytes),
            churn === undefined ? "n/a" : `${churn.udpSocketsLeft}${perWorker.length === 0 ? "" : `; ${perWorker.join(" / ")}`}`,
            fmtInt(churn?.sessionsPerSecond)
          ]
        })
      )
    )
  }
  const sg = report.signaling as AnyRecord
  if (sg.proxy !== undefined) {
    out.push("")
    out.push(
      `## Signaling (WHIP POST with a minimal offer + DELETE; ${fmtInt(sg.sessions)} sessions per run, after ${fmtInt(sg.warmup)} to warm up` +
        `${(sg.rounds ?? 1) > 1 ? `; each row the median of ${sg.rounds} runs` : ""})`
    )
    out.push("")
    const rows: Array<Array<string>> = []
    const coresKey: Record<string, string> = { proxy: "proxy", "plain Node floor": "floor", "SRS Go proxy": "go" }
    for (const [label, result] of [["proxy", sg.proxy], ["plain Node floor", sg.floor], ["SRS Go proxy", sg.go]] as const) {
      if (result === undefined) continue
      for (const level of result.levels as Array<AnyRecord>) {
        const errors = Object.entries(level.errors as Record<string, number>).map(([what, n]) => `${what}: ${n}`).join(", ")
        const rounds = (level.rounds ?? []) as Array<AnyRecord>
        const spread = (of: (round: AnyRecord) => number | undefined, format: (n: number) => string) =>
          spreadOf(rounds.map(of), format)
        rows.push([
          label,
          String(level.concurrency),
          fmtInt(level.sessionsPerSecond) + spread((r) => r.sessionsPerSecond, fmtInt),
          fmtLatency(level.post?.p50Micros),
          fmtLatency(level.post?.p99Micros) + spread((r) => r.postP99Micros, (micros) => (micros / 1000).toFixed(1)),
          fmtLatency(level.delete?.p50Micros),
          fmtLatency(level.delete?.p99Micros),
          fmtMs(level.proxyCpuMsPerSession) + spread((r) => r.proxyCpuMsPerSession, (ms) => ms.toFixed(2)),
          fmtCores(level.cores?.[coresKey[label]!]),
          fmtCores(level.cores?.origin),
          fmtCores(level.cores?.loadgen),
          fmtCores(level.otherProcessesCores),
          errors === "" ? "none" : errors
        ])
      }
    }
    out.push(
      table(
        ["proxy", "clients", "sessions/s", "POST p50", "POST p99", "DELETE p50", "DELETE p99", "proxy CPU per session", "proxy cores", "origin cores", "load gen cores", "other processes (cores)", "errors"],
        rows
      )
    )
    out.push("")
    out.push(
      "Each client signals one session after the other on its own keep-alive connection; latency is from the request's start to " +
        "the answer's end; CPU per session is the proxy process's utime+stime over the run / its sessions (POST + DELETE). " +
        "With several runs per row, the row is the run with the median CPU per session, and the range of every run's " +
        "sessions/s, POST p99 and CPU per session follows in brackets."
    )
    const ratios = (ratio: Array<AnyRecord>) =>
      ratio.map((r) =>
        `${r.concurrency} clients, ${r.sessionsPerSecond === null ? "n/a" : `${r.sessionsPerSecond.toFixed(2)}x`} the sessions/s at ` +
        `${r.cpuPerSession === null ? "n/a" : `${r.cpuPerSession.toFixed(2)}x`} the CPU per session`
      ).join("; ")
    if (sg.floorRatio !== undefined) {
      out.push(
        `The plain Node floor (bench/signalingFloor.ts) does the proxy's I/O per session and nothing else. Against it: ${ratios(sg.floorRatio)}.`
      )
    }
    if (sg.ratio !== undefined) out.push(`Against the SRS Go proxy: ${ratios(sg.ratio)}.`)
  }
  if (report.workers.length > 0) {
    out.push("")
    out.push(
      `## Data-plane workers (PROXY_RTC_WORKERS; highest rate with loss under ${fmtPct(report.config.lossThreshold, 1)}, ` +
        `median of ${report.config.workersRounds} ramps; CPU at one fixed rate for all)`
    )
    out.push("")
    out.push(
      table(
        ["workers", "sessions", "relayed packets/s", "vs 1 worker", "ramps", "fixed rate (client pps)", "proxy CPU per 10k relayed", "vs 1 worker", "by thread: main; each worker; the rest (CPU, waits + preemptions, per 10k)"],
        report.workers.map((row) => [
          String(row.workers),
          fmtInt(row.sessions),
          fmtInt(row.throughput?.maxRelayedPerSecond),
          row.ratio === undefined ? "n/a" : `${row.ratio.toFixed(2)}x`,
          row.throughput?.rounds.map((r) => fmtInt(r.maxRelayedPerSecond)).join(", ") ?? row.error ?? "n/a",
          fmtInt(row.cpu?.rate),
          fmtMs(row.cpu?.cpuMsPer10k["proxy"]),
          row.cpuPerPacketRatio === undefined ? "n/a" : `${row.cpuPerPacketRatio.toFixed(2)}x`,
          row.threads === undefined
            ? "n/a"
            : [row.threads.main, ...row.threads.workers, row.threads.rest].map(fmtThread).join("; ")
        ])
      )
    )
  }
  if (report.targets.length > 0) {
    out.push("")
    out.push("## Targets (informational)")
    out.push("")
    out.push(
      table(
        ["target", "wanted", "measured", "met"],
        report.targets.map((target) => [target.name, target.target, target.measured, target.met === undefined ? "n/a" : target.met ? "yes" : "**no**"])
      )
    )
  }
  for (const name of ["proxy", "bare"] as const) {
    const steps = t[name]?.steps as Array<RampStep> | undefined
    if (steps === undefined) continue
    out.push("")
    out.push(`<details><summary>${name} ramp steps</summary>\n`)
    out.push(
      table(
        ["ramp", "client pps", "achieved", "loss", "RTT p50", "RTT p99", "RTT growth in step", "cores (relay/origin/loadgen/other)", "kernel drops at receive buffers", "proxy GC", "result"],
        steps.map((s) => [
          String(s.round ?? 1),
          fmtInt(s.rate) + (s.attempt > 1 ? ` (try ${s.attempt})` : ""),
          fmtInt(s.achievedRate),
          fmtPct(s.lossRatio),
          fmtUs(s.rttP50Micros),
          fmtUs(s.rttP99Micros),
          fmtUs(s.queueGrowthMicros),
          [s.cores[name], s.cores["origin"], s.cores["loadgen"], s.foreignCores].map(fmtCores).join(" / "),
          describeDrops(s.kernelDrops) || "none",
          s.proxyGc === undefined ? "" : fmtGc(s.proxyGc),
          s.pass ? "ok" : s.generatorBehind ? "fail (generator behind)" : s.lossRatio >= report.config.lossThreshold ? "fail" : "fail (backlog growing)"
        ])
      )
    )
    out.push("\n</details>")
  }
  out.push("")
  out.push("## Notes")
  out.push("")
  for (const note of report.notes) out.push(`- ${note}`)
  if (report.profile !== undefined) out.push(`- proxy CPU profile: ${report.profile}`)
  if (report.profileSummary !== undefined) {
    out.push("")
    out.push(`## Proxy CPU profile (start-up, the first ${(report.profileSummary.skippedStartupMillis / 1000).toFixed(1)} s, left out)`)
    out.push("")
    out.push(profileMarkdown(report.profileSummary))
  }
  const json = path.join(report.config.outDir, "latest.json")
  out.push(`- run took ${report.durationSeconds.toFixed(0)} s; JSON: ${json.startsWith(root + path.sep) ? path.relative(root, json) : json}`)
  out.push("")
  return out.join("\n")
}

/** Writes latest.json and latest.md to `outDir`; returns the markdown. */
export const writeReport = (report: Report, outDir: string): string => {
  const markdown = toMarkdown(report)
  mkdirSync(outDir, { recursive: true })
  writeFileSync(path.join(outDir, "latest.json"), JSON.stringify(report, null, 2) + "\n")
  writeFileSync(path.join(outDir, "latest.md"), markdown)
  return markdown
}
