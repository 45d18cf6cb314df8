// Every main <-> worker message is checked where it is received: what is not one is refused, not acted on.
import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Messages from "../../src/Workers/Messages.js"

describe("worker messages", () => {
  it("well-formed messages decode both ways", () => {
    assert.isTrue(Either.isRight(Messages.decodeToWorker({ _tag: "Close", id: "s1" })))
    assert.isTrue(Either.isRight(Messages.decodeToWorker({ _tag: "Report", seq: 3 })))
    assert.isTrue(Either.isRight(Messages.decodeToWorker({ _tag: "AddUfrag", id: "s1", ufragPair: "a:b", serverPwd: "p" })))
  })

  it("an ICE restart carried out by the proxy reaches the worker with the keys its router re-signs with", () => {
    const ice = {
      clientPwd: "newClientPwd0123456789",
      etag: "\"e2\"",
      lite: true,
      origin: { ufragPair: "srv:cli", serverPwd: "originServerPwd0123456", clientPwd: "oldClientPwd0123456789" }
    }
    const decoded = Messages.decodeToWorker({ _tag: "AddUfrag", id: "s1", ufragPair: "new:cli2", serverPwd: "mintedPwd", ice })
    assert.deepStrictEqual<unknown>(decoded, Either.right({ _tag: "AddUfrag", id: "s1", ufragPair: "new:cli2", serverPwd: "mintedPwd", ice }))
    assert.isTrue(Either.isRight(Messages.decodeFromWorker({ _tag: "Opened", id: "s1", displaced: undefined })))
    assert.isTrue(Either.isRight(Messages.decodeFromWorker({
      _tag: "Reported",
      seq: 1,
      ids: ["s1"],
      counters: new Float64Array(Messages.COUNTERS_PER_SESSION),
      clientAddresses: [""],
      rekeyed: [],
      packetsRelayed: 0,
      addressCount: 0,
      ufragCount: 1,
      drops: { unclassified: 0 },
      sockets: 2,
      heapUsed: 4_000_000,
      heapTotal: 6_000_000,
      boundAddresses: ["127.0.0.1"]
    })))
  })

  it("anything else is refused", () => {
    for (
      const bad of [
        undefined,
        "Close",
        { _tag: "Close" },
        { _tag: "Report", seq: 1.5 },
        { _tag: "Open", record: { id: "s1" } },
        { _tag: "AddUfrag", id: "s1", ufragPair: "a:b", serverPwd: "p", ice: { clientPwd: "x" } },
        { _tag: "Reboot" }
      ]
    ) assert.isTrue(Either.isLeft(Messages.decodeToWorker(bad)), JSON.stringify(bad))
    assert.isTrue(Either.isLeft(Messages.decodeFromWorker({ _tag: "Reported", seq: 1, counters: [1, 2] })))
    assert.isTrue(Either.isLeft(Messages.decodeFromWorker({ _tag: "Log", level: "Trace", message: "x" })))
    assert.isTrue(Either.isLeft(Messages.decodeInit({ worker: 0, host: "127.0.0.1" })))
  })
})
