/**
 * The data path: which live relay session a datagram on the shared port belongs to, and forwarding
 * it. Plain synchronous code with tables owned by this module; no Effect and no allocation per
 * packet beyond what Node's dgram does. Lifecycles live in Relay.ts.
 *
 * @since 0.1.0
 */
import type * as dgram from "node:dgram"
import type { SessionRecord } from "../Domain/Session.js"
import { HEADER_LENGTH, MessageType, parseStun, verifyMessageIntegrity } from "../Stun.js"
import { CheckTable } from "./CheckTable.js"
import type { ClientPath } from "./ClientPath.js"
import * as IceTranslation from "./IceTranslation.js"

/** Why a datagram was dropped; each one is counted. */
export const DropReasons = [
  // from clients, on the shared port
  "unclassified",
  "turn-channel",
  "stun-too-short",
  "stun-not-stun",
  "stun-bad-cookie",
  "stun-bad-length",
  "stun-truncated-attribute",
  "stun-bad-username",
  "stun-no-username",
  "unknown-ufrag",
  "bad-integrity",
  "unknown-address",
  "lookup-overload",
  // from origins, on relay sockets
  "origin-before-client",
  "send-failed"
] as const
export type DropReason = typeof DropReasons[number]

/** A relay session as the data path sees it: mutable, owned by the router while registered. */
export class LiveSession {
  private current: SessionRecord
  /** Set once the proxy carried out an ICE restart itself: STUN is re-signed both ways. */
  translation: IceTranslation.IceTranslation | undefined
  /** The ufrag pairs it answers to, each with its server ice-pwd (two only during an ICE restart). */
  readonly ufragPairs = new Map<string, string>()
  /** Pairs an ICE restart retired (the latest few): a stale copy of the record must not bring one back. */
  readonly retiredUfrags: Array<string> = []
  /**
   * Where origin packets go: the client address that last sent media (DTLS/SRTP), else the one last
   * nominated or verified, and the local socket it reached (replies must come from the address the
   * client sent to). Port 0: no client yet.
   */
  clientAddress = ""
  clientPort = 0
  clientSocket: ClientPath | undefined = undefined
  /**
   * Every client address verified for this session. An ICE agent checks several candidate pairs at
   * once (one per local interface), so more than one address may carry its packets for a while.
   */
  readonly addresses: Array<{ address: string; port: number; socket: ClientPath; seen: number }> = []
  /** Who sent each recent binding request, for the origin's responses (made at the first one). */
  checks: CheckTable | undefined = undefined
  packetsFromClient = 0
  /** Idle bookkeeping for the owner's sweeper: the client packet count it last saw, and since when. */
  idleMark = -1
  quietSince = 0
  /** The same for packets from the origin (a session of an origin marked down that is quiet ends). */
  originMark = -1
  originQuietSince = 0
  packetsFromOrigin = 0
  bytesFromClient = 0
  bytesFromOrigin = 0

  constructor(record: SessionRecord, readonly backend: dgram.Socket) {
    this.current = record
    this.translation = IceTranslation.fromRecord(record)
    this.ufragPairs.set(record.ufragPair, record.serverPwd)
  }

  get record(): SessionRecord {
    return this.current
  }

  /** A new record (an ICE restart) brings its translation with it. */
  set record(record: SessionRecord) {
    this.current = record
    this.translation = IceTranslation.fromRecord(record)
  }
}

/** Retired ufrag pairs a session remembers (each ICE restart retires one). */
const MAX_RETIRED_UFRAGS = 4

/** Candidate pairs a client checks at once: one per local interface and family, rarely more than 4. */
const MAX_ADDRESSES_PER_SESSION = 8

/** A binding response answers a request sent at most this many ticks (sweeps, about 1 s each) ago. */
const CHECK_MAX_AGE_TICKS = 5

/** Live sessions by client address: nested by port then address so a lookup allocates no key. */
class AddressTable {
  private readonly byPort = new Map<number, Map<string, LiveSession>>()

