// The request's client on the proxy's own log lines for that request (and on the line that ends the
// relay session it opened): the peer address, or the client a trusted proxy names in X-Forwarded-For.
import { assert, describe } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { parseTrustedProxies } from "../../src/Http/ClientAddress.js"
import { ProxyAddresses } from "../../src/Http/Servers.js"
import { ProxyLive } from "../../src/Proxy.js"
import { eventually } from "../support/eventually.js"
import { fakeSrsApi } from "../support/fakeSrsApi.js"
import { httpRequest } from "../support/http.js"
import { live } from "../support/live.js"
import { minimalOffer } from "../support/offers.js"
import { testConfig } from "../support/proxy.js"

interface Line {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
}

/** The whole proxy, its info lines and above captured with their annotations. */
const proxyWithLogs = (overrides: Parameters<typeof testConfig>[0] = {}) =>
  Effect.gen(function*() {
    const lines: Array<Line> = []
    const capture = Logger.make(({ annotations, logLevel, message }) => {
      lines.push({
        level: logLevel.label,
        message: Array.isArray(message) ? message.join(" ") : String(message),
        annotations: Object.fromEntries(HashMap.toEntries(annotations))
      })
    })
    const context = yield* Layer.build(
      ProxyLive.pipe(
        Layer.provideMerge(testConfig(overrides)),
        Layer.provide(Logger.replace(Logger.defaultLogger, capture)),
        Layer.provide(Logger.minimumLogLevel(LogLevel.Info))
      )
    )
    const { media, system } = yield* Effect.provide(ProxyAddresses, context)
    const origin = yield* fakeSrsApi()
    assert.strictEqual((yield* origin.register(`http://127.0.0.1:${system.port}`)).status, 200)
    return { lines, mediaUrl: `http://127.0.0.1:${media.port}` }
  })

const lineWith = (lines: ReadonlyArray<Line>, text: string) => {
  const found = lines.find((line) => line.message.includes(text))
  assert.isDefined(found, `no line with "${text}" in:\n${lines.map((line) => line.message).join("\n")}`)
  return found!
}

describe("the client on log lines", () => {
  live("a publish: the line naming its origin and the line ending its relay session carry the peer's address", () =>
    Effect.gen(function*() {
      const { lines, mediaUrl } = yield* proxyWithLogs()
      const answer = yield* httpRequest(`${mediaUrl}/rtc/v1/whip/?app=live&stream=logged`, {
        method: "POST",
        headers: { "content-type": "application/sdp" },
        body: minimalOffer()
      })
      assert.strictEqual(answer.status, 201, answer.body)
      assert.strictEqual(lineWith(lines, "/live/logged via origin").annotations["client"], "127.0.0.1")
      const deleted = yield* httpRequest(`${mediaUrl}${answer.headers["location"]}`, { method: "DELETE" })
      assert.strictEqual(deleted.status, 200)
      const ended = yield* eventually(() => lineWith(lines, "relay session ended (deleted"))
      assert.strictEqual(ended.annotations["client"], "127.0.0.1")
      assert.strictEqual(ended.annotations["stream"], "__defaultVhost__/live/logged")
    }))

  live("behind a trusted proxy: the client X-Forwarded-For names, on the line refusing a second publisher too", () =>
    Effect.gen(function*() {
      const trusted = Either.getOrThrow(parseTrustedProxies("127.0.0.1"))
      const { lines, mediaUrl } = yield* proxyWithLogs({ trustedProxies: trusted })
      const answer = yield* httpRequest(`${mediaUrl}/rtc/v1/whip/?app=live&stream=behind`, {
        method: "POST",
        headers: { "content-type": "application/sdp", "x-forwarded-for": "203.0.113.7" },
        body: minimalOffer()
      })
      assert.strictEqual(answer.status, 201, answer.body)
      assert.strictEqual(lineWith(lines, "/live/behind via origin").annotations["client"], "203.0.113.7")
      // A second publisher for the stream is refused (409) with an info line, which names it too.
      const refused = yield* httpRequest(`${mediaUrl}/rtc/v1/whip/?app=live&stream=behind`, {
        method: "POST",
        headers: { "content-type": "application/sdp", "x-forwarded-for": "198.51.100.4" },
        body: minimalOffer("cli2")
      })
      assert.strictEqual(refused.status, 409, refused.body)
      assert.strictEqual(lineWith(lines, "/live/behind refused").annotations["client"], "198.51.100.4")
    }))
})
