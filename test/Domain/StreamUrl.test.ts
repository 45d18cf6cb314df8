import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import {
  DEFAULT_APP,
  DEFAULT_STREAM,
  DEFAULT_VHOST,
  fromRequest,
  fromWebrtcUrl,
  hostnameOf,
  make,
  vhostFromHost
} from "../../src/Domain/StreamUrl.ts"
import type { StreamUrl } from "../../src/Domain/StreamUrl.ts"
import { StreamKey } from "../../src/Domain/StreamUrl.ts"

const right = (result: Either.Either<StreamUrl, string>): StreamUrl => {
  if (Either.isLeft(result)) return assert.fail(`expected a stream URL, got: ${result.left}`)
  return result.right
}
const left = (result: Either.Either<StreamUrl, string>): string => {
  if (Either.isRight(result)) return assert.fail(`expected an error, got ${result.right.key}`)
  return result.left
}
const query = (text: string) => new URLSearchParams(text)

describe("hostnameOf", () => {
  it("a name", () => {
    assert.strictEqual(hostnameOf("example.com"), "example.com")
  })

  it("name:port", () => {
    assert.strictEqual(hostnameOf("example.com:11985"), "example.com")
    assert.strictEqual(hostnameOf("10.0.0.7:1985"), "10.0.0.7")
  })

  it("[v6]:port and [v6]", () => {
    assert.strictEqual(hostnameOf("[2001:db8::1]:11985"), "2001:db8::1")
    assert.strictEqual(hostnameOf("[::1]"), "::1")
  })

  it("a bare IPv6 literal (more than one colon) is kept whole", () => {
    assert.strictEqual(hostnameOf("2001:db8::1"), "2001:db8::1")
    assert.strictEqual(hostnameOf("::1"), "::1")
  })

  it("upper case is lowered, surrounding white space trimmed", () => {
    assert.strictEqual(hostnameOf(" Live.Example.COM:8080 "), "live.example.com")
    assert.strictEqual(hostnameOf("[2001:DB8::A]:1"), "2001:db8::a")
  })
})

describe("vhostFromHost", () => {
  it("an IPv4 literal is the default vhost, with or without port", () => {
    assert.strictEqual(vhostFromHost("10.0.0.7"), DEFAULT_VHOST)
    assert.strictEqual(vhostFromHost("10.0.0.7:11985"), DEFAULT_VHOST)
  })

  it("an IPv6 literal is the default vhost, bracketed or bare", () => {
    assert.strictEqual(vhostFromHost("[::1]:11985"), DEFAULT_VHOST)
    assert.strictEqual(vhostFromHost("2001:db8::1"), DEFAULT_VHOST)
  })

  it("a name without a dot is the default vhost", () => {
    assert.strictEqual(vhostFromHost("localhost"), DEFAULT_VHOST)
    assert.strictEqual(vhostFromHost("localhost:11985"), DEFAULT_VHOST)
  })

  it("a domain name is the vhost, lower-cased and without port", () => {
    assert.strictEqual(vhostFromHost("Live.Example.com:11985"), "live.example.com")
  })

  it("no Host (or an empty one) is the default vhost", () => {
    assert.strictEqual(vhostFromHost(undefined), DEFAULT_VHOST)
    assert.strictEqual(vhostFromHost(""), DEFAULT_VHOST)
  })
})

