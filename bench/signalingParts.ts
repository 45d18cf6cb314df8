/**
 * CPU of the parts of signaling, measured in one process: the proxy's layers built in-process in front
 * of the benchmark's origin (bench/origin.ts), a keep-alive HTTP client, 16 requests at a time.
 * Prints µs of this process's CPU (proxy and client together) per iteration, two rounds each (the
 * second with a warm JIT): two trivial GETs through a bare HttpRouter app and through the media
 * API's middleware, two refused requests, a relay session opened and closed, and a whole WHIP POST +
 * DELETE. Ad hoc, for finding where signaling time goes; `npm run bench -- --phases signaling` is the
 * measurement of record. `npx tsx bench/signalingParts.ts [--iterations 3000]`
 */
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import { fork } from "node:child_process"
import http from "node:http"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { ProxyConfig } from "../src/Config.js"
import { SessionId, type SessionRecord, UfragPair } from "../src/Domain/Session.js"
import { ProxyAddresses } from "../src/Http/Servers.js"
import { ProxyLive } from "../src/Proxy.js"
import { Relay } from "../src/Udp/Relay.js"

const { values: args } = parseArgs({ options: { iterations: { type: "string", default: "3000" } } })
const iterations = Number(args.iterations)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const origin = fork(path.join(root, "bench", "origin.ts"), [], { execArgv: ["--import", "tsx"], stdio: "ignore" })
const ports = await new Promise<{ apiPort: number; udpPort: number }>((resolve) =>
  origin.once("message", (m) => resolve(m as { apiPort: number; udpPort: number }))
)

const cpuMillis = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}
const offer = (ufrag: string) =>
  ["v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "m=video 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0",
    `a=ice-ufrag:${ufrag}`, "a=ice-pwd:clientpassword0123456789", "a=setup:actpass", "a=mid:0", "a=sendonly",
    "a=rtpmap:96 VP8/90000", ""].join("\r\n")

const measure = async (name: string, once: (i: number) => Promise<unknown>) => {
  for (let i = 0; i < 300; i++) await once(iterations + i)
  const before = cpuMillis()
  let next = 0
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < iterations) await once(next++)
  }))
  console.log(`${name}: ${(((cpuMillis() - before) / iterations) * 1000).toFixed(0)} µs CPU each`)
}

const proxy = ProxyLive.pipe(Layer.provideMerge(ProxyConfig.layerWith({
  listenHost: "127.0.0.1",
  httpPort: 0,
  systemPort: 0,
  udpPort: 0,
  rateLimit: { perSecond: 0, burst: 1 },
  defaultBackend: Option.some({ ip: "127.0.0.1", apiPort: ports.apiPort, rtcPort: ports.udpPort }),
  relayIdleTimeout: Duration.seconds(3600)
})))

await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  const context = yield* Layer.build(proxy)
  const { media } = yield* Effect.provide(ProxyAddresses, context)
  const relay = yield* Effect.provide(Relay, context)
  const bare = yield* NodeHttpServer.make(() => http.createServer(), { host: "127.0.0.1", port: 0 })
  yield* bare.serve(HttpRouter.empty.pipe(HttpRouter.get("/api/v1/versions", Effect.succeed(HttpServerResponse.text("{}")))))
  const barePort = bare.address._tag === "TcpAddress" ? bare.address.port : 0
  const untraced = yield* NodeHttpServer.make(() => http.createServer(), { host: "127.0.0.1", port: 0 })
  yield* untraced.serve(HttpRouter.empty.pipe(HttpRouter.get("/api/v1/versions", Effect.succeed(HttpServerResponse.text("{}"))))).pipe(
    Effect.locally(HttpMiddleware.currentTracerDisabledWhen, () => true)
  )
  const untracedPort = untraced.address._tag === "TcpAddress" ? untraced.address.port : 0
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })
  const request = (method: string, url: string, body?: string, port = media.port) =>
    new Promise<{ status: number | undefined; location: string | undefined }>((resolve, reject) => {
      const outgoing = http.request(
        { host: "127.0.0.1", port, method, path: url, agent, headers: body === undefined ? {} : { "content-type": "application/sdp" } },
        (response) => {
          response.resume()
          response.on("end", () => resolve({ status: response.statusCode, location: response.headers["location"] }))
        }
      )
      outgoing.on("error", reject)
      outgoing.end(body)
    })
  const run = <A, E>(effect: Effect.Effect<A, E, never>) => Effect.runPromise(Logger.withMinimumLogLevel(effect, LogLevel.Warning))
  let round = 0
  yield* Effect.promise(async () => {
    for (round = 0; round < 2; round++) {
      console.log(`round ${round + 1}`)
      await measure("  2 GETs, bare HttpRouter app", () => request("GET", "/api/v1/versions", undefined, barePort).then(() => request("GET", "/api/v1/versions", undefined, barePort)))
      await measure("  2 GETs, bare app without the platform's tracer", () => request("GET", "/api/v1/versions", undefined, untracedPort).then(() => request("GET", "/api/v1/versions", undefined, untracedPort)))
      await measure("  2 GETs through the media API's middleware", () => request("GET", "/api/v1/versions").then(() => request("GET", "/api/v1/versions")))
      await measure("  2 POSTs of a bad offer (400)", () => request("POST", "/rtc/v1/whip/?app=live&stream=x", "v=0\r\n").then(() => request("POST", "/rtc/v1/whip/?app=live&stream=x", "v=0\r\n")))
      await measure("  relay session opened and closed", async (i) => {
        const id = SessionId.make(`s${round}x${i}`)
        const record: SessionRecord = {
          id, kind: "publish", streamUrl: `v/live/r${round}x${i}` as SessionRecord["streamUrl"], originId: "o" as SessionRecord["originId"],
          originLocation: undefined, ufragPair: UfragPair.make(`a${round}x${i}:b${i}`), serverPwd: "pwdpwdpwdpwdpwdpwdpwdpwd",
          originMedia: { host: "127.0.0.1", port: ports.udpPort }, createdAt: Date.now()
        }
        await run(relay.open(record))
        await run(relay.close(id, "deleted"))
      })
      await measure("  WHIP POST + DELETE", async (i) => {
        const created = await request("POST", `/rtc/v1/whip/?app=live&stream=w${round}x${i}`, offer(`w${round}x${i}`))
        if (created.status !== 201 || created.location === undefined) throw new Error(`POST answered ${created.status}`)
        await request("DELETE", created.location)
      })
    }
  })
})).pipe(Logger.withMinimumLogLevel(LogLevel.Warning)))
origin.kill()
process.exit(0)
