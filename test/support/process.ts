/**
 * The proxy as an operator runs it: `npm start`'s entry in a child process, on ports picked free first.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as dgram from "node:dgram"
import * as net from "node:net"

/** A TCP port free on 127.0.0.1 a moment ago. */
export const freeTcpPort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer().on("error", reject).listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

/** A UDP port free on 127.0.0.1 a moment ago. */
export const freeUdpPort = () =>
  new Promise<number>((resolve, reject) => {
    const socket = dgram.createSocket("udp4").on("error", reject).bind(0, "127.0.0.1", () => {
      const { port } = socket.address()
      socket.close(() => resolve(port))
    })
  })

/**
 * The proxy's environment for listening on 127.0.0.1 (HTTP API, system API, UDP media port) with one
 * origin as its default backend.
 */
export const defaultBackendEnv = (
  ports: { readonly http: number; readonly system: number; readonly udp: number },
  origin: { readonly apiPort: number; readonly mediaPort: number }
): Record<string, string> => ({
  PROXY_LISTEN_HOST: "127.0.0.1",
  PROXY_HTTP_API: String(ports.http),
  PROXY_SYSTEM_API: String(ports.system),
  PROXY_WEBRTC_SERVER: String(ports.udp),
  PROXY_DEFAULT_BACKEND_ENABLED: "on",
  PROXY_DEFAULT_BACKEND_IP: "127.0.0.1",
  PROXY_DEFAULT_BACKEND_API: String(origin.apiPort),
  PROXY_DEFAULT_BACKEND_RTC: String(origin.mediaPort)
})

export interface Running {
  readonly child: ChildProcess
  /** Everything written to stdout and stderr so far. */
  readonly output: () => string
  readonly exited: Promise<number | null>
}

/**
 * Starts `node --import tsx src/main.ts` (or node with `args`, such as the built `dist/main.js`) with
 * `env` over this process's environment.
 */
export const startMain = (
  env: Record<string, string>,
  args: ReadonlyArray<string> = ["--import", "tsx", "src/main.ts"]
): Running => {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  return { child, output: () => output, exited }
}

/**
 * The child's exit code, or, when it has not exited within `ms`, a failure that carries its output
 * so far (the child is killed first, so that a hang shows where it stopped instead of timing the test out).
 */
export const exitedWithin = (running: Running, ms: number): Promise<number | null> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      running.child.kill("SIGKILL")
      reject(new Error(`the process did not exit within ${ms} ms; its output:\n${running.output()}`))
    }, ms)
    running.exited.then((code) => {
      clearTimeout(timer)
      resolve(code)
    })
  })
