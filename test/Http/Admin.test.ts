// The admin API on the system port: origins, streams, sessions (paged), ending a session, draining an
// origin; with the memory load balancer and with Redis (a real redis-server), behind the system token.
import { assert, describe } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { ProxyConfigShape } from "../../src/Config.js"
import { fakeSrsApi } from "../support/fakeSrsApi.js"
import { httpRequest } from "../support/http.js"
import { live } from "../support/live.js"
import { minimalOffer } from "../support/offers.js"
import { startProxy } from "../support/proxy.js"
import { REDIS_SERVER, redisServer } from "../support/redisServer.js"

const TOKEN = "adm1n"
const auth = { authorization: `Bearer ${TOKEN}` }

interface OriginView {
  readonly id: string
  readonly lastSeen: string
  readonly healthy: boolean
  readonly draining: boolean
  readonly streams: number
  readonly sessions: number
  readonly rtc: ReadonlyArray<string>
}

const json = <A>(body: string) => JSON.parse(body) as A

const modes: ReadonlyArray<readonly [string, Effect.Effect<Partial<ProxyConfigShape>, unknown, Scope.Scope>]> = [
  ["memory", Effect.succeed({})],
  ...(REDIS_SERVER === undefined ? [] : [[
    "redis",
    Effect.map(redisServer(), (server) => ({ loadBalancer: "redis" as const, redis: server.config("admin") }))
  ] as const])
]