  get(address: string, port: number): LiveSession | undefined {
    return this.byPort.get(port)?.get(address)
  }

  set(address: string, port: number, session: LiveSession): void {
    let byAddress = this.byPort.get(port)
    if (byAddress === undefined) this.byPort.set(port, byAddress = new Map())
    byAddress.set(address, session)
  }

  delete(address: string, port: number, session: LiveSession): void {
    const byAddress = this.byPort.get(port)
    if (byAddress === undefined || byAddress.get(address) !== session) return
    byAddress.delete(address)
    if (byAddress.size === 0) this.byPort.delete(port)
  }

  get size(): number {
    let size = 0
    for (const byAddress of this.byPort.values()) size += byAddress.size
    return size
  }
}

/**
 * Routes datagrams between the shared port's sockets and each session's origin socket. A binding
 * request is matched by its USERNAME first, and may bind (or move) the session to its source address
 * only when its MESSAGE-INTEGRITY verifies with the server's ice-pwd; every other packet is matched by
 * address. Whatever goes back to a client leaves by the local socket that client sent to.
 */
export class Router {
  readonly byId = new Map<string, LiveSession>()
  private readonly byUfrag = new Map<string, LiveSession>()
  private readonly byAddress = new AddressTable()
  readonly drops: Record<DropReason, number> = Object.fromEntries(DropReasons.map((r) => [r, 0])) as Record<
    DropReason,
    number
  >
  packetsRelayed = 0
  /** Consent clock, in the owner's timer ticks (see `expireConsent`). */
  private tick = 0

  /**
   * @param onUnknownUfrag called for a binding request whose ufrag pair no live session holds (the
   *   session may be in a shared store); must not block
   */
  constructor(private readonly onUnknownUfrag: (ufragPair: string) => void) {}

  get addressCount(): number {
    return this.byAddress.size
  }

  get ufragCount(): number {
    return this.byUfrag.size
  }

  /** Whether a binding request with valid integrity has bound this client address to a session. */
  isBound(address: string, port: number): boolean {
    return this.byAddress.get(address, port) !== undefined
  }

  /** Registers a live session under its id and ufrag pair; returns a session it displaced. */
  add(session: LiveSession): LiveSession | undefined {
    this.byId.set(session.record.id, session)
    let displaced: LiveSession | undefined
    for (const pair of session.ufragPairs.keys()) {
      const holder = this.byUfrag.get(pair)
      if (holder !== undefined && holder !== session) displaced = holder
      this.byUfrag.set(pair, session)
    }
    session.backend.on("message", (msg: Buffer) => this.fromOrigin(session, msg))
    return displaced
  }

  /** Unregisters every key of a session. Idempotent. */
  remove(session: LiveSession): void {
    if (this.byId.get(session.record.id) === session) this.byId.delete(session.record.id)
    for (const pair of session.ufragPairs.keys()) if (this.byUfrag.get(pair) === session) this.byUfrag.delete(pair)
    const addresses = session.addresses.splice(0)
    for (const { address, port } of addresses) this.byAddress.delete(address, port, session)
    for (const { socket } of addresses) socket.released?.()
    session.backend.removeAllListeners("message")
  }

  /** Adds a ufrag pair to a session (ICE restart); the old ones keep working until the new one is used. */
  addUfrag(session: LiveSession, ufragPair: string, serverPwd: string): void {
    session.ufragPairs.set(ufragPair, serverPwd)
    this.byUfrag.set(ufragPair, session)
  }

  private retireOldUfrags(session: LiveSession): void {
    for (const pair of [...session.ufragPairs.keys()]) {
      if (pair === session.record.ufragPair) continue
      session.ufragPairs.delete(pair)
      if (this.byUfrag.get(pair) === session) this.byUfrag.delete(pair)
      session.retiredUfrags.push(pair)
      if (session.retiredUfrags.length > MAX_RETIRED_UFRAGS) session.retiredUfrags.shift()
    }
  }

