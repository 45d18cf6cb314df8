/**
 * Where each of a session's recent binding requests came from, by STUN transaction id, so that the
 * origin's response goes back to the address (and local socket) that asked. An ICE agent checks
 * several candidate pairs at once; a response sent to another pair's address is dropped by the
 * client, and that pair never succeeds. Bounded and short-lived: a ring of a few slots per session,
 * each freed by its response or overwritten. Plain code on the data path: nothing is allocated per
 * packet once a session's ring exists.
 *
 * @since 0.1.0
 */
import type { ClientPath } from "./ClientPath.js"

/** Checks in flight at once per session: one per candidate pair, retransmissions share a slot. */
const SLOTS = 8
/** A STUN transaction id: bytes 8 to 20 of the header. */
const ID_START = 8
const ID_LENGTH = 12

/** Where the reply to a check goes. */
export interface CheckSender {
  address: string
  port: number
  socket: ClientPath | undefined
  /** The key the origin's response is signed again with (a check the proxy translated), if any. */
  resignKey: string | undefined
}

export class CheckTable {
  private readonly ids = Buffer.alloc(SLOTS * ID_LENGTH)
  private readonly senders: Array<CheckSender> = Array.from({ length: SLOTS }, () => ({
    address: "",
    port: 0,
    socket: undefined,
    resignKey: undefined
  }))
  /** When each slot was filled, in the owner's ticks; -1: free. */
  private readonly filledAt = new Int32Array(SLOTS).fill(-1)
  private next = 0

  /** Records who sent the binding request `msg` (at least a STUN header long). */
  record(
    msg: Uint8Array,
    address: string,
    port: number,
    socket: ClientPath | undefined,
    tick: number,
    resignKey: string | undefined = undefined
  ): void {
    let slot = this.find(msg)
    if (slot === -1) {
      slot = this.next
      this.next = (this.next + 1) % SLOTS
      for (let i = 0; i < ID_LENGTH; i++) this.ids[slot * ID_LENGTH + i] = msg[ID_START + i]!
    }
    const sender = this.senders[slot]!
    sender.address = address
    sender.port = port
    sender.socket = socket
    sender.resignKey = resignKey
    this.filledAt[slot] = tick
  }

  /**
   * The sender of the request `msg` answers (a STUN response), if it is recent (within `maxAgeTicks`
   * of `tick`); its slot is freed. The returned object is reused: read it at once.
   */
  take(msg: Uint8Array, tick: number, maxAgeTicks: number): CheckSender | undefined {
    const slot = this.find(msg)
    if (slot === -1) return undefined
    const age = tick - this.filledAt[slot]!
    this.filledAt[slot] = -1
    return age <= maxAgeTicks ? this.senders[slot] : undefined
  }

  /** Forgets every check sent through `socket` (its local address went away). */
  forgetSocket(socket: ClientPath): void {
    for (let slot = 0; slot < SLOTS; slot++) {
      if (this.senders[slot]!.socket === socket) this.filledAt[slot] = -1
    }
  }

  private find(msg: Uint8Array): number {
    for (let slot = 0; slot < SLOTS; slot++) {
      if (this.filledAt[slot] === -1) continue
      const base = slot * ID_LENGTH
      let same = true
      for (let i = 0; i < ID_LENGTH; i++) {
        if (this.ids[base + i] !== msg[ID_START + i]) {
          same = false
          break
        }
      }
      if (same) return slot
    }
    return -1
  }
}
