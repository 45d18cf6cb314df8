// The package entries as another Effect app uses them: compose ProxyCore with a load balancer of its
// own, or with the Redis layers of `rtc-proxy/redis`, and serve WHIP through it.
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import { LoadBalancer, Origin, ProxyAddresses, ProxyConfig, ProxyCore, Relay } from "../src/index.js"
import { RedisClient, RedisLoadBalancer } from "../src/indexRedis.js"
import { fakeSrsApi } from "./support/fakeSrsApi.js"
import { httpRequest } from "./support/http.js"
import { minimalOffer } from "./support/offers.js"
import { REDIS_SERVER, redisServer } from "./support/redisServer.js"

describe("package entry", () => {
  it.scopedLive("ProxyCore takes a load balancer from the app that embeds it", () =>
    Effect.gen(function*() {
      const origin = yield* fakeSrsApi()
      const picked: Array<string> = []
      // The embedding app decides where streams go (say, from its own database).
      const AppLoadBalancer = Layer.succeed(LoadBalancer, {
        register: () => Effect.void,
        pick: (streamUrl) =>
          Effect.sync(() => {
            picked.push(streamUrl)
            return Origin.fixed({ ip: "127.0.0.1", apiPort: origin.apiPort, rtcPort: origin.mediaPort })
          }),
        markDown: () => Effect.void,
        markUp: () => Effect.void,
        downOrigins: () => Effect.succeed(new Set()),
        failover: Effect.succeed({ reroutes: 0, markedDown: 0, cameBack: 0 }),
        keepStreams: () => Effect.void,
        drain: () => Effect.succeed(false),
        find: () => Effect.succeed(Option.none()),
        origins: Effect.succeed([]),
        streams: Effect.succeed([])
      })
      const App = ProxyCore.pipe(
        Layer.provideMerge(AppLoadBalancer),
        Layer.provideMerge(
          ProxyConfig.layerWith({ listenHost: "127.0.0.1", httpPort: 0, systemPort: 0, udpPort: 0 })
        ),
        Layer.provide(Logger.minimumLogLevel(LogLevel.Warning))
      )
      const context = yield* Layer.build(App)
      const { media } = yield* Effect.provide(ProxyAddresses, context)
      const response = yield* httpRequest(`http://127.0.0.1:${media.port}/rtc/v1/whip/?app=app&stream=embedded`, {
        method: "POST",
        headers: { "content-type": "application/sdp" },
        body: minimalOffer()
      })
      assert.strictEqual(response.status, 201, response.body)
      assert.deepStrictEqual(picked, ["__defaultVhost__/app/embedded"])
      const relay = yield* Effect.provide(Relay, context)
      assert.strictEqual((yield* relay.stats).sessions, 1)
    }))

  it.scopedLive.skipIf(REDIS_SERVER === undefined)("ProxyCore on the Redis load balancer and client of rtc-proxy/redis", () =>
    Effect.gen(function*() {
      const redis = yield* redisServer()
      const origin = yield* fakeSrsApi()
      const config = ProxyConfig.layerWith({
        listenHost: "127.0.0.1",
        httpPort: 0,
        systemPort: 0,
        udpPort: 0,
        loadBalancer: "redis",
        redis: redis.config("embedded"),
        defaultBackend: Option.some({ ip: "127.0.0.1", apiPort: origin.apiPort, rtcPort: origin.mediaPort })
      })
      // ProxyCore's session store follows PROXY_LOAD_BALANCER_TYPE; the app brings the load balancer.
      const App = ProxyCore.pipe(
        Layer.provideMerge(RedisLoadBalancer.layer.pipe(Layer.provide(RedisClient.layer))),
        Layer.provideMerge(config),
        Layer.provide(Logger.minimumLogLevel(LogLevel.Warning))
      )
      const context = yield* Layer.build(App)
      const { media } = yield* Effect.provide(ProxyAddresses, context)
      const response = yield* httpRequest(`http://127.0.0.1:${media.port}/rtc/v1/whip/?app=app&stream=shared`, {
        method: "POST",
        headers: { "content-type": "application/sdp" },
        body: minimalOffer()
      })
      assert.strictEqual(response.status, 201, response.body)
      assert.isNotNull(yield* redis.command("GET", "embedded:srs-proxy-url:__defaultVhost__/app/shared"))
    }))
})
