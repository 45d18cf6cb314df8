/**
 * The relay alone (UDP port, session store, memory load balancer, relay sessions) with its live layers on 127.0.0.1, and
 * session records and binding requests for driving it from plain UDP sockets.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { ProxyConfig, type ProxyConfigShape } from "../../src/Config.js"
import { SessionRecord, UfragPair } from "../../src/Domain/Session.js"
import { LoadBalancer } from "../../src/LoadBalancer/LoadBalancer.js"
import * as MemoryLoadBalancer from "../../src/LoadBalancer/Memory.js"
import * as MemorySessionStore from "../../src/Session/Memory.js"
import { SessionStore } from "../../src/Session/SessionStore.js"
import { encodeBindingRequest } from "../../src/Stun.js"
import { UdpLive } from "../../src/Proxy.js"
import { IceTcpServer } from "../../src/Tcp/IceTcpServer.js"
import { Relay, type RelayShape } from "../../src/Udp/Relay.js"
import { UdpSocket } from "../../src/Udp/UdpSocket.js"
import { testWorkers } from "./workers.js"
import { openUdpHandles, settledUdpHandles } from "./eventually.js"
import type { UdpPeer } from "./udpPeer.js"

export const PAIR = UfragPair.make("srvUfrag:cliUfrag")
export const SERVER_PWD = "srvPassword0123456789abcd"

/**
 * The relay with its live layers on 127.0.0.1; `udp` replaces the shared port (e.g. a wildcard port
 * over a given list of local addresses).
 */
export const relayLayer = (overrides: Partial<ProxyConfigShape> = {}, udp: Layer.Layer<UdpSocket, unknown, ProxyConfig> = UdpLive) =>
  Relay.layer.pipe(
    Layer.provideMerge(Layer.mergeAll(udp, MemorySessionStore.layer, MemoryLoadBalancer.layer)),
    Layer.provideMerge(ProxyConfig.layerWith({ listenHost: "127.0.0.1", udpPort: 0, rtcWorkers: testWorkers, ...overrides }))
  )

/** A wildcard shared port (0.0.0.0, or `::`) standing for the local addresses `addresses` gives, read at every rescan. */
export const wildcardPort = (
  addresses: Effect.Effect<ReadonlyArray<string>>,
  host: "0.0.0.0" | "::" = "0.0.0.0"
): Layer.Layer<UdpSocket, unknown> =>
  Layer.scoped(UdpSocket, UdpSocket.make({ host, port: 0, bufferBytes: 1 << 20, addresses }))

/** The relay with its ICE-TCP port too (on 127.0.0.1, an ephemeral port unless `overrides` says otherwise). */
export const startRelayWithIceTcp = (overrides: Partial<ProxyConfigShape> = {}) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      IceTcpServer.layer.pipe(
        // ICE-TCP runs with the router on the main thread only (PROXY_RTC_WORKERS=1).
        Layer.provideMerge(relayLayer({ iceTcp: Option.some({ host: Option.none(), port: 0 }), ...overrides, rtcWorkers: 1 }))
      )
    )
    const tcp = Context.get(context, IceTcpServer)
    return {
      relay: Context.get(context, Relay),
      port: Context.get(context, UdpSocket).address.port,
      tcpPort: Option.getOrThrow(tcp.port),
      tcp
    }
  })

/** The relay with its live layers, in `scope` (the test's scope when omitted). */
export const startRelay = (
  overrides: Partial<ProxyConfigShape> = {},
  scope?: Scope.Scope,
  udp?: Layer.Layer<UdpSocket, unknown, ProxyConfig>
) =>
  Effect.gen(function*() {
    const layer = relayLayer(overrides, udp)
    const context = scope === undefined ? yield* Layer.build(layer) : yield* Layer.buildWithScope(layer, scope)
    const relay = Context.get(context, Relay)
    return {
      relay,
      /** Every data-plane worker's port (`port` alone without workers). */
      ports: (yield* relay.stats).workers?.map((worker) => worker.port) ?? [Context.get(context, UdpSocket).address.port],
      store: Context.get(context, SessionStore),
      loadBalancer: Context.get(context, LoadBalancer),
      port: Context.get(context, UdpSocket).address.port,
      udp: Context.get(context, UdpSocket)
    }
  })

let sessionCounter = 0
/** A record; ids in `overrides` are plain strings. */
export const makeRecord = (origin: UdpPeer, overrides: Partial<typeof SessionRecord.Encoded> = {}): SessionRecord =>
  Schema.decodeSync(SessionRecord)({
    id: `relay-test-session-${++sessionCounter}-${Math.random().toString(36).slice(2)}`,
    kind: "publish",
    streamUrl: "__defaultVhost__/live/s",
    originId: "origin-1",
    originLocation: undefined,
    ufragPair: PAIR,
    serverPwd: SERVER_PWD,
    originMedia: { host: "127.0.0.1", port: origin.port },
    createdAt: Date.now(),
    ...overrides
  })

export const binding = (username: string, password: string | undefined) =>
  encodeBindingRequest({
    username,
    ...(password === undefined ? {} : { password }),
    priority: 1853824767,
    iceControlling: 0x1234n,
    useCandidate: true
  })


/** UDP sockets open for the relay: this thread's, and those in its data-plane workers (as they last reported). */
export const relaySockets = (relay: RelayShape): Effect.Effect<number> =>
  Effect.map(relay.stats, (stats) => openUdpHandles() + (stats.workers ?? []).reduce((n, worker) => n + worker.sockets, 0))

/** `relaySockets` once closed sockets are gone (see `settledUdpHandles`). */
export const settledRelaySockets = (relay: RelayShape): Effect.Effect<number> =>
  Effect.zipRight(settledUdpHandles, relaySockets(relay))
