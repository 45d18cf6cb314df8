/**
 * RFC 4571 framing, as ICE-TCP (RFC 6544) carries STUN, DTLS and SRTP: each packet is preceded by its
 * length as a 16-bit big-endian number. Pure: a decoder that cuts a TCP byte stream into packets,
 * however the stream was split or coalesced into reads, and the encoder for the way back.
 *
 * @since 0.2.0
 */

/** RFC 4571's LENGTH field. */
export const HEADER_LENGTH = 2

/** Why a stream cannot be read any further. */
export type FrameProblem = "oversized"

/**
 * Cuts a byte stream into frames. Complete frames are handed over as views of the chunk they arrived
 * in (no copy); only a frame split across reads is copied, once, into a buffer of its own length, so
 * what a connection can make the proxy hold is bounded by `maxFrame`. A zero-length frame carries no
 * packet and is skipped (RFC 4571 allows it).
 */
export class FrameDecoder {
  /** The header of a frame split across reads, and how many of its bytes are in. */
  private readonly header = Buffer.alloc(HEADER_LENGTH)
  private headerFilled = 0
  /** The body of a split frame whose header is complete, and how many of its bytes are in. */
  private body: Buffer | undefined = undefined
  private bodyFilled = 0

  constructor(readonly maxFrame: number) {}

  /** Bytes held back for a frame that is not complete yet. */
  get buffered(): number {
    return this.headerFilled + this.bodyFilled
  }

  /**
   * Reads `chunk`, calling `onFrame` for every frame it completes, in order. Stops at the first frame
   * longer than `maxFrame` and returns "oversized": the stream is then out of step for good.
   */
  push(chunk: Buffer, onFrame: (frame: Buffer) => void): FrameProblem | undefined {
    let offset = 0
    // First the frame a previous read left unfinished.
    while (this.headerFilled > 0 && offset < chunk.length) {
      if (this.headerFilled < HEADER_LENGTH) {
        this.header[this.headerFilled++] = chunk[offset++]!
        if (this.headerFilled < HEADER_LENGTH) continue
        const length = this.header.readUInt16BE(0)
        if (length > this.maxFrame) return "oversized"
        if (length === 0) {
          this.headerFilled = 0
          break
        }
        this.body = Buffer.allocUnsafe(length)
        this.bodyFilled = 0
        continue
      }
      const body = this.body!
      const taken = chunk.copy(body, this.bodyFilled, offset, offset + body.length - this.bodyFilled)
      this.bodyFilled += taken
      offset += taken
      if (this.bodyFilled < body.length) return undefined
      this.headerFilled = 0
      this.bodyFilled = 0
      this.body = undefined
      onFrame(body)
    }
    while (offset < chunk.length) {
      const left = chunk.length - offset
      if (left < HEADER_LENGTH) {
        this.header[0] = chunk[offset]!
        this.headerFilled = 1
        return undefined
      }
      const length = chunk.readUInt16BE(offset)
      if (length > this.maxFrame) return "oversized"
      if (left < HEADER_LENGTH + length) {
        chunk.copy(this.header, 0, offset, offset + HEADER_LENGTH)
        this.headerFilled = HEADER_LENGTH
        this.body = Buffer.allocUnsafe(length)
        this.bodyFilled = chunk.copy(this.body, 0, offset + HEADER_LENGTH)
        return undefined
      }
      if (length > 0) onFrame(chunk.subarray(offset + HEADER_LENGTH, offset + HEADER_LENGTH + length))
      offset += HEADER_LENGTH + length
    }
    return undefined
  }
}

/** `packet` with its RFC 4571 length in front, in one buffer (one write); at most 65535 bytes. */
export const encodeFrame = (packet: Uint8Array): Buffer => {
  const frame = Buffer.allocUnsafe(HEADER_LENGTH + packet.length)
  frame.writeUInt16BE(packet.length, 0)
  frame.set(packet, HEADER_LENGTH)
  return frame
}
