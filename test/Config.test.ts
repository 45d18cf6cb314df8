import { assert, describe, it } from "@effect/vitest"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import {
  describeConfigError,
  candidateFamilyWarnings,
  config,
  GO_PROXY_IGNORED_VARIABLES,
  ignoredGoProxyLine,
  ignoredGoProxyVariables,
  type ListenAddress,
  mergeEnv,
  parseDotEnv,
  parseDuration,
  parseListenAddress,
  parseWorkerCount,
  providerFrom,
  ProxyConfig,
  type ProxyConfigShape
} from "../src/Config.ts"
import { availableParallelism } from "node:os"

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

  it("Go's other amount forms: .5s, 5.s, a leading +, μs spelt with mu", () => {
    assert.strictEqual(millis(".5s"), 500)
    assert.strictEqual(millis("5.s"), 5000)
    assert.strictEqual(millis("+20s"), 20_000)
    assert.strictEqual(millis("1500μs"), 1.5)
  })

  it("Effect's form", () => {
    assert.strictEqual(millis("30 seconds"), 30_000)
    assert.strictEqual(millis("2 minutes"), 120_000)
  })

  it("white space around is ignored", () => {
    assert.strictEqual(millis(" 30s "), 30_000)
  })

  it("junk is refused with a message quoting it", () => {
    for (const junk of ["soon", "", "30x", "1m30", "s", "30 sec", "1,5s", "-5s", ".s", "+"]) {
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

describe("parseListenAddress", () => {
  const parsed = (text: string, hostnames = true): ListenAddress => {
    const result = parseListenAddress(text, { hostnames })
    if (Either.isLeft(result)) return assert.fail(`${text}: ${result.left}`)
    return result.right
  }
  const refused = (text: string, hostnames = true): string => {
    const result = parseListenAddress(text, { hostnames })
    if (Either.isRight(result)) return assert.fail(`${text} was accepted`)
    // Every refusal quotes the value and lists the accepted forms.
    assert.include(result.left, JSON.stringify(text))
    assert.include(result.left, "accepted: 11985, :11985, 127.0.0.1:11985, [::1]:11985")
    return result.left
  }

  it("a port alone, bare or after a colon: no host of its own", () => {
    assert.deepStrictEqual(parsed("11985"), { host: Option.none(), port: 11985 })
    assert.deepStrictEqual(parsed(":11985"), { host: Option.none(), port: 11985 })
    assert.deepStrictEqual(parsed(" 0 "), { host: Option.none(), port: 0 })
    assert.deepStrictEqual(parsed("65535"), { host: Option.none(), port: 65535 })
  })

  it("IPv4 host and port, the wildcard included", () => {
    assert.deepStrictEqual(parsed("127.0.0.1:11985"), { host: Option.some("127.0.0.1"), port: 11985 })
    assert.deepStrictEqual(parsed("0.0.0.0:11985"), { host: Option.some("0.0.0.0"), port: 11985 })
  })

  it("IPv6 host in brackets", () => {
    assert.deepStrictEqual(parsed("[::1]:11985"), { host: Option.some("::1"), port: 11985 })
    assert.deepStrictEqual(parsed("[::]:18000", false), { host: Option.some("::"), port: 18000 })
  })

  it("localhost is 127.0.0.1, also where host names are not taken", () => {
    assert.deepStrictEqual(parsed("localhost:11985"), { host: Option.some("127.0.0.1"), port: 11985 })
    assert.deepStrictEqual(parsed("LocalHost:18000", false), { host: Option.some("127.0.0.1"), port: 18000 })
  })

  it("host names are bound as given where they are taken", () => {
    assert.deepStrictEqual(parsed("media-1.internal:11985"), { host: Option.some("media-1.internal"), port: 11985 })
    assert.include(refused("media-1.internal:18000", false), "must be an IP address")
  })

  it("a port past 65535", () => {
    assert.include(refused("70000"), "from 0 to 65535")
    assert.include(refused("127.0.0.1:65536"), "from 0 to 65535")
  })

  it("not a port: words, signs, fractions, nothing, a host without port", () => {
    for (const text of ["eleven", "-1", "1.5", "", ":", "127.0.0.1", "127.0.0.1:", "127.0.0.1:port", "tcp://11985"]) {
      assert.include(refused(text), "expected a port or host:port")
    }
  })

  it("an IPv6 host without brackets", () => {
    assert.include(refused("::1:11985"), "needs brackets")
    assert.include(refused("2001:db8::1:80"), "needs brackets")
  })

  it("brackets around something that is not IPv6", () => {
    assert.include(refused("[127.0.0.1]:11985"), "is not an IPv6 address")
    assert.include(refused("[]:11985"), "is not an IPv6 address")
  })

  it("numbers and dots that are not an IPv4 address", () => {
    assert.include(refused("999.0.0.1:11985"), "is not an IPv4 address")
    assert.include(refused("127.0.0:11985"), "is not an IPv4 address")
  })

  it("a host that is neither an address nor a name", () => {
    for (const text of ["bad_host:11985", "-lead.example:11985", "a..b:11985", "host name:11985"]) {
      assert.include(refused(text), "neither an IP address nor a host name")
    }
  })
})

describe("the SRS Go proxy's variables", () => {
  it("the ones for what rtc-proxy does not serve are named, in the list's order, when set", () => {
    const env = mergeEnv(
      { PROXY_SRT_SERVER: "20080", PROXY_RTMP_SERVER: "11935", GO_PPROF: "", PROXY_HTTP_API: "11985" },
      new Map([["PROXY_STATIC_FILES", "./trunk/research"]])
    )
    assert.deepStrictEqual(ignoredGoProxyVariables(env), ["PROXY_RTMP_SERVER", "PROXY_SRT_SERVER", "PROXY_STATIC_FILES"])
    assert.deepStrictEqual(ignoredGoProxyVariables(new Map()), [])
  })

  it.effect("every ignored one at once, with the Go proxy's defaults, leaves the configuration as without them", () =>
    Effect.gen(function*() {
      const goDefaults: Record<string, string> = {
        GO_PPROF: "localhost:6060",
        PROXY_RTMP_SERVER: "11935",
        PROXY_HTTP_SERVER: "18080",
        PROXY_SRT_SERVER: "20080",
        PROXY_STATIC_FILES: "./trunk/research",
        PROXY_DEFAULT_BACKEND_RTMP: "1935",
        PROXY_DEFAULT_BACKEND_HTTP: "8080",
        PROXY_DEFAULT_BACKEND_SRT: "10080",
        PROXY_HLS_ALIVE_DURATION: "120s",
        PROXY_RTC_ALIVE_DURATION: "120s",
        PROXY_HTTP_API_AUTH_ENABLED: "off",
        PROXY_HTTP_API_AUTH_TYPE: "bearer",
        PROXY_HTTP_API_AUTH_TOKEN: "t"
      }
      assert.sameMembers(Object.keys(goDefaults), [...GO_PROXY_IGNORED_VARIABLES])
      assert.deepStrictEqual(yield* load(goDefaults), yield* load({}))
    }))

  it.effect("the shared ones in the Go proxy's own forms", () =>
    Effect.gen(function*() {
      const loaded = yield* load({
        PROXY_HTTP_API: "127.0.0.1:11985",
        PROXY_SYSTEM_API: ":12025",
        PROXY_WEBRTC_SERVER: "[::1]:18000",
        PROXY_FORCE_QUIT_TIMEOUT: "30s",
        PROXY_GRACE_QUIT_TIMEOUT: "20s",
        PROXY_ORIGIN_SERVER_TTL: "45s",
        PROXY_DEFAULT_BACKEND_ENABLED: "on",
        PROXY_REDIS_PASSWORD: "",
        PROXY_REDIS_DB: "0"
      })
      assert.deepStrictEqual([loaded.httpHost, loaded.httpPort], [Option.some("127.0.0.1"), 11985])
      assert.deepStrictEqual([loaded.systemHost, loaded.systemPort], [Option.none(), 12025])
      assert.deepStrictEqual([loaded.udpHost, loaded.udpPort], [Option.some("::1"), 18000])
      assert.strictEqual(Duration.toMillis(loaded.originTtl), 45_000)
      assert.isTrue(Option.isSome(loaded.defaultBackend))
    }))

  it.effect("PROXY_DEFAULT_BACKEND_ENABLED: on/off in any case, and Effect's other spellings", () =>
    Effect.gen(function*() {
      for (const on of ["on", "ON", "On", "true", "yes", "1"]) {
        assert.isTrue(Option.isSome((yield* load({ PROXY_DEFAULT_BACKEND_ENABLED: on })).defaultBackend), on)
      }
      for (const off of ["off", "OFF", "false", "no", "0"]) {
        assert.isTrue(Option.isNone((yield* load({ PROXY_DEFAULT_BACKEND_ENABLED: off })).defaultBackend), off)
      }
    }))

  it.effect("PROXY_SERVER_ALIVE_DURATION (an older Go build's origin TTL) counts when PROXY_ORIGIN_SERVER_TTL is unset", () =>
    Effect.gen(function*() {
      assert.strictEqual(Duration.toMillis((yield* load({ PROXY_SERVER_ALIVE_DURATION: "60s" })).originTtl), 60_000)
      const both = yield* load({ PROXY_SERVER_ALIVE_DURATION: "60s", PROXY_ORIGIN_SERVER_TTL: "45s" })
      assert.strictEqual(Duration.toMillis(both.originTtl), 45_000)
    }))

  it.effect("PROXY_HTTP_API_AUTH_ENABLED=on stops start-up and names this proxy's token variables", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(load({ PROXY_HTTP_API_AUTH_ENABLED: "on", PROXY_HTTP_API_AUTH_TOKEN: "t" }))
      assert.include(String(error), "PROXY_HTTP_API_AUTH_ENABLED")
      assert.include(String(error), "PROXY_SYSTEM_API_TOKEN")
      assert.include(String(error), "PROXY_HTTP_API_TOKEN")
    }))

  it.effect("listen hosts: none means PROXY_LISTEN_HOST; a variable's own host is kept apart from it", () =>
    Effect.gen(function*() {
      const loaded = yield* load({ PROXY_LISTEN_HOST: "::", PROXY_HTTP_API: "localhost:8080" })
      assert.strictEqual(loaded.listenHost, "::")
      assert.deepStrictEqual(loaded.httpHost, Option.some("127.0.0.1"))
      assert.isTrue(Option.isNone(loaded.systemHost))
      assert.isTrue(Option.isNone(loaded.udpHost))
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
      assert.deepStrictEqual(loaded.candidateIps, [])
      assert.isTrue(Option.isNone(loaded.iceTcp))
      assert.strictEqual(loaded.iceTcpMaxConnections, 2000)
      assert.strictEqual(Duration.toMillis(loaded.iceTcpHandshakeTimeout), 5_000)
      // No PROXY_CANDIDATE_PORT: answers carry the port the UDP socket is bound to.
      assert.isTrue(Option.isNone(loaded.candidatePort))
      assert.isTrue(Option.isNone(loaded.systemApiToken))
      assert.strictEqual(loaded.maxBodyBytes, 64 * 1024)
      assert.strictEqual(loaded.udpBufferBytes, 4 * 1024 * 1024)
      assert.strictEqual(Duration.toMillis(loaded.originDownHold), 10_000)
      assert.strictEqual(loaded.originProbe.path, "/api/v1/versions")
      assert.strictEqual(Duration.toMillis(loaded.originProbe.interval), 5_000)
      assert.strictEqual(Duration.toMillis(loaded.originProbe.timeout), 2_000)
      assert.strictEqual(loaded.originProbe.failures, 3)
    }))

  it.effect("origin failover settings", () =>
    Effect.gen(function*() {
      const loaded = yield* load({
        PROXY_ORIGIN_DOWN_HOLD: "30s",
        PROXY_ORIGIN_PROBE_PATH: "/healthz",
        PROXY_ORIGIN_PROBE_INTERVAL: "0",
        PROXY_ORIGIN_PROBE_TIMEOUT: "500ms",
        PROXY_ORIGIN_PROBE_FAILURES: "5"
      })
      assert.strictEqual(Duration.toMillis(loaded.originDownHold), 30_000)
      assert.deepStrictEqual(
        { ...loaded.originProbe, interval: Duration.toMillis(loaded.originProbe.interval), timeout: Duration.toMillis(loaded.originProbe.timeout) },
        { path: "/healthz", interval: 0, timeout: 500, failures: 5 }
      )
    }))

  it.effect("PROXY_CANDIDATE_PORT and PROXY_CANDIDATE_IP (v4 and v6)", () =>
    Effect.gen(function*() {
      const loaded = yield* load({ PROXY_CANDIDATE_PORT: "28000", PROXY_CANDIDATE_IP: "198.51.100.1", PROXY_WEBRTC_SERVER: "19000" })
      assert.deepStrictEqual(loaded.candidatePort, Option.some(28000))
      assert.deepStrictEqual(loaded.candidateIps, ["198.51.100.1"])
      assert.strictEqual(loaded.udpPort, 19000)
      const v6 = yield* load({ PROXY_CANDIDATE_IP: "2001:db8::9" })
      assert.deepStrictEqual(v6.candidateIps, ["2001:db8::9"])
      // A list: one candidate per address, in order; spaces, empty items and repeats do not count.
      const both = yield* load({ PROXY_CANDIDATE_IP: " 203.0.113.10, 2001:db8::10,,203.0.113.10 " })
      assert.deepStrictEqual(both.candidateIps, ["203.0.113.10", "2001:db8::10"])
    }))

  it.effect("a candidate address of a family the UDP port does not listen on is named in a warning", () =>
    Effect.gen(function*() {
      const both = yield* load({ PROXY_CANDIDATE_IP: "203.0.113.10,2001:db8::10" })
      const [warning, ...others] = candidateFamilyWarnings(both)
      assert.deepStrictEqual(others, [])
      assert.include(warning, "2001:db8::10")
      assert.include(warning, "0.0.0.0 (IPv4 only)")
      assert.include(warning, "PROXY_LISTEN_HOST=::")
      assert.deepStrictEqual(candidateFamilyWarnings(yield* load({ PROXY_CANDIDATE_IP: "203.0.113.10,2001:db8::10", PROXY_LISTEN_HOST: "::" })), [])
      const v6Only = yield* load({ PROXY_CANDIDATE_IP: "203.0.113.10", PROXY_WEBRTC_SERVER: "[2001:db8::1]:18000" })
      assert.include(candidateFamilyWarnings(v6Only)[0], "203.0.113.10")
      assert.deepStrictEqual(candidateFamilyWarnings(yield* load({})), [])
    }))

  it.effect("PROXY_WEBRTC_TCP in the listen forms, with its cap and handshake timeout", () =>
    Effect.gen(function*() {
      const port = yield* load({ PROXY_WEBRTC_TCP: "18000" })
      assert.deepStrictEqual(port.iceTcp, Option.some({ host: Option.none(), port: 18000 }))
      const v6 = yield* load({ PROXY_WEBRTC_TCP: "[::]:443", PROXY_WEBRTC_TCP_MAX_CONNECTIONS: "10", PROXY_WEBRTC_TCP_HANDSHAKE_TIMEOUT: "2s" })
      assert.deepStrictEqual(v6.iceTcp, Option.some({ host: Option.some("::"), port: 443 }))
      assert.strictEqual(v6.iceTcpMaxConnections, 10)
      assert.strictEqual(Duration.toMillis(v6.iceTcpHandshakeTimeout), 2_000)
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
    ["PROXY_HTTP_API", "::1:11985"],
    ["PROXY_SYSTEM_API", "bad_host:12025"],
    ["PROXY_WEBRTC_SERVER", "media.internal:18000"],
    ["PROXY_SERVER_ALIVE_DURATION", "soon"],
    ["PROXY_HTTP_API_AUTH_ENABLED", "maybe"],
    ["PROXY_REDIS_PORT", "65536"],
    ["PROXY_DEFAULT_BACKEND_API", "99999"],
    ["PROXY_ORIGIN_SERVER_TTL", "soon"],
    ["PROXY_RTC_IDLE_TIMEOUT", "30x"],
    ["PROXY_STREAM_MAPPING_TTL", "a day"],
    ["PROXY_STREAM_MAPPING_TTL", "2s"],
    ["PROXY_CANDIDATE_IP", "not-an-ip"],
    ["PROXY_CANDIDATE_IP", "media.example.com"],
    ["PROXY_CANDIDATE_IP", "203.0.113.10,not-an-ip"],
    ["PROXY_WEBRTC_TCP", "media.internal:18000"],
    ["PROXY_WEBRTC_TCP", "70000"],
    ["PROXY_WEBRTC_TCP_MAX_CONNECTIONS", "0"],
    ["PROXY_WEBRTC_TCP_HANDSHAKE_TIMEOUT", "soon"],
    ["PROXY_CANDIDATE_PORT", "0"],
    ["PROXY_CANDIDATE_PORT", "port"],
    ["PROXY_LOAD_BALANCER_TYPE", "mysql"],
    ["PROXY_DEFAULT_BACKEND_ENABLED", "maybe"],
    ["PROXY_REDIS_DB", "x"],
    ["PROXY_MAX_BODY_SIZE", "10"],
    ["PROXY_UDP_BUFFER_SIZE", "1024"],
    ["PROXY_ICE_SERVERS", "stun:ok.example.net,http://not-ice"],
    ["PROXY_TURN_TTL", "forever"],
    ["PROXY_ICE_RESTART", "sometimes"],
    ["PROXY_TRUSTED_PROXIES", "10.0.0.0/40"],
    ["PROXY_TRUSTED_PROXIES", "lb.internal"],
    ["PROXY_ORIGIN_DOWN_HOLD", "soon"],
    ["PROXY_ORIGIN_PROBE_PATH", "api/v1/versions"],
    ["PROXY_ORIGIN_PROBE_INTERVAL", "often"],
    ["PROXY_ORIGIN_PROBE_FAILURES", "0"]
  ]
  it.effect("PROXY_ICE_RESTART: on by default; off turns the proxy's own ICE restarts off", () =>
    Effect.gen(function*() {
      assert.isTrue((yield* load({})).iceRestart)
      assert.isFalse((yield* load({ PROXY_ICE_RESTART: "off" })).iceRestart)
      assert.isTrue((yield* load({ PROXY_ICE_RESTART: "ON" })).iceRestart)
    }))

  it.effect("PROXY_ICE_SERVERS: comma-separated URLs, spaces and empty items ignored; none by default", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual((yield* load({})).iceServers, [])
      const loaded = yield* load({ PROXY_ICE_SERVERS: " stun:s.example.net , ,turns:t.example.net:443?transport=tcp" })
      assert.deepStrictEqual(loaded.iceServers, ["stun:s.example.net", "turns:t.example.net:443?transport=tcp"])
    }))

  it.effect("PROXY_TRUSTED_PROXIES: none by default; addresses and ranges of both families", () =>
    Effect.gen(function*() {
      assert.isFalse((yield* load({})).trustedProxies.has("127.0.0.1"))
      const { trustedProxies } = yield* load({ PROXY_TRUSTED_PROXIES: "10.0.0.0/8,::1" })
      assert.deepStrictEqual(trustedProxies.entries, ["10.0.0.0/8", "::1"])
      assert.isTrue(trustedProxies.has("10.2.3.4") && trustedProxies.has("::1"))
    }))

  it.effect("HTTPS: off unless both files are named; port 11443 by default, the listen forms, a reload interval", () =>
    Effect.gen(function*() {
      assert.isTrue(Option.isNone((yield* load({})).https))
      const on = yield* load({ PROXY_HTTPS_CERT: "/etc/tls/fullchain.pem", PROXY_HTTPS_KEY: "/etc/tls/privkey.pem" })
      assert.deepStrictEqual(
        Option.map(on.https, (https) => ({ ...https, reloadInterval: Duration.toMillis(https.reloadInterval) })),
        Option.some({
          host: Option.none(),
          port: 11443,
          certFile: "/etc/tls/fullchain.pem",
          keyFile: "/etc/tls/privkey.pem",
          reloadInterval: 10_000
        })
      )
      const bound = yield* load({
        PROXY_HTTPS_CERT: "c",
        PROXY_HTTPS_KEY: "k",
        PROXY_HTTPS_API: "[::1]:8443",
        PROXY_HTTPS_RELOAD_INTERVAL: "1m"
      })
      const https = Option.getOrThrow(bound.https)
      assert.deepStrictEqual([https.host, https.port], [Option.some("::1"), 8443])
      assert.strictEqual(Duration.toMillis(https.reloadInterval), 60_000)
      assert.strictEqual(Option.getOrThrow((yield* load({ PROXY_HTTPS_CERT: "c", PROXY_HTTPS_KEY: "k", PROXY_HTTPS_API: ":443" })).https).port, 443)
    }))

  for (
    const [env, missing, named] of [
      [{ PROXY_HTTPS_CERT: "c" }, "PROXY_HTTPS_KEY", "PROXY_HTTPS_CERT set"],
      [{ PROXY_HTTPS_KEY: "k" }, "PROXY_HTTPS_CERT", "PROXY_HTTPS_KEY set"],
      [{ PROXY_HTTPS_API: "8443" }, "PROXY_HTTPS_CERT", "PROXY_HTTPS_API set"],
      [{ PROXY_HTTPS_KEY: "k", PROXY_HTTPS_RELOAD_INTERVAL: "5s" }, "PROXY_HTTPS_CERT", "PROXY_HTTPS_KEY and PROXY_HTTPS_RELOAD_INTERVAL set"]
    ] as const
  ) {
    it.effect(`HTTPS: ${Object.keys(env).join(" and ")} alone is an error naming ${missing}`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(load(env))
        assert.include(String(error), `at ${missing}: "${named} without ${missing}: HTTPS needs both PROXY_HTTPS_CERT and PROXY_HTTPS_KEY`)
      }))
  }

  for (const [name, value] of [["PROXY_HTTPS_API", "tls"], ["PROXY_HTTPS_API", "99999"], ["PROXY_HTTPS_RELOAD_INTERVAL", "10ms"]] as const) {
    it.effect(`HTTPS: ${name}=${value} fails naming the variable`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(load({ PROXY_HTTPS_CERT: "c", PROXY_HTTPS_KEY: "k", [name]: value }))
        assert.include(String(error), `at ${name}: `)
      }))
  }

  for (const [name, value] of bad) {
    it.effect(`${name}=${value} fails with a ConfigError that names the variable`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(load({ [name]: value }))
        assert.isTrue(ConfigError.isConfigError(error))
        // Named once, as the path: "Invalid data at PROXY_HTTP_API: ..."
        assert.include(String(error), `at ${name}: `)
      }))
  }
})

