/**
 * The benchmark's origin, run as its own process: an SRS-shaped HTTP API (WHIP/WHEP POST answers 201
 * with an ICE-lite SDP answer and a Location, DELETE answers 200) and ONE UDP socket for every session,
 * as SRS has, that echoes each datagram back to whoever sent it.
 *
 * Started by bench/relay.ts with fork(): it reports `{ apiPort, udpPort }` over IPC once both are
 * bound, and exits when its parent goes away. Also runnable by hand:
 * `node --import tsx bench/origin.ts [--host 127.0.0.1] [--api-port 0] [--udp-port 0]`.
 */
import * as dgram from "node:dgram"
import * as http from "node:http"
import { parseArgs } from "node:util"
import { iceString } from "../test/support/offers.js"

const { values: args } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    "api-port": { type: "string", default: "0" },
    "udp-port": { type: "string", default: "0" },
    "buffer-bytes": { type: "string", default: String(4 * 1024 * 1024) }
  }
})
const host = args.host!
const bufferBytes = Number(args["buffer-bytes"])


let active = 0
let created = 0
let deleted = 0
let echoed = 0

const udp = dgram.createSocket({ type: "udp4", recvBufferSize: bufferBytes, sendBufferSize: bufferBytes })
udp.on("message", (msg, rinfo) => {
  echoed++
  udp.send(msg, rinfo.port, rinfo.address)
})
udp.on("error", () => {}) // ICMP port unreachable from a client that left: nothing to do

const answer = (ufrag: string, pwd: string, udpPort: number) =>
  [
    "v=0",
    `o=SRS/6.0.0(Bench) ${Date.now()} 2 IN IP4 0.0.0.0`,
    "s=SRSPublishSession",
    "t=0 0",
    "a=ice-lite",
    "a=group:BUNDLE 0",
    "a=msid-semantic: WMS live/bench",
    "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "c=IN IP4 0.0.0.0",
    `a=ice-ufrag:${ufrag}`,
    `a=ice-pwd:${pwd}`,
    "a=fingerprint:sha-256 9E:C4:25:0D:1C:5A:66:23:B4:08:19:8C:2A:4D:7F:C7:8C:0E:3D:55:2B:A1:43:0B:4C:9D:E5:AB:91:7F:11:60",
    "a=setup:passive",
    "a=mid:0",
    "a=recvonly",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=rtpmap:96 H264/90000",
    `a=candidate:0 1 udp 2130706431 127.0.0.1 ${udpPort} typ host generation 0`,
    ""
  ].join("\r\n")

const server = http.createServer((req, res) => {
  const chunks: Array<Buffer> = []
  req.on("data", (chunk: Buffer) => chunks.push(chunk))
  req.on("end", () => {
    const url = new URL(req.url ?? "/", "http://origin")
    if (req.method === "POST" && /^\/rtc\/v1\/(whip|whep)\/$/.test(url.pathname)) {
      const offer = Buffer.concat(chunks).toString("utf8")
      const clientUfrag = /^a=ice-ufrag:(\S+)/m.exec(offer)?.[1]
      if (clientUfrag === undefined) {
        res.writeHead(400, { "Content-Type": "application/json" })
        res.end(JSON.stringify({ code: 400 }))
        return
      }
      const ufrag = iceString(8)
      const pwd = iceString(32)
      active++
      created++
      res.writeHead(201, {
        "Content-Type": "application/sdp",
        Location: `/rtc/v1/whip/?action=delete&token=x&app=${url.searchParams.get("app") ?? "live"}&stream=${
          url.searchParams.get("stream") ?? "livestream"
        }&session=${ufrag}:${clientUfrag}`
      })
      res.end(answer(ufrag, pwd, udp.address().port))
      return
    }
    if (req.method === "DELETE" && /^\/rtc\/v1\/(whip|whep)\/$/.test(url.pathname)) {
      active = Math.max(0, active - 1)
      deleted++
      res.writeHead(200, { "Content-Type": "application/json" })
      res.end(JSON.stringify({ code: 0 }))
      return
    }
    if (req.method === "GET" && url.pathname === "/api/v1/stats") {
      res.writeHead(200, { "Content-Type": "application/json" })
      res.end(JSON.stringify({ active, created, deleted, echoed }))
      return
    }
    res.writeHead(404, { "Content-Type": "application/json" })
    res.end(JSON.stringify({ code: 404 }))
  })
})
server.keepAliveTimeout = 60_000

udp.bind(Number(args["udp-port"]), host, () => {
  server.listen(Number(args["api-port"]), host, () => {
    const address = server.address()
    const ports = {
      apiPort: typeof address === "object" && address !== null ? address.port : 0,
      udpPort: udp.address().port
    }
    if (process.send !== undefined) process.send({ ready: true, ...ports })
    else console.log(JSON.stringify(ports))
  })
})

// A child of the benchmark lives only as long as its parent.
process.on("disconnect", () => process.exit(0))
process.on("SIGTERM", () => process.exit(0))
process.on("SIGINT", () => process.exit(0))
