/**
 * A real proxy for tests: every part live, bound to 127.0.0.1 on ephemeral ports, in the test's scope.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { ProxyConfig, type ProxyConfigShape } from "../../src/Config.js"
import { ProxyAddresses } from "../../src/Http/Servers.js"
import { LoadBalancer, type LoadBalancerShape } from "../../src/LoadBalancer/LoadBalancer.js"
import { ProxyLive } from "../../src/Proxy.js"
import { SessionStore, type SessionStoreShape } from "../../src/Session/SessionStore.js"
import { IceTcpServer, type IceTcpServerShape } from "../../src/Tcp/IceTcpServer.js"
import { Relay, type RelayShape } from "../../src/Udp/Relay.js"
import { testWorkers } from "./workers.js"

export interface TestProxy {
  readonly mediaUrl: string
  readonly mediaPort: number
  /** `https://127.0.0.1:<port>` when the test configured `https`. */
  readonly httpsUrl: string | undefined
  readonly httpsPort: number | undefined
  readonly systemUrl: string
  readonly udpPort: number
  /** The ICE-TCP port, when the test turned it on (`iceTcp`). */
  readonly tcpPort: number | undefined
  readonly iceTcp: IceTcpServerShape
  readonly relay: RelayShape
  readonly store: SessionStoreShape
  readonly balancer: LoadBalancerShape
  /** `<media url>/rtc/v1/<endpoint>/?app=live&stream=<stream>` */
  readonly endpoint: (kind: "whip" | "whep", stream: string) => string
}

export const testConfig = (overrides: Partial<ProxyConfigShape> = {}) =>
  ProxyConfig.layerWith({
    listenHost: "127.0.0.1",
    httpPort: 0,
    systemPort: 0,
    udpPort: 0,
    // Tests make many requests from 127.0.0.1; the rate-limit tests turn it on themselves.
    rateLimit: { perSecond: 0, burst: 1 },
    rtcWorkers: testWorkers,
    ...overrides
  })

/** Starts the whole proxy in the current scope. */
export const startProxy = (
  overrides: Partial<ProxyConfigShape> = {}
): Effect.Effect<TestProxy, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      ProxyLive.pipe(
        Layer.provideMerge(testConfig(overrides)),
        // The proxy's info lines drown test output; RTC_PROXY_TEST_LOGS=1 shows them.
        Layer.provide(Logger.minimumLogLevel(process.env["RTC_PROXY_TEST_LOGS"] ? LogLevel.Debug : LogLevel.Warning))
      )
    )
    const addresses = yield* Effect.provide(ProxyAddresses, context)
    const mediaUrl = `http://127.0.0.1:${addresses.media.port}`
    const iceTcp = yield* Effect.provide(IceTcpServer, context)
    return {
      mediaUrl,
      mediaPort: addresses.media.port,
      httpsUrl: Option.getOrUndefined(Option.map(addresses.https, ({ port }) => `https://127.0.0.1:${port}`)),
      httpsPort: Option.getOrUndefined(Option.map(addresses.https, ({ port }) => port)),
      systemUrl: `http://127.0.0.1:${addresses.system.port}`,
      udpPort: addresses.udp.port,
      tcpPort: Option.getOrUndefined(iceTcp.port),
      iceTcp,
      relay: yield* Effect.provide(Relay, context),
      store: yield* Effect.provide(SessionStore, context),
      balancer: yield* Effect.provide(LoadBalancer, context),
      endpoint: (kind, stream) => `${mediaUrl}/rtc/v1/${kind}/?app=live&stream=${stream}`
    }
  })
