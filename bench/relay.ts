/**
 * `npm run bench`: the relay benchmark. Starts, as separate processes on 127.0.0.1, the real proxy
 * (src/main.ts), an SRS-shaped echo origin (bench/origin.ts) and a bare Node dgram relay
 * (bench/bareRelay.ts); this process is the load generator (bench/load.ts). Measures, side by side:
 *
 * - throughput: the highest offered rate with under 0.1% loss (ramp: doubling, then bisecting);
 * - added one-way latency at half of the lower maximum (one rate for both relays), against the direct path;
 * - CPU time per 10,000 relayed packets and resident memory after warm-up and after 1,000,000
 *   relayed packets, at one fixed rate for both relays;
 * - 1, 100 and 1,000 concurrent sessions: CPU per packet and maximum rate;
 * - session churn: 10,000 WHIP POST + DELETE against the proxy, its RSS and descriptors before/after.
 *
 * Counting: one client packet echoed by the origin crosses a relay twice (client -> origin and
 * origin -> client), so it counts as 2 relayed packets. "Client pps" is the one-way offered rate.
 *
 * Progress goes to stderr; the result is printed as markdown and written to
 * bench/results/latest.{json,md} (or --out-dir). `--help` lists the knobs.
 */
import { type ChildProcess, fork, spawn } from "node:child_process"
import * as dgram from "node:dgram"
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import {
  httpRequest,
  iceString,
  LoadGenerator,
  type LoadTarget,
  mapLimit,
  minimalOffer,
  type SessionGroup,
  sleep,
  type StepResult,
  summarize
} from "./load.js"
import { summarize as summarizeProfile, toMarkdown as profileMarkdown } from "./profileSummary.js"
import { npmStartNodeFlags } from "./npmStart.js"
import { cpuMillis, cpuWatch, diff, fdCounts, gcFollower, type GcSummary, rssBytes, udpDrops, udpSnmp } from "./procStats.js"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

// ---------------------------------------------------------------------------------------------
// Knobs: --flag value, or BENCH_FLAG_NAME=value in the environment (the flag wins).

const KNOBS = {
  quick: { type: "boolean", help: "smoke run: about 20 s (most of it start-up), small numbers" },
  phases: { type: "string", default: "throughput,latency,cpu,scale,churn", help: "comma-separated phases to run" },
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
    return `  --${name.padEnd(18)} ${envName(name).padEnd(26)} ${s.help}${defaults}`
  })
  console.log(`npm run bench -- [flags]\n\n${lines.join("\n")}`)
  process.exit(0)
}

const config = {
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
  settleMs: num("settle-ms"),
  payload: num("payload"),
  profile: bool("profile"),
  proxyTraceGc: bool("proxy-trace-gc"),
  proxyNodeFlags: knob("proxy-node-flags").split(/\s+/).filter((flag) => flag !== ""),
  profileDir: knob("profile-dir"),
  outDir: path.resolve(knob("out-dir"))
}

// ---------------------------------------------------------------------------------------------
// Progress

const t0 = performance.now()
const log = (line: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${line}\n`)

const fmtInt = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? "n/a" : Math.round(n).toLocaleString("en-US"))
const fmtPct = (ratio: number | null | undefined, digits = 3) =>
  ratio === undefined || ratio === null || !Number.isFinite(ratio) ? "n/a" : `${(ratio * 100).toFixed(digits)}%`
const fmtUs = (micros: number | undefined) => (micros === undefined || !Number.isFinite(micros) ? "n/a" : `${micros.toFixed(0)} µs`)
const fmtMB = (bytes: number | undefined) => (bytes === undefined ? "n/a" : `${(bytes / 1024 / 1024).toFixed(1)} MB`)
const fmtSignedMB = (bytes: number | undefined) =>
  bytes === undefined ? "n/a" : `${bytes >= 0 ? "+" : ""}${(bytes / 1024 / 1024).toFixed(1)} MB`
const fmtMs = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? "n/a" : `${ms.toFixed(1)} ms`)

// ---------------------------------------------------------------------------------------------
// Processes

const children = new Set<ChildProcess>()
const alive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null

const killAllNow = () => {
  for (const child of children) if (alive(child)) child.kill("SIGKILL")
}
process.on("exit", killAllNow)
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping`)
    killAllNow()
    process.exit(130)
  })
}

const waitExit = (child: ChildProcess, ms: number) =>
  new Promise<boolean>((resolve) => {
    if (!alive(child)) return resolve(true)
    const timer = setTimeout(() => resolve(false), ms)
    child.once("exit", () => {
      clearTimeout(timer)
      resolve(true)
    })
  })

/** SIGTERM, then SIGKILL when it has not exited in time. */
const stop = async (child: ChildProcess, graceMs = 5000) => {
  if (!alive(child)) return
  child.kill("SIGTERM")
  if (!(await waitExit(child, graceMs))) {
    child.kill("SIGKILL")
    await waitExit(child, 2000)
  }
}

/** Forks a bench/*.ts child with tsx and waits for its `{ ready: true, ... }` message. */
const forkReady = <A>(file: string, args: Array<string>): Promise<{ child: ChildProcess; info: A }> =>
  new Promise((resolve, reject) => {
    const child = fork(path.join(root, file), args, {
      cwd: root,
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    children.add(child)
    const timer = setTimeout(() => reject(new Error(`${file} did not start within 30 s`)), 30_000)
    child.once("exit", (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`${file} exited during start-up (${code ?? signal})`))
    })
    child.on("message", (message: unknown) => {
      if (typeof message === "object" && message !== null && (message as { ready?: boolean }).ready) {
        clearTimeout(timer)
        resolve({ child, info: message as A })
      }
    })
  })