for (const [mode, settings] of modes) {
  describe(`admin API (${mode})`, () => {
    const setup = Effect.gen(function*() {
      const proxy = yield* startProxy({ ...(yield* settings), systemApiToken: Option.some(TOKEN) })
      const one = yield* fakeSrsApi({ name: "one", ufragPrefix: "one" })
      const two = yield* fakeSrsApi({ name: "two", ufragPrefix: "two" })
      for (const origin of [one, two]) {
        const registered = yield* httpRequest(`${proxy.systemUrl}/api/v1/srs/register`, {
          method: "POST",
          headers: { "content-type": "application/json", ...auth },
          body: JSON.stringify(origin.heartbeatBody)
        })
        assert.strictEqual(registered.status, 200, registered.body)
      }
      const get = (path: string) => httpRequest(`${proxy.systemUrl}${path}`, { headers: auth })
      const send = (method: string, path: string) => httpRequest(`${proxy.systemUrl}${path}`, { method, headers: auth })
      const offer = (kind: "whip" | "whep", stream: string) =>
        httpRequest(proxy.endpoint(kind, stream), { method: "POST", headers: { "content-type": "application/sdp" }, body: minimalOffer() })
      const origins = Effect.map(get("/api/v1/origins"), (answer) => {
        assert.strictEqual(answer.status, 200, answer.body)
        return json<{ origins: Array<OriginView> }>(answer.body).origins.sort((a, b) => a.id.localeCompare(b.id))
      })
      return { proxy, one, two, get, send, offer, origins }
    })

    live("every admin route needs the system token", () =>
      Effect.gen(function*() {
        const { proxy } = yield* setup
        for (const [method, path] of [
          ["GET", "/api/v1/origins"],
          ["GET", "/api/v1/streams"],
          ["GET", "/api/v1/sessions"],
          ["DELETE", "/api/v1/sessions/abc"],
          ["POST", "/api/v1/origins/x/drain"],
          ["DELETE", "/api/v1/origins/x/drain"]
        ] as const) {
          assert.strictEqual((yield* httpRequest(`${proxy.systemUrl}${path}`, { method })).status, 401, `${method} ${path}`)
        }
      }))

    live("origins, streams and sessions: what each origin carries, and this proxy's relay sessions paged", () =>
      Effect.gen(function*() {
        const { get, offer, origins } = yield* setup
        for (const stream of ["s1", "s2", "s3"]) assert.strictEqual((yield* offer("whip", stream)).status, 201)
        assert.strictEqual((yield* offer("whep", "s1")).status, 201)

        const listed = yield* origins
        assert.lengthOf(listed, 2)
        for (const origin of listed) {
          assert.isTrue(origin.healthy)
          assert.isFalse(origin.draining)
          assert.isFalse(Number.isNaN(Date.parse(origin.lastSeen)))
          assert.deepStrictEqual(origin.rtc, ["udp://" + origin.rtc[0]!.split("://")[1]])
        }
        assert.strictEqual(listed.reduce((n, o) => n + o.streams, 0), 3)
        assert.strictEqual(listed.reduce((n, o) => n + o.sessions, 0), 4)

        const streams = json<{ streams: Array<{ streamUrl: string; originId: string; sessions: number }> }>((yield* get("/api/v1/streams")).body).streams
        assert.deepStrictEqual(
          streams.map((s) => [s.streamUrl, s.sessions]).sort(),
          [["__defaultVhost__/live/s1", 2], ["__defaultVhost__/live/s2", 1], ["__defaultVhost__/live/s3", 1]]
        )
        assert.isTrue(streams.every((s) => listed.some((o) => o.id === s.originId)))

        const page = json<{ total: number; offset: number; limit: number; sessions: Array<Record<string, unknown>> }>(
          (yield* get("/api/v1/sessions?offset=1&limit=2")).body
        )
        assert.strictEqual(page.total, 4)
        assert.strictEqual(page.offset, 1)
        assert.strictEqual(page.limit, 2)
        assert.lengthOf(page.sessions, 2)
        const first = page.sessions[0]!
        assert.deepStrictEqual(Object.keys(first).sort(), [
          "ageSeconds", "bytesFromClient", "bytesFromOrigin", "client", "id", "kind", "originId",
          "packetsFromClient", "packetsFromOrigin", "streamUrl"
        ])
        assert.strictEqual(first["packetsFromClient"], 0)
        assert.isNull(first["client"])
        const all = json<{ sessions: Array<{ id: string }> }>((yield* get("/api/v1/sessions")).body).sessions
        assert.lengthOf(all, 4)
        assert.deepStrictEqual(page.sessions.map((s) => s["id"]), all.slice(1, 3).map((s) => s.id))
        assert.strictEqual((yield* get("/api/v1/sessions?limit=0")).status, 400)
        assert.strictEqual((yield* get("/api/v1/sessions?offset=-1")).status, 400)
      }))

    live("DELETE /api/v1/sessions/{id} ends the session here and at its origin, as a client DELETE does", () =>
      Effect.gen(function*() {
        const { get, offer, one, proxy, send, two } = yield* setup
        const created = yield* offer("whip", "ending")
        const id = String(created.headers["location"]).split("/").pop()!
        const deleted = yield* send("DELETE", `/api/v1/sessions/${id}`)
        assert.strictEqual(deleted.status, 200, deleted.body)
        assert.strictEqual((yield* proxy.relay.stats).sessions, 0)
        assert.isTrue([...one.requests, ...two.requests].some((r) => r.method === "DELETE"), "the origin was told")
        assert.strictEqual(json<{ total: number }>((yield* get("/api/v1/sessions")).body).total, 0)
        assert.strictEqual((yield* send("DELETE", `/api/v1/sessions/${id}`)).status, 404)
        assert.strictEqual((yield* httpRequest(`${proxy.mediaUrl}${created.headers["location"]}`, { method: "DELETE" })).status, 404)
        // A publish of the stream is welcome again.
        assert.strictEqual((yield* offer("whip", "ending")).status, 201)
      }))

    live("a draining origin takes no new streams; its live streams stay; the drain can be ended", () =>
      Effect.gen(function*() {
        const { offer, origins, send } = yield* setup
        assert.strictEqual((yield* offer("whip", "before")).status, 201)
        const holder = (yield* origins).find((o) => o.streams === 1)!
        const drained = yield* send("POST", `/api/v1/origins/${holder.id}/drain`)
        assert.strictEqual(drained.status, 200, drained.body)
        assert.deepStrictEqual(json(drained.body), { code: 0, id: holder.id, draining: true })
        assert.isTrue((yield* origins).find((o) => o.id === holder.id)!.draining)

        for (let n = 0; n < 8; n++) assert.strictEqual((yield* offer("whip", `new${n}`)).status, 201)
        // A player of the live stream still meets its publisher on the draining origin.
        assert.strictEqual((yield* offer("whep", "before")).status, 201)
        const during = (yield* origins).find((o) => o.id === holder.id)!
        assert.strictEqual(during.streams, 1, "no new stream went to the draining origin")
        assert.strictEqual(during.sessions, 2)

        assert.strictEqual((yield* send("DELETE", `/api/v1/origins/${holder.id}/drain`)).status, 200)
        assert.isFalse((yield* origins).find((o) => o.id === holder.id)!.draining)
        assert.strictEqual((yield* send("POST", "/api/v1/origins/nobody/drain")).status, 404)
      }))
  })
}