describe("PROXY_RTC_WORKERS", () => {
  it.effect("1 by default (no worker thread); a count; auto is one per available core", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* load({})).rtcWorkers, 1)
      assert.strictEqual((yield* load({ PROXY_RTC_WORKERS: "4" })).rtcWorkers, 4)
      assert.strictEqual((yield* load({ PROXY_RTC_WORKERS: "AUTO" })).rtcWorkers, Math.min(64, availableParallelism()))
    }))

  it.effect("a bad value is refused, naming the variable", () =>
    Effect.gen(function*() {
      for (const bad of ["0", "65", "-1", "two", "1.5"]) {
        const error = yield* Effect.flip(load({ PROXY_RTC_WORKERS: bad }))
        assert.include(String(error), "PROXY_RTC_WORKERS", bad)
        assert.include(String(error), "auto or a number of workers from 1 to 64", bad)
      }
      assert.deepStrictEqual(parseWorkerCount(" 2 "), Either.right(2))
    }))

  it.effect("with PROXY_WEBRTC_TCP, more than one worker stops start-up naming both variables; one worker is fine", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(load({ PROXY_RTC_WORKERS: "2", PROXY_WEBRTC_TCP: "18000" }))
      assert.include(String(error), "at PROXY_WEBRTC_TCP: ")
      assert.include(String(error), "ICE-TCP is not available with data-plane workers (PROXY_RTC_WORKERS=2)")
      assert.include(String(error), "unset PROXY_WEBRTC_TCP or set PROXY_RTC_WORKERS=1")
      const one = yield* load({ PROXY_RTC_WORKERS: "1", PROXY_WEBRTC_TCP: "18000" })
      assert.isTrue(Option.isSome(one.iceTcp))
      assert.strictEqual((yield* load({ PROXY_RTC_WORKERS: "2" })).rtcWorkers, 2)
    }))

  it.effect("built in code (ProxyConfig.layerWith), ICE-TCP with more than one worker is refused as at start-up, naming both fields", () =>
    Effect.gen(function*() {
      const build = (overrides: Partial<ProxyConfigShape>) => Effect.provide(ProxyConfig, ProxyConfig.layerWith(overrides))
      const iceTcp = Option.some({ host: Option.none(), port: 18000 })
      const error = yield* Effect.flip(build({ rtcWorkers: 2, iceTcp }))
      assert.isTrue(ConfigError.isConfigError(error))
      assert.include(String(error), "at iceTcp: ")
      assert.include(String(error), "ICE-TCP is not available with data-plane workers (rtcWorkers: 2)")
      assert.include(String(error), "unset iceTcp or set rtcWorkers to 1")
      // Either alone, or ICE-TCP with one worker, is fine.
      assert.isTrue(Option.isSome((yield* build({ rtcWorkers: 1, iceTcp })).iceTcp))
      assert.strictEqual((yield* build({ rtcWorkers: 2 })).rtcWorkers, 2)
      // A worker count the environment would refuse is refused here too.
      for (const bad of [0, 65, 1.5, Number.NaN]) {
        const refused = yield* Effect.flip(build({ rtcWorkers: bad }))
        assert.include(String(refused), "at rtcWorkers: ", String(bad))
        assert.include(String(refused), "expected a number of workers from 1 to 64", String(bad))
      }
    }))
})

