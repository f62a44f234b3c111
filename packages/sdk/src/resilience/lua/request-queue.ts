import { EPOCH_US, REDIS_NOW } from '../../redis/lua-script';
import { GCRA_FUNCTION } from './gcra';

// Every queue script takes the same keys, all in the queue's hash slot:
// KEYS[1] pending ids (a LIST: LPUSH in, RPOP out), KEYS[2] ids being processed (a ZSET scored by the
// deadline, µs), KEYS[3] payloads (HASH id -> "<enqueuedAt ms>|<json>"), KEYS[4] delivery counts (HASH),
// KEYS[5] dead letters (a LIST of JSON), KEYS[6] the drain rate's GCRA state.

/**
 * Whether a stored value is what enqueue writes, `<enqueuedAt ms>|<json>`: returns its two parts, or nil. A
 * value written by something else (by hand, another program) must neither break a script nor be delivered.
 */
const STORED = `
local function split_stored(stored)
  if not stored then return nil end
  local bar = string.find(stored, '|', 1, true)
  if not bar then return nil end
  local enqueued = string.sub(stored, 1, bar - 1)
  -- Spliced into dead letters as a JSON number: no leading zero (\`007\` is not JSON).
  if enqueued ~= '0' and not string.match(enqueued, '^[1-9]%d*$') then return nil end
  return enqueued, string.sub(stored, bar + 1)
end
`;

/**
 * Appends a dead letter for `id` and forgets it. The letter is JSON built around the stored payload, which
 * stays byte for byte when it is JSON; anything else is kept as a JSON string, so the letter stays readable.
 */
const BURY = `${STORED}
local function bury(id, attempts, reason, dead_max)
  local stored = redis.call('HGET', KEYS[3], id)
  local enqueued, payload = split_stored(stored)
  if not enqueued or not pcall(cjson.decode, payload) then
    enqueued = 'null'
    payload = stored and cjson.encode(stored) or 'null'
  end
  local dead_at = string.format('%.0f', (now + ${EPOCH_US}) / 1000)
  redis.call('LPUSH', KEYS[5], '{"id":' .. cjson.encode(id) .. ',"attempts":' .. attempts .. ',"error":' ..
    cjson.encode(reason) .. ',"enqueuedAt":' .. enqueued .. ',"deadAt":' .. dead_at .. ',"payload":' .. payload .. '}')
  redis.call('LTRIM', KEYS[5], 0, dead_max - 1)
  redis.call('HDEL', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
end
`;

/**
 * Enqueues unless the queue holds `bound` items (waiting plus in processing, so that a redelivery can never
 * push it past the bound). ARGV: bound, id, payload JSON. Returns `{1, length}` or `{0, length}` when full.
 */
export const ENQUEUE_SCRIPT = `${REDIS_NOW}
local held = redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
if held >= tonumber(ARGV[1]) then return {0, held} end
redis.call('HSET', KEYS[3], ARGV[2], string.format('%.0f', (now + ${EPOCH_US}) / 1000) .. '|' .. ARGV[3])
redis.call('LPUSH', KEYS[1], ARGV[2])
return {1, held + 1}
`;

/**
 * One delivery, if the queue has an item and the global drain rate allows it. First puts items whose deadline
 * has passed (a crashed or stalled consumer's, or failed ones whose retry delay is over) back at the head of
 * the queue, or into the dead letters when their attempts are spent. Then moves ids at the head without a
 * payload enqueue wrote to the dead letters (at most a batch per call), so that only a deliverable item spends a
 * unit of the drain rate. ARGV: visibility (µs), max attempts, drain interval (µs), drain tolerance (µs),
 * most items to reap per call (and to dead-letter from the head), dead-letter cap.
 * Returns `{0, requeued, buried}` when empty, `{1, requeued, buried, retry_us}` when the rate says wait,
 * `{2, requeued, buried, id, attempt, stored, now}`, or `{3, requeued, buried}` when a batch limit was reached
 * with nothing to deliver yet: more may be waiting, so call again at once.
 */
