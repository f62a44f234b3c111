import { LuaScript } from '../redis/lua-script';

/**
 * The Lua scripts of breaker control. Key names arrive as KEYS and every value as ARGV (names, reasons and
 * statuses are never spliced into the script text); times come from the Redis clock (`TIME`), so every
 * replica judges expiry by the same clock.
 */

const PRELUDE = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- The epoch is created with the first use of a service's keys; when Redis loses the keys (a restart without
-- persistence, FLUSHDB), the next script creates a new one and replicas know to drop what they knew.
local function epoch_of(key, candidate)
  local e = redis.call('GET', key)
  if not e then
    redis.call('SET', key, candidate)
    e = candidate
  end
  return e
end
local function set(v) return v ~= nil and v ~= cjson.null end
-- A stored value someone edited by hand must not turn into a Lua error: it is no JSON object, so nil.
local function decode(text)
  local ok, v = pcall(cjson.decode, text)
  if ok and type(v) == 'table' then return v end
  return nil
end
`;

/**
 * KEYS: forced, version, epoch. → `[epoch or false, version, now, field, value, …]`. Read-only (no epoch is
 * created here), so plans and verification also run against a read-only replica.
 */
export const SNAPSHOT = new LuaScript(`
local t = redis.call('TIME')
local out = { redis.call('GET', KEYS[3]), tonumber(redis.call('GET', KEYS[2]) or '0'),
              tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) }
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all do out[#out + 1] = all[i] end
return out
`);

/**
 * KEYS: forced, version, epoch, last. ARGV: channel, epoch candidate, changes (JSON array). Every guard is checked
 * before anything is written: all changes are made, with one new version, and published — or none. Each changed
 * provider's `{version, changeId}` goes to `last`, so a guard can tell a later change even when it ended in
 * `auto` (no record).
 * → `['ok', message, subscribers that received it]` or `['conflict', provider, current record JSON or false]`
 */
export const WRITE = new LuaScript(`${PRELUDE}
local now = now_ms()
local epoch = epoch_of(KEYS[3], ARGV[2])
local changes = cjson.decode(ARGV[3])
-- An unreadable record counts as none, as it does for every reader (they report it and keep \`auto\`).
local function live(raw)
  if not raw then return nil end
  local r = decode(raw)
  if r == nil then return nil end
  if set(r.expiresAt) and (type(r.expiresAt) ~= 'number' or r.expiresAt <= now) then return nil end
  return r
end
for _, c in ipairs(changes) do
  local g = c.expect
  if set(g) then
    local raw = redis.call('HGET', KEYS[1], c.provider)
    local cur = live(raw)
    local ok = false
    if set(g.auto) then
      ok = cur == nil
    elseif set(g.version) then
      ok = cur ~= nil and cur.version == g.version
    elseif set(g.changeId) then
      ok = cur ~= nil and cur.changeId == g.changeId
    elseif set(g.lastChangeId) then
      -- In auto now, and the last change of this provider still is the one that put it there.
      -- An unreadable \`last\` cannot show that nobody changed it since: a conflict.
      local last = redis.call('HGET', KEYS[4], c.provider)
      local l = nil
      if last then l = decode(last) end
      ok = cur == nil and l ~= nil and l.changeId == g.lastChangeId
    elseif set(g.expiredVersion) then
      -- Only the record that expired, and only once the Redis clock says so.
      local r = nil
      if raw then r = decode(raw) end
      ok = r ~= nil and r.version == g.expiredVersion and type(r.expiresAt) == 'number' and r.expiresAt <= now
    end
    if not ok then return { 'conflict', c.provider, raw or false } end
  end
end
local version = redis.call('INCR', KEYS[2])
local out = {}
for i, c in ipairs(changes) do
  if c.state == 'auto' then
    redis.call('HDEL', KEYS[1], c.provider)
    out[i] = { provider = c.provider, record = cjson.null }
  else
    local expiresAt = cjson.null
    if set(c.expiresAfterMs) then
      expiresAt = now + c.expiresAfterMs
    elseif set(c.expiresAtMs) then
      expiresAt = c.expiresAtMs
    end
    local forcedAt = now
    if set(c.forcedAtMs) then forcedAt = c.forcedAtMs end
    local record = { state = c.state, reason = c.reason, actor = c.actor, origin = c.origin,
                     changeId = c.changeId, forcedAt = forcedAt, expiresAt = expiresAt, version = version }
    redis.call('HSET', KEYS[1], c.provider, cjson.encode(record))
    out[i] = { provider = c.provider, record = record }
  end
  redis.call('HSET', KEYS[4], c.provider, cjson.encode({ version = version, changeId = c.changeId or cjson.null }))
end
local message = cjson.encode({ epoch = epoch, version = version, changes = out })
local receivers = redis.call('PUBLISH', ARGV[1], message)
return { 'ok', message, receivers }
`);

/**
 * KEYS: replica, replicas, version, epoch. ARGV: replica id, TTL ms, status JSON, epoch candidate.
 * → `[version, epoch, now]`
 */
export const HEARTBEAT = new LuaScript(`${PRELUDE}
local now = now_ms()
local ttl = tonumber(ARGV[2])
local at = string.format('%.0f', now)
redis.call('SET', KEYS[1], '{"heartbeatAt":' .. at .. ',"ttlMs":' .. ARGV[2] .. ',"status":' .. ARGV[3] .. '}',
           'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. at)
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
local version = tonumber(redis.call('GET', KEYS[3]) or '0')
return { version, epoch_of(KEYS[4], ARGV[4]), now }
`);