const freeTcpPort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

const freeUdpPort = () =>
  new Promise<number>((resolve, reject) => {
    const socket = dgram.createSocket("udp4")
    socket.once("error", reject)
    socket.bind(0, "127.0.0.1", () => {
      const port = socket.address().port
      socket.close(() => resolve(port))
    })
  })

/** "used / total" of a JS heap reading. */
const fmtHeap = (memory: ProcessMemory | undefined) =>
  memory === undefined ? "" : `${fmtMB(memory.heapUsed)} / ${fmtMB(memory.heapTotal)}`

/** process.memoryUsage() of the proxy, from its stats API. */
interface ProcessMemory {
  readonly rss: number
  readonly heapTotal: number
  readonly heapUsed: number
  readonly external: number
  readonly arrayBuffers: number
}

interface ProxyProcess {
  readonly child: ChildProcess
  readonly pid: number
  readonly httpPort: number
  readonly systemPort: number
  readonly udpPort: number
  readonly logFile: string
  readonly version: string
  readonly env: Record<string, string>
  /** performance.now() when it was spawned. */
  readonly spawnedAt: number
}

/** Starts the proxy on free ports; again on other ports when one was taken meanwhile. */
const startProxy = async (origin: { apiPort: number; udpPort: number }, workDir: string): Promise<ProxyProcess> => {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startProxyOnce(origin, workDir)
    } catch (error) {
      if (attempt >= 3 || !/in use|EADDRINUSE/i.test((error as Error).message)) throw error
      log(`proxy: a port was taken meanwhile, again on other ports`)
    }
  }
}

