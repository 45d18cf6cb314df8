// RFC 4571 framing: every way a TCP stream can cut or join frames, and the limits.
import { assert, describe, it } from "@effect/vitest"
import { encodeFrame, FrameDecoder } from "../../src/Tcp/Framing.js"

const frame = (...bytes: Array<number>) => encodeFrame(Buffer.from(bytes))

/** Feeds `chunks` to a decoder; returns the frames (as arrays) and the last problem. */
const decode = (chunks: ReadonlyArray<Buffer>, maxFrame = 100) => {
  const decoder = new FrameDecoder(maxFrame)
  const frames: Array<Array<number>> = []
  let problem: string | undefined
  for (const chunk of chunks) {
    problem = decoder.push(chunk, (f) => frames.push([...f]))
    if (problem !== undefined) break
  }
  return { frames, problem, buffered: decoder.buffered }
}

describe("RFC 4571 framing", () => {
  it("encodes the length as 16-bit big endian before the packet", () => {
    assert.deepStrictEqual([...frame(1, 2, 3)], [0, 3, 1, 2, 3])
    assert.deepStrictEqual([...encodeFrame(Buffer.alloc(300, 7)).subarray(0, 3)], [1, 44, 7])
    assert.deepStrictEqual([...encodeFrame(Buffer.alloc(0xffff)).subarray(0, 2)], [0xff, 0xff])
  })

  it("a frame in one read comes out whole, as a view of the read", () => {
    const decoder = new FrameDecoder(100)
    const chunk = frame(9, 8, 7)
    const frames: Array<Buffer> = []
    assert.isUndefined(decoder.push(chunk, (f) => frames.push(f)))
    assert.deepStrictEqual(frames.map((f) => [...f]), [[9, 8, 7]])
    assert.strictEqual(frames[0]!.buffer, chunk.buffer)
    assert.strictEqual(decoder.buffered, 0)
  })

  it("coalesced frames in one read come out one by one, in order", () => {
    const { frames, problem } = decode([Buffer.concat([frame(1), frame(2, 2), frame(3, 3, 3)])])
    assert.isUndefined(problem)
    assert.deepStrictEqual(frames, [[1], [2, 2], [3, 3, 3]])
  })

  it("a frame split in its body, in its header, and byte by byte comes out once it is complete", () => {
    const whole = Buffer.concat([frame(1, 2, 3, 4), frame(5, 6)])
    // Every place the stream can be cut in two.
    for (let cut = 1; cut < whole.length; cut++) {
      const { buffered, frames, problem } = decode([whole.subarray(0, cut), whole.subarray(cut)])
      assert.isUndefined(problem)
      assert.deepStrictEqual(frames, [[1, 2, 3, 4], [5, 6]], `cut at ${cut}`)
      assert.strictEqual(buffered, 0)
    }
    const byByte = decode([...whole].map((b) => Buffer.from([b])))
    assert.deepStrictEqual(byByte.frames, [[1, 2, 3, 4], [5, 6]])
  })

  it("a split frame's bytes are held, and a split frame is a copy the next read cannot change", () => {
    const decoder = new FrameDecoder(100)
    const frames: Array<Buffer> = []
    const first = Buffer.from([0, 3, 1])
    decoder.push(first, (f) => frames.push(f))
    assert.strictEqual(decoder.buffered, 3)
    decoder.push(Buffer.from([1]), (f) => frames.push(f))
    assert.strictEqual(decoder.buffered, 4)
    const last = Buffer.concat([Buffer.from([1]), frame(4)])
    decoder.push(last, (f) => frames.push(f))
    first.fill(0xff)
    last.fill(0xff, 0, 1)
    assert.deepStrictEqual(frames.map((f) => [...f]), [[1, 1, 1], [4]])
    assert.strictEqual(decoder.buffered, 0)
  })

  it("a zero-length frame carries no packet and is skipped, whole or split", () => {
    assert.deepStrictEqual(decode([Buffer.concat([frame(), frame(1), frame()])]).frames, [[1]])
    assert.deepStrictEqual(decode([Buffer.from([0]), Buffer.from([0, 0, 1, 5])]).frames, [[5]])
    assert.deepStrictEqual(decode([Buffer.from([0]), Buffer.from([0])]).buffered, 0)
  })

  it("a frame longer than the limit stops the stream, whether its header came whole or split", () => {
    const oversized = encodeFrame(Buffer.alloc(101))
    assert.deepStrictEqual(decode([oversized]), { frames: [], problem: "oversized", buffered: 0 })
    // Frames before it still come out.
    assert.deepStrictEqual(decode([Buffer.concat([frame(1), oversized])]).frames, [[1]])
    assert.strictEqual(decode([Buffer.concat([frame(1), oversized])]).problem, "oversized")
    assert.strictEqual(decode([oversized.subarray(0, 1), oversized.subarray(1)]).problem, "oversized")
    // At the limit is fine.
    assert.deepStrictEqual(decode([encodeFrame(Buffer.alloc(100, 1))]).frames, [Array(100).fill(1)])
  })

  it("an empty read changes nothing", () => {
    const { buffered, frames, problem } = decode([Buffer.alloc(0), Buffer.from([0]), Buffer.alloc(0), Buffer.from([1, 9])])
    assert.isUndefined(problem)
    assert.deepStrictEqual(frames, [[9]])
    assert.strictEqual(buffered, 0)
  })
})
