// Ad-hoc (not committed): CPU of signaling parts in process.
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { spawn } from "node:child_process"
import { ProxyConfig } from "../src/Config.js"
import { OriginClient } from "../src/Http/OriginClient.js"
import { ProxyLive } from "../src/Proxy.js"
import { Relay } from "../src/Udp/Relay.js"
import { Option } from "effect"
import { SessionStore } from "../src/Session/SessionStore.js"
import { ProxyAddresses } from "../src/Http/Servers.js"
import http from "node:http"

const origin = spawn(process.execPath, ["--import", "tsx", "bench/origin.ts", "--api-port", "0", "--udp-port", "0"], { stdio: ["ignore", "pipe", "inherit", "ipc"] })
const ports: { apiPort: number; udpPort: number } = await new Promise((res) => origin.on("message", (m: any) => res(m)))
console.log("origin", ports)
const N = Number(process.env.N ?? 2000)
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000 }
const measure = async (name: string, n: number, f: (i: number) => Promise<unknown>, conc = 16) => {
  console.log("start", name); for (let i = 0; i < 200; i++) await f(-i - 1); console.log("warm")
  const c0 = cpu(); const t0 = performance.now(); let next = 0
  await Promise.all(Array.from({ length: conc }, async () => { while (next < n) await f(next++) }))
  console.log(`${name}: ${((cpu() - c0) / n).toFixed(3)} ms CPU each, ${(n / (performance.now() - t0) * 1000).toFixed(0)}/s`)
}
const offer = (u: string) => ["v=0","o=- 1 2 IN IP4 127.0.0.1","s=-","t=0 0","m=video 9 UDP/TLS/RTP/SAVPF 96","c=IN IP4 0.0.0.0",`a=ice-ufrag:${u}`,"a=ice-pwd:clientpassword0123456789","a=setup:actpass","a=mid:0","a=sendonly","a=rtpmap:96 VP8/90000",""].join("\r\n")
const layer = ProxyLive.pipe(Layer.provideMerge(ProxyConfig.layerWith({ listenHost: "127.0.0.1", httpPort: 0, systemPort: 0, udpPort: 0, rateLimit: { perSecond: 0, burst: 1 },
  defaultBackend: Option.some({ ip: "127.0.0.1", apiPort: ports.apiPort, rtcPort: ports.udpPort }), relayIdleTimeout: (await import("effect/Duration")).seconds(3600) })),
  Layer.provide(Logger.minimumLogLevel(process.env.LOGS ? LogLevel.Info : LogLevel.Warning)),
  Layer.provide(process.env.LOGS ? Logger.replace(Logger.defaultLogger, Logger.logfmtLogger) : Layer.empty))
await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  const ctx = yield* Layer.build(layer.pipe(Layer.provide(process.env.NOTRACE ? Layer.setTracerEnabled(false) : Layer.empty)))
  const run = <A, E>(e: Effect.Effect<A, E, any>) => Effect.runPromise(Effect.provide(e, ctx) as Effect.Effect<A, E, never>)
  const client = yield* Effect.provide(OriginClient, ctx)
  const relay = yield* Effect.provide(Relay, ctx)
  const addrs = yield* Effect.provide(ProxyAddresses, ctx)
  const base = `http://127.0.0.1:${ports.apiPort}`
  yield* Effect.promise(async () => {
    await measure("origin POST+DELETE via OriginClient", N, async (i) => {
      const r = await run(client.send({ method: "POST", url: `${base}/rtc/v1/whip/?app=live&stream=p${i}`, headers: {}, body: { contentType: "application/sdp", text: offer("u" + i) } }))
      await run(client.send({ method: "DELETE", url: new URL(r.headers["location"]!, base + "/").toString(), headers: {} }))
    })
    let k = 0
    await measure("relay.open + close", N, async () => {
      const id = `s${k++}`
      await run(relay.open({ id, kind: "publish", streamUrl: `v/live/x${k}`, originId: "o", originLocation: undefined, ufragPair: `a${k}:b${k}`, serverPwd: "pwdpwdpwdpwdpwdpwdpwdpwd", originMedia: { host: "127.0.0.1", port: ports.udpPort }, createdAt: Date.now() } as any))
      await run(relay.close(id, "deleted"))
    })
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })
    const req = (method: string, path: string, body?: string) => new Promise<{ status?: number; headers: http.IncomingHttpHeaders }>((res, rej) => {
      const r = http.request({ host: "127.0.0.1", port: addrs.media.port, method, path, agent, headers: body ? { "content-type": "application/sdp" } : {} }, (resp) => { resp.resume(); resp.on("end", () => res({ status: resp.statusCode, headers: resp.headers })) })
      r.on("error", rej); r.end(body)
    })
    await measure("HTTP POST+DELETE through the proxy (incl. client and origin client)", N, async (i) => {
      const r = await req("POST", `/rtc/v1/whip/?app=live&stream=h${i}`, offer("h" + Math.abs(i)))
      if (r.status !== 201) throw new Error(String(r.status))
      await req("DELETE", r.headers.location!)
    })
    await measure("HTTP GET /api/v1/versions x2 (client + platform floor)", N, async () => { await req("GET", "/api/v1/versions"); await req("GET", "/api/v1/versions") })
  })
})))
origin.kill()
process.exit(0)
