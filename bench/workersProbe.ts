/**
 * Where the CPU of a data-plane worker goes, compared with one worker: for each worker count (env
 * PROBE_WORKERS, default 1,2), a proxy with PROXY_RTC_WORKERS set, PROBE_SESSIONS sessions, one
 * fixed rate (PROBE_RATE client pps) for PROBE_SECONDS while `perf trace -s` counts the proxy's
 * system calls thread by thread (needs perf and the right to trace the process). Prints, per count,
 * the relayed packets, the CPU per 10,000 and the system calls per 10,000 relayed packets.
 *
 * `npx tsx bench/workersProbe.ts` (knobs from the environment only: bench/config.ts reads the flags).
 */
import { spawn } from "node:child_process"
import { mkdtempSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fmtInt, log } from "./format.js"
import { LoadGenerator, sleep } from "./load.js"
import { forkReady, freeUdpPort, killChildrenOnExit, startProxy, stop } from "./processes.js"
import { threadsDiff, threadTimes } from "./procStats.js"

const env = (name: string, fallback: string) => process.env[name] ?? fallback
const counts = env("PROBE_WORKERS", "1,2").split(",").map(Number)
const sessions = Number(env("PROBE_SESSIONS", "100"))
const rate = Number(env("PROBE_RATE", "1000"))
const seconds = Number(env("PROBE_SECONDS", "3"))
const perf = env("PROBE_PERF", "on") === "on"

/** `perf trace -s` of `pid` for `seconds`: its summary text (per thread, calls and time per syscall). */
const traceSyscalls = (pid: number, seconds: number) =>
  new Promise<string>((resolve) => {
    const child = spawn("perf", ["trace", "-s", "-p", String(pid), "--", "sleep", String(seconds)], { stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()))
    child.on("exit", () => resolve(out))
  })

/** The summary's per-thread lines as { thread: { syscall: calls } }. */
const parseSummary = (text: string) => {
  const threads: Record<string, Record<string, number>> = {}
  let current: string | undefined
  for (const line of text.split("\n")) {
    const head = /^\s*(\S+) \((\d+)\), (\d+) events/.exec(line)
    if (head !== null) {
      current = head[2]!
      threads[current] = {}
      continue
    }
    const row = /^\s+([a-z_0-9]+)\s+(\d+)\s+\d+\s+[\d.]+/.exec(line)
    if (row !== null && current !== undefined) threads[current]![row[1]!] = Number(row[2])
  }
  return threads
}

const main = async () => {
  killChildrenOnExit()
  const workDir = mkdtempSync(path.join(os.tmpdir(), "rtc-proxy-probe-"))
  const originPort = await freeUdpPort()
  const origin = await forkReady<{ apiPort: number; udpPort: number }>("bench/origin.ts", ["--udp-port", String(originPort)])
  const load = new LoadGenerator({ host: "127.0.0.1", payloadBytes: 1200, recvBufferBytes: 1024 * 1024, signalingConcurrency: 32, log })
  for (const workers of counts) {
    const proxy = await startProxy(origin.info, workDir, { name: `probe-${workers}w`, env: { PROXY_RTC_WORKERS: String(workers) } })
    const group = await load.sessions({ kind: "proxy", host: "127.0.0.1", httpBase: `http://127.0.0.1:${proxy.httpPort}` }, sessions, `p${workers}`)
    await group.run({ rate, seconds: 2 })
    await sleep(500)
    // CPU first, untraced; then the same load again while perf counts the system calls.
    const before = threadTimes(proxy.pid)
    const result = await group.run({ rate, seconds })
    const threads = threadsDiff(before, threadTimes(proxy.pid)).filter((t) => t.cpuMs > 1).sort((a, b) => b.cpuMs - a.cpuMs)
    const [traced, trace] = await Promise.all([
      group.run({ rate, seconds }),
      perf ? traceSyscalls(proxy.pid, seconds) : Promise.resolve("")
    ])
    const relayed = 2 * result.received
    const tracedRelayed = 2 * traced.received
    const per10k = (n: number) => ((n / relayed) * 10_000).toFixed(0)
    log(`${workers} worker(s): ${fmtInt(relayed)} relayed (loss ${(result.lossRatio * 100).toFixed(3)} %)`)
    for (const t of threads) {
      log(`  thread ${t.tid}${t.tid === proxy.pid ? " (main)" : ""}: ${per10k(t.cpuMs)} ms (${per10k(t.systemMs)} in the kernel), ${per10k(t.voluntarySwitches)} waits, ${per10k(t.involuntarySwitches)} preempted per 10k`)
    }
    const summary = parseSummary(trace)
    for (const [tid, calls] of Object.entries(summary)) {
      const total = Object.values(calls).reduce((a, b) => a + b, 0)
      if (total < 10) continue
      const perTraced = (n: number) => ((n / tracedRelayed) * 10_000).toFixed(0)
      const top = Object.entries(calls).sort((a, b) => b[1] - a[1]).slice(0, 8).map(([name, n]) => `${name} ${perTraced(n)}`).join(", ")
      log(`  syscalls of ${tid}${Number(tid) === proxy.pid ? " (main)" : ""} per 10k relayed: ${perTraced(total)} (${top})`)
    }
    await group.close()
    await stop(proxy.child, 10_000)
  }
  await stop(origin.child)
}

main().then(() => process.exit(0), (error) => {
  log(`probe failed: ${(error as Error).stack ?? error}`)
  process.exit(1)
})
