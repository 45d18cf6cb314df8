// The Redis session store on a real redis-server (one per file): records by id and by ufrag pair
// shared between proxies, ICE restarts, removal and release, TTL renewal, and a Redis that goes away.
import { assert, describe, it, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { ProxyConfig } from "../../src/Config.js"
import { SessionId, SessionRecord, UfragPair } from "../../src/Domain/Session.js"
import { StreamKey } from "../../src/Domain/StreamUrl.js"
import { RedisClient } from "../../src/Redis.js"
import * as RedisSessionStore from "../../src/Session/Redis.js"
import { SessionStore, type SessionStoreShape } from "../../src/Session/SessionStore.js"
import { REDIS_SERVER, type RedisServer, redisServer, TestRedis } from "../support/redisServer.ts"

let counter = 0
const prefix = () => `s${++counter}`

const record = (overrides: Partial<typeof SessionRecord.Encoded> = {}): SessionRecord => {
  const n = ++counter
  return Schema.decodeSync(SessionRecord)({
    id: `session-${n}-${Math.random().toString(36).slice(2)}`,
    kind: "publish",
    streamUrl: "__defaultVhost__/live/s",
    originId: "srv-a-svc1-4242",
    originLocation: `http://127.0.0.1:1985/rtc/v1/whip/?action=delete&token=T&app=live&stream=s&session=srv${n}:cli${n}`,
    ufragPair: `srv${n}:cli${n}`,
    serverPwd: `serverPassword${n}0123456789`,
    originMedia: { host: "127.0.0.1", port: 8000 },
    createdAt: 1_750_000_000_123 + n,
    ...overrides
  })
}

/** One proxy's session store (its own Redis connection) on the server. */
const store = (server: RedisServer, options: { readonly keyPrefix: string; readonly ttl?: Duration.Duration }) =>
  Effect.map(
    Layer.build(
      Layer.effect(SessionStore, RedisSessionStore.make(options.ttl === undefined ? {} : { ttl: options.ttl })).pipe(
        Layer.provide(RedisClient.layer),
        Layer.provide(ProxyConfig.layerWith({ loadBalancer: "redis", redis: server.config(options.keyPrefix) }))
      )
    ),
    (context): SessionStoreShape => Context.get(context, SessionStore)
  )

/** Two proxies' stores on one key prefix of the test server, as proxies sharing one Redis have. */
const twoProxies = (ttl?: Duration.Duration) =>
  Effect.gen(function*() {
    const server = yield* TestRedis
    const keyPrefix = prefix()
    const options = ttl === undefined ? { keyPrefix } : { keyPrefix, ttl }
    return { server, keyPrefix, a: yield* store(server, options), b: yield* store(server, options) }
  })

const json = (text: unknown): any => JSON.parse(text as string)

describe.skipIf(REDIS_SERVER === undefined)("Redis session store (real redis-server)", () => {
  layer(TestRedis.layer, { excludeTestServices: true })((it) => {
    it.scoped("a record put by one proxy is found by id and by ufrag pair through another, byte for byte", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        // Glob characters in the prefix are matched literally: a SCAN pattern built from it unescaped
        // would also list the records of the prefix `<base>Xg`.
        const base = prefix()
        const keyPrefix = `${base}*[glob]`
        const a = yield* store(server, { keyPrefix })
        const b = yield* store(server, { keyPrefix })
        const elsewhere = yield* store(server, { keyPrefix: `${base}Xg` })
        const r = record()
        const withoutLocation = record({ originLocation: undefined, kind: "play" })
        yield* a.put(r)
        yield* a.put(withoutLocation)
        yield* elsewhere.put(record())

        assert.deepStrictEqual(yield* b.get(r.id), Option.some(r))
        assert.deepStrictEqual(yield* b.findByUfrag(r.ufragPair), Option.some(r))
        assert.deepStrictEqual(yield* b.get(withoutLocation.id), Option.some(withoutLocation))
        assert.isTrue(Option.isNone(yield* b.get(SessionId.make("no-such-session"))))
        assert.isTrue(Option.isNone(yield* b.findByUfrag(UfragPair.make("no:such"))))
        assert.deepStrictEqual(
          [...(yield* b.list)].sort((x, y) => x.id.localeCompare(y.id)),
          [r, withoutLocation].sort((x, y) => x.id.localeCompare(y.id))
        )
      }))

    it.scoped("the keys: ours by id and of the stream's publisher, the Go proxy's by ufrag pair and by stream, each with the 120 s TTL", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const keyPrefix = prefix()
        const a = yield* store(server, { keyPrefix })
        const r = record()
        yield* a.put(r)

        const byUfrag = json(yield* server.command("GET", `${keyPrefix}:srs-proxy-ufrag:${r.ufragPair}`))
        assert.strictEqual(byUfrag.stream_url, r.streamUrl)
        assert.strictEqual(byUfrag.ufrag, r.ufragPair)
        assert.strictEqual(byUfrag.server_pwd, r.serverPwd)
        assert.deepStrictEqual(json(yield* server.command("GET", `${keyPrefix}:rtc-proxy-session:${r.id}`)), byUfrag)
        assert.deepStrictEqual(json(yield* server.command("GET", `${keyPrefix}:srs-proxy-rtc:${r.streamUrl}`)), {
          stream_url: r.streamUrl,
          ufrag: r.ufragPair
        })
        assert.strictEqual(yield* server.command("GET", `${keyPrefix}:rtc-proxy-publisher:${r.streamUrl}`), r.id)
        for (
          const key of [
            `rtc-proxy-session:${r.id}`,
            `srs-proxy-ufrag:${r.ufragPair}`,
            `srs-proxy-rtc:${r.streamUrl}`,
            `rtc-proxy-publisher:${r.streamUrl}`
          ]
        ) {
          const pttl = (yield* server.command("PTTL", `${keyPrefix}:${key}`)) as number
          assert.isAbove(pttl, 115_000, key)
          assert.isAtMost(pttl, 120_000, key)
        }
        assert.strictEqual(((yield* server.command("KEYS", `${keyPrefix}:*`)) as Array<string>).length, 4)
        // A player has no publisher key.
        yield* a.put(record({ kind: "play", streamUrl: "__defaultVhost__/live/played" }))
        assert.strictEqual(yield* server.command("EXISTS", `${keyPrefix}:rtc-proxy-publisher:__defaultVhost__/live/played`), 0)
      }))

    it.scoped("a record the Go proxy wrote under a ufrag key (no ice-pwd) is not relayed", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const keyPrefix = prefix()
        const a = yield* store(server, { keyPrefix })
        yield* server.command(
          "SET",
          `${keyPrefix}:srs-proxy-ufrag:go1:cli1`,
          JSON.stringify({ stream_url: "__defaultVhost__/live/s", ufrag: "go1:cli1" })
        )
        assert.isTrue(Option.isNone(yield* a.findByUfrag(UfragPair.make("go1:cli1"))))
      }))

    it.scoped("the ICE state (entity-tag, client ice-pwd, the origin's credentials after a proxy-made restart) goes through rekey", () =>
      Effect.gen(function*() {
        const { a, b, keyPrefix, server } = yield* twoProxies()
        const r = record({ ice: { clientPwd: "clientPassword0123456789", etag: "\"e1\"", lite: true, options: "trickle" } })
        yield* a.put(r)
        assert.deepStrictEqual(yield* b.get(r.id), Option.some(r))
        const ice = {
          clientPwd: "clientNewPassword0123456",
          etag: "\"e2\"",
          lite: true,
          options: "trickle",
          origin: { ufragPair: r.ufragPair, serverPwd: r.serverPwd, clientPwd: "clientPassword0123456789" }
        }
        const keys = { ufragPair: UfragPair.make("mint1234:cli9"), serverPwd: "proxyMintedPassword01234", ice }
        const expected = { ...r, ...keys }
        assert.deepStrictEqual(yield* a.rekey(r.id, keys), Option.some(expected))
        assert.deepStrictEqual(yield* b.findByUfrag(keys.ufragPair), Option.some(expected))
        const stored = json(yield* server.command("GET", `${keyPrefix}:rtc-proxy-session:${r.id}`))
        assert.deepStrictEqual(stored.ice.origin, { ufrag: r.ufragPair, server_pwd: r.serverPwd, client_pwd: "clientPassword0123456789" })
        assert.strictEqual(stored.ice.client_pwd, "clientNewPassword0123456")
        // A rekey without ICE state keeps what is there.
        const again = yield* a.rekey(r.id, { ufragPair: UfragPair.make("mint5678:cli9"), serverPwd: "p2" })
        assert.deepStrictEqual(Option.map(again, (x) => x.ice), Option.some(ice))
      }))

    it.scoped("rekey (ICE restart) moves the ufrag key atomically; the old pair finds nothing", () =>
      Effect.gen(function*() {
        const { a, b, keyPrefix, server } = yield* twoProxies()
        const r = record()
        yield* a.put(r)
        const moved = yield* a.rekey(r.id, { ufragPair: UfragPair.make("restarted:cli9"), serverPwd: "newServerPassword0123456" })
        const expected = { ...r, ufragPair: UfragPair.make("restarted:cli9"), serverPwd: "newServerPassword0123456" }
        assert.deepStrictEqual(moved, Option.some(expected))
        assert.deepStrictEqual(yield* b.get(r.id), Option.some(expected))
        assert.deepStrictEqual(yield* b.findByUfrag(UfragPair.make("restarted:cli9")), Option.some(expected))
        assert.isTrue(Option.isNone(yield* b.findByUfrag(r.ufragPair)))
        assert.strictEqual(yield* server.command("EXISTS", `${keyPrefix}:srs-proxy-ufrag:${r.ufragPair}`), 0)
        const byStream = json(yield* server.command("GET", `${keyPrefix}:srs-proxy-rtc:${r.streamUrl}`))
        assert.strictEqual(byStream.ufrag, "restarted:cli9")
        assert.isAbove((yield* server.command("PTTL", `${keyPrefix}:srs-proxy-ufrag:restarted:cli9`)) as number, 100_000)
        assert.isTrue(Option.isNone(yield* a.rekey(SessionId.make("no-such-session"), { ufragPair: UfragPair.make("x:y"), serverPwd: "p" })))
        assert.strictEqual(yield* server.command("EXISTS", `${keyPrefix}:srs-proxy-ufrag:x:y`), 0)

        // Put again under another pair (what the memory store does for an updated record): same move.
        yield* a.put({ ...expected, ufragPair: UfragPair.make("third:cli9") })
        assert.isTrue(Option.isNone(yield* b.findByUfrag(UfragPair.make("restarted:cli9"))))
        assert.strictEqual((yield* b.findByUfrag(UfragPair.make("third:cli9"))).pipe(Option.map((x) => x.id), Option.getOrUndefined), r.id)
      }))

    it.scoped("a session put with a ufrag pair another session holds takes that key; removing the first leaves it", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const a = yield* store(server, { keyPrefix: prefix() })
        const first = record()
        const second = record({ ufragPair: first.ufragPair })
        yield* a.put(first)
        yield* a.put(second)
        assert.strictEqual(Option.getOrUndefined(yield* a.findByUfrag(first.ufragPair))?.id, second.id)
        yield* a.remove(first.id)
        assert.isTrue(Option.isNone(yield* a.get(first.id)))
        assert.strictEqual(Option.getOrUndefined(yield* a.findByUfrag(first.ufragPair))?.id, second.id)
      }))

    it.scoped("remove deletes every key; release keeps a session another proxy took over, or after a shutdown", () =>
      Effect.gen(function*() {
        const { a, b, keyPrefix, server } = yield* twoProxies()
        const keys = () => Effect.map(server.command("KEYS", `${keyPrefix}:*`), (keys) => (keys as Array<string>).length)

        const deleted = record()
        yield* a.put(deleted)
        yield* b.remove(deleted.id) // DELETE through any proxy
        assert.isTrue(Option.isNone(yield* a.get(deleted.id)))
        assert.strictEqual(yield* keys(), 0)

        const idle = record()
        yield* a.put(idle)
        yield* a.release(idle.id, "idle") // ended where it was relayed
        assert.isTrue(Option.isNone(yield* b.findByUfrag(idle.ufragPair)))
        assert.strictEqual(yield* keys(), 0)

        const takenOver = record()
        yield* a.put(takenOver)
        yield* b.put(takenOver) // proxy B adopted it (the client's packets now reach B)
        yield* a.release(takenOver.id, "idle") // A's copy went idle: B still relays it
        assert.deepStrictEqual(yield* a.findByUfrag(takenOver.ufragPair), Option.some(takenOver))
        yield* b.release(takenOver.id, "idle")
        assert.isTrue(Option.isNone(yield* a.get(takenOver.id)))

        const survivor = record()
        yield* a.put(survivor)
        yield* a.release(survivor.id, "shutdown") // another proxy (or this one, restarted) may take it over
        assert.deepStrictEqual(yield* b.findByUfrag(survivor.ufragPair), Option.some(survivor))
        yield* b.remove(survivor.id)
        assert.strictEqual(yield* keys(), 0)
      }))

    it.scoped("publisherOf: a publish session another proxy relays; gone with remove and release, not with a player", () =>
      Effect.gen(function*() {
        const { a, b, keyPrefix, server } = yield* twoProxies()
        const stream = StreamKey.make("__defaultVhost__/live/s")
        const publisherKey = `${keyPrefix}:rtc-proxy-publisher:${stream}`

        const deleted = record()
        yield* a.put(deleted)
        yield* a.put(record({ kind: "play" }))
        assert.deepStrictEqual(yield* b.publisherOf(stream), Option.some(deleted))
        assert.isTrue(Option.isNone(yield* b.publisherOf(StreamKey.make("__defaultVhost__/live/other"))))
        const restarted = yield* b.rekey(deleted.id, { ufragPair: UfragPair.make("restarted:cli9"), serverPwd: "newServerPassword0123456" })
        assert.deepStrictEqual(yield* a.publisherOf(stream), restarted)
        yield* b.remove(deleted.id)
        assert.isTrue(Option.isNone(yield* a.publisherOf(stream)))
        assert.strictEqual(yield* server.command("EXISTS", publisherKey), 0)

        const idle = record()
        yield* a.put(idle)
        yield* a.release(idle.id, "idle")
        assert.isTrue(Option.isNone(yield* b.publisherOf(stream)))

        // Both passed the check at once: the older one going leaves the newer one's key.
        const older = record()
        const newer = record()
        yield* a.put(older)
        yield* b.put(newer)
        yield* a.remove(older.id)
        assert.strictEqual(Option.getOrUndefined(yield* a.publisherOf(stream))?.id, newer.id)
        yield* b.remove(newer.id)
      }))

    it.scoped("publisherOf after a shutdown: a record kept for a takeover does not count until a proxy relays it again", () =>
      Effect.gen(function*() {
        const { a, b } = yield* twoProxies()
        const stream = StreamKey.make("__defaultVhost__/live/s")

        const orphan = record()
        yield* a.put(orphan)
        yield* a.release(orphan.id, "shutdown")
        assert.isTrue(Option.isNone(yield* b.publisherOf(stream)))
        assert.deepStrictEqual(yield* b.findByUfrag(orphan.ufragPair), Option.some(orphan), "kept for a takeover")
        yield* b.put(orphan) // B takes it over (the client's next binding request reached it)
        assert.deepStrictEqual(yield* a.publisherOf(stream), Option.some(orphan))

        // B relays it now: A shutting down with its own (stale) copy changes nothing.
        yield* a.release(orphan.id, "shutdown")
        assert.deepStrictEqual(yield* a.publisherOf(stream), Option.some(orphan))
      }))

    it.scoped("records expire after their TTL unless the relaying proxy renews them with touch", () =>
      Effect.gen(function*() {
        const ttl = Duration.millis(600)
        const { a, b, keyPrefix, server } = yield* twoProxies(ttl)
        const alive = record()
        const abandoned = record({ streamUrl: "__defaultVhost__/live/other" })
        yield* a.put(alive)
        yield* a.put(abandoned)
        // The relay's sweeper calls touch with its live sessions about every second; here every 50 ms.
        yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(50), a.touch([alive]))))
        yield* Effect.sleep(1000)

        assert.deepStrictEqual(yield* b.get(alive.id), Option.some(alive))
        assert.deepStrictEqual(yield* b.findByUfrag(alive.ufragPair), Option.some(alive))
        assert.strictEqual(yield* server.command("EXISTS", `${keyPrefix}:srs-proxy-rtc:${alive.streamUrl}`), 1)
        assert.isTrue(Option.isNone(yield* b.get(abandoned.id)))
        assert.isTrue(Option.isNone(yield* b.findByUfrag(abandoned.ufragPair)))
        assert.strictEqual(yield* server.command("EXISTS", `${keyPrefix}:srs-proxy-rtc:${abandoned.streamUrl}`), 0)
        assert.deepStrictEqual(yield* b.publisherOf(alive.streamUrl), Option.some(alive))
        assert.isTrue(Option.isNone(yield* b.publisherOf(abandoned.streamUrl)))
        assert.strictEqual(yield* server.command("EXISTS", `${keyPrefix}:rtc-proxy-publisher:${abandoned.streamUrl}`), 0)
      }))

    it.scoped("touch renews at most every quarter TTL, not at every sweep", () =>
      Effect.gen(function*() {
        const server = yield* TestRedis
        const keyPrefix = prefix()
        const a = yield* store(server, { keyPrefix, ttl: Duration.seconds(120) })
        const r = record()
        yield* a.put(r)
        yield* server.command("PEXPIRE", `${keyPrefix}:rtc-proxy-session:${r.id}`, "50000")
        yield* a.touch([r])
        assert.isAtMost((yield* server.command("PTTL", `${keyPrefix}:rtc-proxy-session:${r.id}`)) as number, 50_000)
      }))
  })

  it.scopedLive("a Redis that goes away: lookups and writes fail with 503, removal and renewal do not fail", () => {
    const logged: Array<string> = []
    const capture = Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => void logged.push(String(message))))
    return Effect.gen(function*() {
      const server = yield* redisServer()
      const a = yield* store(server, { keyPrefix: "gone" })
      const r = record()
      yield* a.put(r)
      yield* server.kill

      const failures = yield* Effect.all([
        Effect.flip(a.put(record())),
        Effect.flip(a.get(r.id)),
        Effect.flip(a.findByUfrag(r.ufragPair)),
        Effect.flip(a.publisherOf(r.streamUrl)),
        Effect.flip(a.rekey(r.id, { ufragPair: UfragPair.make("n:m"), serverPwd: "p" })),
        Effect.flip(a.list)
      ])
      for (const failure of failures) {
        assert.strictEqual(failure._tag, "ServiceUnavailable")
        assert.strictEqual(failure.status, 503)
        assert.strictEqual(failure.message, "the proxies' shared state (Redis) is unavailable; try again shortly")
      }
      const started = Date.now()
      yield* a.remove(r.id)
      yield* a.release(r.id, "idle")
      yield* a.release(r.id, "shutdown")
      yield* a.touch([r])
      assert.isBelow(Date.now() - started, 2000)
      // The client gets the short answer; the log gets the details.
      assert.isTrue(logged.some((line) => /^Redis at 127\.0\.0\.1:\d+ is not connected/.test(line)), logged.join("\n"))
    }).pipe(Effect.provide(capture))
  }, 15_000)
})
