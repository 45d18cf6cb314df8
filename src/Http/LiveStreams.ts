/**
 * `GET /rtc/v1/streams`: the streams this proxy relays now, with their publishers and players, for the
 * try-it page. Computed from the relay's live sessions only (not the shared state of other proxies).
 *
 * @since 0.1.0
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import { Relay, type RelaySessionView } from "../Udp/Relay.js"

/** A stream relayed by this proxy. */
export interface LiveStream {
  /** The stream URL `<vhost>/<app>/<stream>` */
  readonly stream: string
  readonly vhost: string
  readonly app: string
  /** The stream's name, the last part of the stream URL */
  readonly name: string
  readonly publishers: number
  readonly players: number
}

// The key is `<vhost>/<app>/<stream>`; a name with slashes is read as the legacy API builds it: the
// last segment is the stream and what lies between the vhost and it the app.
const partsOf = (key: string) => {
  const first = key.indexOf("/")
  const last = key.lastIndexOf("/")
  if (first === -1 || first === last) return { vhost: "", app: "", name: key }
  return { vhost: key.slice(0, first), app: key.slice(first + 1, last), name: key.slice(last + 1) }
}

/** One entry per stream URL, publishers and players counted, sorted by stream URL. */
export const fromSessions = (sessions: ReadonlyArray<RelaySessionView>): ReadonlyArray<LiveStream> => {
  const byKey = new Map<string, { publishers: number; players: number }>()
  for (const session of sessions) {
    const counts = byKey.get(session.streamUrl) ?? { publishers: 0, players: 0 }
    if (session.kind === "publish") counts.publishers++
    else counts.players++
    byKey.set(session.streamUrl, counts)
  }
  return [...byKey.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, counts]) => ({ stream: key, ...partsOf(key), ...counts }))
}

/**
 * GET /rtc/v1/streams: `{"streams":[{stream, vhost, app, name, publishers, players}]}`, where `stream`
 * is the stream URL and `name` the stream's own name (what the page's "stream" input takes).
 */
export const list = Effect.gen(function*() {
  const relay = yield* Relay
  const streams = fromSessions(yield* relay.sessions)
  return HttpServerResponse.unsafeJson({ streams }, { headers: { "cache-control": "no-store" } })
}).pipe(Effect.withSpan("LiveStreams.list"))
