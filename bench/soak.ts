/**
 * The long fuzz/soak run, for manual use (`npm run soak`): the real proxy (src/main.ts) and the echo
 * origin (bench/origin.ts) in their own processes on 127.0.0.1, a few live sessions sending media
 * the whole time, and a million junk datagrams (random, truncated and mutated STUN, lying lengths,
 * DTLS- and RTP-like, spoofed binding requests with a known ufrag and a wrong password) from other
 * addresses. At the end: did every live packet come back, in order, to its own session; did the
 * proxy count every drop by reason; did its memory stay flat; did it leave no socket behind.
 *
 * `npm run soak -- --junk 1000000 --sessions 4 --rate 20000`
 */
import { type ChildProcess, fork, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as dgram from "node:dgram"
import { readdirSync, readFileSync, readlinkSync } from "node:fs"
import { parseArgs } from "node:util"
import { encodeBindingRequest } from "../src/Stun.js"
import { minimalOffer } from "../test/support/offers.js"
import { defaultBackendEnv, freeTcpPort, freeUdpPort } from "../test/support/process.js"
import { npmStartNodeFlags } from "./npmStart.js"

const { values: args } = parseArgs({
  options: {
    junk: { type: "string", default: "1000000" },
    sessions: { type: "string", default: "4" },
    rate: { type: "string", default: "20000" }
  }
})
const JUNK = Number(args.junk)
const SESSIONS = Number(args.sessions)
// Junk datagrams per second; live media goes at 50 packets/s per session beside it.
const RATE = Number(args.rate)

const log = (line: string) => process.stderr.write(`${line}\n`)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const rssMb = (pid: number) => {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
  return match === null ? NaN : Number(match[1]) / 1024
}
const socketFds = (pid: number) =>
  readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")
    } catch {
      return false
    }
  }).length

const startOrigin = () =>
  new Promise<{ child: ChildProcess; apiPort: number; udpPort: number }>((resolve, reject) => {
    const child = fork("bench/origin.ts", [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "ignore", "inherit", "ipc"] })
    child.once("message", (message) => resolve({ child, ...(message as { apiPort: number; udpPort: number }) }))
    child.once("exit", (code) => reject(new Error(`origin exited with ${code}`)))
  })


const junkDatagram = (valid: Buffer): Buffer => {
  const kind = Math.floor(Math.random() * 7)
  switch (kind) {
    case 0:
      return randomBytes(Math.floor(Math.random() * 1300))
    case 1:
      return valid.subarray(0, Math.floor(Math.random() * valid.length))
    case 2: {
      const mutated = Buffer.from(valid)
      for (let i = 0; i < 3; i++) mutated[Math.floor(Math.random() * mutated.length)] = Math.floor(Math.random() * 256)
      return mutated
    }
    case 3: {
      const lying = Buffer.from(valid)
      lying.writeUInt16BE(0xfffc, 2)
      return lying
    }
    case 4:
      return valid // a spoofed binding request: known ufrag, wrong password
    case 5:
      return Buffer.concat([Buffer.from([20 + Math.floor(Math.random() * 44)]), randomBytes(200)])
    default:
      return Buffer.concat([Buffer.from([128 + Math.floor(Math.random() * 64)]), randomBytes(1100)])
  }
}

