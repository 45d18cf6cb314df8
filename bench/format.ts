/**
 * Progress lines (stderr, with the time since start) and the number formats of the benchmark's
 * tables and logs.
 */
import { performance } from "node:perf_hooks"
import type { GcSummary } from "./procStats.js"

const t0 = performance.now()

/** Seconds since this process started the benchmark. */
export const elapsedSeconds = () => (performance.now() - t0) / 1000

export const log = (line: string) => process.stderr.write(`[${elapsedSeconds().toFixed(1).padStart(6)}s] ${line}\n`)

export const fmtInt = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? "n/a" : Math.round(n).toLocaleString("en-US"))
export const fmtPct = (ratio: number | null | undefined, digits = 3) =>
  ratio === undefined || ratio === null || !Number.isFinite(ratio) ? "n/a" : `${(ratio * 100).toFixed(digits)}%`
export const fmtUs = (micros: number | undefined) => (micros === undefined || !Number.isFinite(micros) ? "n/a" : `${micros.toFixed(0)} µs`)
export const fmtMB = (bytes: number | undefined) => (bytes === undefined ? "n/a" : `${(bytes / 1024 / 1024).toFixed(1)} MB`)
export const fmtSignedMB = (bytes: number | undefined) =>
  bytes === undefined ? "n/a" : `${bytes >= 0 ? "+" : ""}${(bytes / 1024 / 1024).toFixed(1)} MB`
export const fmtMs = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? "n/a" : `${ms.toFixed(1)} ms`)
export const fmtCores = (cores: number | undefined) => (cores === undefined ? "n/a" : cores.toFixed(2))

export const fmtGc = (gc: GcSummary | undefined) =>
  gc === undefined
    ? "n/a"
    : `${gc.count}${gc.major > 0 ? ` (${gc.major} full)` : ""}, ${gc.totalPauseMillis.toFixed(0)} ms, max ${gc.maxPauseMillis.toFixed(1)} ms`

/** process.memoryUsage() of the proxy, from its stats API. */
export interface ProcessMemory {
  readonly rss: number
  readonly heapTotal: number
  readonly heapUsed: number
  readonly external: number
  readonly arrayBuffers: number
}

/** "used / total" of a JS heap reading. */
export const fmtHeap = (memory: ProcessMemory | undefined) =>
  memory === undefined ? "" : `${fmtMB(memory.heapUsed)} / ${fmtMB(memory.heapTotal)}`

/** Non-zero kernel drops, by process (split into shared port and per-session sockets where known). */
export const describeDrops = (drops: Record<string, number>) =>
  Object.entries(drops)
    .filter(([who, n]) => n > 0 && drops[`${who}:shared`] === undefined)
    .map(([who, n]) => `${who.replace(":shared", " shared port").replace(":sessions", " session sockets")} ${fmtInt(n)}`)
    .join(", ")

/** A markdown table. */
export const table = (header: Array<string>, rows: Array<Array<string>>) =>
  [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((row) => `| ${row.join(" | ")} |`)].join("\n")
