// The relay benchmark (bench/relay.ts) in its quick mode, as a child process: packets must flow
// through the proxy and through the bare dgram relay, and the JSON report must be written with its
// sections. No speed is asserted: the numbers depend on the machine and on what else runs on it.
import { afterEach, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")

let running: ChildProcess | undefined
let outDir: string | undefined

/**
 * The benchmark runs in its own process group (detached), together with everything it starts (proxy,
 * origin, bare relay): killing the group ends them all, whatever state the run is in.
 */
const killGroup = (child: ChildProcess) => {
  if (child.pid === undefined) return
  try {
    process.kill(-child.pid, "SIGKILL")
  } catch {
    // the group is gone already
  }
}

afterEach(() => {
  if (running !== undefined) killGroup(running)
  running = undefined
  if (outDir !== undefined) rmSync(outDir, { recursive: true, force: true })
  outDir = undefined
})

interface Step {
  readonly sent: number
  readonly received: number
}

describe("relay benchmark", () => {
  it("quick mode: packets flow through the proxy and the bare relay, and the JSON report is written", async () => {
    outDir = mkdtempSync(join(tmpdir(), "rtc-proxy-bench-test-"))
    const child = spawn(process.execPath, ["--import", "tsx", "bench/relay.ts", "--quick", "--out-dir", outDir], {
      cwd: root,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      // Knobs from the environment of whoever runs the tests must not turn the quick run into a long one.
      env: Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("BENCH_")))
    })
    running = child
    let output = ""
    child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")))
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")))
    const code = await new Promise<number | string>((resolvePromise) => {
      const timer = setTimeout(() => {
        killGroup(child)
        resolvePromise("timed out after 100 s")
      }, 100_000)
      child.once("exit", (exitCode, signal) => {
        clearTimeout(timer)
        resolvePromise(exitCode ?? String(signal))
      })
    })
    expect(code, output.slice(-4000)).toBe(0)

    const file = join(outDir, "latest.json")
    expect(existsSync(file)).toBe(true)
    expect(existsSync(join(outDir, "latest.md"))).toBe(true)
    const report = JSON.parse(readFileSync(file, "utf8"))
    for (const key of ["machine", "config", "processes", "throughput", "latency", "cpuMemory", "scaling", "churn", "signaling", "targets", "notes"]) {
      expect(report).toHaveProperty(key)
    }
    for (const key of ["cpuModel", "cores", "node", "date"]) expect(report.machine).toHaveProperty(key)
    for (const key of ["proxy", "bare", "ratio"]) expect(report.throughput).toHaveProperty(key)
    for (const key of ["proxy", "bare"]) expect(report.latency).toHaveProperty(key)
    for (const key of ["proxy", "bare", "rate"]) expect(report.cpuMemory).toHaveProperty(key)
    for (const key of ["cpuMsPer10kRelayed", "rssAfterWarmupBytes", "rssAfterRunBytes"]) {
      expect(report.cpuMemory.proxy).toHaveProperty(key)
      expect(report.cpuMemory.bare).toHaveProperty(key)
    }
    expect(report.scaling.length).toBeGreaterThan(0)
    for (const key of ["sessions", "seconds", "before", "after", "udpSocketsLeft"]) expect(report.churn).toHaveProperty(key)
    // Memory and sockets again on a proxy with 2 data-plane workers (the default --workers 1,2).
    const [memory2] = report.cpuMemory.withWorkers
    expect(memory2.workers).toBe(2)
    expect(memory2.received).toBeGreaterThan(0)
    expect(memory2.memoryAfterRun.workers).toHaveLength(2)
    for (const worker of memory2.memoryAfterRun.workers) expect(worker.heapUsed).toBeGreaterThan(0)
    const [churn2] = report.churn.withWorkers
    expect(churn2.workers).toBe(2)
    expect(churn2.errors).toEqual({})
    expect(churn2.workerSocketsLeft).toEqual([0, 0])
    expect(report.targets.map((target: { name: string }) => target.name)).toContain(
      "UDP sockets left in any worker after 50 sessions churned, 2 workers"
    )
    expect(report.signaling.proxy.levels.map((level: { concurrency: number }) => level.concurrency)).toEqual([16, 64])
    for (const level of report.signaling.proxy.levels) {
      for (const key of ["sessionsPerSecond", "post", "delete", "proxyCpuMsPerSession"]) expect(level).toHaveProperty(key)
    }

    // Packets went through both relays and came back.
    const echoed = (steps: ReadonlyArray<Step>) => steps.reduce((sum, step) => sum + step.received, 0)
    expect(echoed(report.throughput.proxy.steps)).toBeGreaterThan(0)
    expect(echoed(report.throughput.bare.steps)).toBeGreaterThan(0)
    expect(report.cpuMemory.proxy.received).toBeGreaterThan(0)
    expect(report.cpuMemory.bare.received).toBeGreaterThan(0)
    // Sessions were signaled and ended at both concurrencies.
    for (const level of report.signaling.proxy.levels) expect(level.completed).toBeGreaterThan(0)
    // And through the plain-Node floor, with the proxy's ratio to it.
    for (const level of report.signaling.floor.levels) expect(level.completed).toBe(level.sessions)
    expect(report.signaling.floorRatio.map((ratio: { concurrency: number }) => ratio.concurrency)).toEqual([16, 64])
  }, 120_000)
})
