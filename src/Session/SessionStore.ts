/**
 * The session store: every relay session's record, by id (the session URL) and by ufrag pair (the
 * binding request USERNAME), and the live publish session of each stream. A session's ufrag pair may
 * change while it lives (ICE restart). Implementations: `Memory.ts` (this proxy) and `Redis.ts`
 * (shared by every proxy on the Redis).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { ServiceUnavailable } from "../Domain/Errors.js"
import type { IceKeys, SessionEndReason, SessionId, SessionRecord, UfragPair } from "../Domain/Session.js"
import type { StreamKey } from "../Domain/StreamUrl.js"

export interface SessionStoreShape {
  /** Adds or replaces a record (a record holding the same ufrag pair loses that key). */
  readonly put: (record: SessionRecord) => Effect.Effect<void, ServiceUnavailable>
  readonly get: (id: SessionId) => Effect.Effect<Option.Option<SessionRecord>, ServiceUnavailable>
  readonly findByUfrag: (ufragPair: UfragPair) => Effect.Effect<Option.Option<SessionRecord>, ServiceUnavailable>
  /**
   * A live publish session of the stream: one that a proxy relays now (and renews). A record kept
   * only for a takeover after a shutdown does not count until a proxy relays it again.
   */
  readonly publisherOf: (streamUrl: StreamKey) => Effect.Effect<Option.Option<SessionRecord>, ServiceUnavailable>
  /**
   * Moves a session to a new ufrag pair and server password (and its ICE state, when given); none
   * when the session is gone.
   */
  readonly rekey: (
    id: SessionId,
    keys: IceKeys
  ) => Effect.Effect<Option.Option<SessionRecord>, ServiceUnavailable>
  /**
   * Removes a session for good (it was deleted). A shared store tells every proxy on it, through
   * `onRemoved`, so that the one relaying the session stops.
   */
  readonly remove: (id: SessionId) => Effect.Effect<void>
  /**
   * Calls `f` with the id of each session removed through any proxy on a shared store, until the
   * scope closes. The memory store never calls it: whoever removes a session there closed its relay.
   */
  readonly onRemoved: (f: (id: SessionId) => void) => Effect.Effect<void, never, Scope.Scope>
  /**
   * This proxy stopped relaying a session. The memory store forgets it; a shared store keeps it while
   * another proxy relays it, and after a shutdown until it expires, so that another proxy can take over.
   */
  readonly release: (id: SessionId, reason: SessionEndReason) => Effect.Effect<void>
  /** The sessions this proxy relays are alive: a shared store renews them (others expire). */
  readonly touch: (records: ReadonlyArray<SessionRecord>) => Effect.Effect<void>
  readonly list: Effect.Effect<ReadonlyArray<SessionRecord>, ServiceUnavailable>
}

export class SessionStore extends Context.Tag("rtc-proxy/SessionStore")<SessionStore, SessionStoreShape>() {}