  /** A packet from a client: a datagram on the shared port's socket `socket`, or a frame of an ICE-TCP connection. */
  fromClient(msg: Buffer, address: string, port: number, socket: ClientPath): void {
    const first = msg[0]
    // RFC 7983: 0-3 STUN, 20-63 DTLS, 64-79 TURN channel, 128-191 RTP/RTCP.
    if (first === undefined) return this.drop("unclassified")
    if (first <= 3) return this.fromClientStun(msg, address, port, socket)
    if (first >= 128 ? first > 191 : first < 20 || first > 79) return this.drop("unclassified")
    if (first >= 64 && first <= 79) return this.drop("turn-channel")
    const session = this.byAddress.get(address, port)
    if (session === undefined) return this.drop("unknown-address")
    // Media from a verified address makes it the way back: ICE has settled on that pair.
    if (session.clientPort !== port || session.clientAddress !== address || session.clientSocket !== socket) {
      session.clientAddress = address
      session.clientPort = port
      session.clientSocket = socket
    }
    this.toOrigin(session, msg)
  }

  private fromClientStun(msg: Buffer, address: string, port: number, socket: ClientPath): void {
    const message = parseStun(msg)
    if (typeof message === "string") return this.drop(`stun-${message}`)
    if (message.type !== MessageType.BindingRequest) {
      // Responses and indications belong to whoever holds the address.
      const session = this.byAddress.get(address, port)
      if (session === undefined) return this.drop("unknown-address")
      const translation = session.translation
      return this.toOrigin(
        session,
        translation === undefined ? msg : IceTranslation.responseToOrigin(translation, msg, message)
      )
    }
    if (message.username === undefined) return this.drop("stun-no-username")
    const session = this.byUfrag.get(message.username)
    if (session === undefined) {
      this.onUnknownUfrag(message.username)
      return this.drop("unknown-ufrag")
    }
    const key = session.ufragPairs.get(message.username)!
    // A check the proxy re-signs for the origin must verify here: the origin can no longer judge it.
    const translation = session.translation !== undefined && message.username !== session.translation.originPair
      ? session.translation
      : undefined
    if (this.byAddress.get(address, port) !== session) {
      if (!verifyMessageIntegrity(msg, message, key)) return this.drop("bad-integrity")
      this.bind(session, address, port, socket)
    } else {
      if (translation !== undefined && !verifyMessageIntegrity(msg, message, key)) return this.drop("bad-integrity")
      this.refreshConsent(session, address, port, socket)
    }
    // The nominated pair (USE-CANDIDATE), or the first verified one, is the way back until media says otherwise.
    if (message.useCandidate || session.clientPort === 0) {
      session.clientAddress = address
      session.clientPort = port
      session.clientSocket = socket
    }
    if (session.checks === undefined) session.checks = new CheckTable()
    session.checks.record(msg, address, port, socket, this.tick, translation === undefined ? undefined : key)
    // ICE restart: the first check with the newest pair retires the older ones.
    if (session.ufragPairs.size > 1 && message.username === session.record.ufragPair) this.retireOldUfrags(session)
    this.toOrigin(session, translation === undefined ? msg : IceTranslation.checkToOrigin(translation, msg, message))
  }

  /**
   * Adds a verified client address to a session (a candidate pair being checked, NAT rebinding, a new
   * network). An address belongs to one session only: a session that held it loses it, and with it
   * the way back to that address. A session keeps its last few addresses.
   */
  private bind(session: LiveSession, address: string, port: number, socket: ClientPath): void {
    const previous = this.byAddress.get(address, port)
    if (previous !== undefined) this.unbind(previous, address, port)
    if (session.addresses.length >= MAX_ADDRESSES_PER_SESSION) {
      const oldest = session.addresses[0]!
      this.unbind(session, oldest.address, oldest.port)
    }
    session.addresses.push({ address, port, socket, seen: this.tick })
    this.byAddress.set(address, port, session)
  }

