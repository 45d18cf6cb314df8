import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import { apiBaseUrl, fixed, fromRegistration, OriginId, parseListen, udpRtcPort } from "../../src/Domain/Origin.ts"
import type { ListenEndpoint, Origin } from "../../src/Domain/Origin.ts"

const listen = (value: string): ListenEndpoint => {
  const result = parseListen(value)
  if (Either.isLeft(result)) return assert.fail(`expected ${value} to parse: ${result.left}`)
  return result.right
}

const registered = (body: unknown): Origin => {
  const result = fromRegistration(body)
  if (Either.isLeft(result)) return assert.fail(`expected a registration, got: ${result.left}`)
  return result.right
}

const reason = (body: unknown): string => {
  const result = fromRegistration(body)
  if (Either.isRight(result)) return assert.fail(`expected a reason, got origin ${result.right.id}`)
  return result.left
}

// The example body from srs.md (SRS's heartbeat).
const SRS_HEARTBEAT = {
  device_id: "origin2",
  ip: "10.0.0.7",
  server: "vid-46p14mm",
  service: "z2s3w865",
  pid: "42583",
  rtmp: ["19352"],
  http: ["8082"],
  api: ["19853"],
  rtc: ["udp://8001"]
}

const origin = (overrides: Partial<Origin>): Origin => ({
  id: OriginId.make("o"),
  ip: "10.0.0.7",
  deviceId: undefined,
  server: "s",
  service: "v",
  pid: "1",
  apiPort: 1985,
  rtc: [],
  fixed: false,
  ...overrides
})

describe("parseListen", () => {
  const forms: ReadonlyArray<readonly [string, ListenEndpoint]> = [
    ["8000", { protocol: undefined, host: undefined, port: 8000 }],
    ["udp://8000", { protocol: "udp", host: undefined, port: 8000 }],
    ["udp://0.0.0.0:8000", { protocol: "udp", host: "0.0.0.0", port: 8000 }],
    ["udp://[::]:8000", { protocol: "udp", host: "::", port: 8000 }],
    ["tcp://8000", { protocol: "tcp", host: undefined, port: 8000 }],
    ["0.0.0.0:1985", { protocol: undefined, host: "0.0.0.0", port: 1985 }],
    ["[::]:1985", { protocol: undefined, host: "::", port: 1985 }],
    ["udp:0.0.0.0:8000", { protocol: "udp", host: "0.0.0.0", port: 8000 }]
  ]
  for (const [text, endpoint] of forms) {
    it(`${text}`, () => {
      assert.deepStrictEqual(listen(text), endpoint)
    })
  }

  it("protocol in upper case, white space around, and the port range ends", () => {
    assert.deepStrictEqual(listen(" UDP://1 "), { protocol: "udp", host: undefined, port: 1 })
    assert.strictEqual(listen("65535").port, 65535)
  })

  it("port 0 is not a listen endpoint", () => {
    assert.isTrue(Either.isLeft(parseListen("0")))
    assert.isTrue(Either.isLeft(parseListen("udp://0.0.0.0:0")))
  })

  it("port 65536 is not a listen endpoint", () => {
    assert.isTrue(Either.isLeft(parseListen("65536")))
    assert.isTrue(Either.isLeft(parseListen("udp://99999")))
  })

  it("letters are not a port", () => {
    assert.isTrue(Either.isLeft(parseListen("http")))
    assert.isTrue(Either.isLeft(parseListen("udp://0.0.0.0:80a")))
    assert.isTrue(Either.isLeft(parseListen("sctp://8000")))
  })

  it("empty is not a listen endpoint, and the reason quotes the value", () => {
    const result = parseListen("")
    if (Either.isRight(result)) return assert.fail("expected a reason")
    assert.include(result.left, "\"\" is not a listen endpoint")
  })
})

