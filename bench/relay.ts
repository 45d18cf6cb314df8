/**
 * `npm run bench`: the relay benchmark. Starts, as separate processes on 127.0.0.1, the real proxy
 * (src/main.ts), an SRS-shaped echo origin (bench/origin.ts) and a bare Node dgram relay
 * (bench/bareRelay.ts); this process is the load generator (bench/load.ts). Measures, side by side:
 *
 * - throughput: the highest offered rate with under 0.1% loss (ramp: doubling, then bisecting);
 * - added one-way latency at half of the lower maximum (one rate for both relays), against the direct path;
 * - CPU time per 10,000 relayed packets and resident memory after warm-up and after 1,000,000
 *   relayed packets, at one fixed rate for both relays, and for a proxy with each --workers count
 *   above 1 (its worker threads' heaps included);
 * - 1, 100 and 1,000 concurrent sessions: CPU per packet and maximum rate;
 * - session churn: 10,000 WHIP POST + DELETE against the proxy, its RSS and descriptors before/after;
 *   again with each --workers count above 1, with every worker's UDP sockets before/after;
 * - signaling: sessions/s, POST and DELETE latency and CPU per session at 16 and 64 concurrent
 *   clients (and against the SRS Go proxy, with --go-proxy);
 * - workers: the highest rate and CPU per packet with 1 and 2 data-plane workers (--workers), at
 *   100 and 1,000 sessions, one proxy process per worker count.
 *
 * Counting: one client packet echoed by the origin crosses a relay twice (client -> origin and
 * origin -> client), so it counts as 2 relayed packets. "Client pps" is the one-way offered rate.
 *
 * One module per phase (bench/phases/), the measurements in bench/measure.ts, the report in
 * bench/report.ts, the processes in bench/processes.ts, the knobs in bench/config.ts.
 *
 * Progress goes to stderr; the result is printed as markdown and written to
 * bench/results/latest.{json,md} (or --out-dir). `--help` lists the knobs.
 */
