import { assert, describe, it } from "@effect/vitest"
import { leastLoaded } from "../../src/Workers/Placement.js"

const up = (sessions: number, packetRate = 0) => ({ up: true, sessions, packetRate })

describe("leastLoaded", () => {
  it("the worker with the fewest sessions; the lowest index on a tie", () => {
    assert.strictEqual(leastLoaded([up(2), up(1), up(3)]), 1)
    assert.strictEqual(leastLoaded([up(0), up(0)]), 0)
    assert.strictEqual(leastLoaded([up(1), up(1)]), 0)
  })

  it("weighs the packet rate: a few busy sessions count as much as many quiet ones", () => {
    // Shares: worker 0 has 1/4 of the sessions and 9/10 of the packets; worker 1 3/4 and 1/10.
    assert.strictEqual(leastLoaded([up(1, 9000), up(3, 1000)]), 1)
    assert.strictEqual(leastLoaded([up(1, 1000), up(3, 1000)]), 0)
  })

  it("never a worker that is down; none when every worker is down", () => {
    assert.strictEqual(leastLoaded([{ up: false, sessions: 0, packetRate: 0 }, up(5)]), 1)
    assert.strictEqual(leastLoaded([{ up: false, sessions: 0, packetRate: 0 }]), undefined)
    assert.strictEqual(leastLoaded([]), undefined)
  })
})