describe("describeConfigError", () => {
  const refusal = (entries: Record<string, string>) =>
    Effect.map(Effect.flip(load(entries)), describeConfigError)

  it.effect("names each refused variable with its value, one line, without the error's own nesting", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* refusal({ PROXY_MAX_BODY_SIZE: "-1" }), "PROXY_MAX_BODY_SIZE: expected a size in bytes from 1024, got -1")
      const two = yield* refusal({ PROXY_HTTP_API: "abc", PROXY_MAX_SESSIONS: "-2" })
      assert.match(two, /^PROXY_HTTP_API: expected a port or host:port, got "abc" \(accepted: [^)]+\)/)
      assert.include(two, "; PROXY_MAX_SESSIONS: expected a number of sessions, 0 or more, got -2")
      assert.notInclude(two, "Invalid data")
      assert.notInclude(two, "\n")
    }))

  it("the other kinds, and And/Or", () => {
    const missing = ConfigError.MissingData(["PROXY_X"], "Expected PROXY_X to exist")
    const invalid = ConfigError.InvalidData(["PROXY_Y"], "expected a number, got \"y\"")
    assert.strictEqual(describeConfigError(missing), "PROXY_X: Expected PROXY_X to exist")
    assert.strictEqual(describeConfigError(ConfigError.And(missing, invalid)), "PROXY_X: Expected PROXY_X to exist; PROXY_Y: expected a number, got \"y\"")
    assert.strictEqual(describeConfigError(ConfigError.Or(missing, invalid)), "PROXY_X: Expected PROXY_X to exist, or PROXY_Y: expected a number, got \"y\"")
    assert.strictEqual(describeConfigError(ConfigError.InvalidData([], "no path")), "no path")
  })
})

