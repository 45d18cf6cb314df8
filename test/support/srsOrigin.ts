/**
 * A test origin with the HTTP API shape of SRS v7 (WHIP/WHEP, DELETE on the Location, heartbeat),
 * built on werift so end-to-end tests need no SRS binary.
 *
 * Like SRS it is ICE-lite by default: it answers checks and never sends its own, so a client whose
 * replies come from the wrong address fails ICE here as it does in front of SRS (a full-ICE origin
 * would send its own checks and let the client find a way round). Differences from SRS that matter:
 * - werift opens one UDP port per session (SRS: one port for all). The heartbeat therefore
 *   advertises `"rtc":["udp://8000"]`, a placeholder: the real media port of a session is the one
 *   in its answer's candidate, which is what a proxy must dial.
 * - With `iceLite: false` it is a full-ICE agent: the offer it gets must then not carry the client's
 *   candidates (or it would reach the client directly) nor `a=end-of-candidates` (werift would give
 *   up before relayed checks arrive). With neither, werift waits for checks and learns the peer as
 *   peer-reflexive.
 */
import * as http from "node:http"
import { randomBytes } from "node:crypto"
import { isIPv6 } from "node:net"
import {
  PictureLossIndication,
  RTCPeerConnection,
  RtcpPayloadSpecificFeedback,
  useOPUS,
  useVP8
} from "werift"
import type { MediaStreamTrack, RTCPeerConnectionConfig, RTCRtpSender, RtpPacket } from "werift"

export interface SrsOriginOptions {
  readonly host?: string
  /**
   * ICE-lite, as SRS is (the default): it answers checks and never sends its own. False makes it a
   * full-ICE agent, which also checks the client's address by itself.
   */
  readonly iceLite?: boolean
  readonly apiPort?: number
  /**
   * How a PATCH (trickle ICE, ICE restart) is refused: SRS has no PATCH route, so its API answers
   * 404 (the default); `hang-up` closes the connection without an answer; 405 and 501 are what other
   * servers without PATCH answer.
   */
  readonly patch?: "not-found" | "method-not-allowed" | "not-implemented" | "hang-up"
  readonly heartbeat?: {
    readonly url: string
    readonly intervalMs: number
    readonly serverId?: string
    readonly token?: string
  }
}

export interface SrsOriginRequest {
  readonly method: string
  readonly url: string
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: string
}

export interface SrsOrigin {
  readonly apiPort: number
  readonly apiUrl: string
  readonly sessions: () => number
  readonly requests: ReadonlyArray<SrsOriginRequest>
  /** The USERNAME of every binding request its sessions received (each once). */
  readonly checkUsernames: ReadonlySet<string>
  readonly heartbeatBody: () => Record<string, unknown>
  readonly close: () => Promise<void>
}

type MediaKind = "audio" | "video"

interface Session {
  id: string // "<serverUfrag>:<clientUfrag>", SRS's session username; known once the answer exists
  readonly token: string
  readonly role: "publish" | "play"
  readonly streamKey: string
  readonly pc: RTCPeerConnection
  /** play sessions: where the publisher's packets go, one sender per kind */
  readonly senders: Map<MediaKind, RTCRtpSender>
  /** publish sessions: received tracks, kept to request keyframes */
  readonly tracks: Array<{ readonly track: MediaStreamTrack; readonly requestKeyframe: () => void }>
}

interface Stream {
  publisher: Session | undefined
  readonly players: Set<Session>
}

// SRS error codes (srs_kernel_error.hpp); the exact values only need to look like SRS's.
const ERROR_SYSTEM_STREAM_BUSY = 1028
const ERROR_RTC_SDP_EXCHANGE = 5012

let originCounter = 0

const randomToken = (bytes: number) => randomBytes(bytes).toString("hex")

