/**
 * The Lua scripts of the Redis load balancer, each one atomic: registration keeps every origin
 * registered at once in the list, and a pick for a new stream (or for a stream whose origin expired)
 * gives every proxy the origin the first one chose. They read the origin JSON of `Redis.ts`'s
 * `StoredOrigin` (the Go proxy's), of which only `api` matters here.
 *
 * @since 0.1.0
 */
import { script } from "../Redis.js"

/** Lua: `list` = the JSON array of origin keys at KEYS[2] (empty when missing or not JSON). */
const READ_SERVER_LIST = `local list = {}
local raw = redis.call('GET', KEYS[2])
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == 'table' then list = decoded end
end
`

/**
 * Lua: `isDown(key)` for an origin key: it is ARGV[3] (the origin a pick avoids), or its down key
 * (ARGV[5] .. the origin id, the origin key's suffix after ARGV[4]) exists.
 */
const IS_DOWN = `local function isDown(key)
  if key == ARGV[3] then return true end
  return redis.call('EXISTS', ARGV[5] .. string.sub(key, #ARGV[4] + 1)) == 1
end
`

/**
 * KEYS: the origin's key, the list of origin keys, the origin's down key. ARGV: the origin's JSON,
 * its TTL in ms, the time now in epoch ms. Writes the origin, drops expired keys from the list, adds
 * the origin's key when missing, and ends a down mark whose hold-down is over. Returns
 * { origins listed, 1 when the down mark ended else 0 }.
 */
export const REGISTER = script(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local up = 0
local downUntil = redis.call('GET', KEYS[3])
if downUntil and (tonumber(downUntil) or 0) <= tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[3])
  up = 1
end
${READ_SERVER_LIST}local kept, found = {}, false
for _, key in ipairs(list) do
  if type(key) == 'string' then
    if key == KEYS[1] then
      if not found then table.insert(kept, key) end
      found = true
    elseif redis.call('EXISTS', key) == 1 then
      table.insert(kept, key)
    end
  end
end
if not found then table.insert(kept, KEYS[1]) end
redis.call('SET', KEYS[2], cjson.encode(kept))
return { #kept, up }
`)

/** KEYS: the origin's down key. ARGV: the time now in epoch ms. Ends a down mark whose hold-down is over; returns 1 if it did. */
export const MARK_UP = script(`
local downUntil = redis.call('GET', KEYS[1])
if downUntil and (tonumber(downUntil) or 0) <= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

/**
 * KEYS: the origin's down key. ARGV: the end of the hold-down in epoch ms, the key's TTL in ms (at
 * least the origin TTL, so that the mark outlives the hold-down until a heartbeat ends it). Returns 1
 * when the origin was not marked down before.
 */
export const MARK_DOWN = script(`
local was = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1 - was
`)

/**
 * KEYS: the stream's key, the list of origin keys. ARGV: a random number in [0, 1), the mapping's TTL
 * in ms (0: none), the origin key to avoid ('' for none), the origin key prefix, the down key prefix,
 * the drain key prefix. Returns { origin key, origin JSON, previous origin key or '' } or nil when no
 * live origin that is neither down nor draining has an HTTP API (`canServeWebRtc`: a non-empty `api`).
 * The mapping is kept while its origin's key exists and the origin is not down (a draining origin
 * keeps its streams); otherwise a live origin is chosen and the mapping set, in the same atomic step:
 * a compare and set, so two proxies failing over one stream at once move it to one origin. A kept
 * mapping's TTL is renewed only when it has one: a mapping without (the Go proxy's) stays without.
 */
export const PICK = script(`
local ttl = tonumber(ARGV[2])
${IS_DOWN}local mapped = redis.call('GET', KEYS[1])
if mapped and not isDown(mapped) then
  local server = redis.call('GET', mapped)
  if server then
    if ttl > 0 and redis.call('PTTL', KEYS[1]) >= 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
    return { mapped, server, '' }
  end
end
${READ_SERVER_LIST}local alive = {}
for _, key in ipairs(list) do
  if type(key) == 'string' and not isDown(key) then
    local server = redis.call('GET', key)
    if server then
      local ok, decoded = pcall(cjson.decode, server)
      local drained = redis.call('EXISTS', ARGV[6] .. string.sub(key, #ARGV[4] + 1)) == 1
      if ok and not drained and type(decoded) == 'table' and type(decoded.api) == 'table' and #decoded.api > 0 then
        table.insert(alive, { key, server })
      end
    end
  end
end
if #alive == 0 then return nil end
local chosen = alive[math.floor(tonumber(ARGV[1]) * #alive) + 1] or alive[1]
if ttl > 0 then redis.call('SET', KEYS[1], chosen[1], 'PX', ttl) else redis.call('SET', KEYS[1], chosen[1]) end
return { chosen[1], chosen[2], mapped or '' }
`)

/**
 * KEYS: stream keys. ARGV: the TTL in ms, then for each stream the key of the origin its live
 * sessions use. Renews each mapping that has a TTL; sets again, to that origin while its key exists,
 * a mapping that lapsed (Redis was unreachable for longer than the TTL). Returns how many.
 */
export const KEEP_STREAMS = script(`
local kept = 0
for i, key in ipairs(KEYS) do
  local ttl = redis.call('PTTL', key)
  if ttl >= 0 then
    redis.call('PEXPIRE', key, ARGV[1])
    kept = kept + 1
  elseif ttl == -2 and redis.call('EXISTS', ARGV[i + 1]) == 1 then
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
    kept = kept + 1
  end
end
return kept
`)
