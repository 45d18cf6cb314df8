/**
 * The load generator: N client UDP sockets on 127.0.0.1, set up the way real clients set up a
 * session, then RTP-sized packets at a target rate spread over the sessions, echoed back by the
 * origin, with loss and round-trip times counted per step. It runs inside the orchestrator's process
 * (bench/relay.ts), so it shares the machine's cores with the processes it measures.
 *
 * - `proxy`: per session a WHIP POST with a minimal SDP offer to the proxy, the answer's ICE
 *   credentials and candidate port parsed, a STUN binding request with USERNAME
 *   `<answer ufrag>:<offer ufrag>` and MESSAGE-INTEGRITY (key: the answer's ice-pwd) sent to that
 *   port and its echo awaited; DELETE on the session URL at the end.
 * - `bare`: straight to the bare dgram relay (no signaling, no STUN): a first packet per session
 *   makes the relay open its origin socket, and its echo is awaited.
 * - `direct`: straight to the echo origin, the same way.
 *
 * Packet layout (default 1200 bytes): a 12-byte RTP header (0x80, PT 96, 16-bit sequence number,
 * timestamp, SSRC = session index), then the step's 32-bit sequence number at offset 12, the send time
 * from process.hrtime.bigint() at 16 (64 bits, ns) and the step id at 24 (16 bits).
 */
import { randomBytes } from "node:crypto"
import * as dgram from "node:dgram"
import * as http from "node:http"
import { performance } from "node:perf_hooks"
import { encodeBindingRequest } from "../src/Stun.js"
import { type HttpResult, httpRequestPromise } from "../test/support/http.js"
import { iceString, minimalOffer } from "../test/support/offers.js"

export type PathKind = "proxy" | "bare" | "direct"

export interface LoadTarget {
  readonly kind: PathKind
  readonly host: string
  /** proxy: its HTTP API base URL (`http://127.0.0.1:<port>`). */
  readonly httpBase?: string
  /** bare and direct: the UDP port packets go to (proxy: from each answer's candidate). */
  readonly udpPort?: number
}

export interface LoadOptions {
  readonly host: string
  readonly payloadBytes: number
  /** Receive buffer of each client socket. */
  readonly recvBufferBytes: number
  /** Concurrent signaling requests. */
  readonly signalingConcurrency: number
  readonly log: (line: string) => void
}

export interface RttSummary {
  readonly samples: number
  readonly meanMicros: number
  readonly p50Micros: number
  readonly p90Micros: number
  readonly p99Micros: number
  readonly p999Micros: number
  readonly maxMicros: number
}

export interface StepResult {
  /** Offered rate, client packets per second (one way, all sessions). */
  readonly rate: number
  readonly sessions: number
  readonly sent: number
  /** Echoes received (each crossed the relay twice). */
  readonly received: number
  readonly lossRatio: number
  readonly duplicates: number
  /** Seconds from the first send to the last. */
  readonly sendSeconds: number
  /** Rate actually achieved by the generator. */
  readonly achievedRate: number
  /** The generator could not send at the offered rate (fell more than 3% behind). */
  readonly generatorBehind: boolean
  /** Relayed packets per second: 2 x echoes received / send duration. */
  readonly relayedPerSecond: number
  readonly rtt: RttSummary | undefined
  /** Send errors on client sockets (ICMP unreachable, ENOBUFS). */
  readonly sendErrors: number
  /** Every round-trip time in µs, in arrival order, when asked for. */
  readonly rtts?: Float64Array
  /**
   * Median RTT of the last fifth of the echoes minus that of the first fifth (arrival order, µs): a
   * relay slower than the offered rate builds a growing queue in its receive buffer long before
   * that buffer overflows, so this tells an unsustainable rate apart even when a short step ends
   * before any loss.
   */
  readonly queueGrowthMicros: number | undefined
}

export interface StepOptions {
  /** Client packets per second, all sessions together. */
  readonly rate: number
  /** Either a number of packets or a duration. */
  readonly packets?: number
  readonly seconds?: number
  /** How long to wait for stragglers after the last echo arrived (default 300 ms). */
  readonly quietMillis?: number
  /** Return every round-trip time (to pool several steps). */
  readonly keepRtts?: boolean
}

/** The time a session's POST and its DELETE each took, from the request's start to the answer's end. */
export interface SignaledSession {
  readonly postMicros: number
  readonly deleteMicros: number
}

/**
 * One session signaled and ended as a client does: WHIP POST with a minimal offer to
 * `<httpBase>/rtc/v1/whip/?app=<app>&stream=<stream>`, then DELETE on the answer's Location. A wrong
 * status or a failed request comes back as `error`, in a few words.
 */
