/**
 * werift WHIP publisher and WHEP player for end-to-end tests. They only speak WHIP/WHEP over HTTP and
 * ICE/DTLS to whatever candidates the answer carries, so they work against the test origin directly
 * and through the proxy alike.
 */
import { MediaStreamTrack, RTCPeerConnection, RtpHeader, RtpPacket, useVP8 } from "werift"
import type { RTCPeerConnectionConfig } from "werift"
import { httpRequestPromise, type HttpResult } from "./http.js"

export interface Publisher {
  readonly location: string
  readonly sentPackets: () => number
  readonly connected: Promise<void>
  /** ICE restart over PATCH (RFC 9725 section 4.3.3); see {@link restartIce}. */
  readonly restartIce: (options?: RestartOptions) => Promise<HttpResult>
  /** The local address of the nominated candidate pair, once there is one. */
  readonly localAddress: () => string | undefined
  readonly close: () => Promise<void>
}

export interface RestartOptions {
  /**
   * Move to this local IP (e.g. 127.0.0.2): the old sockets are closed before the restart, as when a
   * phone leaves Wi-Fi, and the new credentials are checked from a new socket on this address.
   */
  readonly moveTo?: string
  readonly headers?: Record<string, string>
}

export interface Player {
  readonly location: string
  readonly receivedPackets: () => number
  readonly firstPacket: Promise<void>
  readonly close: () => Promise<void>
}

export interface PeerOptions {
  readonly headers?: Record<string, string>
  /** The peer's one local address: 127.0.0.1 (the default) or ::1. */
  readonly host?: string
  /** Gathers ICE-TCP candidates too (active and passive) besides UDP. */
  readonly tcp?: boolean
  /** Changes the answer before it is applied (e.g. a network that blocks UDP: its UDP candidates gone). */
  readonly answer?: (sdp: string) => string
}

const peerConfig = (options: PeerOptions): RTCPeerConnectionConfig => {
  const host = options.host ?? "127.0.0.1"
  return {
    // werift's default STUN server is stun.l.google.com; tests stay on loopback.
    iceServers: [],
    // Exactly one host candidate (werift skips internal interfaces unless added explicitly).
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: [host],
    iceInterfaceAddresses: host.includes(":") ? { udp6: host } : { udp4: host },
    ...(options.tcp ? { iceUseTcp: true } : {}),
    codecs: { video: [useVP8()] }
  }
}

/** Creates the offer, waits for all candidates (WHIP/WHEP here is non-trickle), POSTs it, applies the answer. */
const negotiate = async (pc: RTCPeerConnection, url: string, options: PeerOptions): Promise<string> => {
  await pc.setLocalDescription(await pc.createOffer())
  if (pc.iceGatheringState !== "complete") {
    await pc.iceGatheringStateChange.watch((state) => state === "complete")
  }
  const response = await httpRequestPromise(url, {
    method: "POST",
    headers: { ...options.headers, "Content-Type": "application/sdp" },
    body: pc.localDescription?.sdp ?? ""
  })
  if (response.status !== 201) {
    throw new Error(`POST ${url} answered ${response.status}: ${response.body}`)
  }
  const location = response.headers.location
  if (location === undefined) throw new Error(`POST ${url} answered 201 without Location`)
  await pc.setRemoteDescription({ type: "answer", sdp: options.answer?.(response.body) ?? response.body })
  return new URL(location, url).href
}

// werift's ICE agent, reached past its public types to move it to another local address.
interface IceAgentInternals {
  options: { additionalHostAddresses?: Array<string>; interfaceAddresses?: Record<string, string> }
  protocols: Array<{ close: () => Promise<void> }>
  nominated?: { protocol: { localCandidate?: { host: string } } }
}
const iceAgentOf = (pc: RTCPeerConnection) =>
  (pc.iceTransports[0] as unknown as { connection: IceAgentInternals } | undefined)?.connection

/**
 * The `application/trickle-ice-sdpfrag` of an ICE restart (RFC 8840): the new credentials, BUNDLE
 * group, and each media section's m= line, mid and candidates.
 */
const restartFragmentOf = (sdp: string): string => {
  const lines = sdp.split(/\r?\n/).filter((line) => line !== "")
  const keep = (line: string) =>
    /^a=(ice-ufrag|ice-pwd|ice-options|group|mid|candidate|end-of-candidates)\b/.test(line) || line.startsWith("m=")
  const ufrag = lines.find((line) => line.startsWith("a=ice-ufrag:"))!
  const pwd = lines.find((line) => line.startsWith("a=ice-pwd:"))!
  const session = lines.slice(0, lines.findIndex((line) => line.startsWith("m="))).filter((line) => line.startsWith("a=group:"))
  const media = lines.slice(lines.findIndex((line) => line.startsWith("m="))).filter(keep)
    .filter((line) => !line.startsWith("a=ice-ufrag:") && !line.startsWith("a=ice-pwd:"))
  return [...session, ufrag, pwd, ...media].join("\r\n") + "\r\n"
}

/**
 * An ICE restart as a WHIP client does it: a new offer with new credentials (gathered, optionally on
 * a new local address), PATCH with If-Match: *, and the 200's fragment (new server credentials and
 * candidates) applied to the remote description.
 */
