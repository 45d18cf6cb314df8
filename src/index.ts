/**
 * rtc-proxy as a library: the services, their layers and the pure protocol modules, for composing the
 * proxy (or parts of it) into a larger Effect application. The Redis implementations are in
 * `rtc-proxy/redis` (`indexRedis.ts`), so that importing this entry does not load ioredis.
 *
 * @since 0.1.0
 */
export {
  candidateFamilyWarnings,
  config,
  ignoredGoProxyVariables,
  type ListenAddress,
  parseDotEnv,
  parseDuration,
  parseListenAddress,
  type HttpsConfig,
  ProxyConfig,
  type ProxyConfigShape,
  providerFrom
} from "./Config.js"
export * from "./Domain/Errors.js"
export * as LegacyApi from "./Domain/LegacyApi.js"
export * as Origin from "./Domain/Origin.js"
export * as Session from "./Domain/Session.js"
export * as StreamUrl from "./Domain/StreamUrl.js"
export { Health, type HealthShape } from "./Http/Health.js"
export { Prometheus, type PrometheusShape } from "./Http/Prometheus.js"
export { OriginClient, type OriginClientShape, type OriginRequest, type OriginResponse } from "./Http/OriginClient.js"
export { mediaApp, systemApp } from "./Http/Routes.js"
export { type Endpoint, ProxyAddresses } from "./Http/Servers.js"
export * as Certificate from "./Http/Certificate.js"
export * as Servers from "./Http/Servers.js"
export {
  type FailoverStats,
  LoadBalancer,
  type LoadBalancerShape,
  type OriginStatus,
  type StreamMapping
} from "./LoadBalancer/LoadBalancer.js"
export * as MemoryLoadBalancer from "./LoadBalancer/Memory.js"
export {
  CandidateCheckLive,
  DefaultBackendLive,
  LoadBalancerLive,
  ProxyCore,
  ProxyLive,
  SessionStoreLive,
  UdpLive
} from "./Proxy.js"
export { RedisError } from "./RedisError.js"
export * as RenewalSchedule from "./RenewalSchedule.js"
export { RateLimiter, type RateLimiterShape } from "./Http/RateLimit.js"
export * as Sdp from "./Sdp.js"
export * as MemorySessionStore from "./Session/Memory.js"
export { SessionStore, type SessionStoreShape } from "./Session/SessionStore.js"
export * as Stun from "./Stun.js"
export * as Framing from "./Tcp/Framing.js"
export {
  type CloseReason as IceTcpCloseReason,
  CloseReasons as IceTcpCloseReasons,
  IceTcpError,
  IceTcpServer,
  type IceTcpServerShape,
  type IceTcpStats
} from "./Tcp/IceTcpServer.js"
export * as Tracing from "./Tracing.js"
export { type ClientPath, describeClient, tcpClientAddress } from "./Udp/ClientPath.js"
export * as IceTranslation from "./Udp/IceTranslation.js"
export { type ClientPaths, Relay, type RelayedCounts, type RelaySessionView, type RelayShape, type RelayStats } from "./Udp/Relay.js"
export { type DropReason, DropReasons } from "./Udp/Router.js"
export type { Placement, WorkerStats } from "./Udp/DataPlane.js"
export { WorkerPool, type WorkerPoolShape } from "./Workers/WorkerPool.js"
export { UdpSocket, UdpSocketError, type UdpSocketShape } from "./Udp/UdpSocket.js"
