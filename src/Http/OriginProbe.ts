/**
 * Active origin health: while an origin has live relay sessions on this proxy, it is sent
 * `GET PROXY_ORIGIN_PROBE_PATH` every PROXY_ORIGIN_PROBE_INTERVAL, one fiber per origin in a
 * `FiberMap`. PROXY_ORIGIN_PROBE_FAILURES misses in a row mark it down; an answer after its hold-down
 * brings it back, as a heartbeat does. Nothing of this runs per packet.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberMap from "effect/FiberMap"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { ProxyConfig } from "../Config.js"
import { apiBaseUrl, OriginId } from "../Domain/Origin.js"
import { LoadBalancer } from "../LoadBalancer/LoadBalancer.js"
import { Relay } from "../Udp/Relay.js"
import { OriginClient } from "./OriginClient.js"

/** The probes, started and stopped as origins gain and lose sessions here (checked every interval). */
export const layer: Layer.Layer<never, never, ProxyConfig | LoadBalancer | OriginClient | Relay> = Layer.scopedDiscard(
  Effect.gen(function*() {
    const { originProbe } = yield* ProxyConfig
    if (Duration.toMillis(originProbe.interval) === 0) return
    const balancer = yield* LoadBalancer
    const client = yield* OriginClient
    const relay = yield* Relay
    const probes = yield* FiberMap.make<OriginId>()

    // An HTTP answer below 500 shows the origin alive, whatever it says about the path.
    const answers = (originId: OriginId) =>
      Effect.gen(function*() {
        const origin = yield* balancer.find(originId)
        const base = Option.flatMapNullable(origin, apiBaseUrl)
        if (Option.isNone(base)) return Option.none<boolean>()
        return yield* client.send({ method: "GET", url: `${base.value}${originProbe.path}`, headers: {} }).pipe(
          Effect.timeout(originProbe.timeout),
          Effect.map((response) => Option.some(response.status < 500)),
          Effect.orElseSucceed(() => Option.some(false))
        )
      })

    const probe = (originId: OriginId) => {
      let misses = 0
      return answers(originId).pipe(
        Effect.flatMap(Option.match({
          onNone: () => Effect.void,
          onSome: (alive) => {
            if (alive) {
              misses = 0
              return balancer.markUp(originId)
            }
            return ++misses < originProbe.failures
              ? Effect.void
              : balancer.markDown(originId, `${misses} health probes of ${originProbe.path} in a row had no answer`)
          }
        })),
        Effect.delay(originProbe.interval),
        Effect.forever
      )
    }

    const reconcile = Effect.gen(function*() {
      const wanted = new Set((yield* relay.sessions).map((session) => OriginId.make(session.originId)))
      for (const originId of wanted) yield* FiberMap.run(probes, originId, probe(originId), { onlyIfMissing: true })
      const stale = [...probes].map(([originId]) => originId).filter((originId) => !wanted.has(originId))
      for (const originId of stale) yield* FiberMap.remove(probes, originId)
    })
    yield* reconcile.pipe(
      Effect.repeat(Schedule.spaced(originProbe.interval)),
      Effect.interruptible,
      Effect.forkScoped
    )
  })
)
