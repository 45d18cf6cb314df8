/**
 * The benchmark's knobs: `--flag value`, or `BENCH_FLAG_NAME=value` in the environment (the flag
 * wins); `--quick` swaps in each knob's quick value. `--help` prints them and exits.
 */
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"

/** The repository's root. */
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

const KNOBS = {
  quick: { type: "boolean", help: "smoke run: about 20 s (most of it start-up), small numbers" },
  phases: { type: "string", default: "throughput,latency,cpu,scale,churn,signaling,workers", help: "comma-separated phases to run" },
  sessions: { type: "string", default: "10", quick: "2", help: "concurrent sessions for throughput, latency and cpu" },
  "scale-sessions": { type: "string", default: "1,100,1000", quick: "1,3", help: "session counts for the scale phase" },
  "scale-bare": {
    type: "string",
    default: "cpu",
    quick: "cpu",
    help: "the bare relay in the scale phase: full (CPU and ramp), cpu (CPU only) or off"
  },
  "step-seconds": { type: "string", default: "2", quick: "0.3", help: "duration of each ramp step" },
  "start-rate": { type: "string", default: "4000", quick: "1000", help: "first ramp step, client packets/s" },
  "max-rate": { type: "string", default: "400000", quick: "1000", help: "ramp ceiling, client packets/s" },
  bisections: { type: "string", default: "4", quick: "1", help: "bisection steps after the doubling" },
  "throughput-rounds": {
    type: "string",
    default: "3",
    quick: "1",
    help: "ramps per relay, alternating which relay goes first; each relay's median ramp counts"
  },
  "scale-bisections": { type: "string", default: "2", quick: "0", help: "bisection steps in the scale phase" },
  loss: { type: "string", default: "0.001", help: "loss ratio a step must stay under" },
  "max-queue-growth-ms": {
    type: "string",
    default: "5",
    help: "a step also fails when the median RTT of its last fifth exceeds that of its first fifth by this much (a growing backlog)"
  },
  "wait-quiet": {
    type: "string",
    default: "20",
    quick: "0",
    help: "seconds to wait, before each phase, for other processes to leave the CPU"
  },
  "foreign-tolerance": {
    type: "string",
    default: "0.25",
    quick: "99",
    help: "a failed step is repeated (twice at most) when other processes took more than this many cores"
  },
  "latency-seconds": { type: "string", default: "16", quick: "0.3", help: "duration of each path's latency measurement" },
  "latency-rounds": { type: "string", default: "8", quick: "1", help: "relay and direct runs alternate in this many rounds" },
  "fixed-rate": {
    type: "string",
    default: "0",
    quick: "1000",
    help: "client pps for the cpu and scale runs (0: --fixed-share of the lower maximum)"
  },
  "fixed-share": { type: "string", default: "0.6", help: "share of the lower maximum rate used when --fixed-rate is 0" },
  packets: { type: "string", default: "1000000", quick: "2000", help: "relayed packets of the memory run" },
  "warmup-packets": { type: "string", default: "100000", quick: "1000", help: "relayed packets before the first RSS reading" },
  "scale-seconds": { type: "string", default: "15", quick: "0.2", help: "fixed-rate CPU time per session count, over all rounds" },
  "scale-rounds": { type: "string", default: "5", quick: "1", help: "interleaved CPU rounds per session count (the median counts)" },
  churn: { type: "string", default: "10000", quick: "50", help: "sessions created and deleted in the churn phase" },
  "churn-idle-seconds": {
    type: "string",
    default: "30",
    quick: "0",
    help: "idle time before the churn (memory at rest) and after it, while memory is followed"
  },
  "churn-concurrency": { type: "string", default: "16", help: "concurrent POST+DELETE loops" },
  "signaling-concurrency": {
    type: "string",
    default: "16,64",
    help: "concurrent clients of the signaling phase, one measurement per count"
  },
  "signaling-sessions": {
    type: "string",
    default: "4000",
    quick: "32",
    help: "sessions (POST + DELETE) measured per concurrency of the signaling phase"
  },
  "signaling-warmup": {
    type: "string",
    default: "1000",
    quick: "16",
    help: "sessions before the signaling phase's first measurement, not counted"
  },
  "signaling-rounds": {
    type: "string",
    default: "3",
    quick: "1",
    help: "measurements per concurrency of the signaling phase, taken in turn; each row is the one with the median CPU per session"
  },
  "signaling-floor": {
    type: "string",
    default: "on",
    help: "on: the signaling phase also runs against bench/signalingFloor.ts (the same I/O in plain Node), for the ratio; off: not"
  },
  "go-proxy": {
    type: "string",
    default: "",
    help: "path to an SRS Go proxy binary: the signaling phase runs against it too, for the ratio"
  },
  workers: {
    type: "string",
    default: "1,2",
    help:
      "data-plane worker counts (PROXY_RTC_WORKERS): the workers phase runs one proxy process per count; the cpu and churn " +
      "phases measure memory and sockets on a proxy with each count above 1 too"
  },
  "workers-sessions": { type: "string", default: "100,1000", quick: "10", help: "session counts of the workers phase" },
  "workers-rounds": {
    type: "string",
    default: "3",
    quick: "1",
    help: "ramps per worker count and session count in the workers phase (alternating order; the median counts)"
  },
  "settle-ms": { type: "string", default: "2000", quick: "300", help: "pause before RSS/fd readings (lets GC run)" },
  payload: { type: "string", default: "1200", help: "datagram size in bytes" },
  profile: { type: "boolean", help: "run the proxy under node --cpu-prof" },
  "proxy-trace-gc": {
    type: "string",
    default: "on",
    help: "run the proxy with --trace-gc and report its GC pauses per measurement (on/off)"
  },
  "proxy-node-flags": {
    type: "string",
    default: "",
    help: "extra node flags for the proxy process after npm start's own, space-separated (write --proxy-node-flags=--max-semi-space-size=4: with a space, a value starting with - is refused)"
  },
  "profile-dir": { type: "string", default: os.tmpdir(), help: "where the .cpuprofile goes" },
  "out-dir": {
    type: "string",
    default: path.join(root, "bench", "results"),
    quick: path.join(root, "bench", "results", "quick"),
    help: "where latest.json/latest.md go (a quick run never overwrites the published results)"
  },
  help: { type: "boolean", help: "this text" }
} as const satisfies Record<string, { type: "string" | "boolean"; default?: string; quick?: string; help: string }>