export const DEQUEUE_SCRIPT = `${REDIS_NOW}${GCRA_FUNCTION}${BURY}
local max_attempts = tonumber(ARGV[2])
local batch = tonumber(ARGV[5])
local dead_max = tonumber(ARGV[6])
local requeued, buried = 0, 0
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, batch)
-- A full batch of expired items may have more behind it: an empty queue then means "look again", not "idle".
local idle = 0
if #expired == batch then idle = 3 end
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[2], id)
  local attempts = tonumber(redis.call('HGET', KEYS[4], id) or '0') or 0
  if attempts >= max_attempts then
    bury(id, attempts, 'not acknowledged within the visibility timeout on the last attempt', dead_max)
    buried = buried + 1
  else
    redis.call('RPUSH', KEYS[1], id)
    requeued = requeued + 1
  end
end
-- The head of the queue (LPUSH in, RPOP out), looked at before it is taken: ids something else pushed, with
-- no payload of enqueue's, go to the dead letters without costing a delivery.
local id
for _ = 1, batch do
  id = redis.call('LINDEX', KEYS[1], -1)
  if not id then return {idle, requeued, buried} end
  local stored = redis.call('HGET', KEYS[3], id)
  if split_stored(stored) then break end
  redis.call('RPOP', KEYS[1])
  local reason = 'no payload stored for this id: it was not added by enqueue'
  if stored then reason = 'the stored value is not "<enqueuedAt>|<json>": it was not added by enqueue' end
  bury(id, redis.call('HINCRBY', KEYS[4], id, 1), reason, dead_max)
  buried = buried + 1
  id = nil
end
-- A whole batch of ids was dead-lettered and the next may be deliverable: the consumer must not sleep.
if not id then return {3, requeued, buried} end
local allowed, _, retry = gcra(KEYS[6], now, tonumber(ARGV[3]), tonumber(ARGV[4]), 1)
if allowed == 0 then return {1, requeued, buried, retry} end
redis.call('RPOP', KEYS[1])
local attempt = redis.call('HINCRBY', KEYS[4], id, 1)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), id)
return {2, requeued, buried, id, attempt, redis.call('HGET', KEYS[3], id), now}
`;

/**
 * Completes delivery `ARGV[2]` of `ARGV[1]`: only if no later delivery of it exists. An item requeued after
 * its deadline but not yet redelivered is still completed (and taken out of the queue). Returns 1, or 0.
 */
export const ACK_SCRIPT = `
local id = ARGV[1]
if tonumber(redis.call('HGET', KEYS[4], id) or '-1') ~= tonumber(ARGV[2]) then return 0 end
if redis.call('ZREM', KEYS[2], id) == 0 and redis.call('LREM', KEYS[1], 1, id) == 0 then return 0 end
redis.call('HDEL', KEYS[3], id)
redis.call('HDEL', KEYS[4], id)
return 1
`;

/**
 * Records a failed delivery `ARGV[2]` of `ARGV[1]`, if it still holds the item: the item becomes visible again
 * after the retry delay ARGV[4] (µs), or goes to the dead letters when ARGV[3] attempts are spent or ARGV[7] is
 * `1` (not retriable). ARGV[5] the error message, ARGV[6] the dead-letter cap. Returns 1 (retry), 2 (dead), 0.
 */
export const FAIL_SCRIPT = `${REDIS_NOW}${BURY}
local id = ARGV[1]
local attempt = tonumber(ARGV[2])
if tonumber(redis.call('HGET', KEYS[4], id) or '-1') ~= attempt then return 0 end
if not redis.call('ZSCORE', KEYS[2], id) then return 0 end
if attempt >= tonumber(ARGV[3]) or ARGV[7] == '1' then
  redis.call('ZREM', KEYS[2], id)
  bury(id, attempt, ARGV[5], tonumber(ARGV[6]))
  return 2
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), id)
return 1
`;

/** Moves the deadline of delivery `ARGV[2]` of `ARGV[1]` to now + ARGV[3] µs, if it still holds it. Returns 1 or 0. */
export const EXTEND_SCRIPT = `${REDIS_NOW}
local id = ARGV[1]
if tonumber(redis.call('HGET', KEYS[4], id) or '-1') ~= tonumber(ARGV[2]) then return 0 end
if not redis.call('ZSCORE', KEYS[2], id) then return 0 end
redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[3]), id)
return 1
`;
