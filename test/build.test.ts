// The package as it is published and as `npm start` runs it: compiled to dist/ by the build step,
// its entry importable by name with the same exports as src/index.ts, and the Redis client loaded
// only by a proxy configured for Redis.
import { assert, describe, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"
import { npmStartNodeFlags } from "../bench/npmStart.js"
import * as Entry from "../src/index.js"
import { freeTcpPort, freeUdpPort, startMain } from "./support/process.js"
import { waitUntil } from "./support/wait.js"

const tsc = ["node_modules/typescript/bin/tsc", "-b", "tsconfig.build.json"]

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

describe("built package", { timeout: 120_000 }, () => {
  it("builds, and its entry exports what src/index.ts does, with type declarations", () => {
    // Up to date after `npm ci` (prepare) or `npm start` (prestart): then this is a check of timestamps.
    execFileSync(process.execPath, tsc, { stdio: "inherit" })
    assert.isTrue(existsSync("dist/index.d.ts"))
    const names = execFileSync(process.execPath, [
      "--input-type=module",
      "-e",
      `const entry = await import("rtc-proxy"); console.log(JSON.stringify(Object.keys(entry).sort()))`
    ], { encoding: "utf8" })
    assert.deepStrictEqual(JSON.parse(names), Object.keys(Entry).sort())
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
})
