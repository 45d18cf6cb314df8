/**
 * Which data-plane worker takes a new session: the least loaded one, by its share of the sessions
 * and of the packet rate (a few busy sessions weigh as much as many quiet ones). Pure.
 *
 * @since 0.1.0
 */

export interface WorkerLoad {
  readonly up: boolean
  readonly sessions: number
  /** Packets per second relayed, from the last reports. */
  readonly packetRate: number
}

/** The index of the least-loaded worker that is up (the lowest index on a tie); undefined when none is up. */
export const leastLoaded = (loads: ReadonlyArray<WorkerLoad>): number | undefined => {
  let sessions = 0
  let rate = 0
  for (const load of loads) {
    if (!load.up) continue
    sessions += load.sessions
    rate += load.packetRate
  }
  let best: number | undefined
  let bestScore = Infinity
  for (let i = 0; i < loads.length; i++) {
    const load = loads[i]!
    if (!load.up) continue
    const score = (sessions === 0 ? 0 : load.sessions / sessions) + (rate === 0 ? 0 : load.packetRate / rate)
    if (score < bestScore) {
      best = i
      bestScore = score
    }
  }
  return best
}