const startProxyOnce = async (origin: { apiPort: number; udpPort: number }, workDir: string): Promise<ProxyProcess> => {
  const [httpPort, systemPort, udpPort] = [await freeTcpPort(), await freeTcpPort(), await freeUdpPort()]
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith("PROXY_") && !key.startsWith("SRS_")) env[key] = value
  }
  Object.assign(env, {
    PROXY_LISTEN_HOST: "127.0.0.1",
    PROXY_HTTP_API: String(httpPort),
    PROXY_SYSTEM_API: String(systemPort),
    PROXY_WEBRTC_SERVER: String(udpPort),
    PROXY_DEFAULT_BACKEND_ENABLED: "on",
    PROXY_DEFAULT_BACKEND_IP: "127.0.0.1",
    PROXY_DEFAULT_BACKEND_API: String(origin.apiPort),
    PROXY_DEFAULT_BACKEND_RTC: String(origin.udpPort),
    PROXY_RTC_IDLE_TIMEOUT: "3600s",
    // One load generator on one address opens every session: the per-client limit on signaling
    // (20/s, burst 50 by default) would turn the churn into a rate-limit test. 0 turns it off.
    PROXY_RATE_LIMIT: "0",
    PROXY_GRACE_QUIT_TIMEOUT: "2s",
    PROXY_FORCE_QUIT_TIMEOUT: "5s"
  })
  const logFile = path.join(workDir, "proxy.log")
  const logFd = openSync(logFile, "a")
  const nodeArgs = [...npmStartNodeFlags(root), "--import", "tsx"]
  if (config.proxyTraceGc) nodeArgs.push("--trace-gc")
  nodeArgs.push(...config.proxyNodeFlags)
  if (config.profile) {
    mkdirSync(config.profileDir, { recursive: true })
    // One file per thread (CPU.<date>.<pid>.<thread>.<seq>.cpuprofile): tsx's loader thread writes its own.
    nodeArgs.push("--cpu-prof", "--cpu-prof-dir", config.profileDir)
  }
  const spawnedAt = performance.now()
  const child = spawn(process.execPath, [...nodeArgs, path.join(root, "src", "main.ts")], {
    cwd: root,
    env,
    stdio: ["ignore", logFd, logFd]
  })
  closeSync(logFd)
  children.add(child)
  const deadline = Date.now() + 30_000
  for (;;) {
    if (!alive(child)) {
      throw new Error(`the proxy exited during start-up; its log:\n${readFileSync(logFile, "utf8").slice(-2000)}`)
    }
    try {
      const response = await httpRequest(`http://127.0.0.1:${httpPort}/api/v1/versions`)
      if (response.status === 200) {
        const proxyEnv = Object.fromEntries(Object.entries(env).filter(([key]) => key.startsWith("PROXY_")))
        return { child, pid: child.pid!, httpPort, systemPort, udpPort, logFile, version: response.body.trim(), env: proxyEnv, spawnedAt }
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the proxy did not answer on :${httpPort} within 30 s (log: ${logFile})`)
    await sleep(100)
  }
}

// ---------------------------------------------------------------------------------------------
// Measurements

type PathName = "proxy" | "bare" | "direct"

interface RampStep {
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

interface RampResult {
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
interface ThroughputResult extends RampResult {
  readonly rounds: ReadonlyArray<{ readonly maxClientRate: number; readonly maxRelayedPerSecond: number }>
}

let pids: Record<string, number> = {}
/** The proxy's and the bare relay's listening ports, to tell their drops from those of their per-session sockets. */
let sharedPorts: Record<string, number> = {}
/** Cores other processes used during each measured step. */
const foreignSamples: Array<number> = []
/** The proxy's GC activity since the previous call (from its --trace-gc log lines). */
let proxyGc: () => GcSummary | undefined = () => undefined

const fmtGc = (gc: GcSummary | undefined) =>
  gc === undefined
    ? "n/a"
    : `${gc.count}${gc.major > 0 ? ` (${gc.major} full)` : ""}, ${gc.totalPauseMillis.toFixed(0)} ms, max ${gc.maxPauseMillis.toFixed(1)} ms`

const mergeGc = (all: ReadonlyArray<GcSummary | undefined>): GcSummary | undefined => {
  const present = all.filter((gc): gc is GcSummary => gc !== undefined)
  if (present.length === 0) return undefined
  return {
    count: present.reduce((n, gc) => n + gc.count, 0),
    major: present.reduce((n, gc) => n + gc.major, 0),
    totalPauseMillis: present.reduce((n, gc) => n + gc.totalPauseMillis, 0),
    maxPauseMillis: Math.max(...present.map((gc) => gc.maxPauseMillis))
  }
}

/** Non-zero kernel drops, by process (split into shared port and per-session sockets where known). */
const describeDrops = (drops: Record<string, number>) =>
  Object.entries(drops)
    .filter(([who, n]) => n > 0 && drops[`${who}:shared`] === undefined)
    .map(([who, n]) => `${who.replace(":shared", " shared port").replace(":sessions", " session sockets")} ${fmtInt(n)}`)
    .join(", ")

const fmtCores = (cores: number | undefined) => (cores === undefined ? "n/a" : cores.toFixed(2))

const measuredStep = async (
  group: SessionGroup,
  options: { rate: number; seconds?: number; packets?: number; keepRtts?: boolean }
) => {
  const dropsBefore = udpDrops(pids, sharedPorts)
  const snmpBefore = udpSnmp()
  const watch = cpuWatch(pids)
  proxyGc()
  const result = await group.run(options)
  const gc = proxyGc()
  const cpu = watch()
  if (cpu.foreignCores !== undefined) foreignSamples.push(cpu.foreignCores)
  return { result, cpu, gc, kernelDrops: diff(dropsBefore, udpDrops(pids, sharedPorts)), snmp: diff(snmpBefore, udpSnmp()) }
}

/**
 * Waits (at most `maxSeconds`) until processes outside the benchmark use under --foreign-tolerance
 * cores, so that a measurement does not start in the middle of someone's test run.
 */
const waitQuiet = async (what: string, maxSeconds = config.waitQuietSeconds) => {
  const deadline = performance.now() + maxSeconds * 1000
  let told = false
  for (;;) {
    const watch = cpuWatch(pids)
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

const ramp = async (
  name: string,
  group: SessionGroup,
  options: { readonly start: number; readonly bisections: number; readonly round?: number }
): Promise<RampResult> => {
  const steps: Array<RampStep> = []
  const minRate = 100
  const attempt = async (rawRate: number) => {
    const rate = Math.max(minRate, Math.round(rawRate / 10) * 10)
    for (let tryNo = 1; ; tryNo++) {
      const { cpu, gc, kernelDrops, result, snmp } = await measuredStep(group, { rate, seconds: config.stepSeconds })
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
      await waitQuiet("repeating the step", Math.max(2, Math.min(10, config.waitQuietSeconds)))
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

const medianRamp = (ramps: ReadonlyArray<RampResult>): ThroughputResult => {
  const sorted = [...ramps].sort((a, b) => a.maxRelayedPerSecond - b.maxRelayedPerSecond)
  const median = sorted[Math.floor((sorted.length - 1) / 2)]!
  return {
    ...median,
    rounds: ramps.map((r) => ({ maxClientRate: r.maxClientRate, maxRelayedPerSecond: r.maxRelayedPerSecond })),
    steps: ramps.flatMap((r) => r.steps)
  }
}

interface LatencyResult {
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

/**
 * Round trips through a relay and straight to the origin at the same rate, interleaved in
 * --latency-rounds rounds (so that a disturbance hits both alike), all samples of a path pooled.
 */
const latencyAt = async (name: string, group: SessionGroup, direct: SessionGroup, rate: number): Promise<LatencyResult> => {
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
    const relayStep = await measuredStep(group, { rate, seconds, keepRtts: true })
    if (group.target.kind === "proxy") gcs.push(relayStep.gc)
    await sleep(100)
    const directStep = await measuredStep(direct, { rate, seconds, keepRtts: true })
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

interface CpuRun {
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

/**
 * One fixed-rate chunk of `clientPackets` with the CPU time of every process measured around it
 * (/proc/<pid>/stat utime+stime, which Linux keeps equal to the scheduler's exact run time). A chunk
 * during which other processes took more than --foreign-tolerance cores is not counted and is sent
 * again (three times at most), so that someone else's test run does not end up in the cost.
 */
const cpuRun = async (name: string, group: SessionGroup, rate: number, clientPackets: number): Promise<CpuRun> => {
  const watched = { ...pids }
  const dropsBefore = udpDrops(watched, sharedPorts)
  for (let redone = 0; ; redone++) {
    const before = Object.fromEntries(Object.entries(watched).map(([who, pid]) => [who, cpuMillis(pid)]))
    const selfBefore = process.cpuUsage()
    const watch = cpuWatch(watched)
    proxyGc()
    const result = await group.run({ rate, packets: clientPackets, quietMillis: 100 })
    const gc = group.target.kind === "proxy" ? proxyGc() : undefined
    const { foreignCores, seconds } = watch()
    const self = process.cpuUsage(selfBefore)
    if (foreignCores !== undefined && foreignCores > config.foreignTolerance && redone < 3) {
      log(`${name}: other processes took ${fmtCores(foreignCores)} cores during this run: not counted, again`)
      await waitQuiet("repeating the run", Math.max(2, Math.min(10, config.waitQuietSeconds)))
      continue
    }
    if (foreignCores !== undefined) foreignSamples.push(foreignCores)
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
      kernelDrops: diff(dropsBefore, udpDrops(watched, sharedPorts))
    }
  }
}

/** Several runs of the same relay as one. */
const mergeRuns = (runs: ReadonlyArray<CpuRun>): CpuRun => {
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

const medianOf = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return undefined
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

// ---------------------------------------------------------------------------------------------
// The run

interface Report {
  machine: Record<string, unknown>
  config: Omit<typeof config, "phases"> & { phases: Array<string> }
  processes: Record<string, unknown>
  throughput: Record<string, unknown>
  latency: Record<string, unknown>
  cpuMemory: Record<string, unknown>
  scaling: Array<Record<string, unknown>>
  churn: Record<string, unknown>
  targets: Array<{ name: string; target: string; measured: string; met: boolean | undefined }>
  notes: Array<string>
  profile: string | undefined
  profileSummary?: ReturnType<typeof summarizeProfile> & { skippedStartupMillis: number }
  durationSeconds: number
}

const main = async () => {
  const workDir = mkdtempSync(path.join(os.tmpdir(), "rtc-proxy-bench-"))
  const cpu = os.cpus()[0]
  const report: Report = {
    machine: {
      cpuModel: cpu?.model ?? "unknown",
      cores: os.cpus().length,
      node: process.version,
      os: `${os.type()} ${os.release()} ${os.arch()}`,
      totalMemoryBytes: os.totalmem(),
      date: new Date().toISOString(),
      note:
        `the load generator (this process), the echo origin and the relay under test share the ${os.cpus().length} cores; ` +
        "every number is for the whole system on one machine over loopback"
    },
    config: { ...config, phases: [...config.phases] },
    processes: {},
    throughput: {},
    latency: {},
    cpuMemory: {},
    scaling: [],
    churn: {},
    targets: [],
    notes: [],
    profile: undefined,
    durationSeconds: 0
  }
  log(`relay benchmark${quick ? " (quick)" : ""}: ${report.machine.cpuModel}, ${report.machine.cores} cores, node ${process.version}`)

  const originPort = await freeUdpPort()
  const [origin, bare] = await Promise.all([
    forkReady<{ apiPort: number; udpPort: number }>("bench/origin.ts", ["--udp-port", String(originPort)]),
    forkReady<{ port: number }>("bench/bareRelay.ts", ["--origin-port", String(originPort)])
  ])
  log(`echo origin: pid ${origin.child.pid}, api :${origin.info.apiPort}, udp :${origin.info.udpPort}`)
  log(`bare dgram relay: pid ${bare.child.pid}, udp :${bare.info.port}`)
  const proxy = await startProxy(origin.info, workDir)
  log(`proxy: pid ${proxy.pid}, http :${proxy.httpPort}, udp :${proxy.udpPort}, log ${proxy.logFile}`)
  pids = { proxy: proxy.pid, bare: bare.child.pid!, origin: origin.child.pid!, loadgen: process.pid }
  sharedPorts = { proxy: proxy.udpPort, bare: bare.info.port }
  if (config.proxyTraceGc) proxyGc = gcFollower(proxy.logFile)
  report.processes = {
    proxy: { pid: proxy.pid, httpPort: proxy.httpPort, systemPort: proxy.systemPort, udpPort: proxy.udpPort, log: proxy.logFile, version: proxy.version, env: proxy.env },
    bare: { pid: bare.child.pid, udpPort: bare.info.port },
    origin: { pid: origin.child.pid, apiPort: origin.info.apiPort, udpPort: origin.info.udpPort },
    loadgen: { pid: process.pid }
  }

  const resetBare = () =>
    new Promise<void>((resolve) => {
      const onMessage = (message: unknown) => {
        if (message === "reset-done") {
          bare.child.off("message", onMessage)
          resolve()
        }
      }
      bare.child.on("message", onMessage)
      bare.child.send("reset")
    })

  const load = new LoadGenerator({
    host: "127.0.0.1",
    payloadBytes: config.payload,
    recvBufferBytes: 1024 * 1024,
    signalingConcurrency: 32,
    log
  })
  const targets: Record<PathName, LoadTarget> = {
    proxy: { kind: "proxy", host: "127.0.0.1", httpBase: `http://127.0.0.1:${proxy.httpPort}` },
    bare: { kind: "bare", host: "127.0.0.1", udpPort: bare.info.port },
    direct: { kind: "direct", host: "127.0.0.1", udpPort: origin.info.udpPort }
  }

  /** When the measured phases start (after sessions are set up and warmed), for the profile summary. */
  let measuringFrom = performance.now()
  let maxProxy = 0
  let maxBare = 0
  const phase = (name: string) => config.phases.has(name)
  const fixedRate = () =>
    config.fixedRate > 0 ? config.fixedRate : Math.max(100, Math.round((Math.min(maxProxy, maxBare) * config.fixedShare) / 100) * 100)
  const needGroups = phase("throughput") || phase("latency") || phase("cpu")

  if (needGroups) {
    const groups: Record<PathName, SessionGroup> = {
      proxy: await load.sessions(targets.proxy, config.sessions, "main"),
      bare: await load.sessions(targets.bare, config.sessions, "main"),
      direct: await load.sessions(targets.direct, config.sessions, "main")
    }
    // Warm-up: JIT, buffers, first-packet paths; not counted.
    for (const name of ["proxy", "bare", "direct"] as const) {
      await groups[name].run({ rate: config.startRate, seconds: Math.min(1, config.stepSeconds) })
    }
    measuringFrom = performance.now()

    if (phase("throughput")) {
      await waitQuiet("the throughput phase")
      log("--- throughput: highest offered rate with loss under " + fmtPct(config.lossThreshold, 2))
      // The maximum of one ramp moves by 10-20% from run to run on a shared 2-core machine: several
      // ramps, alternating which relay goes first so that drift weighs on both alike, and the medians.
      const ramps: Record<"proxy" | "bare", Array<RampResult>> = { proxy: [], bare: [] }
      for (let round = 1; round <= config.throughputRounds; round++) {
        const order = round % 2 === 1 ? (["proxy", "bare"] as const) : (["bare", "proxy"] as const)
        for (const name of order) {
          if (config.throughputRounds > 1) log(`throughput round ${round} of ${config.throughputRounds}: ${name}`)
          ramps[name].push(await ramp(name, groups[name], { start: config.startRate, bisections: config.bisections, round }))
        }
      }
      const proxyRamp = medianRamp(ramps.proxy)
      const bareRamp = medianRamp(ramps.bare)
      maxProxy = proxyRamp.maxClientRate
      maxBare = bareRamp.maxClientRate
      report.throughput = {
        counting: "relayed packets per second = 2 x client packets echoed per second (client->origin and origin->client)",
        proxy: proxyRamp,
        bare: bareRamp,
        ratio: bareRamp.maxRelayedPerSecond > 0 ? proxyRamp.maxRelayedPerSecond / bareRamp.maxRelayedPerSecond : null
      }
      log(
        `throughput: proxy ${fmtInt(proxyRamp.maxRelayedPerSecond)} relayed/s, bare ${fmtInt(bareRamp.maxRelayedPerSecond)} relayed/s`
      )
    }
    if (maxProxy === 0) maxProxy = config.fixedRate > 0 ? config.fixedRate * 2 : config.startRate * 2
    if (maxBare === 0) maxBare = config.fixedRate > 0 ? config.fixedRate * 2 : config.startRate * 2

    if (phase("latency")) {
      await waitQuiet("the latency phase")
      // One rate for both relays (half of the platform's ceiling, or of the proxy's when lower): the
      // tail of the round trip grows steeply with the machine's load, so unequal rates compare nothing.
      const latencyRate = Math.round(Math.min(maxProxy, maxBare) / 2)
      log(`--- latency at ${fmtInt(latencyRate)} client pps (half of the lower maximum), against the direct path at the same rate`)
      report.latency = {
        method: "added one-way = (relay RTT percentile - direct RTT percentile) / 2, each at the same offered rate",
        proxy: await latencyAt("proxy", groups.proxy, groups.direct, latencyRate),
        bare: await latencyAt("bare", groups.bare, groups.direct, latencyRate)
      }
    }

    if (phase("cpu")) {
      const rate = fixedRate()
      const clientPackets = Math.ceil(config.packets / 2)
      await waitQuiet("the cpu phase")
      log(`--- cpu and memory at ${fmtInt(rate)} client pps: warm-up ${fmtInt(config.warmupPackets)}, then ${fmtInt(config.packets)} relayed`)
      const cpuMemory: Record<string, unknown> = { rate, sessions: config.sessions, relayedPackets: config.packets }
      const relays = ["proxy", "bare"] as const
      const rssAfterWarmup: Record<string, number | undefined> = {}
      for (const name of relays) await groups[name].run({ rate, packets: Math.ceil(config.warmupPackets / 2), quietMillis: 100 })
      await sleep(config.settleMs)
      for (const name of relays) rssAfterWarmup[name] = rssBytes(pids[name]!)
      // The two relays take turns, chunk by chunk, so that both see the same conditions.
      const chunks = quick ? 1 : 5
      const perChunk = Math.ceil(clientPackets / chunks)
      const runs: Record<string, Array<CpuRun>> = { proxy: [], bare: [] }
      for (let chunk = 0; chunk < chunks; chunk++) {
        for (const name of relays) {
          const run = await cpuRun(name, groups[name], rate, perChunk)
          runs[name]!.push(run)
          const merged = mergeRuns(runs[name]!)
          log(
            `${name}: ${fmtInt(merged.relayedPackets)} relayed at ${fmtInt(rate)} client pps, ${fmtMs(run.cpuMsPer10k[name])} ` +
              `CPU per 10k in this chunk, loss so far ${fmtPct(merged.lossRatio)}`
          )
        }
      }
      await sleep(config.settleMs)
      for (const name of relays) {
        const run = mergeRuns(runs[name]!)
        const rssAfterRun = rssBytes(pids[name]!)
        const warm = rssAfterWarmup[name]
        const growth = rssAfterRun !== undefined && warm !== undefined ? rssAfterRun - warm : undefined
        const perChunkCost = runs[name]!.map((r) => r.cpuMsPer10k[name]).filter((x): x is number => x !== undefined)
        cpuMemory[name] = {
          ...run,
          cpuMsPer10kRelayed: run.cpuMsPer10k[name],
          cpuMsPer10kByChunk: perChunkCost,
          rssAfterWarmupBytes: warm,
          rssAfterRunBytes: rssAfterRun,
          rssGrowthBytes: growth
        }
        log(
          `${name}: ${fmtMs(run.cpuMsPer10k[name])} CPU per 10k relayed (chunks ${perChunkCost.map((c) => c.toFixed(0)).join(", ")}; ` +
            `origin ${fmtMs(run.cpuMsPer10k["origin"])}, load generator ${fmtMs(run.cpuMsPer10k["loadgen"])}), loss ` +
            `${fmtPct(run.lossRatio)}; RSS ${fmtMB(warm)} -> ${fmtMB(rssAfterRun)} (${fmtSignedMB(growth)})`
        )
      }
      report.cpuMemory = cpuMemory
    }

    await Promise.all([groups.proxy.close(), groups.bare.close(), groups.direct.close()])
    await resetBare()
  }

  if (phase("scale")) {
    const rate = fixedRate()
    const sizes = config.scaleSessions
    log(
      `--- scale: sessions ${sizes.join(", ")}, all open together; CPU at ${fmtInt(rate)} client pps in ` +
        `${config.scaleRounds} interleaved rounds, then a ramp per session count`
    )
    await waitQuiet("the scale phase")
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
          groups.set(key(name, sessions), await load.sessions(targets[name], sessions, `scale${sessions}`))
          await groups.get(key(name, sessions))!.run({ rate, seconds: Math.min(1, config.scaleSeconds), quietMillis: 100 })
          Object.assign(entry(name, sessions), { rssAfterOpenBytes: rssBytes(pids[name]!), udpSocketsOpen: fdCounts(pids[name]!).udp })
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
          const run = await cpuRun(`${name} x${sessions}`, group, rate, perRun)
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
        const start = Math.max(500, Math.round(((name === "proxy" ? maxProxy : maxBare) * 0.75) / 100) * 100)
        const scaleRamp = await ramp(`${name} x${sessions}`, group, { start, bisections: config.scaleBisections })
        Object.assign(entry(name, sessions), {
          maxClientRate: scaleRamp.maxClientRate,
          maxRelayedPerSecond: scaleRamp.maxRelayedPerSecond,
          ramp: scaleRamp
        })
      }
    }
    for (const name of paths) {
      const rssAfterLoad = rssBytes(pids[name]!)
      for (const sessions of sizes) await groups.get(key(name, sessions))?.close()
      if (name === "bare") await resetBare()
      await sleep(500)
      for (const sessions of sizes) {
        Object.assign(entry(name, sessions), {
          rssAfterLoadBytes: rssAfterLoad,
          rssAfterCloseBytes: rssBytes(pids[name]!),
          udpSocketsAfterClose: fdCounts(pids[name]!).udp
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
      report.scaling.push(row)
    }
  }

  if (phase("churn")) {
    await waitQuiet("the churn phase")
    log(`--- churn: ${fmtInt(config.churn)} sessions created (POST) and ended (DELETE), ${config.churnConcurrency} at a time`)
    load.resetAgent()
    // "Before" is read at rest, as "after" is: the earlier phases leave garbage that V8 frees only
    // once allocation has been quiet for a while.
    if (config.churnIdleSeconds > 0) log(`churn: ${config.churnIdleSeconds} s idle first, so that memory is read at rest`)
    await sleep(Math.max(config.settleMs, config.churnIdleSeconds * 1000))
    const originStats = async () =>
      JSON.parse((await httpRequest(`http://127.0.0.1:${origin.info.apiPort}/api/v1/stats`)).body) as { active: number }
    const proxyMemory = async () => {
      const stats = JSON.parse((await httpRequest(`http://127.0.0.1:${proxy.systemPort}/api/v1/stats`)).body) as {
        process: { memory: ProcessMemory }
      }
      return stats.process.memory
    }
    const before = {
      rssBytes: rssBytes(proxy.pid),
      fds: fdCounts(proxy.pid),
      originActive: (await originStats()).active,
      memory: await proxyMemory()
    }
    const errors: Record<string, number> = {}
    const countError = (what: string) => {
      errors[what] = (errors[what] ?? 0) + 1
    }
    const started = performance.now()
    const churnWatch = cpuWatch(pids)
    const cpuBefore = cpuMillis(proxy.pid)
    const progress: Array<{ sessions: number; rssBytes: number | undefined; fds: number }> = []
    let done = 0
    const agent = load.httpAgent
    await mapLimit(Array.from({ length: config.churn }, (_, i) => i), config.churnConcurrency, async (i) => {
      try {
        const created = await httpRequest(`${targets.proxy.httpBase}/rtc/v1/whip/?app=churn&stream=c${i}`, {
          method: "POST",
          headers: { "content-type": "application/sdp" },
          body: minimalOffer(iceString(8), iceString(24)),
          agent
        })
        const location = created.headers["location"]
        if (created.status !== 201 || location === undefined) return countError(`POST ${created.status}`)
        const deleted = await httpRequest(new URL(location, `${targets.proxy.httpBase}/`).toString(), { method: "DELETE", agent })
        if (deleted.status !== 200) countError(`DELETE ${deleted.status}`)
      } catch (error) {
        countError((error as Error).message.slice(0, 80))
      }
      if (++done % Math.max(1, Math.round(config.churn / 5)) === 0) {
        const point = { sessions: done, rssBytes: rssBytes(proxy.pid), fds: fdCounts(proxy.pid).total }
        progress.push(point)
        log(`churn: ${fmtInt(done)} sessions, proxy RSS ${fmtMB(point.rssBytes)}, fds ${point.fds}`)
      }
    })
    const seconds = (performance.now() - started) / 1000
    const cpuAfter = cpuMillis(proxy.pid)
    const churnCpu = churnWatch()
    const rightAfter = { rssBytes: rssBytes(proxy.pid), fds: fdCounts(proxy.pid) }
    load.resetAgent()
    await sleep(config.settleMs)
    const after = {
      rssBytes: rssBytes(proxy.pid),
      fds: fdCounts(proxy.pid),
      originActive: (await originStats()).active,
      memory: await proxyMemory()
    }
    // V8 gives freed heap pages back once allocation has been quiet for a while (its memory reducer).
    const idle: Array<{ seconds: number; rssBytes: number | undefined; memory: ProcessMemory }> = []
    for (let waited = 0; waited < config.churnIdleSeconds;) {
      const step = Math.min(10, config.churnIdleSeconds - waited)
      await sleep(step * 1000)
      waited += step
      idle.push({ seconds: waited, rssBytes: rssBytes(proxy.pid), memory: await proxyMemory() })
      log(`churn: ${waited} s idle, proxy RSS ${fmtMB(idle[idle.length - 1]!.rssBytes)}, heap used ${fmtMB(idle[idle.length - 1]!.memory.heapUsed)}`)
    }
    const settled = idle.length === 0 ? after : idle[idle.length - 1]!
    report.churn = {
      sessions: config.churn,
      concurrency: config.churnConcurrency,
      seconds,
      sessionsPerSecond: config.churn / seconds,
      errors,
      proxyCpuMsPerSession: cpuBefore === undefined || cpuAfter === undefined ? undefined : (cpuAfter - cpuBefore) / config.churn,
      cores: churnCpu.cores,
      otherProcessesCores: churnCpu.foreignCores,
      progress,
      before,
      rightAfter,
      after,
      idle,
      rssGrowthBytes: after.rssBytes !== undefined && before.rssBytes !== undefined ? after.rssBytes - before.rssBytes : undefined,
      rssGrowthAfterIdleBytes:
        settled.rssBytes !== undefined && before.rssBytes !== undefined ? settled.rssBytes - before.rssBytes : undefined,
      heapUsedGrowthAfterIdleBytes: settled.memory.heapUsed - before.memory.heapUsed,
      udpSocketsLeft: after.fds.udp - before.fds.udp,
      fdsLeft: after.fds.total - before.fds.total,
      originSessionsLeft: after.originActive - before.originActive,
      settleMs: config.settleMs
    }
    log(
      `churn: ${fmtInt(config.churn)} in ${seconds.toFixed(1)} s (${fmtInt(config.churn / seconds)}/s), errors ${JSON.stringify(errors)}; ` +
        `RSS ${fmtMB(before.rssBytes)} -> ${fmtMB(after.rssBytes)}, fds ${before.fds.total} -> ${after.fds.total} ` +
        `(udp ${before.fds.udp} -> ${after.fds.udp})`
    )
  }

  // Stop the proxy gracefully (a --cpu-prof profile is written on exit), then the others.
  await stop(proxy.child, 10_000)
  if (config.profile) {
    // The main thread's profile (thread 0) of this proxy process.
    const main = readdirSync(config.profileDir).filter((f) => f.startsWith("CPU.") && f.includes(`.${proxy.pid}.0.`))
    report.profile = main.length === 0 ? undefined : path.join(config.profileDir, main.sort()[main.length - 1]!)
    log(`proxy CPU profile: ${report.profile ?? "not written"}`)
    if (report.profile !== undefined) {
      // Leave out start-up (module loading, compiling under tsx) and the first sessions' set-up.
      const skipMillis = measuringFrom - proxy.spawnedAt
      report.profileSummary = { skippedStartupMillis: skipMillis, ...summarizeProfile(report.profile, 20, skipMillis) }
    }
  }
  await Promise.all([stop(bare.child), stop(origin.child)])

  report.machine.otherProcessesCores = {
    description: "cores used by processes outside the benchmark during the measured steps",
    mean: foreignSamples.length === 0 ? undefined : foreignSamples.reduce((a, b) => a + b, 0) / foreignSamples.length,
    max: foreignSamples.length === 0 ? undefined : Math.max(...foreignSamples),
    stepsAboveTolerance: foreignSamples.filter((c) => c > config.foreignTolerance).length,
    steps: foreignSamples.length
  }
  report.targets = targetsOf(report)
  report.notes = notesOf(report)
  report.durationSeconds = (performance.now() - t0) / 1000
  const markdown = toMarkdown(report)
  mkdirSync(config.outDir, { recursive: true })
  writeFileSync(path.join(config.outDir, "latest.json"), JSON.stringify(report, null, 2) + "\n")
  writeFileSync(path.join(config.outDir, "latest.md"), markdown)
  process.stdout.write(markdown)
  log(`written ${path.join(config.outDir, "latest.json")} and latest.md in ${report.durationSeconds.toFixed(0)} s`)
}

// ---------------------------------------------------------------------------------------------
// Output

type AnyRecord = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

const targetsOf = (report: Report): Report["targets"] => {
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
  if (c.proxy !== undefined) {
    const growth = c.proxy.rssGrowthBytes as number | undefined
    targets.push({
      name: `proxy RSS growth over ${fmtInt(c.relayedPackets)} relayed packets`,
      target: "<= 10 MB",
      measured: fmtSignedMB(growth),
      met: growth === undefined ? undefined : growth <= 10 * 1024 * 1024
    })
  }
  if (ch.sessions !== undefined) {
    // Memory "back" once the proxy is idle again: V8 returns freed pages some seconds after the burst.
    const idle = ch.idle as Array<{ seconds: number }> | undefined
    const idleSeconds = idle === undefined || idle.length === 0 ? undefined : idle[idle.length - 1]!.seconds
    const growth = idleSeconds === undefined ? ch.rssGrowthBytes : ch.rssGrowthAfterIdleBytes
    targets.push({
      name: `proxy RSS growth after ${fmtInt(ch.sessions)} sessions churned${
        idleSeconds === undefined ? ` (${ch.settleMs} ms after)` : ` (${idleSeconds} s idle after)`
      }`,
      target: "<= 10 MB",
      measured: fmtSignedMB(growth),
      met: growth === undefined ? undefined : growth <= 10 * 1024 * 1024
    })
    targets.push({
      name: "UDP sockets left after churn",
      target: "0",
      measured: String(ch.udpSocketsLeft),
      met: ch.udpSocketsLeft <= 0
    })
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

const notesOf = (report: Report): Array<string> => {
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

const table = (header: Array<string>, rows: Array<Array<string>>) =>
  [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((row) => `| ${row.join(" | ")} |`)].join("\n")

const toMarkdown = (report: Report): string => {
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
        ["relay", "CPU per 10k relayed", "per chunk (ms)", "relay core use", "origin CPU per 10k", "load gen CPU per 10k", "RSS after warm-up", "RSS after run", "growth", "loss", "other processes (cores)", "proxy GC: count, pauses, max"],
        (["proxy", "bare"] as const).map((name) => [
          name === "proxy" ? "proxy" : "bare dgram relay",
          fmtMs(c[name].cpuMsPer10kRelayed),
          ((c[name].cpuMsPer10kByChunk ?? []) as Array<number>).map((x) => x.toFixed(0)).join(", "),
          fmtPct(c[name].coreShare?.[name], 0),
          fmtMs(c[name].cpuMsPer10k?.origin),
          fmtMs(c[name].cpuMsPer10k?.loadgen),
          fmtMB(c[name].rssAfterWarmupBytes),
          fmtMB(c[name].rssAfterRunBytes),
          fmtSignedMB(c[name].rssGrowthBytes),
          fmtPct(c[name].lossRatio),
          fmtCores(c[name].foreignCores),
          name === "proxy" ? fmtGc(c[name].proxyGc) : ""
        ])
      )
    )
    out.push("")
    out.push(
      "CPU: utime+stime from /proc/<pid>/stat around each chunk (Linux keeps their sum equal to the scheduler's run time); the " +
        "two relays take turns chunk by chunk. RSS: VmRSS after a pause."
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
  if (ch.sessions !== undefined) {
    out.push("")
    out.push(`## Session churn against the proxy (${fmtInt(ch.sessions)} x POST + DELETE, ${ch.concurrency} at a time)`)
    out.push("")
    out.push(
      table(
        ["", "RSS", "JS heap used / total", "open fds", "UDP sockets", "TCP sockets", "origin sessions"],
        [
          ["before", fmtMB(ch.before.rssBytes), fmtHeap(ch.before.memory), String(ch.before.fds.total), String(ch.before.fds.udp), String(ch.before.fds.tcp), String(ch.before.originActive)],
          ["right after", fmtMB(ch.rightAfter.rssBytes), "", String(ch.rightAfter.fds.total), String(ch.rightAfter.fds.udp), String(ch.rightAfter.fds.tcp), ""],
          [`after ${ch.settleMs} ms`, fmtMB(ch.after.rssBytes), fmtHeap(ch.after.memory), String(ch.after.fds.total), String(ch.after.fds.udp), String(ch.after.fds.tcp), String(ch.after.originActive)],
          ...((ch.idle ?? []) as Array<{ seconds: number; rssBytes: number; memory: ProcessMemory }>).map((point) => [
            `${point.seconds} s idle`,
            fmtMB(point.rssBytes),
            fmtHeap(point.memory),
            "",
            "",
            "",
            ""
          ])
        ]
      )
    )
    out.push("")
    out.push(
      `${fmtInt(ch.sessionsPerSecond)} sessions/s (${ch.seconds.toFixed(1)} s; cores: proxy ${fmtCores(ch.cores?.proxy)}, origin ` +
        `${fmtCores(ch.cores?.origin)}, load generator ${fmtCores(ch.cores?.loadgen)}, other processes ${fmtCores(ch.otherProcessesCores)}), ` +
        `proxy CPU ${fmtMs(ch.proxyCpuMsPerSession)} per session ` +
        `(POST + DELETE); RSS during the churn: ${
          (ch.progress as Array<{ sessions: number; rssBytes: number }>).map((p) => `${fmtInt(p.sessions)}: ${fmtMB(p.rssBytes)}`).join(", ")
        }; errors: ${
        Object.keys(ch.errors).length === 0 ? "none" : JSON.stringify(ch.errors)
      }; RSS ${fmtSignedMB(ch.rssGrowthBytes)} after ${ch.settleMs} ms${
        ch.rssGrowthAfterIdleBytes === undefined || (ch.idle ?? []).length === 0
          ? ""
          : `, ${fmtSignedMB(ch.rssGrowthAfterIdleBytes)} after ${ch.idle[ch.idle.length - 1].seconds} s idle (JS heap used ${fmtSignedMB(ch.heapUsedGrowthAfterIdleBytes)})`
      }, fds ${ch.fdsLeft >= 0 ? "+" : ""}${ch.fdsLeft}, UDP sockets ${ch.udpSocketsLeft >= 0 ? "+" : ""}${ch.udpSocketsLeft}.`
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

main().then(
  () => process.exit(0),
  (error) => {
    log(`benchmark failed: ${(error as Error).stack ?? error}`)
    killAllNow()
    process.exit(1)
  }
)