export const postAndDelete = async (
  httpBase: string,
  app: string,
  stream: string,
  agent: http.Agent
): Promise<SignaledSession | { readonly error: string }> => {
  try {
    const posted = performance.now()
    const created = await httpRequestPromise(`${httpBase}/rtc/v1/whip/?app=${app}&stream=${stream}`, {
      method: "POST",
      headers: { "content-type": "application/sdp" },
      body: minimalOffer(iceString(8), iceString(24)),
      agent,
      timeoutMs: 15_000
    })
    const answered = performance.now()
    const location = created.headers["location"]
    if (created.status !== 201 || location === undefined) return { error: `POST ${created.status}` }
    const deleted = await httpRequestPromise(new URL(location, `${httpBase}/`).toString(), { method: "DELETE", agent, timeoutMs: 15_000 })
    if (deleted.status !== 200) return { error: `DELETE ${deleted.status}` }
    return { postMicros: (answered - posted) * 1000, deleteMicros: (performance.now() - answered) * 1000 }
  } catch (error) {
    return { error: (error as Error).message.slice(0, 80) }
  }
}

/** Runs `fn` over `items` with at most `limit` running at once; the first failure rejects. */
export const mapLimit = async <A, B>(items: ReadonlyArray<A>, limit: number, fn: (item: A, index: number) => Promise<B>) => {
  const results = new Array<B>(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await fn(items[index]!, index)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export interface ParsedAnswer {
  readonly ufrag: string
  readonly pwd: string
  readonly candidateIp: string
  readonly candidatePort: number
}

export const parseAnswer = (sdp: string): ParsedAnswer => {
  const ufrag = /^a=ice-ufrag:(\S+)/m.exec(sdp)?.[1]
  const pwd = /^a=ice-pwd:(\S+)/m.exec(sdp)?.[1]
  const candidate = /^a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host/im.exec(sdp)
  if (ufrag === undefined || pwd === undefined || candidate === null) {
    throw new Error(`answer without ICE credentials or UDP host candidate:\n${sdp}`)
  }
  return { ufrag, pwd, candidateIp: candidate[1]!, candidatePort: Number(candidate[2]) }
}

const percentile = (sorted: Float64Array, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!

export const summarize = (rtts: Float64Array): RttSummary | undefined => {
  if (rtts.length === 0) return undefined
  const sorted = Float64Array.from(rtts).sort()
  let sum = 0
  for (const value of sorted) sum += value
  return {
    samples: sorted.length,
    meanMicros: sum / sorted.length,
    p50Micros: percentile(sorted, 0.5),
    p90Micros: percentile(sorted, 0.9),
    p99Micros: percentile(sorted, 0.99),
    p999Micros: percentile(sorted, 0.999),
    maxMicros: sorted[sorted.length - 1]!
  }
}

const median = (values: Float64Array) => {
  const sorted = Float64Array.from(values).sort()
  return sorted.length === 0 ? 0 : sorted[Math.floor((sorted.length - 1) / 2)]!
}

/** Median RTT of the last fifth minus the first fifth; undefined with too few samples. */
export const queueGrowth = (rtts: Float64Array): number | undefined => {
  if (rtts.length < 50) return undefined
  const fifth = Math.floor(rtts.length / 5)
  return median(rtts.subarray(rtts.length - fifth)) - median(rtts.subarray(0, fifth))
}

interface Session {
  readonly index: number
  readonly socket: dgram.Socket
  /** Absolute URL of the proxy session (for DELETE). */
  location: string | undefined
  /** Resolves the handshake (STUN echo, or the first packet's echo). */
  waiter: ((msg: Buffer) => void) | undefined
}

interface StepState {
  readonly id: number
  readonly total: number
  readonly received: Uint8Array
  readonly rtts: Float64Array
  count: number
  duplicates: number
  lastAt: number
}

const HANDSHAKE_STEP = 0
const OFFSET_SEQ = 12
const OFFSET_TIME = 16
const OFFSET_STEP = 24
const MIN_PACKET = 26

/** One set of client sessions on one path. */
export class SessionGroup {
  private readonly sessions: Array<Session> = []
  private step: StepState | undefined
  private stepCounter = 0
  private sendErrors = 0
  private readonly template: Buffer
  /** Echoes that arrived for no current step (late from an earlier step). */
  stray = 0
  /** Signaling requests repeated after 429/503. */
  retries = 0

  constructor(readonly target: LoadTarget, private readonly options: LoadOptions, private readonly agent: http.Agent) {
    this.template = Buffer.alloc(Math.max(MIN_PACKET, options.payloadBytes))
    this.template[0] = 0x80
    this.template[1] = 96
  }

  get size(): number {
    return this.sessions.length
  }

  /** Opens `count` sessions (signaling and ICE check for the proxy; a first echoed packet otherwise). */
  async open(count: number, label: string): Promise<void> {
    const started = performance.now()
    const indexes = Array.from({ length: count }, (_, i) => this.sessions.length + i)
    await mapLimit(indexes, this.target.kind === "proxy" ? this.options.signalingConcurrency : 64, (index) =>
      this.openOne(index, label)
    )
    this.options.log(
      `${this.target.kind}: ${count} session(s) ready in ${((performance.now() - started) / 1000).toFixed(1)} s`
    )
  }

  private async bindSocket(): Promise<dgram.Socket> {
    const socket = dgram.createSocket({
      type: "udp4",
      recvBufferSize: this.options.recvBufferBytes,
      sendBufferSize: this.options.recvBufferBytes
    })
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject)
      socket.bind(0, this.options.host, () => {
        socket.off("error", reject)
        resolve()
      })
    })
    socket.on("error", () => {
      this.sendErrors++
    })
    return socket
  }

  private async openOne(index: number, label: string): Promise<void> {
    const socket = await this.bindSocket()
    const session: Session = { index, socket, location: undefined, waiter: undefined }
    socket.on("message", (msg: Buffer) => this.receive(session, msg))
    this.sessions.push(session)
    let remoteHost = this.target.host
    let remotePort = this.target.udpPort ?? 0
    let handshake: () => Buffer
    if (this.target.kind === "proxy") {
      const ufrag = iceString(8)
      const pwd = iceString(24)
      const url = `${this.target.httpBase}/rtc/v1/whip/?app=bench&stream=${label}-${index}-${iceString(6).replace(/[+/]/g, "x")}`
      let response: HttpResult
      for (let attempt = 1; ; attempt++) {
        response = await httpRequestPromise(url, {
          method: "POST",
          headers: { "content-type": "application/sdp" },
          body: minimalOffer(ufrag, pwd),
          agent: this.agent,
          timeoutMs: 15_000
        })
        // Rate limited or full: wait as told (a few times), as a polite client would.
        if ((response.status !== 429 && response.status !== 503) || attempt >= 5) break
        this.retries++
        await sleep(Math.min(2000, Number(response.headers["retry-after"] ?? 1) * 1000))
      }
      if (response.status !== 201) throw new Error(`WHIP POST answered ${response.status}: ${response.body}`)
      const location = response.headers["location"]
      if (location === undefined) throw new Error("WHIP POST answered without Location")
      session.location = new URL(location, `${this.target.httpBase}/`).toString()
      const answer = parseAnswer(response.body)
      remoteHost = answer.candidateIp
      remotePort = answer.candidatePort
      handshake = () =>
        encodeBindingRequest({
          username: `${answer.ufrag}:${ufrag}`,
          password: answer.pwd,
          priority: 1853817087,
          iceControlling: BigInt.asUintN(64, BigInt(`0x${randomBytes(8).toString("hex")}`)),
          useCandidate: true
        })
    } else {
      handshake = () => {
        const first = Buffer.from(this.template)
        first.writeUInt32BE(index, 8)
        first.writeUInt16BE(HANDSHAKE_STEP, OFFSET_STEP)
        return first
      }
    }
    await new Promise<void>((resolve, reject) => {
      socket.connect(remotePort, remoteHost, ((error?: Error) => (error ? reject(error) : resolve())) as () => void)
    })
    // Checks are retransmitted as ICE agents do (every 100 ms here) until one is echoed back.
    for (let attempt = 0; ; attempt++) {
      const echoed = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          session.waiter = undefined
          resolve(false)
        }, 100 + attempt * 50)
        session.waiter = () => {
          clearTimeout(timer)
          session.waiter = undefined
          resolve(true)
        }
      })
      socket.send(handshake())
      if (await echoed) return
      if (attempt >= 40) throw new Error(`${this.target.kind} session ${index}: no echo of its first packet after ${attempt + 1} tries`)
    }
  }

  private receive(session: Session, msg: Buffer): void {
    if (msg.length >= MIN_PACKET && msg[0] === 0x80) {
      const step = this.step
      const stepId = msg.readUInt16BE(OFFSET_STEP)
      if (stepId === HANDSHAKE_STEP) {
        session.waiter?.(msg)
        return
      }
      if (step === undefined || stepId !== step.id) {
        this.stray++
        return
      }
      const seq = msg.readUInt32BE(OFFSET_SEQ)
      if (seq >= step.total || step.received[seq] === 1) {
        step.duplicates++
        return
      }
      const now = process.hrtime.bigint()
      step.received[seq] = 1
      step.rtts[step.count++] = Number(now - msg.readBigUInt64BE(OFFSET_TIME)) / 1000
      step.lastAt = performance.now()
      return
    }
    // A STUN message (first byte 0-3): the echo of a binding request.
    if (msg.length >= 20 && msg[0]! <= 3) session.waiter?.(msg)
  }

  /** Sends at `rate` packets per second (round robin over the sessions) and counts the echoes. */
  run(options: StepOptions): Promise<StepResult> {
    const sessions = this.sessions
    if (sessions.length === 0) return Promise.reject(new Error("no sessions"))
    const rate = options.rate
    const total = Math.max(1, Math.round(options.packets ?? rate * (options.seconds ?? 1)))
    this.stepCounter = (this.stepCounter % 0xfffe) + 1
    const step: StepState = {
      id: this.stepCounter,
      total,
      received: new Uint8Array(total),
      rtts: new Float64Array(total),
      count: 0,
      duplicates: 0,
      lastAt: 0
    }
    this.step = step
    const errorsBefore = this.sendErrors
    const template = this.template
    const size = template.length
    const quietMillis = options.quietMillis ?? 300
    return new Promise((resolve) => {
      let sent = 0
      const started = performance.now()
      let sendEnded = 0
      const sendOne = () => {
        const seq = sent++
        const buf = Buffer.allocUnsafe(size)
        template.copy(buf)
        buf.writeUInt16BE(seq & 0xffff, 2)
        buf.writeUInt32BE((seq * 3000) >>> 0, 4)
        const session = sessions[seq % sessions.length]!
        buf.writeUInt32BE(session.index, 8)
        buf.writeUInt32BE(seq, OFFSET_SEQ)
        buf.writeBigUInt64BE(process.hrtime.bigint(), OFFSET_TIME)
        buf.writeUInt16BE(step.id, OFFSET_STEP)
        session.socket.send(buf)
      }
      const finish = () => {
        this.step = undefined
        const sendSeconds = Math.max(1e-6, (sendEnded - started) / 1000)
        // The last packet leaves at (total - 1) / rate after the first one.
        const plannedSeconds = Math.max(1e-6, (total - 1) / rate)
        const achievedRate = total <= 1 ? rate : (total - 1) / sendSeconds
        resolve({
          rate,
          sessions: sessions.length,
          sent: total,
          received: step.count,
          lossRatio: (total - step.count) / total,
          duplicates: step.duplicates,
          sendSeconds,
          achievedRate,
          generatorBehind: total > 1 && sendSeconds > plannedSeconds * 1.03 + 0.005,
          relayedPerSecond: (2 * step.count) / Math.max(sendSeconds, plannedSeconds, 1 / rate),
          rtt: summarize(step.rtts.subarray(0, step.count)),
          queueGrowthMicros: queueGrowth(step.rtts.subarray(0, step.count)),
          sendErrors: this.sendErrors - errorsBefore,
          ...(options.keepRtts ? { rtts: step.rtts.subarray(0, step.count) } : {})
        })
      }
      const drain = () => {
        const now = performance.now()
        const quietSince = Math.max(step.lastAt, sendEnded)
        if (step.count >= total || now - quietSince >= quietMillis || now - sendEnded > 5000) finish()
        else setTimeout(drain, 10)
      }
      const tick = () => {
        const due = Math.min(total, Math.floor(((performance.now() - started) * rate) / 1000) + 1)
        while (sent < due) sendOne()
        if (sent >= total) {
          clearInterval(timer)
          sendEnded = performance.now()
          setTimeout(drain, 10)
        }
      }
      const timer = setInterval(tick, 1)
      tick()
    })
  }

  /** Ends every session: DELETE at the proxy, sockets closed. */
  async close(): Promise<void> {
    const sessions = this.sessions.splice(0)
    await mapLimit(sessions, this.options.signalingConcurrency, async (session) => {
      if (session.location !== undefined) {
        try {
          const response = await httpRequestPromise(session.location, { method: "DELETE", agent: this.agent, timeoutMs: 15_000 })
          if (response.status !== 200) this.options.log(`DELETE ${session.location} answered ${response.status}`)
        } catch (error) {
          this.options.log(`DELETE ${session.location}: ${(error as Error).message}`)
        }
      }
      await new Promise<void>((resolve) => {
        try {
          session.socket.close(() => resolve())
        } catch {
          resolve()
        }
      })
    })
  }
}

/** Keeps one keep-alive HTTP agent for all signaling. */
export class LoadGenerator {
  private agent: http.Agent

  constructor(readonly options: LoadOptions) {
    this.agent = this.newAgent()
  }

  private newAgent() {
    return new http.Agent({ keepAlive: true, maxSockets: this.options.signalingConcurrency })
  }

  /** Closes the idle keep-alive connections (before counting the proxy's descriptors). */
  resetAgent(): void {
    this.agent.destroy()
    this.agent = this.newAgent()
  }

  get httpAgent(): http.Agent {
    return this.agent
  }

  async sessions(target: LoadTarget, count: number, label: string): Promise<SessionGroup> {
    const group = new SessionGroup(target, this.options, this.agent)
    try {
      await group.open(count, label)
    } catch (error) {
      await group.close()
      throw error
    }
    return group
  }
}
