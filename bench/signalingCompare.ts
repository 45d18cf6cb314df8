/**
 * Signaling CPU of two builds of the proxy, side by side: this checkout and another one
 * (`COMPARE_AGAINST`, a checkout with its own node_modules, e.g. `git worktree add /tmp/base HEAD~1`).
 * Both run as `npm start` runs them, in front of one echo origin, and take turns: a batch of
 * sessions (WHIP POST + DELETE, as the signaling phase sends them) against one, then the same
 * against the other, for COMPARE_ROUNDS rounds, which goes first alternating. On a shared machine
 * the CPU a session costs drifts by 20-30 % over minutes; within a pair of adjacent batches it
 * mostly cancels, so the median of the per-round ratios tells a change of 10 % or more, where single
 * runs of `npm run bench -- --phases signaling` cannot (with this build on both sides, medians of
 * 0.98-1.11 came out on a shared 2-core machine).
 *
 * `COMPARE_AGAINST=/tmp/base npx tsx bench/signalingCompare.ts` with more knobs from the environment:
 * COMPARE_ROUNDS (default 8), COMPARE_SESSIONS per batch (1000), COMPARE_CONCURRENCY (16),
 * COMPARE_WARMUP sessions per proxy first (1000), and COMPARE_THIS_FLAGS / COMPARE_OTHER_FLAGS: Node
 * flags for one side alone (space-separated, after `npm start`'s), and COMPARE_THIS_ENV /
 * COMPARE_OTHER_ENV: environment for one side alone (`NAME=value` pairs separated by spaces, e.g.
 * `PROXY_LOG_LEVEL=warn`). `COMPARE_AGAINST=.` with flags or environment on one side compares
 * settings on one build.
 */
import * as http from "node:http"
import { mkdtempSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import { log } from "./format.js"
import { mapLimit, postAndDelete } from "./load.js"
import { forkReady, freeUdpPort, killChildrenOnExit, type OriginPorts, type ProxyProcess, startProxy, stop } from "./processes.js"
import { cpuMillis } from "./procStats.js"

const env = (name: string, fallback: string) => process.env[name] ?? fallback
const against = process.env["COMPARE_AGAINST"]
if (against === undefined || against === "") {
  console.error("COMPARE_AGAINST must name the other checkout (with its node_modules), e.g. /tmp/base")
  process.exit(2)
}
const rounds = Number(env("COMPARE_ROUNDS", "8"))
const sessions = Number(env("COMPARE_SESSIONS", "1000"))
const concurrency = Number(env("COMPARE_CONCURRENCY", "16"))
const warmup = Number(env("COMPARE_WARMUP", "1000"))

interface Batch {
  readonly cpuMsPerSession: number
  readonly sessionsPerSecond: number
  readonly failed: number
}

let batchNumber = 0
const batch = async (proxy: ProxyProcess, count: number): Promise<Batch> => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  const prefix = `b${batchNumber++}`
  let failed = 0
  const cpuBefore = cpuMillis(proxy.pid)!
  const started = performance.now()
  await mapLimit(Array.from({ length: count }, (_, i) => `${prefix}-${i}`), concurrency, async (stream) => {
    const signaled = await postAndDelete(`http://127.0.0.1:${proxy.httpPort}`, "compare", stream, agent)
    if ("error" in signaled) failed++
  })
  const seconds = (performance.now() - started) / 1000
  const cpu = cpuMillis(proxy.pid)! - cpuBefore
  agent.destroy()
  return { cpuMsPerSession: cpu / count, sessionsPerSecond: (count - failed) / seconds, failed }
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

killChildrenOnExit()
const workDir = mkdtempSync(path.join(os.tmpdir(), "rtc-proxy-compare-"))
const originPort = await freeUdpPort()
const origin = await forkReady<OriginPorts>("bench/origin.ts", ["--udp-port", String(originPort)])
/** A knob's space-separated words: Node flags, or NAME=value pairs. */
const words = (name: string) => env(name, "").split(/\s+/).filter((word) => word !== "")
const environment = (name: string) =>
  Object.fromEntries(words(name).map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)]))
const ours = await startProxy(origin.info, workDir, {
  name: "this",
  nodeFlags: words("COMPARE_THIS_FLAGS"),
  env: environment("COMPARE_THIS_ENV")
})
const theirs = await startProxy(origin.info, workDir, {
  name: "other",
  root: path.resolve(against),
  nodeFlags: words("COMPARE_OTHER_FLAGS"),
  env: environment("COMPARE_OTHER_ENV")
})
log(`this checkout ${ours.version} (pid ${ours.pid}) against ${against} ${theirs.version} (pid ${theirs.pid}); logs in ${workDir}`)
await batch(ours, warmup)
await batch(theirs, warmup)

const results: Array<{ ours: Batch; theirs: Batch }> = []
for (let round = 0; round < rounds; round++) {
  const oursFirst = round % 2 === 0
  const first = await batch(oursFirst ? ours : theirs, sessions)
  const second = await batch(oursFirst ? theirs : ours, sessions)
  const pair = oursFirst ? { ours: first, theirs: second } : { ours: second, theirs: first }
  results.push(pair)
  log(
    `round ${round + 1}: this ${pair.ours.cpuMsPerSession.toFixed(3)} ms/session at ${pair.ours.sessionsPerSecond.toFixed(0)}/s, ` +
      `other ${pair.theirs.cpuMsPerSession.toFixed(3)} ms at ${pair.theirs.sessionsPerSecond.toFixed(0)}/s ` +
      `(ratio ${(pair.ours.cpuMsPerSession / pair.theirs.cpuMsPerSession).toFixed(3)})` +
      (pair.ours.failed + pair.theirs.failed > 0 ? `, failed ${pair.ours.failed} / ${pair.theirs.failed}` : "")
  )
}
const ratios = results.map((pair) => pair.ours.cpuMsPerSession / pair.theirs.cpuMsPerSession)
log(
  `CPU per session, median of ${rounds} rounds: this ${median(results.map((pair) => pair.ours.cpuMsPerSession)).toFixed(3)} ms, ` +
    `other ${median(results.map((pair) => pair.theirs.cpuMsPerSession)).toFixed(3)} ms; ` +
    `ratio this/other: median ${median(ratios).toFixed(3)}, range ${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)}`
)
log(
  `sessions/s, median: this ${median(results.map((pair) => pair.ours.sessionsPerSecond)).toFixed(0)}, ` +
    `other ${median(results.map((pair) => pair.theirs.sessionsPerSecond)).toFixed(0)}`
)
await Promise.all([stop(ours.child), stop(theirs.child), stop(origin.child)])
process.exit(0)
