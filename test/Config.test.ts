import { assert, describe, it } from "@effect/vitest"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { config, parseDotEnv, parseDuration, providerFrom } from "../src/Config.ts"

const load = (entries: Record<string, string>) =>
  Effect.withConfigProvider(config, ConfigProvider.fromMap(new Map(Object.entries(entries))))

const millis = (text: string): number => {
  const result = parseDuration(text)
  if (Either.isLeft(result)) return assert.fail(`${text}: ${result.left}`)
  return Duration.toMillis(result.right)
}

describe("parseDuration", () => {
  it("Go durations", () => {
    assert.strictEqual(millis("300s"), 300_000)
    assert.strictEqual(millis("1m30s"), 90_000)
    assert.strictEqual(millis("500ms"), 500)
    assert.strictEqual(millis("2h45m"), 9_900_000)
    assert.strictEqual(millis("1.5s"), 1500)
    assert.strictEqual(millis("1500us"), 1.5)
  })

  it("bare seconds, whole or not", () => {
    assert.strictEqual(millis("30"), 30_000)
    assert.strictEqual(millis("1.5"), 1500)
    assert.strictEqual(millis("0"), 0)
  })

  it("Effect's form", () => {
    assert.strictEqual(millis("30 seconds"), 30_000)
    assert.strictEqual(millis("2 minutes"), 120_000)
  })

  it("white space around is ignored", () => {
    assert.strictEqual(millis(" 30s "), 30_000)
  })

  it("junk is refused with a message quoting it", () => {
    for (const junk of ["soon", "", "30x", "1m30", "s", "30 sec", "1,5s", "-5s"]) {
      const result = parseDuration(junk)
      assert.isTrue(Either.isLeft(result), JSON.stringify(junk))
      if (Either.isLeft(result)) assert.include(result.left, JSON.stringify(junk))
    }
  })
})

describe("parseDotEnv", () => {
  it("comments and blank lines are skipped", () => {
    const env = parseDotEnv("# a comment\n\n   # indented comment\nA=1\n")
    assert.deepStrictEqual([...env], [["A", "1"]])
  })

  it("export prefixes and white space around '='", () => {
    const env = parseDotEnv("export PROXY_HTTP_API=8080\nexport   B = two\n")
    assert.strictEqual(env.get("PROXY_HTTP_API"), "8080")
    assert.strictEqual(env.get("B"), "two")
  })

  it("double quotes: white space and '#' kept, \\n is a newline", () => {
    const env = parseDotEnv("A=\"hello world\"\nB=\"p#ss # word\"\nC=\"line1\\nline2\"\n")
    assert.strictEqual(env.get("A"), "hello world")
    assert.strictEqual(env.get("B"), "p#ss # word")
    assert.strictEqual(env.get("C"), "line1\nline2")
  })

  it("single quotes are literal", () => {
    const env = parseDotEnv("A='it is # here'\nB='a\\nb'\n")
    assert.strictEqual(env.get("A"), "it is # here")
    assert.strictEqual(env.get("B"), "a\\nb")
  })

  it("inline comments after unquoted values; '#' inside a word stays", () => {
    const env = parseDotEnv("A=value # the comment\nB=abc#def\nC=x\t# tab before\n")
    assert.strictEqual(env.get("A"), "value")
    assert.strictEqual(env.get("B"), "abc#def")
    assert.strictEqual(env.get("C"), "x")
  })

  it("inline comments after quoted values", () => {
    const env = parseDotEnv("A=\"quoted value\" # the comment\nB='single' # another\nC=\"x\"   #\n")
    assert.strictEqual(env.get("A"), "quoted value")
    assert.strictEqual(env.get("B"), "single")
    assert.strictEqual(env.get("C"), "x")
  })

  it("CRLF line endings leave no CR in keys or values", () => {
    const env = parseDotEnv("A=1\r\nB=\"two\"\r\n# c\r\nC=3 # x\r\n")
    assert.deepStrictEqual([...env], [["A", "1"], ["B", "two"], ["C", "3"]])
  })

  it("lines that are not assignments are ignored; an empty value is kept as empty", () => {
    const env = parseDotEnv("not an assignment\n1BAD=x\nBAD-NAME=y\nEMPTY=\n")
    assert.deepStrictEqual([...env], [["EMPTY", ""]])
  })
})

