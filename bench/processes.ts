/**
 * The benchmark's other processes: the proxy under test (src/main.ts with `npm start`'s node flags),
 * optionally an SRS Go proxy binary, and the bench/*.ts children (echo origin, bare relay) forked
 * with tsx. Every child is stopped when this process exits, however it exits.
 */
import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process"
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import { httpRequestPromise } from "../test/support/http.js"
import { defaultBackendEnv, freeTcpPort, freeUdpPort } from "../test/support/process.js"
import { waitUntil } from "../test/support/wait.js"
import { config, root } from "./config.js"
import { log } from "./format.js"
import { npmStartNodeFlags } from "./npmStart.js"

export { freeTcpPort, freeUdpPort }

const children = new Set<ChildProcess>()
const alive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null

export const killAllNow = () => {
  for (const child of children) if (alive(child)) child.kill("SIGKILL")
}

/** Kills every child on exit and on SIGINT, SIGTERM and SIGHUP. */
export const killChildrenOnExit = () => {
  process.on("exit", killAllNow)
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping`)
      killAllNow()
      process.exit(130)
    })
  }
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
export const stop = async (child: ChildProcess, graceMs = 5000) => {
  if (!alive(child)) return
  child.kill("SIGTERM")
  if (!(await waitExit(child, graceMs))) {
    child.kill("SIGKILL")
    await waitExit(child, 2000)
  }
}

/** Forks a bench/*.ts child with tsx and waits for its `{ ready: true, ... }` message. */
export const forkReady = <A>(file: string, args: Array<string>): Promise<{ child: ChildProcess; info: A }> =>
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

/** The echo origin's ports (bench/origin.ts). */
export interface OriginPorts {
  readonly apiPort: number
  readonly udpPort: number
}

export interface ProxyProcess {
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

/** This environment without any PROXY_ or SRS_ variable, so that the shell's settings do not leak in. */
const cleanEnv = (): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith("PROXY_") && !key.startsWith("SRS_")) env[key] = value
  }
  return env
}

/** Spawns `command`, its output to `logFile`, and waits until GET /api/v1/versions answers `ok` on `httpPort`. */
const spawnUntilAnswering = async (
  what: string,
  command: string,
  args: Array<string>,
  env: Record<string, string>,
  options: {
    readonly httpPort: number
    readonly systemPort: number
    readonly udpPort: number
    readonly logFile: string
    readonly cwd?: string
  },
  ok: (status: number) => boolean
): Promise<ProxyProcess> => {
  const logFd = openSync(options.logFile, "a")
  const spawnedAt = performance.now()
  const child = spawn(command, args, { cwd: options.cwd ?? root, env, stdio: ["ignore", logFd, logFd] })
  closeSync(logFd)
  children.add(child)
  let version = ""
  const answering = async () => {
    if (!alive(child)) {
      throw new Error(`${what} exited during start-up; its log:\n${readFileSync(options.logFile, "utf8").slice(-2000)}`)
    }
    try {
      const response = await httpRequestPromise(`http://127.0.0.1:${options.httpPort}/api/v1/versions`, { timeoutMs: 15_000 })
      version = response.body.trim()
      return ok(response.status)
    } catch {
      return false // not listening yet
    }
  }
  await waitUntil(`${what} answering on :${options.httpPort} (log: ${options.logFile})`, answering, 30_000)
  const proxyEnv = Object.fromEntries(Object.entries(env).filter(([key]) => key.startsWith("PROXY_")))
  return { child, pid: child.pid!, ...options, version, env: proxyEnv, spawnedAt }
}

/** Starts the proxy on free ports; again on other ports when one was taken meanwhile. */
/** What `startProxy` may change: the log's name, more environment, and the checkout to run (this one by default). */
export interface ProxyOptions {
  readonly name?: string
  readonly env?: Record<string, string>
  /** Another checkout of the proxy (its own node_modules), built and run as this one is. */
  readonly root?: string
  /** Node flags for this proxy alone, after `npm start`'s own and --proxy-node-flags (so they win). */
  readonly nodeFlags?: ReadonlyArray<string>
}

export const startProxy = (
  origin: OriginPorts,
  workDir: string,
  options: ProxyOptions = {}
): Promise<ProxyProcess> => retryOnTakenPort(options.name ?? "proxy", () => startProxyOnce(origin, workDir, options))

const retryOnTakenPort = async <A>(what: string, start: () => Promise<A>): Promise<A> => {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start()
    } catch (error) {
      if (attempt >= 3 || !/in use|EADDRINUSE/i.test((error as Error).message)) throw error
      log(`${what}: a port was taken meanwhile, again on other ports`)
    }
  }
}

