/**
 * The ceiling for a UDP relay in Node on this machine: one listening socket and, per client address,
 * one socket connected to the origin, forwarding both ways with as little code as possible. No STUN,
 * no ICE checks, no classification, no counters. It gets every platform-level advantage the proxy has,
 * so that the ratio measures the proxy's own code: the same kernel buffers (4 MiB on the listening
 * socket as PROXY_UDP_BUFFER_SIZE's default, up to 1 MiB on each per-client socket) and the same
 * shortcut past dgram's per-send address lookup (every destination is an IP literal).
 *
 * Started by bench/relay.ts with fork(); reports `{ port }` over IPC. By hand:
 * `node --import tsx bench/bareRelay.ts --origin-port 8000 [--origin-host 127.0.0.1] [--port 0]`.
 */
import * as dgram from "node:dgram"
import { parseArgs } from "node:util"

const { values: args } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    "origin-host": { type: "string", default: "127.0.0.1" },
    "origin-port": { type: "string" },
    "buffer-bytes": { type: "string", default: String(4 * 1024 * 1024) }
  }
})
const originHost = args["origin-host"]!
const originPort = Number(args["origin-port"])
const bufferBytes = Number(args["buffer-bytes"])
if (!(originPort > 0)) throw new Error("--origin-port is required")

interface Peer {
  readonly socket: dgram.Socket
  /** Datagrams that arrived while the socket was still connecting. */
  pending: Array<Buffer> | undefined
}

const sessionBufferBytes = Math.min(bufferBytes, 1024 * 1024)
const literalLookup = (address: string, _options: unknown, callback: (error: null, address: string, family: number) => void) =>
  callback(null, address, 4)
const lookup = literalLookup as unknown as dgram.SocketOptions["lookup"]

const server = dgram.createSocket({ type: "udp4", recvBufferSize: bufferBytes, sendBufferSize: bufferBytes, lookup })
const peers = new Map<string, Peer>()

server.on("message", (msg, rinfo) => {
  const key = `${rinfo.address}:${rinfo.port}`
  let peer = peers.get(key)
  if (peer === undefined) {
    const socket = dgram.createSocket({
      type: "udp4",
      recvBufferSize: sessionBufferBytes,
      sendBufferSize: sessionBufferBytes,
      lookup
    })
    const created: Peer = { socket, pending: [] }
    peer = created
    peers.set(key, created)
    const { address, port } = rinfo
    socket.on("message", (back) => server.send(back, port, address))
    socket.on("error", () => {})
    socket.bind(0, args.host!, () =>
      socket.connect(originPort, originHost, () => {
        for (const queued of created.pending!) socket.send(queued)
        created.pending = undefined
      })
    )
  }
  if (peer.pending !== undefined) peer.pending.push(msg)
  else peer.socket.send(msg)
})
server.on("error", () => {})

server.bind(Number(args.port), args.host!, () => {
  const port = server.address().port
  if (process.send !== undefined) process.send({ ready: true, port })
  else console.log(JSON.stringify({ port }))
})

// Between phases the benchmark closes every client socket; "reset" frees their relay sockets too.
process.on("message", (message) => {
  if (message !== "reset") return
  for (const peer of peers.values()) peer.socket.close()
  peers.clear()
  process.send?.("reset-done")
})
process.on("disconnect", () => process.exit(0))
process.on("SIGTERM", () => process.exit(0))
process.on("SIGINT", () => process.exit(0))
