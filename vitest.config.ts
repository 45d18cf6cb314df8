import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Real sockets and real WebRTC peers: keep files apart so ports and timing do not interfere.
    pool: "forks",
    fileParallelism: true
  }
})
