// The Redis load balancer on a real redis-server (one per file): registration, expiry, sticky and
// atomic picks across proxies, the key prefix, and the SRS Go proxy's key shapes.
import { assert, describe, it, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import { ProxyConfig } from "../../src/Config.js"
import { fixed, OriginId } from "../../src/Domain/Origin.js"
import { StreamKey } from "../../src/Domain/StreamUrl.js"
import { LoadBalancer, type LoadBalancerShape } from "../../src/LoadBalancer/LoadBalancer.js"
import * as RedisLoadBalancer from "../../src/LoadBalancer/Redis.js"
import { RedisClient } from "../../src/Redis.js"
import { startProxy } from "../support/proxy.ts"
import { REDIS_SERVER, type RedisServer, redisServer, TestRedis } from "../support/redisServer.ts"
import { checkDrain, heartbeatOrigin } from "../support/origins.ts"

let counter = 0
const origin = heartbeatOrigin

/** One proxy's load balancer (its own Redis connection) on the file's redis-server. */
const balancer = (
  server: RedisServer,
  options: {
    readonly ttl?: Duration.Duration
    readonly keyPrefix?: string
    readonly streamMappingTtl?: Duration.Duration
    readonly downHold?: Duration.Duration
  } = {}
) =>
  Effect.map(
    Layer.build(
      RedisLoadBalancer.layer.pipe(
        Layer.provide(RedisClient.layer),
        Layer.provide(ProxyConfig.layerWith({
          loadBalancer: "redis",
          redis: server.config(options.keyPrefix),
          originTtl: options.ttl ?? Duration.seconds(30),
          streamMappingTtl: Option.fromNullable(options.streamMappingTtl),
          ...(options.downHold === undefined ? {} : { originDownHold: options.downHold })
        }))
      )
    ),
    (context): LoadBalancerShape => Context.get(context, LoadBalancer)
  )

/** A unique key prefix per test, so that tests share the server without seeing each other. */
const prefix = () => `t${++counter}`

const json = (text: unknown): any => JSON.parse(text as string)

describe.skipIf(REDIS_SERVER === undefined)("Redis load balancer (real redis-server)", () => {
  layer(TestRedis.layer, { excludeTestServices: true })((it) => {
    it.scoped("a drain through one proxy is seen by every proxy: no new streams there, under rtc-proxy-drain:<id>", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const keyPrefix = prefix()
        const a = yield* balancer(server, { keyPrefix })
        const b = yield* balancer(server, { keyPrefix })
        const first = yield* checkDrain(a, b)
        assert.isNull(yield* server.command("GET", `${keyPrefix}:rtc-proxy-drain:${first.id}`))
        assert.isTrue(yield* a.drain(first.id, true))
        assert.strictEqual(yield* server.command("GET", `${keyPrefix}:rtc-proxy-drain:${first.id}`), "1")
      }))

    it.scoped("an origin marked down through one proxy gets no streams through another until a heartbeat after the hold-down", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const keyPrefix = prefix()
        const a = yield* balancer(server, { keyPrefix, downHold: Duration.millis(300) })
        const b = yield* balancer(server, { keyPrefix, downHold: Duration.millis(300) })
        const first = origin()
        yield* a.register(first)
        const streams = ["s1", "s2"].map((name) => StreamKey.make(`__defaultVhost__/live/${name}`))
        for (const stream of streams) assert.strictEqual((yield* a.pick(stream)).id, first.id)
        const second = origin()
        yield* a.register(second)
        const goKeys = (yield* server.command("KEYS", `${keyPrefix}:srs-proxy-*`)) as Array<string>

        yield* a.markDown(first.id, "connection refused")
        assert.deepStrictEqual([...(yield* b.downOrigins([first.id, second.id]))], [first.id])
        assert.strictEqual((yield* b.pick(streams[0]!)).id, second.id)
        assert.deepStrictEqual(((yield* server.command("KEYS", `${keyPrefix}:srs-proxy-*`)) as Array<string>).sort(), goKeys.sort())
        assert.isNotNull(yield* server.command("GET", `${keyPrefix}:rtc-proxy-origin-down:${first.id}`))

        yield* b.register(first)
        assert.isTrue((yield* b.origins).find((s) => s.origin.id === first.id)!.down, "a heartbeat in the hold-down")
        yield* Effect.sleep(Duration.millis(350))
        assert.isTrue((yield* b.origins).find((s) => s.origin.id === first.id)!.down, "no heartbeat since the hold-down")
        yield* b.register(first)
        assert.isFalse((yield* a.origins).find((s) => s.origin.id === first.id)!.down)
        assert.strictEqual((yield* a.pick(streams[1]!)).id, first.id, "the stream that did not signal stayed")
        assert.strictEqual((yield* a.pick(streams[0]!)).id, second.id, "the stream that moved stays moved")
        assert.deepStrictEqual(yield* a.failover, { reroutes: 0, markedDown: 1, cameBack: 0 })
        assert.deepStrictEqual(yield* b.failover, { reroutes: 1, markedDown: 0, cameBack: 1 })
      }))

    it.scoped("an origin registered through one proxy is picked through another, under the Go proxy's keys", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const keyPrefix = prefix()
        const a = yield* balancer(server, { keyPrefix })
        const b = yield* balancer(server, { keyPrefix })
        const o = origin()
        yield* a.register(o)

        const picked = yield* b.pick(StreamKey.make("__defaultVhost__/live/s"))
        assert.deepStrictEqual(picked, o)
        assert.deepStrictEqual(Option.getOrUndefined(yield* b.find(o.id)), o)

        const key = `${keyPrefix}:srs-proxy-server:${o.id}`
        const stored = json(yield* server.command("GET", key))
        assert.deepStrictEqual(Object.keys(stored).sort(), [
          "api",
          "device_id",
          "ip",
          "pid",
          "rtc",
          "server_id",
          "service_id",
          "update_at"
        ])
        assert.deepStrictEqual(stored["api"], [String(o.apiPort)])
        assert.deepStrictEqual(stored["rtc"], [`udp://${o.rtc[0]!.port}`])
        assert.strictEqual(stored["server_id"], o.server)
        assert.strictEqual(stored["pid"], o.pid)
        assert.isBelow(Math.abs(Date.parse(stored["update_at"] as string) - Date.now()), 5000)
        const pttl = (yield* server.command("PTTL", key)) as number
        assert.isAbove(pttl, 25_000)
        assert.isAtMost(pttl, 30_000)
        assert.deepStrictEqual(json(yield* server.command("GET", `${keyPrefix}:srs-proxy-all-servers`)), [key])
        assert.strictEqual(yield* server.command("GET", `${keyPrefix}:srs-proxy-url:__defaultVhost__/live/s`), key)
        assert.strictEqual(yield* server.command("PTTL", `${keyPrefix}:srs-proxy-url:__defaultVhost__/live/s`), -1)

        const views = yield* a.origins
        assert.deepStrictEqual(views.map((v) => [v.origin.id, v.healthy]), [[o.id, true]])
        assert.deepStrictEqual(yield* a.streams, [{ streamUrl: StreamKey.make("__defaultVhost__/live/s"), originId: o.id }])
      }))

    it.scoped("sticky: every later pick of a stream, through any proxy, gets the same origin", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const keyPrefix = prefix()
        const proxies = [yield* balancer(server, { keyPrefix }), yield* balancer(server, { keyPrefix })]
        const origins = [origin(), origin(), origin()]
        for (const o of origins) yield* proxies[0]!.register(o)
        const chosen = new Set<string>()
        for (let stream = 0; stream < 12; stream++) {
          const picks = yield* Effect.forEach(Array.from({ length: 6 }, (_, i) => proxies[i % 2]!), (lb) =>
            Effect.map(lb.pick(StreamKey.make(`v/live/s${stream}`)), (o) => o.id))
          assert.strictEqual(new Set(picks).size, 1, `stream ${stream}: ${picks.join(", ")}`)
          chosen.add(picks[0]!)
        }
        assert.isAbove(chosen.size, 1, "new streams are spread over the origins")
      }))

    it.scoped("two proxies racing to pick the same new stream both get the origin the first one chose", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const keyPrefix = prefix()
        const proxies = yield* Effect.all(Array.from({ length: 4 }, () => balancer(server, { keyPrefix })))
        for (let i = 0; i < 8; i++) yield* proxies[0]!.register(origin())
        for (let stream = 0; stream < 25; stream++) {
          const picks = yield* Effect.all(proxies.map((lb) => lb.pick(StreamKey.make(`v/race/s${stream}`))), { concurrency: "unbounded" })
          assert.strictEqual(new Set(picks.map((o) => o.id)).size, 1, `stream ${stream} was split`)
        }
      }))

    it.scoped("concurrent registrations through several proxies keep every origin in the list", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const keyPrefix = prefix()
        const proxies = yield* Effect.all(Array.from({ length: 4 }, () => balancer(server, { keyPrefix })))
        const origins = Array.from({ length: 40 }, () => origin())
        yield* Effect.forEach(origins, (o, i) => proxies[i % proxies.length]!.register(o), { concurrency: "unbounded" })
        const list = json(yield* server.command("GET", `${keyPrefix}:srs-proxy-all-servers`)) as Array<string>
        assert.deepStrictEqual(
          [...list].sort(),
          origins.map((o) => `${keyPrefix}:srs-proxy-server:${o.id}`).sort()
        )
        assert.strictEqual((yield* proxies[3]!.origins).length, 40)
      }))

    it.scoped("an origin whose heartbeat stopped expires; its stream moves, atomically, to a live origin", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const keyPrefix = prefix()
        const ttl = Duration.millis(400)
        const a = yield* balancer(server, { keyPrefix, ttl })
        const b = yield* balancer(server, { keyPrefix, ttl })
        const dying = origin()
        yield* a.register(dying)
        assert.strictEqual((yield* a.pick(StreamKey.make("v/live/moving"))).id, dying.id)

        // A second origin keeps beating while the first one's TTL runs out.
        const living = origin()
        yield* a.register(living)
        yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(100), b.register(living))))
        yield* Effect.sleep(600)
        assert.isTrue(Option.isNone(yield* a.find(dying.id)))

        const picks = yield* Effect.all([a.pick(StreamKey.make("v/live/moving")), b.pick(StreamKey.make("v/live/moving")), a.pick(StreamKey.make("v/live/moving"))], {
          concurrency: "unbounded"
        })
        assert.deepStrictEqual(picks.map((o) => o.id), [living.id, living.id, living.id])
        assert.strictEqual(
          yield* server.command("GET", `${keyPrefix}:srs-proxy-url:v/live/moving`),
          `${keyPrefix}:srs-proxy-server:${living.id}`
        )
        // The next registration prunes the expired key from the list.
        assert.deepStrictEqual(
          json(yield* server.command("GET", `${keyPrefix}:srs-proxy-all-servers`)),
          [`${keyPrefix}:srs-proxy-server:${living.id}`]
        )
        assert.deepStrictEqual((yield* a.origins).map((v) => v.origin.id), [living.id])
      }))

    it.scoped("without a live origin that has an HTTP API, a pick fails with 503", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const lb = yield* balancer(server, { keyPrefix: prefix() })
        const none = yield* Effect.flip(lb.pick(StreamKey.make("v/live/s")))
        assert.strictEqual(none._tag, "ServiceUnavailable")
        assert.strictEqual(none.status, 503)
        yield* lb.register(origin({ apiPort: undefined }))
        const noApi = yield* Effect.flip(lb.pick(StreamKey.make("v/live/s")))
        assert.strictEqual(noApi._tag, "ServiceUnavailable")
        assert.match(noApi.message, /no healthy origin/)
        // Registered and able, but held down after a failure: the message says so.
        const able = origin()
        yield* lb.register(able)
        yield* lb.markDown(able.id, "connection refused")
        const heldDown = yield* Effect.flip(lb.pick(StreamKey.make("v/live/s")))
        assert.match(heldDown.message, /^every origin that takes WebRTC \(1\) is marked down/)
      }))

    it.scoped("the key prefix: every key is `<prefix>:<key>`, and proxies under another prefix see nothing", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const keyPrefix = `${prefix()}:tenant`
        const lb = yield* balancer(server, { keyPrefix })
        const other = yield* balancer(server, { keyPrefix: `${keyPrefix}-other` })
        const o = origin()
        yield* lb.register(o)
        yield* lb.pick(StreamKey.make("v/app/prefixed"))
        const keys = (yield* server.command("KEYS", `${keyPrefix}:*`)) as Array<string>
        assert.deepStrictEqual([...keys].sort(), [
          `${keyPrefix}:srs-proxy-all-servers`,
          `${keyPrefix}:srs-proxy-server:${o.id}`,
          `${keyPrefix}:srs-proxy-url:v/app/prefixed`
        ])
        assert.isTrue(Option.isNone(yield* other.find(o.id)))
        assert.strictEqual((yield* Effect.flip(other.pick(StreamKey.make("v/app/prefixed"))))._tag, "ServiceUnavailable")
        assert.deepStrictEqual(yield* other.origins, [])
      }))

    it.scoped("an origin and a stream mapping written by the Go proxy are read and honoured", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        // The Go proxy without a prefix: its own JSON (Go's time format, ports as listen strings).
        yield* server.command("FLUSHDB")
        const goKey = "srs-proxy-server:vid-go-z2s3w865-42583"
        yield* server.command(
          "SET",
          goKey,
          JSON.stringify({
            ip: "10.0.0.7",
            device_id: "origin2",
            server_id: "vid-go",
            service_id: "z2s3w865",
            pid: "42583",
            rtmp: ["19352"],
            http: ["8082"],
            api: ["19853"],
            rtc: ["udp://0.0.0.0:8001"],
            update_at: "2025-06-01T10:20:30.123456789+08:00"
          }),
          "EX",
          "300"
        )
        yield* server.command("SET", "srs-proxy-all-servers", JSON.stringify([goKey]))
        const lb = yield* balancer(server)

        const picked = yield* lb.pick(StreamKey.make("__defaultVhost__/live/go"))
        assert.deepStrictEqual(picked, {
          id: OriginId.make("vid-go-z2s3w865-42583"),
          ip: "10.0.0.7",
          deviceId: "origin2",
          server: "vid-go",
          service: "z2s3w865",
          pid: "42583",
          apiPort: 19853,
          rtc: [{ protocol: "udp", host: "0.0.0.0", port: 8001 }],
          fixed: false
        })
        assert.strictEqual(yield* server.command("GET", "srs-proxy-url:__defaultVhost__/live/go"), goKey)
        const [view] = yield* lb.origins
        assert.strictEqual(view?.lastSeen, Date.parse("2025-06-01T02:20:30.123Z"))

        // A mapping the Go proxy made is sticky for us too, even with another origin registered.
        yield* lb.register(origin())
        yield* server.command("SET", "srs-proxy-url:__defaultVhost__/live/mapped-by-go", goKey)
        for (let i = 0; i < 5; i++) {
          assert.strictEqual((yield* lb.pick(StreamKey.make("__defaultVhost__/live/mapped-by-go"))).id, "vid-go-z2s3w865-42583")
        }
        // What we write, the Go proxy reads: its list holds both keys, each a JSON it can decode.
        const list = json(yield* server.command("GET", "srs-proxy-all-servers")) as Array<string>
        assert.strictEqual(list.length, 2)
        assert.strictEqual(list[0], goKey, "the Go proxy's entry is kept")
        yield* server.command("FLUSHDB")
      }))

    it.scoped("with PROXY_STREAM_MAPPING_TTL, a mapping expires unless picked or kept by a live session; Go's mappings keep no TTL", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const keyPrefix = prefix()
        const streamKey = (stream: string) => `${keyPrefix}:srs-proxy-url:v/live/${stream}`
        const pttl = (stream: string) => Effect.map(server.command("PTTL", streamKey(stream)), (n) => n as number)
        const lb = yield* balancer(server, { keyPrefix, streamMappingTtl: Duration.millis(800) })
        const o = origin()
        yield* lb.register(o)

        yield* lb.pick(StreamKey.make("v/live/kept"))
        yield* lb.pick(StreamKey.make("v/live/left"))
        yield* lb.pick(StreamKey.make("v/live/picked"))
        assert.isAbove(yield* pttl("kept"), 500)
        assert.isAtMost(yield* pttl("kept"), 800)
        // A kept stream is renewed once a quarter of the TTL has passed since; a pick renews too.
        const live = new Map([
          [StreamKey.make("v/live/kept"), o.id],
          [StreamKey.make("v/live/lapsed"), o.id],
          [StreamKey.make("v/live/dead-origin"), OriginId.make("srv-gone")]
        ])
        for (let i = 0; i < 6; i++) {
          yield* Effect.sleep(250)
          yield* lb.keepStreams(live)
          yield* lb.pick(StreamKey.make("v/live/picked"))
        }
        assert.isAbove(yield* pttl("kept"), 0, "renewed while its session lives")
        assert.isAbove(yield* pttl("picked"), 500, "renewed by each pick")
        assert.strictEqual(yield* pttl("left"), -2, "expired: no session, no pick")
        assert.strictEqual(yield* pttl("dead-origin"), -2, "never set to an origin that is gone")
        // A live stream whose mapping lapsed (Redis unreachable past the TTL) gets it back, to its origin.
        assert.strictEqual(yield* server.command("GET", streamKey("lapsed")), `${keyPrefix}:srs-proxy-server:${o.id}`)
        assert.isAbove(yield* pttl("lapsed"), 0)
        assert.deepStrictEqual((yield* lb.streams).map((m) => m.streamUrl).sort(), ["v/live/kept", "v/live/lapsed", "v/live/picked"])

        // A mapping without TTL (a Go proxy's, or from before the TTL was set) stays without.
        yield* server.command("SET", streamKey("go"), `${keyPrefix}:srs-proxy-server:${o.id}`)
        assert.strictEqual((yield* lb.pick(StreamKey.make("v/live/go"))).id, o.id)
        yield* lb.keepStreams(new Map([[StreamKey.make("v/live/go"), o.id]]))
        assert.strictEqual(yield* pttl("go"), -1)

        // Without the setting (the default in Redis mode), mappings never expire, as the Go proxies expect.
        const forever = yield* balancer(server, { keyPrefix })
        yield* forever.pick(StreamKey.make("v/live/forever"))
        yield* forever.keepStreams(new Map([[StreamKey.make("v/live/forever"), o.id]]))
        assert.strictEqual(yield* pttl("forever"), -1)
      }), 10_000)

    it.scoped("a configured origin is renewed by this proxy while it runs; a registered one expires", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const keyPrefix = prefix()
        const lb = yield* balancer(server, { keyPrefix, ttl: Duration.millis(1200) })
        const configured = fixed({ ip: "127.0.0.1", apiPort: 1985, rtcPort: 8000 })
        const heartbeat = origin()
        yield* lb.register(configured)
        yield* lb.register(heartbeat)
        yield* Effect.sleep(1700)
        assert.deepStrictEqual(Option.getOrUndefined(yield* lb.find(configured.id)), configured)
        assert.isTrue(Option.isNone(yield* lb.find(heartbeat.id)))
        assert.isAbove((yield* server.command("PTTL", `${keyPrefix}:srs-proxy-server:${configured.id}`)) as number, 0)
        assert.strictEqual((yield* lb.pick(StreamKey.make("v/live/default"))).id, configured.id)
      }), 10_000)

    it.scoped("the whole proxy with PROXY_LOAD_BALANCER_TYPE=redis shares one connection between balancer and store, and subscribes on a second", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const clients = Effect.map(server.command("CLIENT", "LIST"), (text) => (text as string).trim().split("\n").length - 1)
        const before = yield* clients
        const proxy = yield* startProxy({ loadBalancer: "redis", redis: server.config(prefix()) })
        assert.strictEqual(yield* clients, before + 2)
        const list = (yield* server.command("CLIENT", "LIST")) as string
        assert.strictEqual(list.split("\n").filter((line) => / cmd=subscribe /.test(line)).length, 1, list)
        assert.deepStrictEqual(yield* proxy.store.list, [])
      }))

    it.scoped("Redis unreachable at start-up: the proxy does not start, and says which setting to check", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const closedPort = server.port === 1 ? 2 : 1
        const exit = yield* Effect.exit(
          startProxy({ loadBalancer: "redis", redis: { ...server.config(), port: closedPort } }).pipe(
            Logger.withMinimumLogLevel(LogLevel.None)
          )
        )
        assert.isTrue(Exit.isFailure(exit))
        const message = Exit.isFailure(exit) ? (Cause.squash(exit.cause) as Error).message : ""
        assert.match(
          message,
          new RegExp(`^cannot connect to Redis at 127\\.0\\.0\\.1:${closedPort} \\(PROXY_REDIS_HOST / PROXY_REDIS_PORT\\): `)
        )
        assert.notInclude(message, "\n")
      }))
  })

  it.scopedLive("a Redis that goes away: keeping streams logs once per outage and never fails the sweep", () => {
    const logged: Array<string> = []
    const capture = Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => void logged.push(String(message))))
    return Effect.gen(function*() {
      const server = yield* redisServer()
      const lb = yield* balancer(server, { keyPrefix: "gone", streamMappingTtl: Duration.millis(400) })
      yield* lb.register(origin())
      yield* lb.pick(StreamKey.make("v/live/s"))
      yield* server.kill
      for (let i = 0; i < 3; i++) {
        yield* Effect.sleep(150)
        yield* lb.keepStreams(new Map([[StreamKey.make("v/live/s"), OriginId.make("srv-1")]]))
      }
      assert.lengthOf(logged.filter((line) => line.startsWith("cannot renew 1 stream mappings in Redis")), 1, logged.join("\n"))
    }).pipe(Effect.provide(capture))
  }, 15_000)
})