const safeDecode = (text: string): string => {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

const iceUfrag = (sdp: string): string => /^a=ice-ufrag:(\S+)/m.exec(sdp)?.[1] ?? ""

/** Media kinds of the offer's m-sections that want to receive (a WHEP offer is recvonly). */
const kindsToSend = (sdp: string): Array<MediaKind> => {
  const kinds: Array<MediaKind> = []
  for (const section of sdp.split(/\r?\n(?=m=)/).slice(1)) {
    const kind = /^m=(audio|video) /.exec(section)?.[1] as MediaKind | undefined
    if (kind === undefined || /^m=\S+ 0 /.test(section)) continue
    if (/^a=(sendonly|inactive)\s*$/m.test(section)) continue
    kinds.push(kind)
  }
  return kinds
}

const peerConfig = (host: string, iceLite: boolean): RTCPeerConnectionConfig => ({
  iceLite,
  // No STUN server: werift's default is stun.l.google.com, and tests stay on loopback.
  iceServers: [],
  // werift gathers only non-internal interfaces; turning both families off and adding the host as an
  // "additional" address yields exactly one host candidate, and iceInterfaceAddresses binds the socket to it.
  iceUseIpv4: false,
  iceUseIpv6: false,
  iceAdditionalHostAddresses: [host],
  iceInterfaceAddresses: isIPv6(host) ? { udp6: host } : { udp4: host },
  codecs: { video: [useVP8()], audio: [useOPUS()] }
})

const waitGatheringComplete = async (pc: RTCPeerConnection): Promise<void> => {
  if (pc.iceGatheringState === "complete") return
  await pc.iceGatheringStateChange.watch((state) => state === "complete")
}

const readBody = (req: http.IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    req.on("error", reject)
  })

const sendJson = (res: http.ServerResponse, status: number, body: unknown): void => {
  if (res.headersSent || res.destroyed) return
  const text = JSON.stringify(body)
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) })
  res.end(text)
}

