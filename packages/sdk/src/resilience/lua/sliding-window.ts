import { REDIS_NOW } from './script';

/**
 * The sliding-log limiter: a sorted set of the units taken in the last `period`, scored by their time. A take
 * is allowed while the units in `(now - period, now]` plus its cost stay within `limit`: exact, no slack, at
 * the price of one set member per unit (so memory grows with `limit`).
 *
 * KEYS[1] the log; ARGV: limit, period (µs), cost. Returns `allowed, remaining, retry_us, reset_us, now`.
 */
export const SLIDING_WINDOW_SCRIPT = `${REDIS_NOW}
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - period)
local count = redis.call('ZCARD', key)
local function reset_after()
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if newest[2] == nil then return 0 end
  return math.ceil(tonumber(newest[2]) + period - now)
end
if count + cost > limit then
  local remaining = limit - count
  if remaining < 0 then remaining = 0 end
  local retry = period
  if cost <= limit then
    -- The unit whose expiry makes room for this cost: the (count + cost - limit)-th oldest.
    local index = count + cost - limit - 1
    local entry = redis.call('ZRANGE', key, index, index, 'WITHSCORES')
    retry = math.ceil(tonumber(entry[2]) + period - now)
  end
  return {0, remaining, retry, reset_after(), now}
end
-- Members must be unique: within one microsecond the count only grows, so (now, count + i) never repeats.
local stamp = string.format('%.0f', now)
for i = 0, cost - 1 do
  redis.call('ZADD', key, stamp, stamp .. ':' .. (count + i))
end
if cost > 0 then redis.call('PEXPIRE', key, math.ceil(period / 1000) + 1) end
return {1, limit - count - cost, 0, reset_after(), now}
`;
