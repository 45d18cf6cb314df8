// Every main <-> worker message is checked where it is received: what is not one is refused, not acted on.
import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Messages from "../../src/Workers/Messages.js"

describe("worker messages", () => {
  it("well-formed messages decode both ways", () => {
    assert.isTrue(Either.isRight(Messages.decodeToWorker({ _tag: "Close", id: "s1" })))
    assert.isTrue(Either.isRight(Messages.decodeToWorker({ _tag: "Report", seq: 3 })))
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
        { _tag: "Reboot" }
      ]
    ) assert.isTrue(Either.isLeft(Messages.decodeToWorker(bad)), JSON.stringify(bad))
    assert.isTrue(Either.isLeft(Messages.decodeFromWorker({ _tag: "Reported", seq: 1, counters: [1, 2] })))
    assert.isTrue(Either.isLeft(Messages.decodeFromWorker({ _tag: "Log", level: "Trace", message: "x" })))
    assert.isTrue(Either.isLeft(Messages.decodeInit({ worker: 0, host: "127.0.0.1" })))
  })
})
