/**
 * Who takes the machine's CPU while the proxy relays: at one fixed rate, the CPU (user and kernel) of
 * the load generator (this process), of the echo origin and of the proxy, for each worker count. On a
 * machine where the load generator and the origin share the cores with the proxy, this bounds what
 * more workers can gain: the proxy gets at most what the other two leave.
 *
 * `npx tsx bench/cpuShare.ts` with knobs from the environment: SHARE_WORKERS (default 1,2),
 * SHARE_SESSIONS (100), SHARE_RATE (client packets/s over all sessions, 30000), SHARE_SECONDS (5).
 */
import { mkdtempSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { log } from "./format.js"
import { LoadGenerator, sleep } from "./load.js"
import { forkReady, freeUdpPort, killChildrenOnExit, type OriginPorts, startProxy, stop } from "./processes.js"
import { type ThreadTimes, threadsDiff, threadTimes } from "./procStats.js"

const env = (name: string, fallback: string) => process.env[name] ?? fallback
const counts = env("SHARE_WORKERS", "1,2").split(",").map(Number)
const sessions = Number(env("SHARE_SESSIONS", "100"))
const rate = Number(env("SHARE_RATE", "30000"))
const seconds = Number(env("SHARE_SECONDS", "5"))

const total = (threads: ReadonlyArray<ThreadTimes>) =>
  threads.reduce((sum, t) => ({ cpu: sum.cpu + t.cpuMs, user: sum.user + t.userMs, kernel: sum.kernel + t.systemMs }), {
    cpu: 0,
    user: 0,
    kernel: 0
  })

/** Percent of one core over the step: run time, and its user and kernel parts. */
const share = (used: ReturnType<typeof total>) => {
  const percent = (ms: number) => `${((ms / (seconds * 1000)) * 100).toFixed(0)} %`
  return `${percent(used.cpu)} (user ${percent(used.user)}, kernel ${percent(used.kernel)})`
}

const main = async () => {
  killChildrenOnExit()
  const workDir = mkdtempSync(path.join(os.tmpdir(), "rtc-proxy-share-"))
  const origin = await forkReady<OriginPorts>("bench/origin.ts", ["--udp-port", String(await freeUdpPort())])
  const originPid = origin.child.pid!
  const load = new LoadGenerator({ host: "127.0.0.1", payloadBytes: 1200, recvBufferBytes: 1024 * 1024, signalingConcurrency: 32, log })
  for (const workers of counts) {
    const proxy = await startProxy(origin.info, workDir, { name: `share-${workers}w`, env: { PROXY_RTC_WORKERS: String(workers) } })
    const group = await load.sessions({ kind: "proxy", host: "127.0.0.1", httpBase: `http://127.0.0.1:${proxy.httpPort}` }, sessions, `w${workers}`)
    await group.run({ rate, seconds: 2 }) // warm-up
    await sleep(300)
    const pids = [process.pid, originPid, proxy.pid]
    const before = pids.map(threadTimes)
    const result = await group.run({ rate, seconds })
    const [generator, echo, relay] = pids.map((pid, i) => total(threadsDiff(before[i]!, threadTimes(pid))))
    log(
      `${workers} worker(s), ${sessions} sessions at ${rate} client pps: ${(2 * result.received / seconds).toFixed(0)} relayed/s, ` +
        `loss ${(result.lossRatio * 100).toFixed(2)} %; CPU: load generator ${share(generator!)}, echo origin ${share(echo!)}, ` +
        `proxy ${share(relay!)}`
    )
    await group.close()
    await stop(proxy.child, 10_000)
  }
  await stop(origin.child)
}

main().then(() => process.exit(0), (error) => {
  log(`cpuShare failed: ${(error as Error).stack ?? error}`)
  process.exit(1)
})