const main = async () => {
  const origin = await startOrigin()
  const [http, system, udp] = await Promise.all([freeTcpPort(), freeTcpPort(), freeUdpPort()])
  const proxy = spawn(process.execPath, [...npmStartNodeFlags(process.cwd()), "--import", "tsx", "src/main.ts"], {
    env: {
      ...process.env,
      ...defaultBackendEnv({ http, system, udp }, { apiPort: origin.apiPort, mediaPort: origin.udpPort }),
      PROXY_RATE_LIMIT: "0"
    },
    stdio: ["ignore", "ignore", "inherit"]
  })
  const stop = () => {
    proxy.kill("SIGTERM")
    origin.child.kill("SIGTERM")
  }
  process.once("SIGINT", () => {
    stop()
    process.exit(130)
  })
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${http}/api/v1/versions`)).ok) break
      } catch {
        if (i > 100) throw new Error("the proxy did not start")
      }
      await sleep(100)
    }

    // Live sessions, set up as a client does: offer, answer, a binding request with valid integrity.
    const live = await Promise.all(Array.from({ length: SESSIONS }, async (_, n) => {
      const ufrag = `soak${n}`
      const response = await fetch(`http://127.0.0.1:${http}/rtc/v1/whip/?app=soak&stream=s${n}`, {
        method: "POST",
        headers: { "content-type": "application/sdp" },
        body: minimalOffer(ufrag)
      })
      const answer = await response.text()
      if (response.status !== 201) throw new Error(`offer ${n}: ${response.status} ${answer}`)
      const serverUfrag = /a=ice-ufrag:(\S+)/.exec(answer)![1]!
      const serverPwd = /a=ice-pwd:(\S+)/.exec(answer)![1]!
      const socket = dgram.createSocket("udp4")
      await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve))
      const received: Array<number> = []
      socket.on("message", (msg) => {
        if (msg[0] === 0x80) received.push(msg.readUInt32BE(4))
      })
      const username = `${serverUfrag}:${ufrag}`
      socket.send(encodeBindingRequest({ username, password: serverPwd, useCandidate: true }), udp, "127.0.0.1")
      return { socket, received, username, serverPwd, sent: 0 }
    }))
    await sleep(300)

    const attackers = await Promise.all(Array.from({ length: 4 }, async () => {
      const socket = dgram.createSocket({ type: "udp4", sendBufferSize: 4 * 1024 * 1024 })
      await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve))
      let received = 0
      socket.on("message", () => received++)
      return { socket, received: () => received }
    }))
    const spoofed = encodeBindingRequest({ username: live[0]!.username, password: "not-the-server-password" })

    const rssBefore = rssMb(proxy.pid!)
    const socketsBefore = socketFds(proxy.pid!)
    log(`proxy pid ${proxy.pid}: RSS ${rssBefore.toFixed(1)} MB, ${socketsBefore} socket fds; sending ${JUNK.toLocaleString()} junk datagrams at ${RATE}/s`)
    const started = Date.now()
    let sent = 0
    let lastMedia = 0
    while (sent < JUNK) {
      const due = Math.min(JUNK, Math.floor(((Date.now() - started) / 1000) * RATE))
      // Bursts stay under what one event loop turn of the proxy reads (libuv: 32 per socket).
      const burst = Math.min(due - sent, 24)
      for (let i = 0; i < burst; i++) attackers[(sent + i) % attackers.length]!.socket.send(junkDatagram(spoofed), udp, "127.0.0.1")
      sent += burst
      if (Date.now() - lastMedia >= 20) {
        lastMedia = Date.now()
        for (const session of live) {
          const packet = Buffer.alloc(1200)
          packet[0] = 0x80
          packet.writeUInt32BE(session.sent++, 4)
          session.socket.send(packet, udp, "127.0.0.1")
          if (session.sent % 100 === 0) {
            session.socket.send(encodeBindingRequest({ username: session.username, password: session.serverPwd }), udp, "127.0.0.1")
          }
        }
      }
      if (sent % 100_000 < burst) log(`  ${sent.toLocaleString()} junk sent, proxy RSS ${rssMb(proxy.pid!).toFixed(1)} MB`)
      await new Promise((resolve) => setImmediate(resolve))
    }
    await sleep(1000)

    const stats = (await (await fetch(`http://127.0.0.1:${system}/api/v1/stats`)).json()) as {
      relay: { sessions: number; drops: Record<string, number> }
    }
    const drops = Object.values(stats.relay.drops).reduce((a, b) => a + b, 0)
    const rssAfter = rssMb(proxy.pid!)
    let intact = true
    for (const [n, session] of live.entries()) {
      const inOrder = session.received.every((seq, i) => seq === i)
      const complete = session.received.length === session.sent
      intact &&= inOrder && complete
      log(`session ${n}: sent ${session.sent}, received back ${session.received.length}${inOrder ? "" : " OUT OF ORDER"}`)
    }
    const attackersGot = attackers.reduce((a, b) => a + b.received(), 0)
    console.log(JSON.stringify({
      junkSent: JUNK,
      seconds: (Date.now() - started) / 1000,
      dropsCounted: drops,
      dropsByReason: Object.fromEntries(Object.entries(stats.relay.drops).filter(([, n]) => n > 0)),
      liveSessionsIntact: intact,
      attackersReceived: attackersGot,
      proxyRssMb: { before: Number(rssBefore.toFixed(1)), after: Number(rssAfter.toFixed(1)) },
      proxySocketFds: { before: socketsBefore, after: socketFds(proxy.pid!) }
    }, null, 2))
    for (const socket of [...live.map((s) => s.socket), ...attackers.map((a) => a.socket)]) socket.close()
    if (!intact || attackersGot > 0) process.exitCode = 1
  } finally {
    stop()
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
