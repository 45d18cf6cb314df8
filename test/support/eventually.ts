/**
 * Polling for tests on real sockets: wait for a condition instead of sleeping a fixed time.
 */
import * as Effect from "effect/Effect"
import * as TestServices from "effect/TestServices"

/**
 * Runs `check` until it succeeds (assertions that throw count as not yet), every `intervalMs`, for at
 * most `timeoutMs`; then fails with the last failure. It waits on the real clock, also in a test on
 * the TestClock (where packets still take real time).
 */
export const eventually = <A, E = never, R = never>(
  check: Effect.Effect<A, E, R> | (() => A),
  timeoutMs = 2000,
  intervalMs = 10
): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    const run: Effect.Effect<A, E, R> = Effect.isEffect(check) ? check : Effect.sync(check)
    const deadline = Date.now() + timeoutMs
    while (true) {
      const exit = yield* Effect.exit(run)
      if (exit._tag === "Success" || Date.now() >= deadline) return yield* exit
      yield* TestServices.provideLive(Effect.sleep(intervalMs))
    }
  })

/** UDP sockets open in this process (Node names the handle `UDPWrap`). */
export const openUdpHandles = (): number =>
  process.getActiveResourcesInfo().filter((name) => name.toUpperCase() === "UDPWRAP").length

/**
 * The UDP handle count once sockets closed by earlier tests are gone: Node drops a closed socket's
 * handle a loop turn or two after its close callback, so a count taken at once can still hold them.
 */
export const settledUdpHandles: Effect.Effect<number> = Effect.gen(function*() {
  let previous = openUdpHandles()
  for (let i = 0; i < 50; i++) {
    yield* Effect.sleep(20)
    const current = openUdpHandles()
    if (current === previous) return current
    previous = current
  }
  return previous
})
