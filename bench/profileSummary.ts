/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most self time and the
 * most inclusive time, as shares of the busy (non-idle) time, plus a breakdown by where the code
 * lives (the proxy's src/, Effect, Node's internals, GC, native).
 *
 * `node --import tsx bench/profileSummary.ts <file.cpuprofile> [--top 25] [--skip-seconds 0] [--json]`
 * (--skip-seconds leaves out start-up: module loading and compiling under tsx)
 */
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
  readonly columnNumber: number
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: ReadonlyArray<number>
}

interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly startTime: number
  readonly endTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

export interface FunctionCost {
  readonly name: string
  readonly where: string
  readonly selfMillis: number
  readonly selfShare: number
  readonly totalMillis: number
  readonly totalShare: number
}

export interface ProfileSummary {
  readonly file: string
  readonly wallMillis: number
  readonly busyMillis: number
  readonly idleMillis: number
  readonly bySelf: ReadonlyArray<FunctionCost>
  readonly byTotal: ReadonlyArray<FunctionCost>
  readonly byArea: ReadonlyArray<{ readonly area: string; readonly millis: number; readonly share: number }>
}

const shortUrl = (url: string) =>
  url
    .replace(/^file:\/\//, "")
    .replace(/^.*\/node_modules\//, "")
    .replace(/^.*\/(src|bench|test)\//, "$1/")

const areaOf = (frame: CallFrame): string => {
  const { functionName, url } = frame
  if (url === "") {
    if (functionName === "(garbage collector)") return "GC"
    if (functionName === "(idle)" || functionName === "(program)" || functionName === "(root)") return functionName
    return "native (C++ / builtins)"
  }
  if (url.includes("/src/")) return "proxy src/"
  if (url.includes("node_modules/effect/")) return "effect"
  if (url.includes("node_modules/@effect/")) return "@effect/platform"
  if (url.startsWith("node:dgram") || url.startsWith("node:internal/dgram")) return "node dgram"
  if (url.startsWith("node:internal/dns") || url.startsWith("node:dns")) return "node dns (lookup per send)"
  if (url.startsWith("node:events") || url.startsWith("node:internal/event")) return "node events"
  if (url.startsWith("node:internal/process/task_queues") || url.startsWith("node:internal/timers")) return "node ticks/timers"
  if (url.startsWith("node:")) return "node other"
  if (url.includes("node_modules/")) return "other deps"
  return "other"
}

/** @param skipMillis ignore samples in the first `skipMillis` of the profile (start-up, module loading) */
export const summarize = (file: string, top = 25, skipMillis = 0): ProfileSummary => {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const node of profile.nodes) {
    byId.set(node.id, node)
    for (const child of node.children ?? []) parent.set(child, node.id)
  }
  const keyOf = (frame: CallFrame) => `${frame.functionName || "(anonymous)"}\u0000${shortUrl(frame.url)}:${frame.lineNumber + 1}`
  const self = new Map<string, number>()
  const total = new Map<string, number>()
  const areas = new Map<string, number>()
  let idle = 0
  let busy = 0
  let at = 0
  // timeDeltas[i] is the time since the previous sample: the time up to sample i+1 belongs to sample i.
  for (let i = 0; i < profile.samples.length; i++) {
    at += (profile.timeDeltas[i] ?? 0) / 1000
    if (at < skipMillis) continue
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000
    const node = byId.get(profile.samples[i]!)
    if (node === undefined) continue
    const frame = node.callFrame
    if (frame.functionName === "(idle)") {
      idle += dt
      continue
    }
    busy += dt
    const key = keyOf(frame)
    self.set(key, (self.get(key) ?? 0) + dt)
    const area = areaOf(frame)
    areas.set(area, (areas.get(area) ?? 0) + dt)
    const seen = new Set<string>()
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const k = keyOf(byId.get(id)!.callFrame)
      if (seen.has(k)) continue
      seen.add(k)
      total.set(k, (total.get(k) ?? 0) + dt)
    }
  }
  const cost = (key: string): FunctionCost => {
    const [name, where] = key.split("\u0000") as [string, string]
    const s = self.get(key) ?? 0
    const t = total.get(key) ?? 0
    return { name, where, selfMillis: s, selfShare: s / busy, totalMillis: t, totalShare: t / busy }
  }
  const skip = (key: string) => /^\((root|program)\)/.test(key)
  return {
    file,
    wallMillis: (profile.endTime - profile.startTime) / 1000 - skipMillis,
    busyMillis: busy,
    idleMillis: idle,
    bySelf: [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([key]) => cost(key)),
    byTotal: [...total.entries()].filter(([key]) => !skip(key)).sort((a, b) => b[1] - a[1]).slice(0, top).map(([key]) => cost(key)),
    byArea: [...areas.entries()].sort((a, b) => b[1] - a[1]).map(([area, millis]) => ({ area, millis, share: millis / busy }))
  }
}

export const toMarkdown = (summary: ProfileSummary): string => {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`
  const lines = [
    `Profile ${summary.file}: ${(summary.wallMillis / 1000).toFixed(1)} s wall, ${(summary.busyMillis / 1000).toFixed(1)} s busy ` +
      `(${pct(summary.busyMillis / Math.max(1, summary.wallMillis))}), shares below are of busy time.`,
    "",
    "| area | self | share |",
    "|---|---|---|",
    ...summary.byArea.map((a) => `| ${a.area} | ${a.millis.toFixed(0)} ms | ${pct(a.share)} |`),
    "",
    "| top self time | where | self | total |",
    "|---|---|---|---|",
    ...summary.bySelf.map((f) => `| ${f.name} | ${f.where} | ${pct(f.selfShare)} | ${pct(f.totalShare)} |`),
    "",
    "| top inclusive time | where | total | self |",
    "|---|---|---|---|",
    ...summary.byTotal.map((f) => `| ${f.name} | ${f.where} | ${pct(f.totalShare)} | ${pct(f.selfShare)} |`),
    ""
  ]
  return lines.join("\n")
}

if (process.argv[1] !== undefined && /profileSummary\.ts$/.test(process.argv[1])) {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      top: { type: "string", default: "25" },
      json: { type: "boolean" },
      "skip-seconds": { type: "string", default: "0" }
    }
  })
  for (const file of positionals) {
    const summary = summarize(file, Number(values.top), Number(values["skip-seconds"]) * 1000)
    process.stdout.write(values.json ? JSON.stringify(summary, null, 2) + "\n" : toMarkdown(summary) + "\n")
  }
}
