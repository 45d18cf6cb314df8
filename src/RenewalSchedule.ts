/**
 * When each live key of a shared store (a session, a stream mapping) was last renewed, so that
 * renewals go out once per period and not at every sweep, and a renewal that fails is logged once
 * per outage.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"

export interface RenewalSchedule<K extends string> {
  /** The keys of `live` that are due (never renewed, or `every` ms ago); keys no longer live are forgotten. */
  readonly due: (live: { keys(): Iterable<K>; has(key: K): boolean }, now: number) => Array<K>
  /** A key just written with a fresh expiry. */
  readonly renewed: (key: K, now: number) => void
  readonly forget: (key: K) => void
  /**
   * Runs the renewal of `keys`: on success they are renewed as of `now`; a failure is logged once per
   * outage (the next sweep tries again) and never fails the caller.
   */
  readonly run: <E>(
    keys: ReadonlyArray<K>,
    now: number,
    renew: Effect.Effect<unknown, E>,
    describe: (error: E) => string
  ) => Effect.Effect<void>
}

/** A schedule that renews each key every `every` ms. */
export const make = <K extends string>(every: number): RenewalSchedule<K> => {
  const renewedAt = new Map<K, number>()
  let failing = false
  return {
    due: (live, now) => {
      const due: Array<K> = []
      for (const key of live.keys()) if (now - (renewedAt.get(key) ?? 0) >= every) due.push(key)
      for (const key of renewedAt.keys()) if (!live.has(key)) renewedAt.delete(key)
      return due
    },
    renewed: (key, now) => void renewedAt.set(key, now),
    forget: (key) => void renewedAt.delete(key),
    run: (keys, now, renew, describe) =>
      Effect.matchEffect(renew, {
        onSuccess: () =>
          Effect.sync(() => {
            for (const key of keys) renewedAt.set(key, now)
            failing = false
          }),
        onFailure: (error) => {
          if (failing) return Effect.void
          failing = true
          return Effect.logWarning(describe(error))
        }
      })
  }
}
