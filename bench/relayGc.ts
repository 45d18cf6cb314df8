/**
 * The relay's garbage collection by young-generation size: for each set of Node flags, a proxy (as
 * `npm start` runs it, then those flags) relays a fixed rate over a few sessions, and its
 * `--trace-gc` log over the measured step gives the scavenges (count, median, p90 and longest
 * pause, all pauses summed) and the full collections; the load generator gives the round-trip
 * percentiles. The flag sets take turns, in reverse order every other round.
 *
 * `npx tsx bench/relayGc.ts` with knobs from the environment: RELAY_GC_VARIANTS (flag sets separated
 * by commas, an empty one for `npm start`'s own; default ",--max-semi-space-size=2,--max-semi-space-size=16"),
 * RELAY_GC_RATE (client packets/s over all sessions, 10000), RELAY_GC_SESSIONS (10),
 * RELAY_GC_SECONDS (15), RELAY_GC_ROUNDS (2).
 */
import { mkdtempSync, readFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { log } from "./format.js"
import { LoadGenerator, sleep } from "./load.js"
import { forkReady, freeUdpPort, killChildrenOnExit, type OriginPorts, startProxy, stop } from "./processes.js"

const env = (name: string, fallback: string) => process.env[name] ?? fallback
const variants = env("RELAY_GC_VARIANTS", ",--max-semi-space-size=2,--max-semi-space-size=16").split(",")
const rate = Number(env("RELAY_GC_RATE", "10000"))
const sessions = Number(env("RELAY_GC_SESSIONS", "10"))
const seconds = Number(env("RELAY_GC_SECONDS", "15"))
const rounds = Number(env("RELAY_GC_ROUNDS", "2"))

const quantile = (values: ReadonlyArray<number>, q: number) => {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

/** Main-thread pauses of the collections in a `--trace-gc` excerpt, scavenges apart from the rest. */
const pausesIn = (text: string) => {
  const scavenges: Array<number> = []
  const full: Array<number> = []
  for (const match of text.matchAll(/ ms: (Scavenge|Mark-Compact|Mark-sweep|Minor Mark-Compact)[^\n]*? MB, ([\d.]+) \/ [\d.]+ ms/g)) {
    ;(match[1] === "Scavenge" ? scavenges : full).push(Number(match[2]))
  }
  return { scavenges, full }
}

const ms = (value: number) => value.toFixed(2)

killChildrenOnExit()
const workDir = mkdtempSync(path.join(os.tmpdir(), "rtc-proxy-relay-gc-"))
const origin = await forkReady<OriginPorts>("bench/origin.ts", ["--udp-port", String(await freeUdpPort())])
const load = new LoadGenerator({ host: "127.0.0.1", payloadBytes: 1200, recvBufferBytes: 1024 * 1024, signalingConcurrency: 32, log })
let started = 0
for (let round = 0; round < rounds; round++) {
  for (const variant of round % 2 === 0 ? variants : [...variants].reverse()) {
    // --trace-gc whatever BENCH_PROXY_TRACE_GC says: its log is what this reads.
    const flags = ["--trace-gc", ...variant.split(/\s+/).filter((flag) => flag !== "")]
    const proxy = await startProxy(origin.info, workDir, { name: `proxy-${started++}`, nodeFlags: flags })
    const group = await load.sessions(
      { kind: "proxy", host: "127.0.0.1", httpBase: `http://127.0.0.1:${proxy.httpPort}` },
      sessions,
      `gc${started}`
    )
    await group.run({ rate, seconds: 5 }) // warm-up: JIT and heap settle
    await sleep(300)
    const logBefore = readFileSync(proxy.logFile, "utf8").length
    const result = await group.run({ rate, seconds })
    const { full, scavenges } = pausesIn(readFileSync(proxy.logFile, "utf8").slice(logBefore))
    log(
      `[${variant === "" ? "npm start" : variant}] ${seconds} s at ${rate} client pps over ${sessions} sessions: ` +
        `${scavenges.length} scavenges (median ${ms(quantile(scavenges, 0.5))} ms, p90 ${ms(quantile(scavenges, 0.9))} ms, ` +
        `longest ${ms(Math.max(0, ...scavenges))} ms, ${scavenges.reduce((a, b) => a + b, 0).toFixed(0)} ms in all), ` +
        `${full.length} full collections (longest ${ms(Math.max(0, ...full))} ms); ` +
        `RTT p50 ${result.rtt?.p50Micros.toFixed(0)} µs, p99 ${result.rtt?.p99Micros.toFixed(0)} µs, ` +
        `loss ${(result.lossRatio * 100).toFixed(2)} %`
    )
    await group.close()
    await stop(proxy.child, 10_000)
  }
}
await stop(origin.child)
process.exit(0)