describe("ignoredGoProxyLine", () => {
  it("none set: no line; each group with its own reason", () => {
    assert.isUndefined(ignoredGoProxyLine([]))
    assert.strictEqual(
      ignoredGoProxyLine(["PROXY_RTMP_SERVER", "GO_PPROF"]),
      "ignoring the SRS Go proxy's PROXY_RTMP_SERVER, GO_PPROF: rtc-proxy serves WebRTC only (WHIP/WHEP and one UDP port)"
    )
    const both = ignoredGoProxyLine(["PROXY_RTMP_SERVER", "PROXY_HTTP_API_AUTH_TOKEN"])!
    assert.match(both, /PROXY_RTMP_SERVER: rtc-proxy serves WebRTC only/)
    assert.match(both, /; and PROXY_HTTP_API_AUTH_TOKEN: rtc-proxy's own tokens are PROXY_HTTP_API_TOKEN \(WHIP\/WHEP\) and PROXY_SYSTEM_API_TOKEN/)
    assert.notInclude(ignoredGoProxyLine(["PROXY_HTTP_API_AUTH_TYPE"])!, "WebRTC only")
  })
})

describe("listen variables' errors", () => {
  it.effect("name the forms with the variable's own default port; a host name only where one is taken", () =>
    Effect.gen(function*() {
      const udp = describeConfigError(yield* Effect.flip(load({ PROXY_WEBRTC_SERVER: "myhost:8000" })))
      assert.include(udp, "PROXY_WEBRTC_SERVER: the host must be an IP address, not a name like myhost")
      assert.include(udp, "(accepted: 18000, :18000, 127.0.0.1:18000, [::1]:18000, 0.0.0.0:18000)")
      assert.notInclude(udp, "localhost")
      const system = describeConfigError(yield* Effect.flip(load({ PROXY_SYSTEM_API: "x:y" })))
      assert.include(system, "accepted: 12025, :12025, 127.0.0.1:12025, [::1]:12025, 0.0.0.0:12025, localhost:12025")
    }))
})
