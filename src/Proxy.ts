/**
 * The whole proxy as one Layer, built from its parts: each part can be swapped (a test load
 * balancer, another HTTP client, a shared session store) by providing it before this layer.
 *
 * @since 0.1.0
 */
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { ProxyConfig } from "./Config.js"
import * as Origin from "./Domain/Origin.js"
import { OriginClient } from "./Http/OriginClient.js"
import { RateLimiter } from "./Http/RateLimit.js"
import * as Servers from "./Http/Servers.js"
import { LoadBalancer } from "./LoadBalancer/LoadBalancer.js"
import * as MemoryLoadBalancer from "./LoadBalancer/Memory.js"
import { SessionStore } from "./Session/SessionStore.js"
import { Relay } from "./Udp/Relay.js"
import { UdpSocket } from "./Udp/UdpSocket.js"

/** The load balancer PROXY_LOAD_BALANCER_TYPE names. */
export const LoadBalancerLive: Layer.Layer<LoadBalancer, ConfigError.ConfigError, ProxyConfig> = Layer.unwrapEffect(
  Effect.map(ProxyConfig, (config) =>
    config.loadBalancer === "memory"
      ? MemoryLoadBalancer.layer
      : Layer.fail(ConfigError.InvalidData(
        ["PROXY_LOAD_BALANCER_TYPE"],
        "the redis load balancer is not in this version yet; use memory"
      )))
)

/** Registers the PROXY_DEFAULT_BACKEND_* origin, when enabled. */
export const DefaultBackendLive: Layer.Layer<never, never, ProxyConfig | LoadBalancer> = Layer.effectDiscard(
  Effect.gen(function*() {
    const config = yield* ProxyConfig
    if (Option.isNone(config.defaultBackend)) return
    const origin = Origin.fixed(config.defaultBackend.value)
    yield* (yield* LoadBalancer).register(origin)
    yield* Effect.logInfo(`default origin ${origin.ip}: api ${origin.apiPort}, rtc udp ${Origin.udpRtcPort(origin)}`)
  })
)

/**
 * Everything but the configuration and the load balancer: relay, UDP port, origin client, session
 * store and both HTTP listeners.
 */
export const ProxyCore = Servers.layer.pipe(
  Layer.provideMerge(Relay.layer),
  Layer.provideMerge(Layer.mergeAll(UdpSocket.layer, SessionStore.layerMemory, OriginClient.layer, RateLimiter.layer)),
  Layer.merge(DefaultBackendLive)
)

/** The proxy, given a ProxyConfig: what `main` runs and what a larger app can compose. */
export const ProxyLive = ProxyCore.pipe(Layer.provideMerge(LoadBalancerLive))
