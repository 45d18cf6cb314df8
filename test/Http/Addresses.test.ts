// What ProxyAddresses (and so the start-up line) reports for the listeners.
import { assert, describe } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { ProxyAddresses } from "../../src/Http/Servers.js"
import { ProxyLive } from "../../src/Proxy.js"
import { httpRequest } from "../support/http.js"
import { live } from "../support/live.js"
import { testConfig } from "../support/proxy.js"

const addressesOf = (listenHost: string) =>
  Effect.flatMap(Layer.build(ProxyLive.pipe(Layer.provideMerge(testConfig({ listenHost })))), (context) =>
    Effect.provide(ProxyAddresses, context))

describe("ProxyAddresses", () => {
  live("on `::` the listeners report `::`, where they take both families (the platform alone says 0.0.0.0)", () =>
    Effect.gen(function*() {
      const { media, system } = yield* addressesOf("::")
      assert.strictEqual(media.host, "::")
      assert.strictEqual(system.host, "::")
      assert.strictEqual((yield* httpRequest(`http://[::1]:${media.port}/healthz`)).status, 200)
      assert.strictEqual((yield* httpRequest(`http://127.0.0.1:${system.port}/healthz`)).status, 200)
    }))

  live("on an IPv4 address they report it", () =>
    Effect.gen(function*() {
      const { media, system } = yield* addressesOf("127.0.0.1")
      assert.strictEqual(media.host, "127.0.0.1")
      assert.strictEqual(system.host, "127.0.0.1")
    }))
})
