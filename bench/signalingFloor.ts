/**
 * The signaling floor: what a WHIP POST + DELETE costs in plain Node doing the proxy's I/O and no
 * more. The offer is read and its candidates stripped, sent to the origin over a keep-alive agent,
 * a UDP socket is bound and connected to the origin's media port, the answer's candidates are
 * rewritten, a random session id and entity-tag are minted, and one log line is written each way;
 * DELETE closes the socket and tells the origin. No load balancer, store, checks, metrics or Effect.
 * It is to signaling what bench/bareRelay.ts is to the relay: the platform's own cost, beside which
 * the proxy's is read. Started by the signaling phase with the Go proxy's environment
 * (PROXY_HTTP_API, PROXY_DEFAULT_BACKEND_IP/_API/_RTC), so either can stand in for the other.
 */
import { randomBytes } from "node:crypto"
import * as dgram from "node:dgram"
import * as http from "node:http"

const env = process.env
const port = Number(env["PROXY_HTTP_API"])
const originHost = env["PROXY_DEFAULT_BACKEND_IP"] ?? "127.0.0.1"
const originApi = Number(env["PROXY_DEFAULT_BACKEND_API"])
const originRtc = Number(env["PROXY_DEFAULT_BACKEND_RTC"])
const agent = new http.Agent({ keepAlive: true, scheduling: "lifo", timeout: 4000 })
const sessions = new Map<string, { readonly socket: dgram.Socket; readonly location: string | undefined }>()

interface Answer {
  readonly status: number
  readonly location: string | undefined
  readonly body: string
}

const toOrigin = (method: string, path: string, body?: string) =>
  new Promise<Answer>((resolve, reject) => {
    const headers: Record<string, string> = body === undefined
      ? {}
      : { "content-type": "application/sdp", "content-length": String(Buffer.byteLength(body)) }
    const outgoing = http.request({ host: originHost, port: originApi, method, path, agent, headers }, (response) => {
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on("end", () =>
        resolve({
          status: response.statusCode ?? 502,
          location: response.headers["location"],
          body: Buffer.concat(chunks).toString("utf8")
        }))
    })
    outgoing.on("error", reject)
    outgoing.end(body)
  })

const readBody = async (request: http.IncomingMessage) => {
  const chunks: Array<Buffer> = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString("utf8")
}

const lines = (sdp: string) => sdp.split("\r\n")

const publish = async (request: http.IncomingMessage, response: http.ServerResponse) => {
  const offer = await readBody(request)
  if (!offer.startsWith("v=0")) return void response.writeHead(400).end()
  const stripped = lines(offer).filter((line) => !line.startsWith("a=candidate:")).join("\r\n")
  const answer = await toOrigin("POST", request.url!, stripped)
  if (answer.status !== 201) return void response.writeHead(502).end()
  const socket = dgram.createSocket("udp4")
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve))
  await new Promise<void>((resolve) => socket.connect(originRtc, originHost, resolve))
  const id = randomBytes(16).toString("base64url")
  sessions.set(id, { socket, location: answer.location })
  const rewritten = lines(answer.body)
    .map((line) => line.startsWith("a=candidate:") ? `a=candidate:0 1 udp 2130706431 127.0.0.1 ${port} typ host` : line)
    .join("\r\n")
  console.log(`level=INFO message="publish via origin ${originHost}:${originApi}, session ${id}"`)
  response.writeHead(201, {
    "content-type": "application/sdp",
    location: `/rtc/v1/whip/sessions/${id}`,
    etag: `"${randomBytes(16).toString("base64url")}"`
  }).end(rewritten)
}

const end = async (request: http.IncomingMessage, response: http.ServerResponse) => {
  request.resume()
  const id = request.url!.slice(request.url!.lastIndexOf("/") + 1)
  const session = sessions.get(id)
  if (session === undefined) return void response.writeHead(404).end()
  sessions.delete(id)
  session.socket.close()
  console.log(`level=INFO message="session ended" session=${id}`)
  if (session.location !== undefined) {
    await toOrigin("DELETE", new URL(session.location, `http://${originHost}:${originApi}/`).pathname)
  }
  response.writeHead(200).end()
}

// Anything else (the bench's readiness check on /api/v1/versions): 200 with an empty JSON object.
const answerOther = async (request: http.IncomingMessage, response: http.ServerResponse) => {
  request.resume()
  response.writeHead(200, { "content-type": "application/json" }).end("{}")
}

const server = http.createServer((request, response) => {
  const handled = request.method === "POST" && request.url!.startsWith("/rtc/v1/whip/")
    ? publish(request, response)
    : request.method === "DELETE"
    ? end(request, response)
    : answerOther(request, response)
  handled.catch((error: unknown) => response.writeHead(502).end(String(error)))
})
server.listen(port, "127.0.0.1")
// Exits on the bench's SIGTERM (so that --cpu-prof, if given, writes its profile).
process.on("SIGTERM", () => process.exit(0))
