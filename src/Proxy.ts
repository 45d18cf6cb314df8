/**
 * The whole proxy as one Layer, built from its parts: each part can be swapped (a test load
 * balancer, another HTTP client, a shared session store) by providing it before this layer.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { candidateFamilyWarnings, ProxyConfig } from "./Config.js"
import * as Origin from "./Domain/Origin.js"
import { Health } from "./Http/Health.js"
import { OriginClient } from "./Http/OriginClient.js"
import * as OriginProbe from "./Http/OriginProbe.js"
import { Prometheus } from "./Http/Prometheus.js"
import { RateLimiter } from "./Http/RateLimit.js"
import * as Servers from "./Http/Servers.js"
import { LoadBalancer } from "./LoadBalancer/LoadBalancer.js"
import * as MemoryLoadBalancer from "./LoadBalancer/Memory.js"
import type { RedisError } from "./RedisError.js"
import * as MemorySessionStore from "./Session/Memory.js"
import type { SessionStore } from "./Session/SessionStore.js"
import { IceTcpServer } from "./Tcp/IceTcpServer.js"
import * as Tracing from "./Tracing.js"
import { Relay } from "./Udp/Relay.js"
import { UdpSocket, type UdpSocketError } from "./Udp/UdpSocket.js"
import { WorkerPool } from "./Workers/WorkerPool.js"

// The Redis modules (and ioredis) are imported only by a proxy configured for Redis.
const importRedis = Effect.promise(() =>
  Promise.all([import("./Redis.js"), import("./LoadBalancer/Redis.js"), import("./Session/Redis.js")])
)

/**
 * The load balancer PROXY_LOAD_BALANCER_TYPE names. With `redis`, it shares one Redis client
 * (layers are memoized) with `SessionStoreLive`; start-up fails when Redis cannot be reached.
 */
export const LoadBalancerLive: Layer.Layer<LoadBalancer, RedisError, ProxyConfig> = Layer.unwrapEffect(
  Effect.flatMap(ProxyConfig, (config) =>
    config.loadBalancer === "memory"
      ? Effect.succeed(MemoryLoadBalancer.layer)
      : Effect.map(importRedis, ([Redis, RedisLoadBalancer]) =>
        RedisLoadBalancer.layer.pipe(Layer.provide(Redis.RedisClient.layer))))
)

/**
 * The session store that goes with PROXY_LOAD_BALANCER_TYPE: this proxy's memory, or Redis shared
 * with the other proxies (so that any of them can relay a session signaled through another).
 */
export const SessionStoreLive: Layer.Layer<SessionStore, RedisError, ProxyConfig> = Layer.unwrapEffect(
  Effect.flatMap(ProxyConfig, (config) =>
    config.loadBalancer === "memory"
      ? Effect.succeed(MemorySessionStore.layer)
      : Effect.map(importRedis, ([Redis, , RedisStore]) => RedisStore.layer.pipe(Layer.provide(Redis.RedisClient.layer))))
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

/** Says at start-up when a configured candidate address is of a family the media port does not listen on. */
export const CandidateCheckLive: Layer.Layer<never, never, ProxyConfig> = Layer.effectDiscard(
  Effect.flatMap(ProxyConfig, (config) => Effect.forEach(candidateFamilyWarnings(config), (warning) => Effect.logWarning(warning)))
)

/**
 * The WebRTC UDP port as PROXY_RTC_WORKERS asks: 1, the shared port on this thread; more, a worker
 * thread per port, which the relay finds as the (optional) WorkerPool beside the UdpSocket.
 */
export const UdpLive: Layer.Layer<UdpSocket, UdpSocketError, ProxyConfig> = Layer.unwrapEffect(
  Effect.map(ProxyConfig, (config): Layer.Layer<UdpSocket, UdpSocketError, ProxyConfig> =>
    config.rtcWorkers === 1 ? UdpSocket.layer : WorkerPool.layer)
)

/**
 * Everything but the configuration and the load balancer: relay, UDP port (and the ICE-TCP port when
 * PROXY_WEBRTC_TCP is set), origin client, session store (memory or Redis, as configured), the HTTP
 * listeners (HTTPS too, when configured), health and metrics (`/metrics`), and spans over OTLP when
 * OTEL_EXPORTER_OTLP_ENDPOINT is set.
 */
export const ProxyCore = Layer.merge(Servers.layer, OriginProbe.layer).pipe(
  Layer.provideMerge(IceTcpServer.layer),
  Layer.provideMerge(Relay.layer),
  Layer.provideMerge(Layer.mergeAll(UdpLive, SessionStoreLive, OriginClient.layer, RateLimiter.layer)),
  Layer.provideMerge(Layer.merge(Health.layer, Prometheus.layer)),
  Layer.merge(DefaultBackendLive),
  Layer.merge(CandidateCheckLive),
  Layer.provide(Tracing.layer)
)

/** The proxy, given a ProxyConfig: what `main` runs and what a larger app can compose. */
export const ProxyLive = ProxyCore.pipe(Layer.provideMerge(LoadBalancerLive))
