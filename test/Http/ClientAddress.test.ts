import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import { forwardedFor, hopAddress, parseTrustedProxies, resolve, type TrustedProxies } from "../../src/Http/ClientAddress.js"

const trusted = (text: string): TrustedProxies => Either.getOrThrow(parseTrustedProxies(text))

describe("parseTrustedProxies", () => {
  it("takes addresses and CIDR ranges, IPv4 and IPv6", () => {
    const list = trusted(" 10.0.0.0/8, 192.0.2.7 ,fd00::/8, ::1")
    assert.deepStrictEqual(list.entries, ["10.0.0.0/8", "192.0.2.7", "fd00::/8", "::1"])
    for (const ip of ["10.1.2.3", "192.0.2.7", "fd12::1", "::1", "::ffff:10.9.9.9"]) assert.isTrue(list.has(ip), ip)
    for (const ip of ["11.0.0.1", "192.0.2.8", "fe80::1", "::2", "not-an-ip"]) assert.isFalse(list.has(ip), ip)
  })

  it("an empty list trusts nobody", () => {
    assert.isFalse(trusted("").has("127.0.0.1"))
    assert.deepStrictEqual(trusted(" , ").entries, [])
  })

  it("refuses an entry that is no address or range, naming it", () => {
    for (const bad of ["10.0.0.0/33", "fd00::/129", "proxy.internal", "10.0.0.1/8/2", "10.0.0.0/x"]) {
      const parsed = parseTrustedProxies(`127.0.0.1, ${bad}`)
      assert.isTrue(Either.isLeft(parsed), bad)
      if (Either.isLeft(parsed)) assert.include(parsed.left, JSON.stringify(bad))
    }
  })
})

describe("hopAddress and forwardedFor", () => {
  it("reads the forms headers write", () => {
    assert.strictEqual(hopAddress("192.0.2.60"), "192.0.2.60")
    assert.strictEqual(hopAddress("192.0.2.43:47011"), "192.0.2.43")
    assert.strictEqual(hopAddress("\"[2001:db8:cafe::17]:4711\""), "2001:db8:cafe::17")
    assert.strictEqual(hopAddress("[::1]"), "::1")
    assert.strictEqual(hopAddress("2001:db8::1"), "2001:db8::1")
    assert.strictEqual(hopAddress("::ffff:198.51.100.1"), "198.51.100.1")
    assert.isUndefined(hopAddress("unknown"))
    assert.isUndefined(hopAddress("_hidden"))
  })

  it("takes for= of each Forwarded element, in any case, skipping elements without one", () => {
    assert.deepStrictEqual(
      forwardedFor("for=192.0.2.60;proto=http;by=203.0.113.43, proto=https, For=\"[2001:db8::1]:80\";host=x"),
      ["192.0.2.60", "\"[2001:db8::1]:80\""]
    )
  })
})

describe("resolve", () => {
  const proxies = trusted("10.0.0.0/8, fd00::/8")

  it("without trusted proxies the peer is the client; its X-Forwarded-For is passed on, not believed", () => {
    const client = resolve({ peer: "::ffff:203.0.113.5", forwarded: "for=1.1.1.1", xForwardedFor: "6.6.6.6", trusted: proxies })
    assert.deepStrictEqual(client, { address: "203.0.113.5", peer: "203.0.113.5", chain: ["6.6.6.6", "203.0.113.5"] })
  })

  it("a trusted peer without headers is the client", () => {
    assert.deepStrictEqual(resolve({ peer: "10.0.0.2", forwarded: undefined, xForwardedFor: undefined, trusted: proxies }), {
      address: "10.0.0.2",
      peer: "10.0.0.2",
      chain: ["10.0.0.2"]
    })
  })

  it("behind a trusted peer: the right-most X-Forwarded-For hop that is not trusted", () => {
    const client = resolve({ peer: "10.0.0.2", forwarded: undefined, xForwardedFor: "6.6.6.6, 198.51.100.7, 10.0.0.9", trusted: proxies })
    assert.strictEqual(client.address, "198.51.100.7")
    assert.deepStrictEqual(client.chain, ["6.6.6.6", "198.51.100.7", "10.0.0.9", "10.0.0.2"])
  })

  it("Forwarded comes before X-Forwarded-For, IPv6 with brackets and port", () => {
    const client = resolve({
      peer: "fd00::2",
      forwarded: "for=\"[2001:db8::17]:4711\", for=10.1.1.1",
      xForwardedFor: "6.6.6.6",
      trusted: proxies
    })
    assert.strictEqual(client.address, "2001:db8::17")
    assert.deepStrictEqual(client.chain, ["2001:db8::17", "10.1.1.1", "fd00::2"])
  })

  it("when every hop is trusted, the left-most is the client", () => {
    assert.strictEqual(resolve({ peer: "10.0.0.2", forwarded: undefined, xForwardedFor: "10.5.5.5, 10.0.0.9", trusted: proxies }).address, "10.5.5.5")
  })

  it("a hop that is no address stops the walk at the last trusted hop", () => {
    const client = resolve({ peer: "10.0.0.2", forwarded: "for=198.51.100.1, for=unknown, for=10.0.0.9", xForwardedFor: undefined, trusted: proxies })
    assert.strictEqual(client.address, "10.0.0.9")
    assert.deepStrictEqual(client.chain, ["198.51.100.1", "unknown", "10.0.0.9", "10.0.0.2"])
    assert.strictEqual(resolve({ peer: "10.0.0.2", forwarded: undefined, xForwardedFor: "garbage", trusted: proxies }).address, "10.0.0.2")
  })
})