describe("fromRegistration", () => {
  it("SRS's example heartbeat", () => {
    assert.deepStrictEqual(registered(SRS_HEARTBEAT), {
      id: OriginId.make("vid-46p14mm-z2s3w865-42583"),
      ip: "10.0.0.7",
      deviceId: "origin2",
      server: "vid-46p14mm",
      service: "z2s3w865",
      pid: "42583",
      apiPort: 19853,
      rtc: [{ protocol: "udp", host: undefined, port: 8001 }],
      fixed: false
    })
  })

  it("unknown fields are ignored", () => {
    const origin = registered({ ...SRS_HEARTBEAT, summaries: { ok: true }, rtsp: ["554"], srt: ["10080"], extra: 1 })
    assert.strictEqual(origin.id, "vid-46p14mm-z2s3w865-42583")
  })

  it("a numeric pid becomes the same id as the string pid", () => {
    assert.strictEqual(registered({ ...SRS_HEARTBEAT, pid: 42583 }).id, registered(SRS_HEARTBEAT).id)
    assert.strictEqual(registered({ ...SRS_HEARTBEAT, pid: 42583 }).pid, "42583")
  })

  it("without optional fields: no api port, no rtc endpoints, no device id", () => {
    const { device_id: _d, http: _h, api: _a, rtc: _r, ...required } = SRS_HEARTBEAT
    const origin = registered(required)
    assert.strictEqual(origin.apiPort, undefined)
    assert.deepStrictEqual(origin.rtc, [])
    assert.strictEqual(origin.deviceId, undefined)
  })

  for (const field of ["ip", "server", "service", "pid", "rtmp"] as const) {
    it(`missing ${field}: the reason names the field`, () => {
      const { [field]: _, ...body } = SRS_HEARTBEAT
      const text = reason(body)
      assert.strictEqual(text, `${field} is missing`)
    })
  }

  it("empty ip, server or service: the reason says which", () => {
    assert.include(reason({ ...SRS_HEARTBEAT, ip: "" }), "ip must not be empty")
    assert.include(reason({ ...SRS_HEARTBEAT, server: "" }), "server must not be empty")
    assert.include(reason({ ...SRS_HEARTBEAT, service: "" }), "service must not be empty")
  })

  it("an ip with white space is refused", () => {
    assert.include(reason({ ...SRS_HEARTBEAT, ip: "10.0.0.7 10.0.0.8" }), "ip must be an address")
  })

  it("an empty rtmp list is refused", () => {
    assert.strictEqual(reason({ ...SRS_HEARTBEAT, rtmp: [] }), "rtmp must not be empty")
  })

  it("a field of the wrong type is refused", () => {
    assert.strictEqual(reason({ ...SRS_HEARTBEAT, api: "19853" }), "api: Expected ReadonlyArray<string>, actual \"19853\"")
    assert.match(reason({ ...SRS_HEARTBEAT, pid: null }), /^pid: Expected .*, actual null$/)
  })

  it("a body that is not an object is refused", () => {
    // One sentence, not the schema's structure.
    for (const body of ["heartbeat", null, [SRS_HEARTBEAT]]) {
      assert.strictEqual(reason(body), "expected a JSON object (the body SRS posts to /api/v1/srs/register)")
    }
  })

  it("a bad listen string: the reason names the field and quotes the value", () => {
    assert.match(reason({ ...SRS_HEARTBEAT, rtc: ["udp://8001", "udp://x"] }), /^rtc: "udp:\/\/x" is not a listen endpoint/)
    assert.match(reason({ ...SRS_HEARTBEAT, api: ["0"] }), /^api: "0"/)
    assert.match(reason({ ...SRS_HEARTBEAT, rtmp: ["rtmp"] }), /^rtmp: "rtmp"/)
  })

  it("listen strings of every form, as the API and RTC endpoints", () => {
    const origin = registered({ ...SRS_HEARTBEAT, api: ["0.0.0.0:1985"], rtc: ["tcp://8000", "udp://[::]:8001"] })
    assert.strictEqual(origin.apiPort, 1985)
    assert.deepStrictEqual(origin.rtc, [
      { protocol: "tcp", host: undefined, port: 8000 },
      { protocol: "udp", host: "::", port: 8001 }
    ])
  })
})

describe("udpRtcPort", () => {
  it("skips tcp endpoints", () => {
    const rtc: Array<ListenEndpoint> = [
      { protocol: "tcp", host: undefined, port: 8000 },
      { protocol: "udp", host: undefined, port: 8001 }
    ]
    assert.strictEqual(udpRtcPort(origin({ rtc })), 8001)
  })

  it("an endpoint without protocol is UDP (SRS's rtc_server.listen)", () => {
    assert.strictEqual(udpRtcPort(origin({ rtc: [{ protocol: undefined, host: undefined, port: 8000 }] })), 8000)
  })

  it("none when only tcp, or nothing", () => {
    assert.strictEqual(udpRtcPort(origin({ rtc: [{ protocol: "tcp", host: undefined, port: 8000 }] })), undefined)
    assert.strictEqual(udpRtcPort(origin({ rtc: [] })), undefined)
  })
})

describe("apiBaseUrl", () => {
  it("IPv4 and names as they are", () => {
    assert.strictEqual(apiBaseUrl(origin({ ip: "10.0.0.7", apiPort: 1985 })), "http://10.0.0.7:1985")
    assert.strictEqual(apiBaseUrl(origin({ ip: "srs-1.internal", apiPort: 1985 })), "http://srs-1.internal:1985")
  })

  it("IPv6 in brackets", () => {
    assert.strictEqual(apiBaseUrl(origin({ ip: "fd00::7", apiPort: 19853 })), "http://[fd00::7]:19853")
  })

  it("none without an API port", () => {
    assert.strictEqual(apiBaseUrl(origin({ apiPort: undefined })), undefined)
  })
})

describe("fixed", () => {
  it("the configured default backend: UDP RTC port, never expires", () => {
    const origin = fixed({ ip: "127.0.0.1", apiPort: 1985, rtcPort: 8000 })
    assert.deepStrictEqual(origin, {
      id: OriginId.make("default-127.0.0.1-1985"),
      ip: "127.0.0.1",
      deviceId: undefined,
      server: "default",
      service: "default",
      pid: "0",
      apiPort: 1985,
      rtc: [{ protocol: "udp", host: undefined, port: 8000 }],
      fixed: true
    })
    assert.strictEqual(udpRtcPort(origin), 8000)
    assert.strictEqual(apiBaseUrl(origin), "http://127.0.0.1:1985")
  })
})
