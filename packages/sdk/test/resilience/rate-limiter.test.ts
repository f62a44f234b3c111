import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInputValidationError } from '../../src/core/errors';
import {
  createRateLimiter,
  type RateLimiter,
  type RateLimiterOptionsInput,
} from '../../src/resilience/rate-limiter';
import { uniquePrefix } from '../support/redis-server';
import { connect, deleteKeys, redisNow } from './support/limiter-redis';

// One process, one real Redis: the arithmetic of each algorithm, per-key limits, key escaping and option
// validation. The multi-process proofs are in rate-limiter-processes.test.ts.

let redis: Redis;
const prefix = uniquePrefix('limiter');
const limiters: RateLimiter[] = [];

beforeAll(() => {
  redis = connect();
});
afterAll(async () => {
  for (const limiter of limiters) limiter.close();
  await deleteKeys(redis, prefix);
  redis.disconnect();
});

function limiter(options: Omit<RateLimiterOptionsInput, 'prefix'>): RateLimiter {
  const created = createRateLimiter(redis, { prefix, ...options });
  limiters.push(created);
  return created;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('GCRA', () => {
  it('allows the burst at once, then one unit per interval, and says when to come back', async () => {
    // One unit costs 1 s: every take below has a second of room on a busy machine.
    const l = limiter({ name: 'gcra-basic', limit: 10, period: '10s', burst: 3 });
    const first = await Promise.all([l.take('k'), l.take('k'), l.take('k')]);
    expect(first.map((d) => d.allowed)).toEqual([true, true, true]);
    expect(first.map((d) => d.remaining).sort()).toEqual([0, 1, 2]);
    const denied = await l.take('k');
    expect(denied).toMatchObject({ allowed: false, remaining: 0, limit: 10 });
    // The three taken keep the key busy for about 3 s; the next unit frees within one interval.
    expect(denied.retryAfterMs).toBeGreaterThan(0);
    expect(denied.retryAfterMs).toBeLessThanOrEqual(1_000);
    expect(denied.resetAfterMs).toBeGreaterThan(1_000);
    expect(denied.resetAfterMs).toBeLessThanOrEqual(3_000);
    await pause(denied.retryAfterMs + 20);
    expect((await l.take('k')).allowed).toBe(true);
    expect((await l.take('k')).allowed).toBe(false);
  });

  it('takes a cost of several units, reads with cost 0, and refuses a cost it could never allow', async () => {
    const l = limiter({ name: 'gcra-cost', limit: 5, period: '10s' });
    expect(await l.take('k', 0)).toMatchObject({ allowed: true, remaining: 5 });
    expect(await l.take('k', 3)).toMatchObject({ allowed: true, remaining: 2 });
    expect(await l.take('k', 0)).toMatchObject({ allowed: true, remaining: 2 });
    const denied = await l.take('k', 3);
    expect(denied).toMatchObject({ allowed: false, remaining: 2 });
    // One more unit frees in 2 s (one interval); the take of 3 needs it.
    expect(denied.retryAfterMs).toBeGreaterThan(1_900);
    expect(denied.retryAfterMs).toBeLessThanOrEqual(2_000);
    await expect(l.take('k', 6)).rejects.toThrow(RangeError);
    await expect(l.take('k', 1.5)).rejects.toThrow(/cost 1.5/);
    await expect(l.take('', 1)).rejects.toThrow(TypeError);
  });

  it('defaults the burst to the limit, and forgets a key on reset', async () => {
    const l = limiter({ name: 'gcra-reset', limit: 4, period: '1m' });
    expect(l.burst).toBe(4);
    const results = await Promise.all(Array.from({ length: 5 }, () => l.take('k')));
    expect(results.filter((d) => d.allowed)).toHaveLength(4);
    await l.reset('k');
    expect(await l.take('k')).toMatchObject({ allowed: true, remaining: 3 });
  });

  it('decides by the Redis clock', async () => {
    const l = limiter({ name: 'gcra-clock', limit: 100, period: '10s' });
    const before = await redisNow(redis);
    const decision = await l.take('k');
    const after = await redisNow(redis);
    expect(decision.at).toBeGreaterThanOrEqual(before);
    expect(decision.at).toBeLessThanOrEqual(after);
    // The state lives in Redis with a TTL, by Redis' clock: until the key is idle again (one 100 ms unit).
    const ttl = await redis.pttl(l.redisKey('k'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(102);
  });
});

describe('sliding window', () => {
  it('allows exactly the limit in any window and says when the oldest unit leaves it', async () => {
    const l = limiter({ name: 'sw-basic', algorithm: 'sliding-window', limit: 3, period: '1s' });
    const results = await Promise.all(Array.from({ length: 4 }, () => l.take('k')));
    expect(results.filter((d) => d.allowed)).toHaveLength(3);
    const denied = results.find((d) => !d.allowed);
    expect(denied).toMatchObject({ remaining: 0, limit: 3 });
    expect(denied?.retryAfterMs).toBeGreaterThan(0);
    expect(denied?.retryAfterMs).toBeLessThanOrEqual(1_000);
    await pause((denied?.retryAfterMs ?? 0) + 20);
    expect(await l.take('k', 3)).toMatchObject({ allowed: true, remaining: 0 });
    expect((await l.take('k')).allowed).toBe(false);
    // One member per take, whatever its cost, all within the window.
    expect(await redis.zcard(l.redisKey('k'))).toBe(1);
  });

  it('stores one member per take, so a take of the largest cost is one cheap write', async () => {
    const l = limiter({ name: 'sw-big', algorithm: 'sliding-window', limit: 10_000, period: '1m' });
    expect(await l.take('k', 10_000)).toMatchObject({ allowed: true, remaining: 0 });
    expect(await redis.zcard(l.redisKey('k'))).toBe(1);
    // A few hundred bytes, not one member per unit (about 1.2 MB for 10000).
    expect(await redis.memory('USAGE', l.redisKey('k'))).toBeLessThan(1_000);
    expect(await l.take('k')).toMatchObject({ allowed: false, remaining: 0 });
  });

  it('says when enough units leave the window, counting each take with its cost', async () => {
    const l = limiter({ name: 'sw-retry', algorithm: 'sliding-window', limit: 5, period: '10s' });
    expect(await l.take('k', 2)).toMatchObject({ allowed: true, remaining: 3 });
    // 600, not 500: a timer may fire a millisecond early, and the bound below needs 500 ms between the takes.
    await pause(600);
    expect(await l.take('k', 3)).toMatchObject({ allowed: true, remaining: 0 });
    // 2 units free when the first take leaves the window (≥ 500 ms sooner than the second); 3 need both.
    const two = await l.take('k', 2);
    const three = await l.take('k', 3);
    expect(two).toMatchObject({ allowed: false, remaining: 0 });
    expect(two.retryAfterMs).toBeLessThanOrEqual(9_500);
    expect(three.retryAfterMs).toBeGreaterThan(9_500);
    expect(three.retryAfterMs).toBeLessThanOrEqual(10_000);
    expect(three.resetAfterMs).toBe(three.retryAfterMs);
    expect(await l.take('k', 0)).toMatchObject({ allowed: true, remaining: 0 });
  });

  it('counts a multi-unit take against what is left', async () => {
    const l = limiter({ name: 'sw-cost', algorithm: 'sliding-window', limit: 5, period: '1m' });
    expect(await l.take('k', 4)).toMatchObject({ allowed: true, remaining: 1 });
    expect(await l.take('k', 2)).toMatchObject({ allowed: false, remaining: 1 });
    expect(await l.take('k', 1)).toMatchObject({ allowed: true, remaining: 0 });
    expect(l.burst).toBe(5);
  });
});

describe('per-key limits', () => {
  it('keeps keys independent, applies overrides by key and limitsFor by rule', async () => {
    const l = limiter({
      name: 'per-key',
      limit: 2,
      period: '1m',
      overrides: { vip: { limit: 20 }, slow: { period: '1h' } },
      limitsFor: (key) => (key.startsWith('free:') ? { limit: 1 } : undefined),
    });
    const take = async (key: string, n: number) => {
      const results = await Promise.all(Array.from({ length: n }, () => l.take(key)));
      return results.filter((d) => d.allowed).length;
    };
    expect(await take('alice', 5)).toBe(2);
    expect(await take('bob', 5)).toBe(2);
    expect(await take('vip', 25)).toBe(20);
    expect(await take('free:carol', 3)).toBe(1);
    expect(l.limitsFor('vip')).toEqual({ limit: 20, periodMs: 60_000, burst: 20 });
    expect(l.limitsFor('slow')).toEqual({ limit: 2, periodMs: 3_600_000, burst: 2 });
    expect(l.limitsFor('free:dave')).toEqual({ limit: 1, periodMs: 60_000, burst: 1 });
    expect(l.limitsFor('erin')).toEqual({ limit: 2, periodMs: 60_000, burst: 2 });
  });

  it('names the field when limitsFor returns something invalid', async () => {
    const l = limiter({ name: 'bad-rule', limit: 2, period: '1m', limitsFor: () => ({ limit: -1 }) });
    const error = await l.take('k').catch((e: unknown) => e);
    expect(isInputValidationError(error)).toBe(true);
    expect((error as Error).message).toMatch(/limitsFor\("k"\).*limit:/);
    // Limits valid one by one but not together: the sliding log's cap, a rate finer than a microsecond.
    const sliding = limiter({
      name: 'bad-rule-sw',
      algorithm: 'sliding-window',
      limit: 2,
      period: '1m',
      limitsFor: (key) => (key === 'huge' ? { limit: 1_000_000 } : { limit: 5_000, period: 1 }),
    });
    await expect(sliding.take('huge')).rejects.toThrow(/limit: expected at most 10000 with algorithm/);
    await expect(sliding.take('fine')).rejects.toThrow(/limit: expected at most 1000 per 1ms/);
  });
});

describe('keys', () => {
  it('namespaces keys and escapes what would be ambiguous or move them to another cluster slot', () => {
    const l = limiter({ name: 'keys', limit: 1, period: '1s' });
    expect(l.redisKey('user:42')).toBe(`${prefix}:keys:gcra:user:42`);
    expect(l.redisKey('{tag} 50%#')).toBe(`${prefix}:keys:gcra:%7Btag%7D%2050%25%23`);
    // Distinct inputs stay distinct, even when one looks like the other's escaped form.
    expect(l.redisKey('a{')).not.toBe(l.redisKey('a%7B'));
    const long = l.redisKey('x'.repeat(500));
    expect(long).toMatch(new RegExp(`^${prefix}:keys:gcra:#[0-9a-f]{64}$`));
    expect(l.redisKey('x'.repeat(501))).not.toBe(long);
    expect(limiter({ name: 'keys', algorithm: 'sliding-window', limit: 1, period: '1s' }).redisKey('k')).toBe(
      `${prefix}:keys:sw2:k`,
    );
  });

  it('keeps the sliding log apart from the older format, whose members would read as huge running totals', async () => {
    const l = limiter({ name: 'sw-format', algorithm: 'sliding-window', limit: 5, period: '1m' });
    // What an older replica wrote: `<µs time>:<cost>` members under the `sw` tag, scored by their time.
    // Read as running totals, two takes 5 ms apart would count as 5001 units in the window.
    const old = `${prefix}:sw-format:sw:k`;
    const nowUs = Math.floor((await redisNow(redis)) * 1000);
    await redis.zadd(old, nowUs - 5_000, `${nowUs - 5_000}:1`, nowUs, `${nowUs}:1`);
    await redis.pexpire(old, 60_000);
    expect(await l.take('k')).toMatchObject({ allowed: true, remaining: 4 });
    expect(await redis.zcard(old)).toBe(2);
  });

  it('limits keys that differ only in characters it escapes separately', async () => {
    const l = limiter({ name: 'escape', limit: 1, period: '1m' });
    expect((await l.take('a{')).allowed).toBe(true);
    expect((await l.take('a%7B')).allowed).toBe(true);
    expect((await l.take('a{')).allowed).toBe(false);
  });
});

describe('options', () => {
  const message = (options: unknown) => {
    try {
      createRateLimiter(redis, options as RateLimiterOptionsInput).close();
    } catch (e) {
      expect(isInputValidationError(e)).toBe(true);
      return (e as Error).message;
    }
    throw new Error('expected the options to be rejected');
  };

  it('names each bad field', () => {
    expect(message({ name: 'x', limit: 0, period: '1s' })).toMatch(/limit:/);
    expect(message({ name: 'x', limit: 1, period: '5 minutes' })).toMatch(/period:.*"30s"/);
    expect(message({ name: 'x', limit: 1, period: 0 })).toMatch(/period:.*from 1ms to 1d/);
    expect(message({ name: 'x', limit: 1, period: '2d' })).toMatch(/period:.*from 1ms to 1d/);
    expect(message({ name: 'x', limit: 2_000, period: 1 })).toMatch(/limit:.*at most 1000 per 1ms/);
    expect(message({ name: 'x', limit: 10, period: '1s', overrides: { vip: { period: 0.001 } } })).toMatch(
      /overrides\.vip\.period:/,
    );
    expect(message({ name: 'x', algorithm: 'sliding-window', limit: 10_001, period: '1m' })).toMatch(
      /limit: expected at most 10000 with algorithm "sliding-window"/,
    );
    expect(
      message({
        name: 'x',
        algorithm: 'sliding-window',
        limit: 10,
        period: '1m',
        overrides: { vip: { limit: 20_000 } },
      }),
    ).toMatch(/overrides\.vip\.limit: expected at most 10000/);
    expect(message({ name: 'a b', limit: 1, period: '1s' })).toMatch(/name:/);
    expect(message({ name: 'x', limit: 1, period: '1s', prefix: 'a{b}' })).toMatch(/prefix:/);
    expect(message({ name: 'x', limit: 1, period: '1s', algorithm: 'leaky' })).toMatch(/algorithm:/);
    expect(message({ name: 'x', algorithm: 'sliding-window', limit: 1, period: '1s', burst: 2 })).toMatch(
      /burst: burst applies to algorithm "gcra" only/,
    );
    expect(message({ name: 'x', limit: 1, period: '1s', overrides: { vip: { limit: 'many' } } })).toMatch(
      /overrides\.vip\.limit:/,
    );
    expect(message({ name: 'x', limit: 1, period: '1s', strictMode: { pollInterval: '5s' } })).toMatch(
      /strictMode\.pollInterval:.*within 1s/,
    );
    expect(message({ name: 'x', limit: 1, period: '1s', limitsFor: 'tier' })).toMatch(
      /limitsFor: expected a function/,
    );
    expect(message({ limit: 1, period: '1s' })).toMatch(/name:/);
  });
});
