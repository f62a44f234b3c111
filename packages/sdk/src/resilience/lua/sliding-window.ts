import { REDIS_NOW } from '../../redis/lua-script';

/**
 * The sliding-log limiter: a sorted set of the takes in the last `period`, scored by their time. A take is
 * allowed while the units in `(now - period, now]` plus its cost stay within `limit`: exact, no slack.
 *
 * One member per take, whatever its cost, so a take costs O(log n) and the set holds at most `limit` members
 * (the limiter caps `limit` for this algorithm). Each member is `<units taken through it>:<its cost>`, the
 * running total zero-padded to 16 digits: it grows with every take while the key lives, so the members sort
 * in take order (by name within one microsecond) and the units in the window are the newest member's total
 * minus what preceded the oldest — two lookups instead of a sum. (At the most one unit per microsecond the
 * limiter allows, the total stays below 2^53 for centuries.) A take never stamps a time before the newest
 * member's, so a clock stepping back cannot reorder them.
 *
 * KEYS[1] the log; ARGV: limit, period (µs), cost. Returns `allowed, remaining, retry_us, reset_us, now`.
 */
export const SLIDING_WINDOW_SCRIPT = `${REDIS_NOW}
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
-- A member's running total and cost; 0 for anything else (a key written by hand cannot break the script).
local function parse(member)
  local bar = string.find(member, ':', 1, true)
  if not bar then return 0, 0 end
  return tonumber(string.sub(member, 1, bar - 1)) or 0, tonumber(string.sub(member, bar + 1)) or 0
end
local function at(rank)
  local entry = redis.call('ZRANGE', key, rank, rank, 'WITHSCORES')
  local total, units = parse(entry[1])
  return total, units, tonumber(entry[2])
end
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - period)
local members = redis.call('ZCARD', key)
-- Units in the window, the running total through the newest take, and that take's time.
local used, total, newest = 0, 0, nil
local first, first_cost = 0, 0
if members > 0 then
  local newest_cost
  first, first_cost = at(0)
  total, newest_cost, newest = at(-1)
  used = total - (first - first_cost)
end
local function reset_after()
  if newest == nil then return 0 end
  return math.ceil(newest + period - now)
end
if used + cost > limit then
  local remaining = limit - used
  if remaining < 0 then remaining = 0 end
  local retry = period
  if cost <= limit then
    -- The oldest take whose expiry frees enough units: the first member whose running total reaches this.
    local needed = total + cost - limit
    local lo, hi = 0, members - 1
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if at(mid) >= needed then hi = mid else lo = mid + 1 end
    end
    local _, _, stamp = at(lo)
    retry = math.ceil(stamp + period - now)
  end
  return {0, remaining, retry, reset_after(), now}
end
if cost == 0 then return {1, limit - used, 0, reset_after(), now} end
if newest == nil or newest < now then newest = now end
redis.call('ZADD', key, newest, string.format('%016.0f', total + cost) .. ':' .. cost)
redis.call('PEXPIRE', key, math.ceil((newest + period - now) / 1000) + 1)
return {1, limit - used - cost, 0, reset_after(), now}
`;