  private refreshConsent(session: LiveSession, address: string, port: number, socket: ClientPath): void {
    for (const entry of session.addresses) {
      if (entry.port === port && entry.address === address) {
        entry.seen = this.tick
        entry.socket = socket
      }
    }
  }

  /**
   * A local address of the shared port went away, and its socket with it, or an ICE-TCP connection
   * closed: every client reached through it is forgotten (it checks again through another candidate,
   * or its consent lapses; its session carries on until its idle timeout).
   */
  forgetSocket(socket: ClientPath): void {
    for (const session of this.byId.values()) {
      session.checks?.forgetSocket(socket)
      for (let i = session.addresses.length - 1; i >= 0; i--) {
        const entry = session.addresses[i]!
        if (entry.socket === socket) this.unbind(session, entry.address, entry.port)
      }
      if (session.clientSocket === socket) {
        session.clientAddress = ""
        session.clientPort = 0
        session.clientSocket = undefined
      }
    }
  }

  /**
   * Called by the owner's timer: advances the clock of consent, and forgets every client address
   * whose last binding request is older than `maxAgeTicks` (RFC 7675: without a check for 30 s,
   * consent is lost). Packets from a forgotten address are dropped until it is verified again.
   */
  expireConsent(maxAgeTicks: number): void {
    this.tick++
    for (const session of this.byId.values()) {
      for (let i = session.addresses.length - 1; i >= 0; i--) {
        const entry = session.addresses[i]!
        if (this.tick - entry.seen > maxAgeTicks) this.unbind(session, entry.address, entry.port)
      }
    }
  }

  private unbind(session: LiveSession, address: string, port: number): void {
    this.byAddress.delete(address, port, session)
    const index = session.addresses.findIndex((a) => a.port === port && a.address === address)
    const path = index === -1 ? undefined : session.addresses.splice(index, 1)[0]!.socket
    if (session.clientPort === port && session.clientAddress === address) {
      const fallback = session.addresses[session.addresses.length - 1]
      session.clientAddress = fallback?.address ?? ""
      session.clientPort = fallback?.port ?? 0
      session.clientSocket = fallback?.socket
    }
    path?.released?.()
  }

  private toOrigin(session: LiveSession, msg: Buffer): void {
    session.packetsFromClient++
    session.bytesFromClient += msg.length
    this.packetsRelayed++
    session.backend.send(msg)
  }

  private fromOrigin(session: LiveSession, msg: Buffer): void {
    // A STUN response goes to whoever sent its request; everything else takes the session's way back.
    if (msg[0]! <= 3 && msg.length >= HEADER_LENGTH) {
      const sender = session.checks?.take(msg, this.tick, CHECK_MAX_AGE_TICKS)
      if (sender !== undefined && sender.socket !== undefined) {
        this.countFromOrigin(session, msg)
        const reply = sender.resignKey === undefined ? msg : IceTranslation.responseToClient(msg, sender.resignKey)
        return sender.socket.send(reply, sender.port, sender.address)
      }
      if (session.translation !== undefined) msg = IceTranslation.fromOrigin(session.translation, msg)
    }
    const socket = session.clientSocket
    if (socket === undefined) return this.drop("origin-before-client")
    this.countFromOrigin(session, msg)
    socket.send(msg, session.clientPort, session.clientAddress)
  }

  private countFromOrigin(session: LiveSession, msg: Buffer): void {
    session.packetsFromOrigin++
    session.bytesFromOrigin += msg.length
    this.packetsRelayed++
  }

  /**
   * Send errors (ICMP unreachable on a connected socket, a full buffer) arrive as 'error' events
   * because no per-packet callback is passed: the owner of each socket counts them here.
   */
  readonly countSendError = (): void => {
    this.drops["send-failed"]++
  }

  private drop(reason: DropReason): void {
    this.drops[reason]++
  }
}
