import { describe, expect, it } from "@effect/vitest"
import { randomToken } from "../src/RandomToken.js"

describe("randomToken", () => {
  it("is base64url of the bytes asked for, and never repeats across pool refills", () => {
    const seen = new Set<string>()
    // 16-byte tokens: the 4 KiB pool is refilled every 256; 2,000 tokens cross several refills.
    for (let i = 0; i < 2000; i++) {
      const token = randomToken(16)
      expect(token).toMatch(/^[A-Za-z0-9_-]{22}$/)
      expect(Buffer.from(token, "base64url")).toHaveLength(16)
      seen.add(token)
    }
    expect(seen.size).toBe(2000)
  })

  it("takes sizes that do not divide the pool, and refuses more than 256 bytes", () => {
    for (let i = 0; i < 1000; i++) expect(Buffer.from(randomToken(7), "base64url")).toHaveLength(7)
    expect(Buffer.from(randomToken(256), "base64url")).toHaveLength(256)
    expect(() => randomToken(257)).toThrow(RangeError)
  })
})