type KnobName = keyof typeof KNOBS

const envName = (name: string) => `BENCH_${name.toUpperCase().replace(/-/g, "_")}`

const { values: flags } = parseArgs({
  options: Object.fromEntries(Object.entries(KNOBS).map(([name, knob]) => [name, { type: knob.type }])) as {
    [K in KnobName]: { type: (typeof KNOBS)[K]["type"] }
  },
  allowPositionals: false
})

const envBool = (value: string | undefined) => value !== undefined && /^(1|on|true|yes)$/i.test(value)
const quick = (flags.quick as boolean | undefined) ?? envBool(process.env[envName("quick")])

const knob = (name: KnobName): string => {
  const flag = flags[name] as string | boolean | undefined
  if (typeof flag === "string") return flag
  const fromEnv = process.env[envName(name)]
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv
  const spec = KNOBS[name] as { default?: string; quick?: string }
  return (quick ? spec.quick : undefined) ?? spec.default ?? ""
}
const num = (name: KnobName): number => {
  const value = Number(knob(name))
  if (!Number.isFinite(value)) throw new Error(`--${name}: expected a number, got ${knob(name)}`)
  return value
}
const bool = (name: KnobName): boolean => {
  const flag = flags[name] as string | boolean | undefined
  if (typeof flag === "boolean") return flag
  return envBool(knob(name))
}

if (flags.help) {
  const lines = Object.entries(KNOBS).map(([name, spec]) => {
    const s = spec as { default?: string; quick?: string; help: string }
    const defaults = s.default === undefined ? "" : ` (default ${s.default}${s.quick === undefined ? "" : `, quick ${s.quick}`})`
    return `  --${name.padEnd(22)} ${envName(name).padEnd(30)} ${s.help}${defaults}`
  })
  console.log(`npm run bench -- [flags]\n\n${lines.join("\n")}`)
  process.exit(0)
}

export const config = {
  quick,
  phases: new Set(knob("phases").split(",").map((p) => p.trim()).filter((p) => p !== "")),
  sessions: num("sessions"),
  scaleSessions: knob("scale-sessions").split(",").map(Number).filter((n) => n > 0),
  scaleBare: knob("scale-bare") as "full" | "cpu" | "off",
  stepSeconds: num("step-seconds"),
  startRate: num("start-rate"),
  maxRate: num("max-rate"),
  bisections: num("bisections"),
  throughputRounds: Math.max(1, num("throughput-rounds")),
  scaleBisections: num("scale-bisections"),
  lossThreshold: num("loss"),
  maxQueueGrowthMicros: num("max-queue-growth-ms") * 1000,
  foreignTolerance: num("foreign-tolerance"),
  waitQuietSeconds: num("wait-quiet"),
  latencySeconds: num("latency-seconds"),
  latencyRounds: num("latency-rounds"),
  fixedRate: num("fixed-rate"),
  fixedShare: num("fixed-share"),
  packets: num("packets"),
  warmupPackets: num("warmup-packets"),
  scaleSeconds: num("scale-seconds"),
  scaleRounds: num("scale-rounds"),
  churn: num("churn"),
  churnIdleSeconds: num("churn-idle-seconds"),
  churnConcurrency: num("churn-concurrency"),
  signalingConcurrency: knob("signaling-concurrency").split(",").map(Number).filter((n) => n > 0),
  signalingSessions: num("signaling-sessions"),
  signalingWarmup: num("signaling-warmup"),
  signalingRounds: Math.max(1, num("signaling-rounds")),
  signalingFloor: knob("signaling-floor") !== "off",
  goProxy: knob("go-proxy") === "" ? undefined : path.resolve(knob("go-proxy")),
  workers: knob("workers").split(",").map(Number).filter((n) => Number.isInteger(n) && n > 0),
  workersSessions: knob("workers-sessions").split(",").map(Number).filter((n) => n > 0),
  workersRounds: Math.max(1, num("workers-rounds")),
  settleMs: num("settle-ms"),
  payload: num("payload"),
  profile: bool("profile"),
  proxyTraceGc: bool("proxy-trace-gc"),
  proxyNodeFlags: knob("proxy-node-flags").split(/\s+/).filter((flag) => flag !== ""),
  profileDir: knob("profile-dir"),
  outDir: path.resolve(knob("out-dir"))
}

export type BenchConfig = typeof config
