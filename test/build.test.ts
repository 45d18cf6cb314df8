// The package as it is published and as `npm start` runs it: compiled to dist/ by the build step,
// its entries (`rtc-proxy`, `rtc-proxy/redis`) importable by name with the same exports as their
// sources, ioredis and OpenTelemetry loaded by neither the entry nor a proxy that does not use them,
// and a SIGTERM to `npm start` reaching the proxy.
import { assert, describe, it } from "@effect/vitest"
import { execFileSync, spawn, spawnSync } from "node:child_process"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { npmStartNodeFlags } from "../bench/npmStart.js"
import * as Entry from "../src/index.js"
import * as RedisEntry from "../src/indexRedis.js"
import { freeTcpPort, freeUdpPort, startMain } from "./support/process.js"
import { waitUntil } from "./support/wait.js"

const tsc = ["node_modules/typescript/bin/tsc", "-b", "tsconfig.build.json"]

const NAME_MODULES = "./test/support/nameModules.mjs"

/** The packages (under node_modules) that importing `entry` loads, and its export names. */
const importOf = (entry: string) => {
  const run = spawnSync(process.execPath, [
    "--import",
    NAME_MODULES,
    "--input-type=module",
    "-e",
    `const entry = await import(${JSON.stringify(entry)}); console.log(JSON.stringify(Object.keys(entry).sort()))`
  ], { encoding: "utf8" })
  assert.strictEqual(run.status, 0, run.stderr)
  const packages = new Set(
    [...run.stderr.matchAll(/node_modules\/((?:@[^/]+\/)?[^/]+)\//g)].map((match) => match[1]!)
  )
  return { packages, names: JSON.parse(run.stdout) as Array<string> }
}

// NODE_DEBUG=module names every CommonJS module the process loads; ioredis is one.
const startBuilt = async (env: Record<string, string>) =>
  startMain({
    PROXY_LISTEN_HOST: "127.0.0.1",
    PROXY_HTTP_API: String(await freeTcpPort()),
    PROXY_SYSTEM_API: String(await freeTcpPort()),
    PROXY_WEBRTC_SERVER: String(await freeUdpPort()),
    PROXY_LOG_FORMAT: "logfmt",
    NODE_DEBUG: "module",
    ...env
  }, [...npmStartNodeFlags(process.cwd()), "dist/main.js"])

/** The pids whose parent is `parent`, from /proc (no `ps` needed). */
const childrenOf = (parent: number): Array<number> =>
  readdirSync("/proc").filter((name) => /^\d+$/.test(name)).flatMap((name) => {
    try {
      // The fields after the command's closing parenthesis: state, then the parent's pid.
      const stat = readFileSync(`/proc/${name}/stat`, "utf8")
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === parent ? [Number(name)] : []
    } catch {
      return []
    }
  })

const descendantsOf = (parent: number): Array<number> =>
  childrenOf(parent).flatMap((child) => [child, ...descendantsOf(child)])

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe("built package", { timeout: 120_000 }, () => {
  it("builds; rtc-proxy and rtc-proxy/redis export what their sources do, with type declarations; the entry loads neither ioredis nor OpenTelemetry", () => {
    // Up to date after `npm ci` (prepare) or `npm start` (prestart): then this is a check of timestamps.
    execFileSync(process.execPath, tsc, { stdio: "inherit" })
    assert.isTrue(existsSync("dist/index.d.ts") && existsSync("dist/indexRedis.d.ts"))
    const entry = importOf("rtc-proxy")
    assert.deepStrictEqual(entry.names, Object.keys(Entry).sort())
    // A library user pays for what they use: no Redis client, no OpenTelemetry until a proxy needs them.
    assert.isTrue(entry.packages.has("effect") && entry.packages.has("@effect/platform-node"), [...entry.packages].join(" "))
    const unwanted = [...entry.packages].filter((name) => name === "ioredis" || name.startsWith("@opentelemetry/") || name === "@effect/opentelemetry")
    assert.deepStrictEqual(unwanted, [])
    const redis = importOf("rtc-proxy/redis")
    assert.deepStrictEqual(redis.names, Object.keys(RedisEntry).sort())
    assert.isTrue(redis.packages.has("ioredis"))
  })

  it("starts as npm start runs it, without loading the Redis client in memory mode", async () => {
    execFileSync(process.execPath, tsc, { stdio: "inherit" })
    const proxy = await startBuilt({ PROXY_LOAD_BALANCER_TYPE: "memory" })
    try {
      await waitUntil("the listeners", () => proxy.output().includes("WHIP/WHEP on"), 20_000)
      assert.notInclude(proxy.output(), "ioredis")
    } finally {
      proxy.child.kill("SIGTERM")
      await proxy.exited
    }
    // Data-plane workers load their entry from dist/ too (no TypeScript loader in a built proxy).
    const workers = await startBuilt({ PROXY_LOAD_BALANCER_TYPE: "memory", PROXY_RTC_WORKERS: "2" })
    try {
      await waitUntil("the workers", () => workers.output().includes("WHIP/WHEP on"), 20_000)
      assert.include(workers.output(), "on 2 data-plane workers")
      assert.notInclude(workers.output(), "tsx")
    } finally {
      workers.child.kill("SIGTERM")
    }
    assert.strictEqual(await workers.exited, 0)
    // The same build configured for Redis loads it, and says which setting to check when Redis is not there.
    const redis = await startBuilt({ PROXY_LOAD_BALANCER_TYPE: "redis", PROXY_REDIS_PORT: String(await freeTcpPort()) })
    assert.strictEqual(await redis.exited, 1)
    assert.include(redis.output(), "ioredis")
    assert.include(redis.output(), "cannot connect to Redis")
  })

  // Docker and systemd signal the process they started; with `npm start` that is npm, whose shell
  // must not leave the proxy running on its own.
  it("npm start, then SIGTERM to npm: the proxy drains and exits, no node process left", async () => {
    const npm = spawn("npm", ["start"], {
      env: {
        ...process.env,
        PROXY_LISTEN_HOST: "127.0.0.1",
        PROXY_HTTP_API: String(await freeTcpPort()),
        PROXY_SYSTEM_API: String(await freeTcpPort()),
        PROXY_WEBRTC_SERVER: String(await freeUdpPort()),
        PROXY_LOG_FORMAT: "logfmt"
      },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    npm.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
    npm.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
    const exited = new Promise<number | null>((resolve) => npm.once("exit", (code) => resolve(code)))
    const started: Array<number> = []
    try {
      await waitUntil("the listeners", () => output.includes("WHIP/WHEP on"), 60_000)
      started.push(...descendantsOf(npm.pid!))
      // npm's own child is the proxy itself (the script's shell exec'd into node), nothing in between.
      assert.lengthOf(started, 1, output)
      assert.match(readFileSync(`/proc/${started[0]}/cmdline`, "utf8"), /^node\0.*dist\/main\.js/)
      npm.kill("SIGTERM")
      await exited
      await waitUntil("the proxy gone", () => !alive(started[0]!), 10_000)
      // Through the configured logger, as every other line (PROXY_LOG_FORMAT=logfmt here).
      assert.match(output, /level=INFO fiber=#\d+ message="SIGTERM: draining \(at most 30s\)"/, output)
    } finally {
      for (const pid of started) if (alive(pid)) process.kill(pid, "SIGKILL")
      npm.kill("SIGKILL")
    }
  })
})
