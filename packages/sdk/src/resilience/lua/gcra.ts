import { REDIS_NOW } from '../../redis/lua-script';

/**
 * GCRA (the generic cell rate algorithm) as a Lua function, shared by the rate limiter and the request queue's
 * drain. A key holds one number, the theoretical arrival time (TAT): when the key would be idle again.
 *
 * `interval` is the time one unit costs (`period / limit`), `tolerance` how far the TAT may run ahead of now
 * (`burst * interval`). A take of `cost` moves the TAT by `cost * interval` and is allowed while the TAT stays
 * within `tolerance` of now. In any stretch of time W at most `burst + W / interval` units are allowed.
 *
 * `gcra(key, now, interval, tolerance, cost)` returns `allowed (0|1), remaining, retry_us, reset_us`.
 * A `cost` of 0 reads without writing. Times are microseconds; the TAT is stored with full double precision.
 */
export const GCRA_FUNCTION = `
local function gcra(key, now, interval, tolerance, cost)
  local tat = tonumber(redis.call('GET', key) or '0') or 0
  if tat < now then tat = now end
  local new_tat = tat + cost * interval
  -- A thousandth of one interval absorbs float rounding: far less than one unit, so it never admits an extra one.
  local slack = interval / 1000
  if new_tat - now > tolerance + slack then
    local remaining = math.floor((tolerance - (tat - now)) / interval + 0.001)
    if remaining < 0 then remaining = 0 end
    return 0, remaining, math.ceil(new_tat - tolerance - now), math.ceil(tat - now)
  end
  if cost > 0 then
    redis.call('SET', key, string.format('%.17g', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
  end
  local remaining = math.floor((tolerance - (new_tat - now)) / interval + 0.001)
  if remaining < 0 then remaining = 0 end
  return 1, remaining, 0, math.ceil(new_tat - now)
end
`;

/** One GCRA take on `KEYS[1]`; ARGV: interval (µs), tolerance (µs), cost. Returns the four values and `now`. */
export const GCRA_SCRIPT = `${REDIS_NOW}${GCRA_FUNCTION}
local allowed, remaining, retry, reset = gcra(KEYS[1], now, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
return {allowed, remaining, retry, reset, now}
`;
