// ICE servers for clients (RFC 9725 section 4.6): the Link header and coturn's REST credentials, as
// pure functions and through the whole proxy (on the 201 and on a discovery OPTIONS).
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { createHmac } from "node:crypto"
import { isIceServerUrl, joinLinks, linkHeader, turnCredentials } from "../../src/Http/IceServers.js"
import { fakeSrsApi } from "../support/fakeSrsApi.js"
import { httpRequest } from "../support/http.js"
import { live } from "../support/live.js"
import { minimalOffer } from "../support/offers.js"
import { startProxy } from "../support/proxy.js"

describe("IceServers (pure)", () => {
  it("accepts stun:, stuns:, turn: and turns: URLs only", () => {
    for (const url of ["stun:stun.example.net", "stuns:s.example.net:5349", "turn:t.example.net?transport=udp", "TURNS:t.example.net:443?transport=tcp"]) {
      assert.isTrue(isIceServerUrl(url), url)
    }
    for (const url of ["http://x", "stun:", "turn:a b", "turn:<x>", ""]) assert.isFalse(isIceServerUrl(url), url)
  })

  it("coturn REST credentials: username expiry:user, credential base64 HMAC-SHA1 of it", () => {
    const { credential, username } = turnCredentials("s3cret", 1_700_000_000)
    assert.strictEqual(username, "1700000000:rtc-proxy")
    assert.strictEqual(credential, createHmac("sha1", "s3cret").update("1700000000:rtc-proxy").digest("base64"))
  })

  it("one Link per URL; TURN with credentials when a secret is set; none without URLs", () => {
    assert.isUndefined(linkHeader([], { turnSecret: "x", nowMillis: 0, ttlMillis: 0 }))
    assert.strictEqual(
      linkHeader(["stun:s.example.net", "turn:t.example.net"], { turnSecret: undefined, nowMillis: 0, ttlMillis: 0 }),
      `<stun:s.example.net>; rel="ice-server", <turn:t.example.net>; rel="ice-server"`
    )
    const { credential } = turnCredentials("k", 1_000 + 60)
    assert.strictEqual(
      linkHeader(["stun:s.example.net", "turn:t.example.net"], { turnSecret: "k", nowMillis: 1_000_500, ttlMillis: 60_000 }),
      `<stun:s.example.net>; rel="ice-server", <turn:t.example.net>; rel="ice-server"; username="1060:rtc-proxy"; ` +
        `credential="${credential}"; credential-type="password"`
    )
  })

  it("joins the origin's links and the proxy's", () => {
    assert.strictEqual(joinLinks(undefined, undefined), undefined)
    assert.strictEqual(joinLinks("<a>", undefined), "<a>")
    assert.strictEqual(joinLinks("", "<b>"), "<b>")
    assert.strictEqual(joinLinks("<a>", "<b>"), "<a>, <b>")
  })
})

describe("ICE servers through the proxy", () => {
  live("PROXY_ICE_SERVERS: Link on the 201 (after the origin's) and on a discovery OPTIONS, not on a preflight", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy({ iceServers: ["stun:stun.example.net", "turn:turn.example.net?transport=udp"] })
      const origin = yield* fakeSrsApi()
      assert.strictEqual((yield* origin.register(proxy.systemUrl)).status, 200)
      const created = yield* httpRequest(proxy.endpoint("whip", "ice"), {
        method: "POST",
        headers: { "content-type": "application/sdp" },
        body: minimalOffer()
      })
      assert.strictEqual(created.status, 201, created.body)
      assert.strictEqual(
        created.headers["link"],
        `<stun:stun.example.net>; rel="ice-server", <turn:turn.example.net?transport=udp>; rel="ice-server"`
      )

      const discovery = yield* httpRequest(proxy.endpoint("whip", "ice"), { method: "OPTIONS" })
      assert.strictEqual(discovery.status, 204)
      assert.strictEqual(discovery.headers["accept-post"], "application/sdp")
      assert.include(String(discovery.headers["link"]), "rel=\"ice-server\"")

      const preflight = yield* httpRequest(proxy.endpoint("whip", "ice"), {
        method: "OPTIONS",
        headers: { origin: "https://page.example", "access-control-request-method": "POST" }
      })
      assert.strictEqual(preflight.status, 204)
      assert.isUndefined(preflight.headers["link"])
      assert.isDefined(preflight.headers["access-control-allow-methods"])
    }))

  live("with PROXY_TURN_SECRET, TURN links carry credentials that coturn accepts until the TTL", () =>
    Effect.gen(function*() {
      const proxy = yield* startProxy({
        iceServers: ["turn:turn.example.net"],
        turnSecret: Option.some("coturn-secret")
      })
      const discovery = yield* httpRequest(proxy.endpoint("whep", "ice"), { method: "OPTIONS" })
      const link = String(discovery.headers["link"])
      const [, username, credential] = /username="([^"]+)"; credential="([^"]+)"/.exec(link) ?? []
      assert.isDefined(username, link)
      assert.strictEqual(credential, createHmac("sha1", "coturn-secret").update(username!).digest("base64"))
      const expiresIn = Number(username!.split(":")[0]) - Date.now() / 1000
      assert.isAbove(expiresIn, 24 * 3600 - 60, "valid for PROXY_TURN_TTL (24h by default)")
      assert.isBelow(expiresIn, 24 * 3600 + 60)
    }))
})
