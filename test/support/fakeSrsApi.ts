/**
 * A fake SRS origin for signaling tests: a plain node:http server on 127.0.0.1 that records every
 * request and answers as SRS's HTTP API does (WHIP/WHEP 201 with an SDP answer and a Location, DELETE
 * 200, the legacy JSON API), unless a test swaps its handler. Also a bound UDP socket as its media
 * port, and its heartbeat to the proxy's system API.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as dgram from "node:dgram"
import * as http from "node:http"
import { type HttpResult, httpRequest } from "./http.js"

export interface SeenRequest {
  readonly method: string
  readonly url: string
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

/** Answers one request (its body already read); may also leave it unanswered or destroy the socket. */
export type OriginHandler = (request: SeenRequest, res: http.ServerResponse, req: http.IncomingMessage) => void

export interface FakeSrsApi {
  readonly apiPort: number
  readonly apiUrl: string
  /** A bound UDP port, written into the answers' candidates and the heartbeat's rtc. */
  readonly mediaPort: number
  readonly requests: Array<SeenRequest>
  /** What answers requests: `srs` (the default) until a test sets another. */
  handler: OriginHandler
  /** SRS's own behaviour, for handlers that answer some requests themselves. */
  readonly srs: OriginHandler
  /** The heartbeat body SRS would post (server id `srv-<name>`). */
  readonly heartbeatBody: Record<string, unknown>
  /** Posts the heartbeat to `<systemUrl>/api/v1/srs/register`. */
  readonly register: (systemUrl: string) => Effect.Effect<HttpResult>
}

const ICE_PWD = "srsServerIcePassword0123456789ab"

/** An answer as SRS writes it (ICE-lite), with a host candidate, a hostname candidate and a TCP one. */
export const srsAnswer = (options: { readonly ufrag: string; readonly mediaPort: number; readonly pwd?: string }) =>
  [
    "v=0",
    "o=SRS/7.0.0(Tiger) 107405472 2 IN IP4 0.0.0.0",
    "s=SRSPublishSession",
    "t=0 0",
    "a=ice-lite",
    "a=group:BUNDLE 0",
    "a=msid-semantic: WMS live/s",
    "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "c=IN IP4 0.0.0.0",
    `a=ice-ufrag:${options.ufrag}`,
    `a=ice-pwd:${options.pwd ?? ICE_PWD}`,
    "a=fingerprint:sha-256 9E:C4:25:0D:1C:5A:66:23:B4:08:19:8C:2A:4D:7F:C7:8C:0E:3D:55:2B:A1:43:0B:4C:9D:E5:AB:91:7F:11:60",
    "a=setup:passive",
    "a=mid:0",
    "a=recvonly",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=rtpmap:96 H264/90000",
    `a=candidate:0 1 udp 2130706431 127.0.0.1 ${options.mediaPort} typ host generation 0`,
    `a=candidate:1 1 udp 2130706431 origin.example.com ${options.mediaPort} typ host generation 0`,
    `a=candidate:2 1 tcp 2130706431 127.0.0.1 ${options.mediaPort} typ host tcptype passive generation 0`,
    ""
  ].join("\r\n")

const clientUfragOf = (sdp: string) => /^a=ice-ufrag:(\S+)/m.exec(sdp)?.[1] ?? "cli"

/**
 * Starts a fake SRS API in the current scope. Ufrags of its answers are `<ufragPrefix><n>`
 * (`srv1`, `srv2`, ... by default), so that two origins never hand out the same ufrag pair.
 */
export const fakeSrsApi = (
  options: { readonly name?: string; readonly ufragPrefix?: string } = {}
): Effect.Effect<FakeSrsApi, never, Scope.Scope> =>
  Effect.gen(function*() {
    const name = options.name ?? "a"
    const prefix = options.ufragPrefix ?? "srv"
    const media = yield* Effect.acquireRelease(
      Effect.async<dgram.Socket>((resume) => {
        const socket = dgram.createSocket("udp4")
        socket.bind(0, "127.0.0.1", () => resume(Effect.succeed(socket)))
      }),
      (socket) => Effect.async<void>((resume) => {
        socket.close(() => resume(Effect.void))
      })
    )
    const mediaPort = media.address().port
    let answered = 0
    const requests: Array<SeenRequest> = []

    const srs: OriginHandler = (request, res) => {
      const url = new URL(request.url, "http://origin")
      const app = url.searchParams.get("app") ?? "live"
      const stream = url.searchParams.get("stream") ?? "livestream"
      if (request.method === "POST" && /^\/rtc\/v1\/(whip|whep)\/$/.test(url.pathname)) {
        const ufrag = `${prefix}${++answered}`
        res.writeHead(201, {
          "Content-Type": "application/sdp",
          Location: `/rtc/v1/whip/?action=delete&token=T&app=${app}&stream=${stream}&session=${ufrag}:${
            clientUfragOf(request.body)
          }`
        })
        res.end(srsAnswer({ ufrag, mediaPort }))
        return
      }
      if (request.method === "DELETE" && url.pathname === "/rtc/v1/whip/") {
        res.writeHead(200, { "Content-Type": "application/json" })
        res.end(JSON.stringify({ code: 0 }))
        return
      }
      if (request.method === "POST" && /^\/rtc\/v1\/(publish|play)\/$/.test(url.pathname)) {
        const body = JSON.parse(request.body) as { sdp: string }
        const ufrag = `${prefix}${++answered}`
        res.writeHead(200, { "Content-Type": "application/json" })
        res.end(JSON.stringify({ code: 0, sdp: srsAnswer({ ufrag, mediaPort }), sessionid: `${ufrag}:${clientUfragOf(body.sdp)}` }))
        return
      }
      res.writeHead(404, { "Content-Type": "application/json" })
      res.end(JSON.stringify({ code: 404 }))
    }

    const api: { handler: OriginHandler } = { handler: srs }
    const server = http.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (chunk: Buffer) => chunks.push(chunk))
      req.on("end", () => {
        const seen = {
          method: req.method ?? "",
          url: req.url ?? "",
          headers: req.headers,
          body: Buffer.concat(chunks).toString("utf8")
        }
        requests.push(seen)
        api.handler(seen, res, req)
      })
    })
    yield* Effect.acquireRelease(
      Effect.async<void>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.void))
      }),
      () =>
        Effect.async<void>((resume) => {
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    )
    const address = server.address()
    const apiPort = typeof address === "object" && address !== null ? address.port : 0
    const heartbeatBody = {
      device_id: `origin-${name}`,
      ip: "127.0.0.1",
      server: `srv-${name}`,
      service: "svc1",
      pid: "4242",
      rtmp: ["19352"],
      http: ["8082"],
      api: [String(apiPort)],
      rtc: [`udp://${mediaPort}`]
    }
    return Object.assign(api, {
      apiPort,
      apiUrl: `http://127.0.0.1:${apiPort}`,
      mediaPort,
      requests,
      srs,
      heartbeatBody,
      register: (systemUrl: string) =>
        httpRequest(`${systemUrl}/api/v1/srs/register`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(heartbeatBody)
        })
    })
  })
