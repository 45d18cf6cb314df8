// The live origin client over Node's HTTP against real local servers: each request is counted
// exactly once in rtc_proxy_origin_request_duration_seconds, under the outcome it had.
import { assert, describe } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as http from "node:http"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import { makeNode, type OriginRequest } from "../../src/Http/OriginClient.js"
import { live } from "../support/live.js"
import { freeTcpPort } from "../support/process.js"

const METRIC = "rtc_proxy_origin_request_duration_seconds"

/** How many requests of `method` the histogram holds, by outcome. */
const counts = (method: string) =>
  Effect.map(Metric.snapshot, (pairs) => {
    const byOutcome: Record<string, number> = {}
    for (const pair of pairs) {
      if (pair.metricKey.name !== METRIC) continue
      const tags = Object.fromEntries(pair.metricKey.tags.map((tag) => [tag.key, tag.value]))
      if (tags["method"] !== method) continue
      byOutcome[tags["outcome"]!] = (pair.metricState as unknown as { count: number }).count
    }
    return byOutcome
  })

/** What grew, by outcome, while `effect` ran. */
const countedDuring = <A, E>(method: string, effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const before = yield* counts(method)
    yield* Effect.exit(effect)
    const after = yield* counts(method)
    const grown: Record<string, number> = {}
    for (const [outcome, count] of Object.entries(after)) {
      if (count !== (before[outcome] ?? 0)) grown[outcome] = count - (before[outcome] ?? 0)
    }
    return grown
  })

/** A local server: `answer` 404s at once; `hang` never answers. */
const server = Effect.acquireRelease(
  Effect.async<http.Server>((resume) => {
    const created = http.createServer((request, response) => {
      if (request.url === "/answer") response.writeHead(404).end("no such stream")
      // /hang: never answered
    })
    created.listen(0, "127.0.0.1", () => resume(Effect.succeed(created)))
  }),
  (created) =>
    Effect.async<void>((resume) => {
      created.closeAllConnections()
      created.close(() => resume(Effect.void))
    })
)

describe("OriginClient over Node's HTTP", () => {
  live("every request is counted once, under its outcome: answered, refused, timed out, interrupted, bad URL", () =>
    Effect.gen(function*() {
      const { port } = (yield* server).address() as AddressInfo
      const agents = yield* Effect.acquireRelease(
        Effect.sync(() => ({ http: new http.Agent({ keepAlive: true }), https: new https.Agent() })),
        (made) =>
          Effect.sync(() => {
            made.http.destroy()
            made.https.destroy()
          })
      )
      const client = makeNode(agents, Duration.millis(300))
      const request = (method: OriginRequest["method"], url: string): OriginRequest => ({ method, url, headers: {} })

      // Each case reads the histogram before and after its one request: only that request's count is compared.
      const answered = yield* countedDuring("GET", client.send(request("GET", `http://127.0.0.1:${port}/answer`)))
      assert.deepStrictEqual(answered, { "4xx": 1 })

      const refusedPort = yield* Effect.promise(freeTcpPort)
      const refused = yield* countedDuring("PATCH", client.send(request("PATCH", `http://127.0.0.1:${refusedPort}/x`)))
      assert.deepStrictEqual(refused, { failed: 1 })

      // The request destroyed at the timeout errors afterwards: still one count, "timeout".
      const timedOut = yield* countedDuring("POST", client.send(request("POST", `http://127.0.0.1:${port}/hang`)))
      assert.deepStrictEqual(timedOut, { timeout: 1 })

      const interrupted = yield* countedDuring(
        "DELETE",
        Effect.gen(function*() {
          const inFlight = yield* Effect.fork(client.send(request("DELETE", `http://127.0.0.1:${port}/hang`)))
          yield* Effect.sleep(Duration.millis(50))
          yield* Fiber.interrupt(inFlight)
          // Past the timeout: a timer left behind would count it a second time.
          yield* Effect.sleep(Duration.millis(400))
        })
      )
      assert.deepStrictEqual(interrupted, { interrupted: 1 })

      const badUrl = yield* countedDuring("GET", client.send(request("GET", "not a url")))
      assert.deepStrictEqual(badUrl, { failed: 1 })
    }))
})
