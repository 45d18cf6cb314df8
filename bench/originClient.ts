/**
 * CPU per origin request, for the OriginClient implementations: the live one (Node's HTTP directly)
 * and @effect/platform's HttpClient over undici and over node:http. Starts the benchmark's origin
 * (bench/origin.ts) and sends DELETEs to it, 16 at a time, in rounds (the first ones warm up the JIT).
 * `npx tsx bench/originClient.ts [--requests 3000] [--rounds 4]`
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { fork } from "node:child_process"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { ProxyConfig } from "../src/Config.js"
import { OriginClient } from "../src/Http/OriginClient.js"

const { values: args } = parseArgs({
  options: { requests: { type: "string", default: "3000" }, rounds: { type: "string", default: "4" } }
})
const requests = Number(args.requests)
const rounds = Number(args.rounds)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

const origin = fork(path.join(root, "bench", "origin.ts"), [], { execArgv: ["--import", "tsx"], stdio: "ignore" })
const { apiPort } = await new Promise<{ apiPort: number }>((resolve) => origin.once("message", (m) => resolve(m as { apiPort: number })))

const implementations = {
  "live (node:http directly)": OriginClient.layer,
  "HttpClient over undici": OriginClient.layerFromClient.pipe(Layer.provide(NodeHttpClient.layerUndici)),
  "HttpClient over node:http": OriginClient.layerFromClient.pipe(Layer.provide(NodeHttpClient.layer))
}

const measure = Effect.gen(function*() {
  const client = yield* OriginClient
  const perRound: Array<number> = []
  for (let round = 0; round < rounds; round++) {
    const before = process.cpuUsage()
    yield* Effect.forEach(
      Array.from({ length: requests }, (_, i) => i),
      (i) => client.send({ method: "DELETE", url: `http://127.0.0.1:${apiPort}/rtc/v1/whip/?action=delete&session=s${i}`, headers: {} }),
      { concurrency: 16, discard: true }
    )
    const used = process.cpuUsage(before)
    perRound.push((used.user + used.system) / requests)
  }
  return perRound
})

for (const [name, layer] of Object.entries(implementations)) {
  const perRound = await Effect.runPromise(measure.pipe(Effect.provide(layer), Effect.provide(ProxyConfig.layerWith({}))))
  console.log(`${name}: ${perRound.map((us) => us.toFixed(0)).join(", ")} µs CPU per request (by round)`)
}
origin.kill()