describe("fromRequest", () => {
  it("defaults: __defaultVhost__/live/livestream", () => {
    const url = right(fromRequest(query(""), undefined))
    assert.deepStrictEqual(url, {
      vhost: DEFAULT_VHOST,
      app: DEFAULT_APP,
      stream: DEFAULT_STREAM,
      key: "__defaultVhost__/live/livestream"
    })
  })

  it("app and stream from the query; empty parameters fall back to the defaults", () => {
    assert.strictEqual(right(fromRequest(query("app=show&stream=cam1"), "10.0.0.7")).key, "__defaultVhost__/show/cam1")
    assert.strictEqual(right(fromRequest(query("app=&stream=%20"), "10.0.0.7")).key, "__defaultVhost__/live/livestream")
  })

  it("vhost from the Host when it is a domain", () => {
    assert.strictEqual(right(fromRequest(query("app=live&stream=s"), "media.example.com")).key, "media.example.com/live/s")
  })

  it("vhost= beats domain=, which beats the Host", () => {
    const host = "media.example.com"
    assert.strictEqual(right(fromRequest(query("vhost=v.example&domain=d.example&stream=s"), host)).vhost, "v.example")
    assert.strictEqual(right(fromRequest(query("domain=d.example&stream=s"), host)).vhost, "d.example")
    assert.strictEqual(right(fromRequest(query("vhost=&domain=d.example&stream=s"), host)).vhost, "d.example")
    assert.strictEqual(right(fromRequest(query("stream=s"), host)).vhost, host)
  })

  it("a Host with and without a port gives the same key (the Go proxy gave two)", () => {
    // The Go proxy took the hostname only when Host had a port, and __defaultVhost__ otherwise, so a
    // publisher and a player reaching it with and without the port landed on two keys (two origins).
    const q = query("app=live&stream=s")
    for (const [bare, withPort] of [
      ["media.example.com", "media.example.com:11985"],
      ["127.0.0.1", "127.0.0.1:11985"],
      ["localhost", "localhost:11985"],
      ["MEDIA.example.com", "media.example.com:443"],
      ["::1", "[::1]:11985"]
    ] as const) {
      assert.strictEqual(right(fromRequest(q, bare)).key, right(fromRequest(q, withPort)).key, `${bare} / ${withPort}`)
    }
  })

  it("rejects a name with a space", () => {
    assert.include(left(fromRequest(query("stream=my%20stream"), undefined)), "stream")
    assert.include(left(fromRequest(query("vhost=a%20b"), undefined)), "vhost")
  })

  it("rejects a name with a control character", () => {
    assert.include(left(fromRequest(query("app=li%00ve"), undefined)), "app")
    assert.include(left(fromRequest(query("stream=s%0Ax"), undefined)), "stream")
  })

  it("rejects a name longer than 255 characters, accepts 255", () => {
    assert.include(left(fromRequest(query(`stream=${"s".repeat(256)}`), undefined)), "longer than 255")
    assert.strictEqual(right(fromRequest(query(`stream=${"s".repeat(255)}`), undefined)).stream, "s".repeat(255))
  })

  it("rejects characters that would break a URL or a Redis key", () => {
    for (const bad of ["a?b", "a#b", "a\"b", "a<b", "/lead", "trail/", "a//b", "a\\b"]) {
      assert.isTrue(Either.isLeft(fromRequest(query(`stream=${encodeURIComponent(bad)}`), undefined)), bad)
    }
  })

  it("an app with a nested path is allowed", () => {
    assert.strictEqual(right(fromRequest(query("app=live/sub&stream=s"), undefined)).key, "__defaultVhost__/live/sub/s")
  })
})

describe("make", () => {
  it("says which part is unusable", () => {
    assert.deepStrictEqual(
      make({ vhost: "v.example", app: "live", stream: "s" }),
      Either.right({ vhost: "v.example", app: "live", stream: "s", key: StreamKey.make("v.example/live/s") })
    )
    assert.match(left(make({ vhost: "v.example", app: "", stream: "s" })), /^app /)
  })
})

describe("fromWebrtcUrl", () => {
  it("host with port: the port is not part of the vhost", () => {
    assert.strictEqual(right(fromWebrtcUrl("webrtc://media.example.com:1985/live/cam")).key, "media.example.com/live/cam")
    assert.strictEqual(right(fromWebrtcUrl("webrtc://10.0.0.7:1985/live/cam")).key, "__defaultVhost__/live/cam")
    assert.strictEqual(right(fromWebrtcUrl("webrtc://[::1]:1985/live/cam")).key, "__defaultVhost__/live/cam")
  })

  it("vhost (or domain) from the query", () => {
    assert.strictEqual(right(fromWebrtcUrl("webrtc://10.0.0.7/live/cam?vhost=v.example")).key, "v.example/live/cam")
    assert.strictEqual(right(fromWebrtcUrl("webrtc://10.0.0.7/live/cam?domain=d.example")).key, "d.example/live/cam")
  })

  it("a nested app: the last segment is the stream", () => {
    const url = right(fromWebrtcUrl("webrtc://media.example.com/live/region/eu/cam"))
    assert.strictEqual(url.app, "live/region/eu")
    assert.strictEqual(url.stream, "cam")
  })

  it("the same key as the WHIP/WHEP request for the same stream", () => {
    assert.strictEqual(
      right(fromWebrtcUrl("webrtc://media.example.com/live/cam")).key,
      right(fromRequest(query("app=live&stream=cam"), "media.example.com:11985")).key
    )
  })

  it("missing stream", () => {
    assert.include(left(fromWebrtcUrl("webrtc://media.example.com/live")), "no app and stream")
    assert.include(left(fromWebrtcUrl("webrtc://media.example.com/")), "no app and stream")
  })

  it("not a URL", () => {
    assert.include(left(fromWebrtcUrl("live/cam")), "is not a URL")
    assert.include(left(fromWebrtcUrl("")), "is not a URL")
  })
})