const startProxyOnce = async (
  origin: OriginPorts,
  workDir: string,
  options: ProxyOptions
): Promise<ProxyProcess> => {
  const checkout = options.root ?? root
  const [httpPort, systemPort, udpPort] = [await freeTcpPort(), await freeTcpPort(), await freeUdpPort()]
  const env = cleanEnv()
  Object.assign(env, defaultBackendEnv({ http: httpPort, system: systemPort, udp: udpPort }, { apiPort: origin.apiPort, mediaPort: origin.udpPort }), {
    PROXY_RTC_IDLE_TIMEOUT: "3600s",
    // One load generator on one address opens every session: the per-client limit on signaling
    // (20/s, burst 50 by default) would turn the churn into a rate-limit test. 0 turns it off.
    PROXY_RATE_LIMIT: "0",
    PROXY_GRACE_QUIT_TIMEOUT: "2s",
    PROXY_FORCE_QUIT_TIMEOUT: "5s"
  }, options.env)
  const nodeArgs = npmStartNodeFlags(checkout)
  if (config.proxyTraceGc) nodeArgs.push("--trace-gc")
  nodeArgs.push(...config.proxyNodeFlags, ...(options.nodeFlags ?? []))
  if (config.profile) {
    mkdirSync(config.profileDir, { recursive: true })
    // One file per thread (CPU.<date>.<pid>.<thread>.<seq>.cpuprofile): tsx's loader thread writes its own.
    nodeArgs.push("--cpu-prof", "--cpu-prof-dir", config.profileDir)
  }
  return spawnUntilAnswering(
    "the proxy",
    process.execPath,
    // What `npm start` runs: the compiled proxy, built first as `prestart` does (a no-op when up to date).
    [...nodeArgs, buildMain(checkout)],
    env,
    { httpPort, systemPort, udpPort, logFile: path.join(workDir, `${options.name ?? "proxy"}.log`), cwd: checkout },
    (status) => status === 200
  )
}

const buildMain = (root: string): string => {
  execFileSync(process.execPath, [path.join(root, "node_modules", "typescript", "bin", "tsc"), "-b", "tsconfig.build.json"], {
    cwd: root,
    stdio: "inherit"
  })
  return path.join(root, "dist", "main.js")
}

/**
 * Starts an SRS Go proxy binary with its own environment (env.go's variables; every listener on a
 * free port, the echo origin as its default backend) and waits until its HTTP API answers.
 */
export const startGoProxy = (binary: string, origin: OriginPorts, workDir: string): Promise<ProxyProcess> =>
  startWithGoProxyEnv("the Go proxy", binary, [], origin, path.join(workDir, "go-proxy.log"))

/** The plain-Node signaling floor (bench/signalingFloor.ts), started as the Go proxy is. */
export const startSignalingFloor = (origin: OriginPorts, workDir: string): Promise<ProxyProcess> =>
  startWithGoProxyEnv(
    "the signaling floor",
    process.execPath,
    ["--import", "tsx", path.join(root, "bench", "signalingFloor.ts")],
    origin,
    path.join(workDir, "signaling-floor.log")
  )

const startWithGoProxyEnv = (
  what: string,
  command: string,
  args: Array<string>,
  origin: OriginPorts,
  logFile: string
): Promise<ProxyProcess> =>
  retryOnTakenPort(what, async () => {
    const [httpPort, systemPort, rtmpPort, httpServerPort, udpPort, srtPort] = [
      await freeTcpPort(),
      await freeTcpPort(),
      await freeTcpPort(),
      await freeTcpPort(),
      await freeUdpPort(),
      await freeUdpPort()
    ]
    const env = Object.assign(cleanEnv(), {
      PROXY_HTTP_API: String(httpPort),
      PROXY_SYSTEM_API: String(systemPort),
      PROXY_WEBRTC_SERVER: String(udpPort),
      PROXY_RTMP_SERVER: String(rtmpPort),
      PROXY_HTTP_SERVER: String(httpServerPort),
      PROXY_SRT_SERVER: String(srtPort),
      PROXY_LOAD_BALANCER_TYPE: "memory",
      PROXY_DEFAULT_BACKEND_ENABLED: "on",
      PROXY_DEFAULT_BACKEND_IP: "127.0.0.1",
      PROXY_DEFAULT_BACKEND_API: String(origin.apiPort),
      PROXY_DEFAULT_BACKEND_RTC: String(origin.udpPort)
    })
    // Whatever it answers on /api/v1/versions (it may not serve that path): it listens.
    return spawnUntilAnswering(what, command, args, env, { httpPort, systemPort, udpPort, logFile }, (status) => status > 0)
  })
