// Self-test of the werift SRS stand-in, without any proxy: publisher and player talk to it directly.
import * as http from "node:http"
import { describe, expect, it } from "@effect/vitest"
import { startSrsOrigin } from "../support/srsOrigin.ts"
import type { SrsOrigin } from "../support/srsOrigin.ts"
import { waitUntil, withTimeout } from "../support/wait.ts"
import { httpRequestPromise } from "../support/http.ts"
import { play, publish } from "../support/webrtcPeers.ts"
import type { Player, Publisher } from "../support/webrtcPeers.ts"

describe("srsOrigin (werift SRS stand-in)", () => {
  it("relays a WHIP publisher to a WHEP player and frees sessions on DELETE", async () => {
    const origin: SrsOrigin = await startSrsOrigin()
    let publisher: Publisher | undefined
    let player: Player | undefined
    try {
      const query = "?app=live&stream=selftest"
      publisher = await publish(`${origin.apiUrl}/rtc/v1/whip/${query}`, { headers: { Authorization: "Bearer t0k" } })
      expect(publisher.location).toMatch(
        new RegExp(`^${origin.apiUrl}/rtc/v1/whip/\\?action=delete&token=\\w+&app=live&stream=selftest&session=[^&:]+:[^&:]+$`)
      )
      await withTimeout("publisher connected", publisher.connected)

      player = await play(`${origin.apiUrl}/rtc/v1/whep/${query}`)
      expect(player.location).toMatch(/\/rtc\/v1\/whip\/\?action=delete&/) // SRS uses /whip/ for WHEP too
      expect(origin.sessions()).toBe(2)
      await withTimeout("first relayed packet", player.firstPacket)
      await waitUntil("10 relayed packets", () => player!.receivedPackets() >= 10)
      expect(publisher.sentPackets()).toBeGreaterThanOrEqual(10)

      const whip = origin.requests.find((r) => r.method === "POST" && r.url.startsWith("/rtc/v1/whip/"))
      expect(whip?.headers["authorization"]).toBe("Bearer t0k")
      expect(whip?.headers["content-type"]).toBe("application/sdp")
      expect(whip?.body).toMatch(/^a=msid:/m)

      for (const location of [player.location, publisher.location]) {
        const res = await httpRequestPromise(location, { method: "DELETE" })
        expect(res.status).toBe(200)
        expect(JSON.parse(res.body)).toEqual({ code: 0 })
      }
      expect(origin.sessions()).toBe(0)
    } finally {
      await player?.close()
      await publisher?.close()
      await origin.close()
    }
  })

  it("connects from an offer without candidates (peer-reflexive, as behind the proxy)", async () => {
    const origin = await startSrsOrigin()
    // Forward the offer the way the proxy does: no candidates, no end-of-candidates.
    const relay = await startSdpStripper(origin.apiUrl)
    let publisher: Publisher | undefined
    let player: Player | undefined
    try {
      // Player first: the origin answers it anyway and relays once the publisher arrives.
      player = await play(`${relay.url}/rtc/v1/whep/?app=live&stream=prflx`)
      publisher = await publish(`${relay.url}/rtc/v1/whip/?app=live&stream=prflx`)
      const forwarded = origin.requests.filter((r) => r.method === "POST")
      expect(forwarded).toHaveLength(2)
      for (const r of forwarded) expect(r.body).not.toMatch(/^a=(candidate|end-of-candidates)/m)
      await withTimeout("publisher connected", publisher.connected)
      await withTimeout("first relayed packet", player.firstPacket)
    } finally {
      await player?.close()
      await publisher?.close()
      await relay.close()
      await origin.close()
    }
    expect(origin.sessions()).toBe(0)
  })

  it("answers bad offers with 400 JSON, hangs up and delays on request", async () => {
    const origin = await startSrsOrigin()
    try {
      const notSdp = await httpRequestPromise(`${origin.apiUrl}/rtc/v1/whip/?app=live&stream=bad`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: "{}"
      })
      expect(notSdp.status).toBe(400)
      expect(JSON.parse(notSdp.body)).toMatchObject({ code: 5012 })

      const broken = await httpRequestPromise(`${origin.apiUrl}/rtc/v1/whep/?app=live&stream=bad`, {
        method: "POST",
        headers: { "Content-Type": "application/sdp" },
        body: "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
      })
      expect(broken.status).toBe(400)
      expect(origin.sessions()).toBe(0)

      await expect(
        httpRequestPromise(`${origin.apiUrl}/rtc/v1/whip/?app=live&stream=bad&hangup=1`, {
          method: "POST",
          headers: { "Content-Type": "application/sdp" },
          body: "v=0\r\n"
        })
      ).rejects.toThrow(/socket hang up|ECONNRESET/)

      const started = Date.now()
      const delayed = await httpRequestPromise(`${origin.apiUrl}/rtc/v1/whip/?action=delete&session=x&delay=300`, {
        method: "DELETE"
      })
      expect(delayed.status).toBe(200)
      expect(Date.now() - started).toBeGreaterThanOrEqual(290)
    } finally {
      await origin.close()
    }
  })

  it("posts SRS heartbeats with a bearer token", async () => {
    const beats: Array<{ auth: string | undefined; body: Record<string, unknown> }> = []
    const registry = http.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        beats.push({ auth: req.headers.authorization, body: JSON.parse(Buffer.concat(chunks).toString()) })
        res.end('{"code":0}')
      })
    })
    await new Promise<void>((resolve) => registry.listen(0, "127.0.0.1", resolve))
    const address = registry.address()
    if (address === null || typeof address === "string") throw new Error("no address")
    const origin = await startSrsOrigin({
      heartbeat: {
        url: `http://127.0.0.1:${address.port}/api/v1/srs/register`,
        intervalMs: 100,
        serverId: "vid-test",
        token: "s3cret"
      }
    })
    try {
      expect(beats.length).toBeGreaterThanOrEqual(1) // the first beat is sent before start resolves
      await waitUntil("three heartbeats", () => beats.length >= 3, 5_000)
      const body = origin.heartbeatBody()
      expect(body).toMatchObject({ ip: "127.0.0.1", server: "vid-test", api: [String(origin.apiPort)] })
      expect(typeof body["pid"]).toBe("string")
      expect(typeof body["service"]).toBe("string")
      expect(beats[0]).toEqual({ auth: "Bearer s3cret", body })
    } finally {
      await origin.close()
      const count = beats.length
      await new Promise((resolve) => setTimeout(resolve, 250))
      expect(beats.length).toBe(count) // heartbeats stopped
      registry.closeAllConnections()
      await new Promise((resolve) => registry.close(resolve))
    }
  })
})

/**
 * A minimal HTTP pass-through that strips candidates and a=end-of-candidates from offers, as the proxy
 * does, so the origin must learn the client from its incoming checks (peer-reflexive).
 */
const startSdpStripper = async (target: string): Promise<{ url: string; close: () => Promise<void> }> => {
  const server = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const body = Buffer.concat(chunks)
        .toString()
        .split("\r\n")
        .filter((line) => !/^a=(candidate|end-of-candidates)/.test(line))
        .join("\r\n")
      const headers: Record<string, string> = {}
      if (typeof req.headers["content-type"] === "string") headers["Content-Type"] = req.headers["content-type"]
      httpRequestPromise(`${target}${req.url ?? "/"}`, { method: req.method ?? "POST", headers, body }).then(
        (answer) => {
          const out: Record<string, string> = {}
          for (const name of ["content-type", "location"]) {
            const value = answer.headers[name]
            if (typeof value === "string") out[name] = value
          }
          res.writeHead(answer.status, out)
          res.end(answer.body)
        },
        () => req.socket.destroy()
      )
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const address = server.address()
  if (address === null || typeof address === "string") throw new Error("no address")
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}
