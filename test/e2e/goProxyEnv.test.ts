// A user swapping the SRS Go proxy for this one keeps its environment: the variables its env.go sets
// (buildDefaultEnvironmentVariables) with the values of its documented start command (doc/usage.md,
// its e2e scripts), listen variables written host:port, on ports picked free first. The proxy starts,
// serves both HTTP ports on the requested host and the UDP port, and names what it ignores in one line.
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as net from "node:net"
import { httpRequest } from "../support/http.js"
import { freeTcpPort, freeUdpPort, type Running, startMain } from "../support/process.js"
import { waitUntil } from "../support/wait.ts"

interface Ports {
  readonly httpApi: number
  readonly systemApi: number
  readonly webrtc: number
  readonly rtmp: number
  readonly httpServer: number
  readonly srt: number
}

const goProxyEnvironment = (ports: Ports): Record<string, string> => ({
  // The documented start command.
  PROXY_RTMP_SERVER: String(ports.rtmp),
  PROXY_HTTP_SERVER: String(ports.httpServer),
  PROXY_HTTP_API: `127.0.0.1:${ports.httpApi}`,
  PROXY_WEBRTC_SERVER: `127.0.0.1:${ports.webrtc}`,
  PROXY_SRT_SERVER: String(ports.srt),
  PROXY_SYSTEM_API: `127.0.0.1:${ports.systemApi}`,
  PROXY_LOAD_BALANCER_TYPE: "memory",
  // The rest of env.go's defaults, as the Go proxy's process sees them.
  GO_PPROF: "",
  PROXY_FORCE_QUIT_TIMEOUT: "30s",
  PROXY_GRACE_QUIT_TIMEOUT: "20s",
  PROXY_STATIC_FILES: "./trunk/research",
  PROXY_REDIS_HOST: "127.0.0.1",
  PROXY_REDIS_PORT: "6379",
  PROXY_REDIS_PASSWORD: "",
  PROXY_REDIS_DB: "0",
  PROXY_REDIS_KEY_PREFIX: "",
  PROXY_ORIGIN_SERVER_TTL: "300s",
  PROXY_DEFAULT_BACKEND_ENABLED: "off",
  PROXY_DEFAULT_BACKEND_IP: "127.0.0.1",
  PROXY_DEFAULT_BACKEND_RTMP: "1935",
  PROXY_DEFAULT_BACKEND_API: "1985",
  PROXY_DEFAULT_BACKEND_RTC: "8000",
  PROXY_DEFAULT_BACKEND_SRT: "10080",
  // None of this proxy's own (empty is unset, whatever the test runner's environment holds): the
  // listeners' default host, logfmt at info as off a terminal.
  PROXY_LISTEN_HOST: "",
  PROXY_LOG_FORMAT: "",
  PROXY_LOG_LEVEL: ""
})

/** Starts the proxy on the Go proxy's environment (plus `overrides`) and waits until it listens. */
const startOnGoEnvironment = (overrides: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const [httpApi, systemApi, rtmp, httpServer, webrtc, srt] = yield* Effect.promise(() =>
      Promise.all([freeTcpPort(), freeTcpPort(), freeTcpPort(), freeTcpPort(), freeUdpPort(), freeUdpPort()])
    )
    const ports: Ports = { httpApi, systemApi, webrtc, rtmp, httpServer, srt }
    const running: Running = yield* Effect.acquireRelease(
      Effect.sync(() => startMain({ ...goProxyEnvironment(ports), ...overrides })),
      (running) => Effect.sync(() => running.child.kill("SIGKILL"))
    )
    let exited = false
    void running.exited.then(() => (exited = true))
    yield* Effect.promise(() =>
      waitUntil("the proxy listening", () => exited || running.output().includes("WHIP/WHEP on"), 15_000)
    )
    assert.isFalse(exited, `the proxy exited at start:\n${running.output()}`)
    return { ports, running }
  })

const refusesConnections = (port: number) =>
  Effect.async<boolean>((resume) => {
    const socket = net.connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed(false))
    })
    socket.once("error", () => resume(Effect.succeed(true)))
  })

describe("the SRS Go proxy's environment", () => {
  it.scopedLive("starts the proxy: both HTTP ports on the requested host, the UDP port, one line on what is ignored", () =>
    Effect.gen(function*() {
      const { ports, running } = yield* startOnGoEnvironment()
      const output = running.output()

      for (const port of [ports.httpApi, ports.systemApi]) {
        const versions = yield* httpRequest(`http://127.0.0.1:${port}/api/v1/versions`)
        assert.strictEqual(versions.status, 200, `:${port} ${versions.body}`)
      }
      assert.include(output, `WHIP/WHEP on http://127.0.0.1:${ports.httpApi}/rtc/v1/whip/`)
      assert.include(output, `origins register at http://127.0.0.1:${ports.systemApi}/api/v1/srs/register`)
      assert.match(output, new RegExp(`WebRTC media on udp://[^ "]+:${ports.webrtc}\\b`), output)

      const ignoredLines = output.split("\n").filter((line) => line.includes("ignoring the SRS Go proxy's"))
      assert.lengthOf(ignoredLines, 1, output)
      assert.match(ignoredLines[0]!, /level=INFO/)
      for (
        const name of [
          "PROXY_RTMP_SERVER",
          "PROXY_HTTP_SERVER",
          "PROXY_SRT_SERVER",
          "PROXY_STATIC_FILES",
          "PROXY_DEFAULT_BACKEND_RTMP",
          "PROXY_DEFAULT_BACKEND_SRT"
        ]
      ) assert.include(ignoredLines[0]!, name)
      // GO_PPROF is empty, which counts as unset.
      assert.notInclude(ignoredLines[0]!, "GO_PPROF")
      assert.include(ignoredLines[0]!, "WebRTC only")

      // Ignored means not served.
      assert.isTrue(yield* refusesConnections(ports.rtmp))
      assert.isTrue(yield* refusesConnections(ports.httpServer))
    }), { timeout: 60_000 })

  it.scopedLive("PROXY_WEBRTC_SERVER=127.0.0.1:<port> binds the UDP port on 127.0.0.1", () =>
    Effect.gen(function*() {
      const { ports, running } = yield* startOnGoEnvironment()
      assert.include(running.output(), `WebRTC media on udp://127.0.0.1:${ports.webrtc}`)
    }), { timeout: 60_000 })
})