const restartIce = async (pc: RTCPeerConnection, location: string, options: RestartOptions): Promise<HttpResult> => {
  if (options.moveTo !== undefined) {
    const agent = iceAgentOf(pc)
    if (agent === undefined) throw new Error("restartIce: no ICE transport")
    for (const protocol of agent.protocols.splice(0)) await protocol.close().catch(() => undefined)
    agent.options.additionalHostAddresses = [options.moveTo]
    agent.options.interfaceAddresses = { udp4: options.moveTo }
  }
  await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }))
  if (pc.iceGatheringState !== "complete") {
    await pc.iceGatheringStateChange.watch((state) => state === "complete")
  }
  const response = await httpRequestPromise(location, {
    method: "PATCH",
    headers: { "If-Match": "*", ...options.headers, "Content-Type": "application/trickle-ice-sdpfrag" },
    body: restartFragmentOf(pc.localDescription?.sdp ?? "")
  })
  if (response.status !== 200) return response
  const value = (name: string) => new RegExp(`^a=${name}:(\\S+)`, "m").exec(response.body)?.[1]
  const candidates = response.body.split(/\r?\n/).filter((line) => line.startsWith("a=candidate:"))
  const remote = (pc.remoteDescription?.sdp ?? "")
    .replace(/^a=ice-ufrag:.*$/gm, `a=ice-ufrag:${value("ice-ufrag")}`)
    .replace(/^a=ice-pwd:.*$/gm, `a=ice-pwd:${value("ice-pwd")}`)
    .replace(/^a=candidate:.*$/m, candidates[0] ?? "")
  await pc.setRemoteDescription({ type: "answer", sdp: remote })
  // werift starts ICE only when DTLS is not up yet; after a restart it is, so the checks start here.
  const transport = pc.iceTransports[0]
  if (transport !== undefined && transport.state !== "connected") void transport.start().catch(() => undefined)
  return response
}

/** Resolves when ICE and DTLS are up; rejects if the connection fails or closes first. */
const whenConnected = (pc: RTCPeerConnection): Promise<void> => {
  const connected = new Promise<void>((resolve, reject) => {
    if (pc.connectionState === "connected") return resolve()
    const { unSubscribe } = pc.connectionStateChange.subscribe((state) => {
      if (state === "connected") {
        unSubscribe()
        resolve()
      } else if (state === "failed" || state === "closed") {
        unSubscribe()
        reject(new Error(`peer connection ${state} before connecting`))
      }
    })
  })
  connected.catch(() => undefined) // handled for whoever does not await it; awaiting still sees the rejection
  return connected
}

/**
 * A fake VP8 stream: every packet is a whole "frame" (marker set) with a minimal payload descriptor
 * (S=1, partition 0). Nothing decodes it; it only has to look like VP8 RTP on the wire.
 */
const fakeVp8 = () => {
  let sequenceNumber = Math.floor(Math.random() * 0xffff)
  let timestamp = Math.floor(Math.random() * 0xffffffff)
  let frame = 0
  return (): RtpPacket => {
    sequenceNumber = (sequenceNumber + 1) & 0xffff
    timestamp = (timestamp + 1800) >>> 0 // 90 kHz clock at 50 packets/s
    const keyframe = frame++ % 50 === 0
    // VP8 payload descriptor 0x10, then a 3-byte frame tag (bit 0 = 0 for a keyframe) and padding bytes.
    const payload = Buffer.alloc(64, 0xaa)
    payload[0] = 0x10
    payload[1] = keyframe ? 0x00 : 0x01
    const header = new RtpHeader({ payloadType: 96, sequenceNumber, timestamp, marker: true })
    return new RtpPacket(header, payload)
  }
}

export const publish = async (whipUrl: string, options: PeerOptions = {}): Promise<Publisher> => {
  const pc = new RTCPeerConnection(peerConfig(options))
  const track = new MediaStreamTrack({ kind: "video" })
  const transceiver = pc.addTransceiver(track, { direction: "sendonly" })
  // SRS rejects a publish offer without a=msid; werift writes it only when streamId is set.
  transceiver.sender.streamId = "rtc-proxy-test"
  let sent = 0
  let timer: NodeJS.Timeout | undefined
  const connected = whenConnected(pc)
  let location: string
  try {
    location = await negotiate(pc, whipUrl, options)
  } catch (error) {
    await pc.close().catch(() => undefined)
    throw error
  }
  connected.then(
    () => {
      if (pc.connectionState !== "connected") return
      const next = fakeVp8()
      timer = setInterval(() => {
        transceiver.sender.sendRtp(next()).catch(() => undefined)
        sent++
      }, 20)
    },
    () => undefined
  )
  return {
    location,
    sentPackets: () => sent,
    connected,
    restartIce: (options = {}) => restartIce(pc, location, options),
    localAddress: () => iceAgentOf(pc)?.nominated?.protocol.localCandidate?.host,
    close: async () => {
      if (timer !== undefined) clearInterval(timer)
      track.stop()
      await pc.close().catch(() => undefined)
    }
  }
}

export const play = async (whepUrl: string, options: PeerOptions = {}): Promise<Player> => {
  const pc = new RTCPeerConnection(peerConfig(options))
  pc.addTransceiver("video", { direction: "recvonly" })
  let received = 0
  let onFirst: () => void = () => undefined
  const firstPacket = new Promise<void>((resolve) => {
    onFirst = resolve
  })
  pc.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe(() => {
      received++
      onFirst()
    })
  })
  let location: string
  try {
    location = await negotiate(pc, whepUrl, options)
  } catch (error) {
    await pc.close().catch(() => undefined)
    throw error
  }
  return {
    location,
    receivedPackets: () => received,
    firstPacket,
    close: async () => {
      await pc.close().catch(() => undefined)
    }
  }
}
