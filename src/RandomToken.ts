/**
 * Unguessable tokens (session ids, entity-tags) from the operating system's CSPRNG. Each
 * `randomBytes` call crosses into C++ and costs about 5 µs here, more than the rest of minting an id;
 * so bytes are drawn from a pool filled a few kilobytes at a time. No byte is handed out twice.
 *
 * @since 0.1.0
 */
import { randomFillSync } from "node:crypto"

const POOL_BYTES = 4096
const pool = Buffer.alloc(POOL_BYTES)
let offset = POOL_BYTES

/** `bytes` random bytes (at most 256), base64url-encoded. */
export const randomToken = (bytes: number): string => {
  if (bytes > 256) throw new RangeError(`randomToken: at most 256 bytes, not ${bytes}`)
  if (offset + bytes > POOL_BYTES) {
    randomFillSync(pool)
    offset = 0
  }
  const token = pool.toString("base64url", offset, offset + bytes)
  offset += bytes
  return token
}
