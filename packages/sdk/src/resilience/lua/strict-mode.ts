/** Lua that sets `now_ms` to the server's clock in whole milliseconds since the epoch. */
const NOW_MS = `
local __time = redis.call('TIME')
local now_ms = tonumber(__time[1]) * 1000 + math.floor(tonumber(__time[2]) / 1000)
`;

/**
 * Enables strict mode if the key still holds what the plan saw. KEYS[1] the state key; ARGV: `1` to expect
 * ARGV[2] exactly, `0` to expect no key; the expected raw value; the new state (JSON); its lifetime in ms or '';
 * `1` when the value replaced is a strict mode in force, which must not outlive the new one (when the new one
 * expired it would be gone too). Stamps `enabledAt`/`expiresAt` by Redis' clock and keeps the replaced value's
 * end as `replacedExpiresAt`, so a revert can give it back its remaining lifetime. Returns `{1, written}`,
 * `{0, current}`, or `{2, current, pttl}` when the replaced strict mode would outlive the new one.
 */
export const ENABLE_STRICT_MODE_SCRIPT = `${NOW_MS}
local key = KEYS[1]
local current = redis.call('GET', key)
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return {0, current or ''} end
elseif current then
  return {0, current}
end
local pttl = redis.call('PTTL', key)
if ARGV[5] == '1' and ARGV[4] ~= '' and (pttl == -1 or pttl > tonumber(ARGV[4])) then
  return {2, current, pttl}
end
local state = cjson.decode(ARGV[3])
state.enabledAt = now_ms
state.replacedExpiresAt = cjson.null
if pttl > 0 then state.replacedExpiresAt = now_ms + pttl end
local value
if ARGV[4] == '' then
  state.expiresAt = cjson.null
  value = cjson.encode(state)
  redis.call('SET', key, value)
else
  state.expiresAt = now_ms + tonumber(ARGV[4])
  value = cjson.encode(state)
  redis.call('SET', key, value, 'PX', ARGV[4])
end
return {1, value}
`;

/**
 * Replaces the state by the off marker ARGV[2] (no TTL) if it is still exactly ARGV[1] (what a disable planned
 * to remove). Returns `{1, ended_at}` with the end of the removed state's lifetime by Redis' clock (ms, or ''
 * when it had none), or `{0, current}`.
 */
export const DISABLE_STRICT_MODE_SCRIPT = `${NOW_MS}
local key = KEYS[1]
local current = redis.call('GET', key)
if current ~= ARGV[1] then return {0, current or ''} end
local pttl = redis.call('PTTL', key)
redis.call('SET', key, ARGV[2])
if pttl > 0 then return {1, string.format('%.0f', now_ms + pttl)} end
return {1, ''}
`;

/**
 * Puts a previous state back, only if the key is still what the change left. KEYS[1] the state key; ARGV:
 * `id` to require the current state's `id` to be ARGV[2] (the revert of an enable), `exact` to require the
 * value to be ARGV[2] (the revert of a disable: its off marker); the state to restore ('' for none); when it
 * ends (ms by Redis' clock, '' for never) unless the current state's `replacedExpiresAt` says otherwise.
 * Returns `{1, restored}`, `{2, ''}` when the previous state's lifetime is over (nothing restored), or
 * `{0, current}`.
 */
export const RESTORE_STRICT_MODE_SCRIPT = `${NOW_MS}
local key = KEYS[1]
local current = redis.call('GET', key)
local ends = ARGV[4]
if ARGV[1] == 'id' then
  if not current then return {0, ''} end
  local ok, state = pcall(cjson.decode, current)
  if not ok or type(state) ~= 'table' or state.id ~= ARGV[2] then return {0, current} end
  if type(state.replacedExpiresAt) == 'number' then ends = string.format('%.0f', state.replacedExpiresAt) end
elseif current ~= ARGV[2] then
  return {0, current or ''}
end
if ARGV[3] == '' then
  redis.call('DEL', key)
  return {1, ''}
end
if ends == '' then
  redis.call('SET', key, ARGV[3])
  return {1, ARGV[3]}
end
local left = tonumber(ends) - now_ms
if left <= 0 then
  redis.call('DEL', key)
  return {2, ''}
end
redis.call('SET', key, ARGV[3], 'PX', math.ceil(left))
return {1, ARGV[3]}
`;