describe("providerFrom", () => {
  it.effect("the environment wins over .env", () =>
    Effect.gen(function*() {
      const provider = providerFrom(
        { PROXY_HTTP_API: "9000" },
        new Map([["PROXY_HTTP_API", "8000"], ["PROXY_SYSTEM_API", "8001"]])
      )
      const loaded = yield* Effect.withConfigProvider(config, provider)
      assert.strictEqual(loaded.httpPort, 9000)
      assert.strictEqual(loaded.systemPort, 8001)
    }))

  it.effect("empty is unset: an empty environment value leaves .env's; an empty .env value leaves the default", () =>
    Effect.gen(function*() {
      const provider = providerFrom(
        { PROXY_HTTP_API: "", PROXY_SYSTEM_API: undefined, PROXY_REDIS_PASSWORD: "" },
        new Map([["PROXY_HTTP_API", "8000"], ["PROXY_WEBRTC_SERVER", ""]])
      )
      const loaded = yield* Effect.withConfigProvider(config, provider)
      assert.strictEqual(loaded.httpPort, 8000)
      assert.strictEqual(loaded.systemPort, 12025)
      assert.strictEqual(loaded.udpPort, 18000)
      assert.isTrue(Option.isNone(loaded.redis.password))
    }))
})

describe("config", () => {
  it.effect("defaults: the Go proxy's ports and timeouts, memory load balancer, no candidate override", () =>
    Effect.gen(function*() {
      const loaded = yield* load({})
      assert.strictEqual(loaded.listenHost, "0.0.0.0")
      assert.strictEqual(loaded.httpPort, 11985)
      assert.strictEqual(loaded.systemPort, 12025)
      assert.strictEqual(loaded.udpPort, 18000)
      assert.strictEqual(loaded.loadBalancer, "memory")
      assert.deepStrictEqual(loaded.redis, {
        host: "127.0.0.1",
        port: 6379,
        password: Option.none(),
        db: 0,
        keyPrefix: ""
      })
      assert.strictEqual(Duration.toMillis(loaded.originTtl), 300_000)
      // Unset: each load balancer's own default (memory 1 h, Redis for ever).
      assert.isTrue(Option.isNone(loaded.streamMappingTtl))
      assert.strictEqual(Duration.toMillis(loaded.relayIdleTimeout), 30_000)
      assert.strictEqual(Duration.toMillis(loaded.originTimeout), 5_000)
      assert.strictEqual(Duration.toMillis(loaded.graceQuitTimeout), 20_000)
      assert.strictEqual(Duration.toMillis(loaded.forceQuitTimeout), 30_000)
      assert.isTrue(Option.isNone(loaded.defaultBackend))
      assert.isTrue(Option.isNone(loaded.candidateIp))
      // No PROXY_CANDIDATE_PORT: answers carry the port the UDP socket is bound to.
      assert.isTrue(Option.isNone(loaded.candidatePort))
      assert.isTrue(Option.isNone(loaded.systemApiToken))
      assert.strictEqual(loaded.maxBodyBytes, 64 * 1024)
      assert.strictEqual(loaded.udpBufferBytes, 4 * 1024 * 1024)
    }))

  it.effect("PROXY_CANDIDATE_PORT and PROXY_CANDIDATE_IP (v4 and v6)", () =>
    Effect.gen(function*() {
      const loaded = yield* load({ PROXY_CANDIDATE_PORT: "28000", PROXY_CANDIDATE_IP: "198.51.100.1", PROXY_WEBRTC_SERVER: "19000" })
      assert.deepStrictEqual(loaded.candidatePort, Option.some(28000))
      assert.deepStrictEqual(loaded.candidateIp, Option.some("198.51.100.1"))
      assert.strictEqual(loaded.udpPort, 19000)
      const v6 = yield* load({ PROXY_CANDIDATE_IP: "2001:db8::9" })
      assert.deepStrictEqual(v6.candidateIp, Option.some("2001:db8::9"))
    }))

  it.effect("the default backend on, with its defaults and with overrides", () =>
    Effect.gen(function*() {
      const on = yield* load({ PROXY_DEFAULT_BACKEND_ENABLED: "on" })
      assert.deepStrictEqual(on.defaultBackend, Option.some({ ip: "127.0.0.1", apiPort: 1985, rtcPort: 8000 }))
      const custom = yield* load({
        PROXY_DEFAULT_BACKEND_ENABLED: "true",
        PROXY_DEFAULT_BACKEND_IP: "10.0.0.7",
        PROXY_DEFAULT_BACKEND_API: "19853",
        PROXY_DEFAULT_BACKEND_RTC: "8001"
      })
      assert.deepStrictEqual(custom.defaultBackend, Option.some({ ip: "10.0.0.7", apiPort: 19853, rtcPort: 8001 }))
    }))

  it.effect("the default backend off, even with its address set", () =>
    Effect.gen(function*() {
      for (const off of ["off", "false", "0"]) {
        const loaded = yield* load({ PROXY_DEFAULT_BACKEND_ENABLED: off, PROXY_DEFAULT_BACKEND_IP: "10.0.0.7" })
        assert.isTrue(Option.isNone(loaded.defaultBackend), off)
      }
    }))

  it.effect("the Redis settings and the load balancer type", () =>
    Effect.gen(function*() {
      const loaded = yield* load({
        PROXY_LOAD_BALANCER_TYPE: "redis",
        PROXY_REDIS_HOST: "redis.internal",
        PROXY_REDIS_PORT: "6380",
        PROXY_REDIS_PASSWORD: "secret",
        PROXY_REDIS_DB: "2",
        PROXY_REDIS_KEY_PREFIX: "rtc"
      })
      assert.strictEqual(loaded.loadBalancer, "redis")
      assert.deepStrictEqual(loaded.redis, {
        host: "redis.internal",
        port: 6380,
        password: Option.some("secret"),
        db: 2,
        keyPrefix: "rtc"
      })
    }))

  it.effect("durations in every form", () =>
    Effect.gen(function*() {
      const loaded = yield* load({
        PROXY_ORIGIN_SERVER_TTL: "1m30s",
        PROXY_RTC_IDLE_TIMEOUT: "45",
        PROXY_ORIGIN_TIMEOUT: "2 seconds",
        PROXY_STREAM_MAPPING_TTL: "0"
      })
      assert.strictEqual(Duration.toMillis(loaded.originTtl), 90_000)
      assert.deepStrictEqual(loaded.streamMappingTtl, Option.some(Duration.zero))
      assert.strictEqual(Duration.toMillis(loaded.relayIdleTimeout), 45_000)
      assert.strictEqual(Duration.toMillis(loaded.originTimeout), 2_000)
    }))

  const bad: ReadonlyArray<readonly [string, string]> = [
    ["PROXY_HTTP_API", "abc"],
    ["PROXY_HTTP_API", "70000"],
    ["PROXY_SYSTEM_API", "-1"],
    ["PROXY_WEBRTC_SERVER", "1.5"],
    ["PROXY_REDIS_PORT", "65536"],
    ["PROXY_DEFAULT_BACKEND_API", "99999"],
    ["PROXY_ORIGIN_SERVER_TTL", "soon"],
    ["PROXY_RTC_IDLE_TIMEOUT", "30x"],
    ["PROXY_STREAM_MAPPING_TTL", "a day"],
    ["PROXY_STREAM_MAPPING_TTL", "2s"],
    ["PROXY_CANDIDATE_IP", "not-an-ip"],
    ["PROXY_CANDIDATE_IP", "media.example.com"],
    ["PROXY_CANDIDATE_PORT", "0"],
    ["PROXY_CANDIDATE_PORT", "port"],
    ["PROXY_LOAD_BALANCER_TYPE", "mysql"],
    ["PROXY_DEFAULT_BACKEND_ENABLED", "maybe"],
    ["PROXY_REDIS_DB", "x"],
    ["PROXY_MAX_BODY_SIZE", "10"],
    ["PROXY_UDP_BUFFER_SIZE", "1024"]
  ]
  for (const [name, value] of bad) {
    it.effect(`${name}=${value} fails with a ConfigError that names the variable`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(load({ [name]: value }))
        assert.isTrue(ConfigError.isConfigError(error))
        assert.include(String(error), name)
      }))
  }
})
