/**
 * The Lua scripts of the Redis session store: every write that touches several keys, so that each is
 * atomic. They read and rewrite the stored record's JSON by the field names below, which the
 * `StoredSession` schema of `Redis.ts` writes.
 *
 * @since 0.1.0
 */
import { script } from "../Redis.js"

/** Fields of a stored session record (and of the Go proxy's `{"stream_url","ufrag"}`) that the scripts read. */
export const Field = {
  sessionId: "session_id",
  kind: "kind",
  streamUrl: "stream_url",
  ufrag: "ufrag",
  serverPwd: "server_pwd",
  /** The session's ICE state (client ice-pwd, entity-tag, the origin's credentials after a restart). */
  ice: "ice",
  /** The proxy instance that last started relaying it. */
  relayedBy: "relayed_by"
} as const

// Whether a key holds the record of session `id` (a ufrag pair may have moved to another session).
const HOLDS = `
local function holds(key, id)
  local raw = redis.call('GET', key)
  if not raw then return false end
  local ok, r = pcall(cjson.decode, raw)
  return ok and type(r) == 'table' and r.${Field.sessionId} == id
end
`

/**
 * KEYS: id key, ufrag key, stream key, publisher key. ARGV: record JSON, TTL ms, ufrag key prefix,
 * stream JSON, the session id when it publishes ('' when it plays). A previous ufrag key of the same
 * session goes (unless it is the same key).
 */
export const PUT = script(`${HOLDS}
local previous = redis.call('GET', KEYS[1])
if previous then
  local ok, r = pcall(cjson.decode, previous)
  if ok and type(r) == 'table' and type(r.${Field.ufrag}) == 'string' then
    local old = ARGV[3] .. r.${Field.ufrag}
    if old ~= KEYS[2] and holds(old, r.${Field.sessionId}) then redis.call('DEL', old) end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[2])
if ARGV[5] ~= '' then redis.call('SET', KEYS[4], ARGV[5], 'PX', ARGV[2]) end
return 1
`)

/**
 * KEYS: id key, new ufrag key. ARGV: new ufrag pair, new server ice-pwd, TTL ms, ufrag key prefix,
 * stream key prefix, publisher key prefix, the new ICE state's JSON ('' keeps it). Returns the new record's JSON, or nil when the session is gone.
 */
export const REKEY = script(`${HOLDS}
local raw = redis.call('GET', KEYS[1])
if not raw then return nil end
local ok, r = pcall(cjson.decode, raw)
if not ok or type(r) ~= 'table' or type(r.${Field.ufrag}) ~= 'string' then return nil end
local oldPair = r.${Field.ufrag}
local old = ARGV[4] .. oldPair
if old ~= KEYS[2] and holds(old, r.${Field.sessionId}) then redis.call('DEL', old) end
r.${Field.ufrag} = ARGV[1]
r.${Field.serverPwd} = ARGV[2]
if ARGV[7] ~= '' then r.${Field.ice} = cjson.decode(ARGV[7]) end
local json = cjson.encode(r)
redis.call('SET', KEYS[1], json, 'PX', ARGV[3])
redis.call('SET', KEYS[2], json, 'PX', ARGV[3])
if type(r.${Field.streamUrl}) == 'string' then
  local streamKey = ARGV[5] .. r.${Field.streamUrl}
  local stream = redis.call('GET', streamKey)
  if stream then
    local ok2, s = pcall(cjson.decode, stream)
    if ok2 and type(s) == 'table' and s.${Field.ufrag} == oldPair then
      redis.call('SET', streamKey, cjson.encode({ ${Field.streamUrl} = r.${Field.streamUrl}, ${Field.ufrag} = ARGV[1] }), 'PX', ARGV[3])
    end
  end
  local publisherKey = ARGV[6] .. r.${Field.streamUrl}
  if r.${Field.kind} == 'publish' and redis.call('GET', publisherKey) == r.${Field.sessionId} then
    redis.call('PEXPIRE', publisherKey, ARGV[3])
  end
end
return json
`)

/**
 * KEYS: id key. ARGV: the proxy instance that must be relaying it ('' for any), ufrag key prefix,
 * stream key prefix, publisher key prefix. Deletes the record's keys; returns 1 when it did.
 */
export const REMOVE = script(`${HOLDS}
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, r = pcall(cjson.decode, raw)
if not ok or type(r) ~= 'table' then
  redis.call('DEL', KEYS[1])
  return 1
end
if ARGV[1] ~= '' and r.${Field.relayedBy} ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if type(r.${Field.ufrag}) == 'string' and holds(ARGV[2] .. r.${Field.ufrag}, r.${Field.sessionId}) then redis.call('DEL', ARGV[2] .. r.${Field.ufrag}) end
if type(r.${Field.streamUrl}) == 'string' then
  local streamKey = ARGV[3] .. r.${Field.streamUrl}
  local stream = redis.call('GET', streamKey)
  if stream then
    local ok2, s = pcall(cjson.decode, stream)
    if ok2 and type(s) == 'table' and s.${Field.ufrag} == r.${Field.ufrag} then redis.call('DEL', streamKey) end
  end
  local publisherKey = ARGV[4] .. r.${Field.streamUrl}
  if r.${Field.kind} == 'publish' and redis.call('GET', publisherKey) == r.${Field.sessionId} then redis.call('DEL', publisherKey) end
end
return 1
`)

/**
 * KEYS: id key. ARGV: this proxy instance, publisher key prefix. At shutdown: the session stops
 * counting as its stream's publisher when this proxy is the one relaying it; its record stays.
 */
export const RETIRE_PUBLISHER = script(`
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, r = pcall(cjson.decode, raw)
if not ok or type(r) ~= 'table' or r.${Field.kind} ~= 'publish' or r.${Field.relayedBy} ~= ARGV[1] then return 0 end
if type(r.${Field.streamUrl}) ~= 'string' then return 0 end
local publisherKey = ARGV[2] .. r.${Field.streamUrl}
if redis.call('GET', publisherKey) ~= r.${Field.sessionId} then return 0 end
redis.call('DEL', publisherKey)
return 1
`)

/** KEYS: publisher key. ARGV: id key prefix. The record of the stream's publisher, or nil. */
export const PUBLISHER_OF = script(`
local id = redis.call('GET', KEYS[1])
if not id then return nil end
return redis.call('GET', ARGV[1] .. id)
`)