import { mkdtempSync, readdirSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import type { Bench } from "./bench.js"
import { config } from "./config.js"
import { elapsedSeconds, log } from "./format.js"
import { LoadGenerator, type SessionGroup } from "./load.js"
import { Measure, type PathName } from "./measure.js"
import { churnPhase } from "./phases/churn.js"
import { cpuPhase } from "./phases/cpu.js"
import { latencyPhase } from "./phases/latency.js"
import { scalePhase } from "./phases/scale.js"
import { signalingPhase } from "./phases/signaling.js"
import { throughputPhase } from "./phases/throughput.js"
import { workersPhase } from "./phases/workers.js"
import {
  forkReady,
  freeUdpPort,
  killAllNow,
  killChildrenOnExit,
  type ProxyProcess,
  startGoProxy,
  startSignalingFloor,
  startProxy,
  stop
} from "./processes.js"
import { gcFollower } from "./procStats.js"
import { summarize as summarizeProfile } from "./profileSummary.js"
import { notesOf, type Report, targetsOf, writeReport } from "./report.js"

const main = async () => {
  killChildrenOnExit()
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
    signaling: {},
    workers: [],
    targets: [],
    notes: [],
    profile: undefined,
    durationSeconds: 0
  }
  log(`relay benchmark${config.quick ? " (quick)" : ""}: ${report.machine.cpuModel}, ${report.machine.cores} cores, node ${process.version}`)

  const originPort = await freeUdpPort()
  const [origin, bare] = await Promise.all([
    forkReady<{ apiPort: number; udpPort: number }>("bench/origin.ts", ["--udp-port", String(originPort)]),
    forkReady<{ port: number }>("bench/bareRelay.ts", ["--origin-port", String(originPort)])
  ])
  log(`echo origin: pid ${origin.child.pid}, api :${origin.info.apiPort}, udp :${origin.info.udpPort}`)
  log(`bare dgram relay: pid ${bare.child.pid}, udp :${bare.info.port}`)
  const proxy = await startProxy(origin.info, workDir)
  log(`proxy: pid ${proxy.pid}, http :${proxy.httpPort}, udp :${proxy.udpPort}, log ${proxy.logFile}`)
  const pids = { proxy: proxy.pid, bare: bare.child.pid!, origin: origin.child.pid!, loadgen: process.pid }
  const measure = new Measure(
    pids,
    { proxy: proxy.udpPort, bare: bare.info.port },
    config.proxyTraceGc ? gcFollower(proxy.logFile) : undefined
  )
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

  const proxiesWith = new Map<number, Promise<ProxyProcess>>()
  const proxyWith = (workers: number): Promise<ProxyProcess> => {
    if (workers === 1) return Promise.resolve(proxy)
    let started = proxiesWith.get(workers)
    if (started === undefined) {
      started = startProxy(origin.info, workDir, { name: `proxy-${workers}w-memory`, env: { PROXY_RTC_WORKERS: String(workers) } }).then((p) => {
        log(`proxy with ${workers} workers: pid ${p.pid}, http :${p.httpPort}, udp :${p.udpPort}, log ${p.logFile}`)
        report.processes[`proxy${workers}w`] = { pid: p.pid, httpPort: p.httpPort, systemPort: p.systemPort, udpPort: p.udpPort, log: p.logFile, env: p.env }
        return p
      })
      proxiesWith.set(workers, started)
    }
    return started
  }
  const stopProxiesWith = async () => {
    const started = [...proxiesWith.values()]
    proxiesWith.clear()
    await Promise.all(started.map(async (p) => stop((await p).child, 10_000)))
  }

  const bench: Bench = {
    measure,
    load: new LoadGenerator({
      host: "127.0.0.1",
      payloadBytes: config.payload,
      recvBufferBytes: 1024 * 1024,
      signalingConcurrency: 32,
      log
    }),
    targets: {
      proxy: { kind: "proxy", host: "127.0.0.1", httpBase: `http://127.0.0.1:${proxy.httpPort}` },
      bare: { kind: "bare", host: "127.0.0.1", udpPort: bare.info.port },
      direct: { kind: "direct", host: "127.0.0.1", udpPort: origin.info.udpPort }
    },
    proxy,
    origin: origin.info,
    workDir,
    resetBare,
    proxyWith,
    stopProxiesWith,
    maxRates: { proxy: 0, bare: 0 }
  }

  /** When the measured phases start (after sessions are set up and warmed), for the profile summary. */
  let measuringFrom = performance.now()
  const phase = (name: string) => config.phases.has(name)

  if (phase("throughput") || phase("latency") || phase("cpu")) {
    const groups: Record<PathName, SessionGroup> = {
      proxy: await bench.load.sessions(bench.targets.proxy, config.sessions, "main"),
      bare: await bench.load.sessions(bench.targets.bare, config.sessions, "main"),
      direct: await bench.load.sessions(bench.targets.direct, config.sessions, "main")
    }
    // Warm-up: JIT, buffers, first-packet paths; not counted.
    for (const name of ["proxy", "bare", "direct"] as const) {
      await groups[name].run({ rate: config.startRate, seconds: Math.min(1, config.stepSeconds) })
    }
    measuringFrom = performance.now()

    if (phase("throughput")) report.throughput = await throughputPhase(bench, groups)
    const guess = config.fixedRate > 0 ? config.fixedRate * 2 : config.startRate * 2
    if (bench.maxRates.proxy === 0) bench.maxRates.proxy = guess
    if (bench.maxRates.bare === 0) bench.maxRates.bare = guess
    if (phase("latency")) report.latency = await latencyPhase(bench, groups)
    if (phase("cpu")) report.cpuMemory = await cpuPhase(bench, groups)

    await Promise.all([groups.proxy.close(), groups.bare.close(), groups.direct.close()])
    await resetBare()
  }
  if (phase("scale")) report.scaling = await scalePhase(bench)
  if (phase("churn")) report.churn = await churnPhase(bench)
  if (phase("signaling")) {
    const goProxy = config.goProxy === undefined ? undefined : await startGoProxy(config.goProxy, origin.info, workDir)
    if (goProxy !== undefined) {
      log(`SRS Go proxy: pid ${goProxy.pid}, http :${goProxy.httpPort}, udp :${goProxy.udpPort}, log ${goProxy.logFile}`)
      report.processes.go = { pid: goProxy.pid, binary: config.goProxy, httpPort: goProxy.httpPort, log: goProxy.logFile, env: goProxy.env }
    }
    const floor = config.signalingFloor ? await startSignalingFloor(origin.info, workDir) : undefined
    if (floor !== undefined) log(`signaling floor (plain Node): pid ${floor.pid}, http :${floor.httpPort}, log ${floor.logFile}`)
    report.signaling = await signalingPhase(bench, { go: goProxy, floor })
    if (goProxy !== undefined) await stop(goProxy.child)
    if (floor !== undefined) await stop(floor.child)
  }

  // The workers phase starts proxies of its own, fresh and all up together.
  await stopProxiesWith()
  if (phase("workers")) report.workers = await workersPhase(bench)

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

  const foreign = measure.foreignSamples
  report.machine.otherProcessesCores = {
    description: "cores used by processes outside the benchmark during the measured steps",
    mean: foreign.length === 0 ? undefined : foreign.reduce((a, b) => a + b, 0) / foreign.length,
    max: foreign.length === 0 ? undefined : Math.max(...foreign),
    stepsAboveTolerance: foreign.filter((c) => c > config.foreignTolerance).length,
    steps: foreign.length
  }
  report.targets = targetsOf(report)
  report.notes = notesOf(report)
  report.durationSeconds = elapsedSeconds()
  const markdown = writeReport(report, config.outDir)
  process.stdout.write(markdown)
  log(`written ${path.join(config.outDir, "latest.json")} and latest.md in ${report.durationSeconds.toFixed(0)} s`)
}

main().then(
  () => process.exit(0),
  (error) => {
    log(`benchmark failed: ${(error as Error).stack ?? error}`)
    killAllNow()
    process.exit(1)
  }
)
