/**
 * `rtc-proxy/redis`: the Redis client and the Redis load balancer and session store on it, for an
 * app that composes them itself (`ProxyLive` picks them by PROXY_LOAD_BALANCER_TYPE on its own).
 * Importing this loads ioredis.
 *
 * @since 0.1.0
 */
export * as RedisLoadBalancer from "./LoadBalancer/Redis.js"
export { RedisClient, type RedisClientShape, RedisError } from "./Redis.js"
export * as RedisSessionStore from "./Session/Redis.js"
