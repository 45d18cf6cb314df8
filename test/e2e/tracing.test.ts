// With OTEL_EXPORTER_OTLP_ENDPOINT set, the proxy process sends its spans over OTLP/HTTP (JSON): a
// WHIP offer's spans reach a collector (a node:http server that records what is posted).
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { fakeSrsApi } from "../support/fakeSrsApi.js"
import { httpRequest } from "../support/http.js"
import { minimalOffer } from "../support/offers.js"
import { defaultBackendEnv, freeTcpPort, freeUdpPort, startMain } from "../support/process.js"
import { waitUntil } from "../support/wait.ts"

describe("tracing", () => {
  it.scopedLive("spans go to OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces", () =>
    Effect.gen(function*() {
      const posted: Array<{ url: string; body: string }> = []
      const collector = yield* Effect.acquireRelease(
        Effect.async<http.Server>((resume) => {
          const server = http.createServer((req, res) => {
            let body = ""
            req.on("data", (chunk: Buffer) => (body += chunk.toString()))
            req.on("end", () => {
              posted.push({ url: req.url ?? "", body })
              res.writeHead(200, { "content-type": "application/json" }).end("{}")
            })
          })
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
      )
      const origin = yield* fakeSrsApi()
      const [httpPort, system, udp] = yield* Effect.promise(() => Promise.all([freeTcpPort(), freeTcpPort(), freeUdpPort()]))
      const running = yield* Effect.acquireRelease(
        Effect.sync(() =>
          startMain({
            ...defaultBackendEnv({ http: httpPort, system, udp }, origin),
            OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}/`
          })
        ),
        (running) => Effect.sync(() => running.child.kill("SIGKILL"))
      )
      yield* Effect.promise(() => waitUntil("the proxy listening", () => running.output().includes("WHIP/WHEP on"), 15_000))
      const answer = yield* httpRequest(`http://127.0.0.1:${httpPort}/rtc/v1/whip/?app=live&stream=traced`, {
        method: "POST",
        headers: { "content-type": "application/sdp" },
        body: minimalOffer()
      })
      assert.strictEqual(answer.status, 201, answer.body)
      // Spans are batched; the exporter flushes at shutdown at the latest.
      running.child.kill("SIGTERM")
      assert.strictEqual(yield* Effect.promise(() => running.exited), 0, running.output())
      const traces = posted.filter((post) => post.url === "/v1/traces").map((post) => post.body).join("\n")
      assert.include(traces, "OriginClient.send")
      assert.include(traces, "rtc-proxy")
    }), { timeout: 60_000 })
})