export const startSrsOrigin = async (options: SrsOriginOptions = {}): Promise<SrsOrigin> => {
  const host = options.host ?? "127.0.0.1"
  const requests: Array<SrsOriginRequest> = []
  const checkUsernames = new Set<string>()
  const sessions = new Map<string, Session>()
  const streams = new Map<string, Stream>()
  const timers = new Set<NodeJS.Timeout>()
  const heartbeatRequests = new Set<http.ClientRequest>()
  let closed = false

  const streamOf = (key: string): Stream => {
    let stream = streams.get(key)
    if (stream === undefined) {
      stream = { publisher: undefined, players: new Set() }
      streams.set(key, stream)
    }
    return stream
  }

  const requestKeyframe = (streamKey: string) => {
    for (const { requestKeyframe } of streams.get(streamKey)?.publisher?.tracks ?? []) requestKeyframe()
  }

  const dropSession = async (session: Session): Promise<void> => {
    if (!sessions.delete(session.id)) return
    const stream = streams.get(session.streamKey)
    if (stream !== undefined) {
      if (stream.publisher === session) stream.publisher = undefined
      stream.players.delete(session)
      if (stream.publisher === undefined && stream.players.size === 0) streams.delete(session.streamKey)
    }
    // close() frees the ICE sockets and stops werift's RTCP timers.
    await session.pc.close().catch(() => undefined)
  }

  const handleOffer = async (
    role: "publish" | "play",
    url: URL,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    offer: string
  ): Promise<void> => {
    const app = url.searchParams.get("app") ?? "live"
    const streamName = url.searchParams.get("stream") ?? "livestream"
    const streamKey = `${url.searchParams.get("vhost") ?? "__defaultVhost__"}/${app}/${streamName}`

    const contentType = req.headers["content-type"] ?? ""
    if (!/^application\/sdp\b/i.test(contentType) || !offer.startsWith("v=")) {
      return sendJson(res, 400, { code: ERROR_RTC_SDP_EXCHANGE, desc: "expect application/sdp offer" })
    }
    if (role === "publish" && streams.get(streamKey)?.publisher !== undefined) {
      return sendJson(res, 400, { code: ERROR_SYSTEM_STREAM_BUSY, desc: `stream ${streamKey} busy` })
    }

    const pc = new RTCPeerConnection(peerConfig(host, options.iceLite ?? true))
    const session: Session = {
      id: "",
      token: randomToken(8),
      role,
      streamKey,
      pc,
      senders: new Map(),
      tracks: []
    }
    let answer: string
    try {
      if (role === "publish") {
        pc.onTrack.subscribe((track) => {
          const transceiver = pc.getTransceivers().find((t) => t.receiver.track === track)
          session.tracks.push({
            track,
            requestKeyframe: () => {
              if (track.kind === "video" && track.ssrc !== undefined) {
                transceiver?.receiver.sendRtcpPLI(track.ssrc).catch(() => undefined)
              }
            }
          })
          track.onReceiveRtp.subscribe((rtp: RtpPacket) => forward(streamKey, track.kind, rtp))
        })
      } else {
        // Pre-created transceivers with mid=null are matched by kind in setRemoteDescription, so the
        // answer comes out sendonly without touching werift's remote-created (recvonly) ones.
        for (const kind of kindsToSend(offer)) {
          const transceiver = pc.addTransceiver(kind, { direction: "sendonly" })
          transceiver.sender.streamId = streamName
          if (!session.senders.has(kind)) session.senders.set(kind, transceiver.sender)
        }
        for (const sender of session.senders.values()) {
          sender.onRtcp.subscribe((packet) => {
            if (packet instanceof RtcpPayloadSpecificFeedback && packet.feedback instanceof PictureLossIndication) {
              requestKeyframe(streamKey)
            }
          })
        }
      }
      await pc.setRemoteDescription({ type: "offer", sdp: offer })
      await pc.setLocalDescription(await pc.createAnswer())
      await waitGatheringComplete(pc)
      answer = pc.localDescription?.sdp ?? ""
      // werift's ICE sockets, reached past its public types: what credentials the checks carry.
      const agent = (pc.iceTransports[0] as unknown as {
        connection?: { protocols: Array<{ onRequestReceived: { subscribe: (f: (msg: { getAttributeValue: (key: "USERNAME") => unknown }) => void) => void } }> }
      } | undefined)?.connection
      for (const protocol of agent?.protocols ?? []) {
        protocol.onRequestReceived.subscribe((msg) => checkUsernames.add(String(msg.getAttributeValue("USERNAME"))))
      }
    } catch (error) {
      await pc.close().catch(() => undefined)
      return sendJson(res, 400, { code: ERROR_RTC_SDP_EXCHANGE, desc: String(error) })
    }

    session.id = `${iceUfrag(answer)}:${iceUfrag(offer)}`
    if (closed || res.destroyed || req.socket.destroyed) {
      await pc.close().catch(() => undefined)
      return
    }
    const stream = streamOf(streamKey)
    if (role === "publish" && stream.publisher !== undefined) {
      // A concurrent publish won while this one negotiated.
      await pc.close().catch(() => undefined)
      return sendJson(res, 400, { code: ERROR_SYSTEM_STREAM_BUSY, desc: `stream ${streamKey} busy` })
    }
    sessions.set(session.id, session)
    if (role === "publish") stream.publisher = session
    else stream.players.add(session)
    pc.connectionStateChange.subscribe((state) => {
      if (state === "failed" || state === "closed") void dropSession(session)
      if (state === "connected" && role === "play") requestKeyframe(streamKey)
    })

    const location =
      `/rtc/v1/whip/?action=delete&token=${session.token}&app=${encodeURIComponent(app)}` +
      `&stream=${encodeURIComponent(streamName)}&session=${session.id}` // raw "a:b", as SRS writes it
    res.writeHead(201, {
      "Content-Type": "application/sdp",
      "Content-Length": Buffer.byteLength(answer),
      Location: location
    })
    res.end(answer)
  }

  const forward = (streamKey: string, kind: string, rtp: RtpPacket) => {
    const stream = streams.get(streamKey)
    if (stream === undefined) return
    let raw: Buffer | undefined
    for (const player of stream.players) {
      const sender = player.senders.get(kind as MediaKind)
      if (sender === undefined) continue
      // sendRtp rewrites ssrc, payload type, seq and timestamp in place: give every player its own copy.
      raw ??= rtp.serialize()
      sender.sendRtp(Buffer.from(raw)).catch(() => undefined)
    }
  }

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const body = await readBody(req)
    requests.push({ method: req.method ?? "", url: req.url ?? "", headers: { ...req.headers }, body })
    const url = new URL(req.url ?? "/", "http://origin.invalid")

    if (url.searchParams.get("hangup") === "1") {
      // SRS closes the connection without an answer on some malformed offers.
      req.socket.destroy()
      return
    }
    const delay = Number(url.searchParams.get("delay") ?? "0")
    if (delay > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          timers.delete(timer)
          resolve()
        }, delay)
        timers.add(timer)
      })
      if (closed || res.destroyed || req.socket.destroyed) return
    }

    if (req.method === "PATCH" && options.patch !== undefined && options.patch !== "not-found") {
      if (options.patch === "hang-up") return void req.socket.destroy()
      const status = options.patch === "method-not-allowed" ? 405 : 501
      return sendJson(res, status, { code: status, desc: "PATCH is not supported" })
    }
    const path = url.pathname.replace(/\/?$/, "/")
    if (req.method === "DELETE" && path === "/rtc/v1/whip/") {
      // Like SRS: expire the session if it exists, answer 200 either way.
      // Read the raw value: ICE ufrags may hold "+", which URLSearchParams would turn into a space.
      const raw = /[?&]session=([^&]*)/.exec(req.url ?? "")?.[1] ?? ""
      const session = sessions.get(safeDecode(raw))
      if (session !== undefined && session.token === url.searchParams.get("token")) await dropSession(session)
      return sendJson(res, 200, { code: 0 })
    }
    if (req.method === "POST" && (path === "/rtc/v1/whip/" || path === "/rtc/v1/whep/")) {
      return handleOffer(path === "/rtc/v1/whip/" ? "publish" : "play", url, req, res, body)
    }
    sendJson(res, 404, { code: 404, desc: `no route ${req.method} ${url.pathname}` })
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error: unknown) => sendJson(res, 500, { code: 1, desc: String(error) }))
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.apiPort ?? 0, host, () => {
      server.off("error", reject)
      resolve()
    })
  })
  const address = server.address()
  if (address === null || typeof address === "string") throw new Error("srsOrigin: no TCP address")
  const apiPort = address.port

  const heartbeat = options.heartbeat
  const body: Record<string, unknown> = {
    device_id: `origin-${apiPort}`,
    ip: host,
    server: heartbeat?.serverId ?? `vid-${randomToken(4)}`,
    service: randomToken(4),
    // The proxy keys an origin by server-service-pid; several origins share this process, so make it unique.
    pid: String(process.pid * 100 + (originCounter++ % 100)),
    rtmp: ["1935"],
    http: ["8080"],
    api: [String(apiPort)],
    // Placeholder: werift has a UDP port per session, announced in each answer's candidate.
    rtc: ["udp://8000"]
  }

  const postHeartbeat = (): Promise<void> =>
    new Promise((resolve) => {
      if (heartbeat === undefined || closed) return resolve()
      const text = JSON.stringify(body)
      const headers: Record<string, string | number> = {
        "Content-Type": "application/json",
        "Content-Length": Buffer.byteLength(text),
        Connection: "close"
      }
      if (heartbeat.token !== undefined) headers["Authorization"] = `Bearer ${heartbeat.token}`
      // agent:false: one short-lived socket per beat, nothing pooled that could outlive close().
      const req = http.request(heartbeat.url, { method: "POST", headers, agent: false, timeout: 2_000 })
      heartbeatRequests.add(req)
      const done = () => {
        heartbeatRequests.delete(req)
        resolve()
      }
      req.on("response", (res) => {
        res.resume() // SRS ignores the answer
        res.on("end", done)
        res.on("error", done)
      })
      req.on("timeout", () => req.destroy())
      req.on("error", done)
      req.on("close", done)
      req.end(text)
    })

  if (heartbeat !== undefined) {
    // Awaited once so a test can use the proxy right after start; failures are ignored like SRS does.
    await postHeartbeat()
    const interval = setInterval(() => void postHeartbeat(), heartbeat.intervalMs)
    timers.add(interval)
  }

  return {
    apiPort,
    apiUrl: `http://${isIPv6(host) ? `[${host}]` : host}:${apiPort}`,
    sessions: () => sessions.size,
    requests,
    checkUsernames,
    heartbeatBody: () => ({ ...body }),
    close: async () => {
      if (closed) return
      closed = true
      for (const timer of timers) clearTimeout(timer) // clearTimeout also clears intervals
      timers.clear()
      for (const req of heartbeatRequests) req.destroy()
      await Promise.all([...sessions.values()].map(dropSession))
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    }
  }
}
