/**
 * Start-up time and idle memory of the proxy as `npm start` runs it: spawns it on free ports, times
 * process start to the line that says both HTTP listeners are up (logged once the UDP port is bound)
 * and to the first `/api/v1/versions` answer, the CPU time it used until then (steadier than the wall
 * clock when the cores are shared), and its RSS after it has idled.
 *
 * `npx tsx bench/startup.ts [--runs 5] [--idle 5] [--entry dist/main.js]`. The proxy's environment
 * is this process's: `PROXY_LOAD_BALANCER_TYPE=redis PROXY_REDIS_PORT=… npx tsx bench/startup.ts`.
 * An entry ending in `.ts` runs under tsx (`--import tsx`), as the tests do.
 */
import { spawn } from "node:child_process"
import * as dgram from "node:dgram"
import { readFileSync } from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import { parseArgs } from "node:util"
import { npmStartNodeFlags } from "./npmStart.js"

const { values: args } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    idle: { type: "string", default: "5" },
    entry: { type: "string", default: "dist/main.js" }
  }
})
const RUNS = Number(args.runs)
const IDLE_MS = Number(args.idle) * 1000
const ENTRY = args.entry

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const freePort = (kind: "tcp" | "udp") =>
  new Promise<number>((resolve) => {
    if (kind === "tcp") {
      const server = net.createServer().listen(0, "127.0.0.1", () => {
        const { port } = server.address() as net.AddressInfo
        server.close(() => resolve(port))
      })
    } else {
      const socket = dgram.createSocket("udp4").bind(0, "127.0.0.1", () => {
        const { port } = socket.address()
        socket.close(() => resolve(port))
      })
    }
  })

const rssMb = (pid: number) => {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
  return match === null ? NaN : Number(match[1]) / 1024
}

// utime + stime of a process in ms (clock ticks of 10 ms): what start-up costs when the cores are shared.
const cpuMs = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ")
  return (Number(fields[11]) + Number(fields[12])) * 10
}

const versions = (port: number) =>
  new Promise<boolean>((resolve) => {
    http.get({ host: "127.0.0.1", port, path: "/api/v1/versions" }, (response) => {
      response.resume()
      resolve(response.statusCode === 200)
    }).on("error", () => resolve(false))
  })

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

const once = async () => {
  const httpPort = await freePort("tcp")
  const systemPort = await freePort("tcp")
  const udpPort = await freePort("udp")
  const nodeArgs = [...npmStartNodeFlags(process.cwd()), ...(ENTRY.endsWith(".ts") ? ["--import", "tsx"] : []), ENTRY]
  const started = performance.now()
  const child = spawn(process.execPath, nodeArgs, {
    env: {
      ...process.env,
      PROXY_LISTEN_HOST: "127.0.0.1",
      PROXY_HTTP_API: String(httpPort),
      PROXY_SYSTEM_API: String(systemPort),
      PROXY_WEBRTC_SERVER: String(udpPort),
      PROXY_LOG_FORMAT: "logfmt"
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  let loggedAt = NaN
  const onData = (chunk: Buffer) => {
    output += chunk.toString()
    if (Number.isNaN(loggedAt) && output.includes("WHIP/WHEP on")) loggedAt = performance.now() - started
  }
  child.stdout.on("data", onData)
  child.stderr.on("data", onData)
  let answeredAt = NaN
  while (Number.isNaN(answeredAt)) {
    if (child.exitCode !== null) throw new Error(`the proxy exited during start-up:\n${output}`)
    if (performance.now() - started > 30_000) throw new Error(`not ready within 30 s:\n${output}`)
    if (await versions(httpPort)) answeredAt = performance.now() - started
    else await sleep(10)
  }
  const cpu = cpuMs(child.pid!)
  await sleep(IDLE_MS)
  const rss = rssMb(child.pid!)
  child.kill("SIGTERM")
  await new Promise((resolve) => child.once("exit", resolve))
  return { loggedAt, answeredAt, cpu, rss }
}

const runs = []
for (let i = 0; i < RUNS; i++) {
  const run = await once()
  runs.push(run)
  console.log(
    `run ${i + 1}: ready (log line) ${run.loggedAt.toFixed(0)} ms, /api/v1/versions ${run.answeredAt.toFixed(0)} ms, CPU to ready ${run.cpu} ms, ` +
      `RSS after ${IDLE_MS / 1000} s idle ${run.rss.toFixed(1)} MB`
  )
}
console.log(
  `median of ${RUNS} (node ${process.version}, ${ENTRY}, ${process.env.PROXY_LOAD_BALANCER_TYPE ?? "memory"}): ` +
    `ready ${median(runs.map((r) => r.loggedAt)).toFixed(0)} ms, /api/v1/versions ` +
    `${median(runs.map((r) => r.answeredAt)).toFixed(0)} ms, CPU to ready ${median(runs.map((r) => r.cpu))} ms, idle RSS ${median(runs.map((r) => r.rss)).toFixed(1)} MB`
)
