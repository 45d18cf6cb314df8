import { defineConfig } from "vitest/config"

/**
 * The relay, reliability and end-to-end tests run twice: on the main thread (the default, one
 * worker) and on two data-plane worker threads (PROXY_RTC_WORKERS=2, through RTC_PROXY_TEST_WORKERS).
 */
const relayTests = [
  "test/Udp/**/*.test.ts",
  "test/Reliability.test.ts",
  "test/e2e/proxy.test.ts",
  "test/e2e/failover.test.ts",
  "test/e2e/iceRestart.test.ts",
  "test/e2e/browser.test.ts"
]

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Under CI the whole suite runs on a busy 2-core runner, twice (Node 20, then 24): a test that
    // fails there gets one more try, and vitest's report marks it as retried.
    retry: process.env["CI"] === "true" ? 1 : 0,
    reporters: ["default", "./test/support/retriedReporter.ts"],
    // Real sockets and real WebRTC peers: keep files apart so ports and timing do not interfere.
    pool: "forks",
    fileParallelism: true,
    projects: [
      { extends: true, test: { name: "main", include: ["test/**/*.test.ts"] } },
      { extends: true, test: { name: "workers", include: relayTests, env: { RTC_PROXY_TEST_WORKERS: "2" } } }
    ]
  }
})
