import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RateLimiterOptionsInput } from '../../src/resilience/rate-limiter';
import { uniquePrefix } from '../support/redis-server';
import { type LimiterChild, startChild } from './support/limiter-processes';
import { connect, deleteKeys, REDIS_URL } from './support/limiter-redis';

// The proof: several limiter clients in separate Node processes hammering one key never exceed the
// global rate by more than one window's slack. Four processes run, at once, 8 takes in flight each on
// three keys: GCRA on a shared key (40/s, burst 4), GCRA on a key with its own override (80/s, burst 8),
// and the sliding window on a shared key (40/s). Every allowed take is counted at the Redis time the script
// decided it, and every window of one period is checked.

const PROCESSES = 4;
const DURATION_MS = 2_500;
const prefix = uniquePrefix('hammer');
const gcra: RateLimiterOptionsInput = {
  prefix,
  name: 'gcra',
  limit: 40,
  period: '1s',
  burst: 4,
  overrides: { vip: { limit: 80, burst: 8 } },
};
const sliding: RateLimiterOptionsInput = {
  prefix,
  name: 'sw',
  algorithm: 'sliding-window',
  limit: 40,
  period: '1s',
};

let redis: Redis;
let results: { allowed: number[]; denied: number }[][];

beforeAll(async () => {
  redis = connect();
  const children: LimiterChild[] = Array.from({ length: PROCESSES }, () =>
    startChild('./limiter-hammer.ts', {
      url: REDIS_URL,
      durationMs: DURATION_MS,
      inFlight: 8,
      runs: [
        { options: gcra, key: 'shared' },
        { options: gcra, key: 'vip' },
        { options: sliding, key: 'shared' },
      ],
    }),
  );
  // Started together once every process is up (starting a process takes a while on a busy machine).
  await Promise.all(children.map((c) => c.line<{ kind: string }>((l) => l.kind === 'ready')));
  const startAt = Date.now() + 200;
  for (const c of children) c.send({ startAt });
  const done = await Promise.all(
    children.map((c) =>
      c.line<{ kind: string; results: { allowed: number[]; denied: number }[] }>((l) => l.kind === 'done'),
    ),
  );
  await Promise.all(children.map((c) => c.exited));
  results = done.map((d) => d.results);
}, 30_000);

afterAll(async () => {
  await deleteKeys(redis, prefix);
  redis.disconnect();
});

/** The allowed takes of run `i` from every process, as whole microseconds of Redis time, sorted. */
function allowedOf(i: number): number[] {
  return results
    .flatMap((r) => r[i]?.allowed ?? [])
    .map((ms) => Math.round(ms * 1000))
    .sort((a, b) => a - b);
}

/** The most takes in any closed window [t, t + period] starting at a take. */
function busiestWindow(times: number[], periodUs: number): number {
  let most = 0;
  let end = 0;
  for (let start = 0; start < times.length; start++) {
    while (end < times.length && (times[end] as number) <= (times[start] as number) + periodUs) end++;
    most = Math.max(most, end - start);
  }
  return most;
}

/** The most takes in any half-open window (t - period, t] ending at a take: what the sliding log counts. */
function busiestTrailingWindow(times: number[], periodUs: number): number {
  let most = 0;
  let start = 0;
  for (let end = 0; end < times.length; end++) {
    while ((times[start] as number) <= (times[end] as number) - periodUs) start++;
    most = Math.max(most, end - start + 1);
  }
  return most;
}

describe('separate processes on one key', () => {
  it('every process took part, and each was denied (the limit was the bottleneck)', () => {
    expect(results).toHaveLength(PROCESSES);
    for (const perProcess of results) {
      for (const run of perProcess) {
        expect(run.allowed.length).toBeGreaterThan(0);
        expect(run.denied).toBeGreaterThan(0);
      }
    }
  });

  it('GCRA: no window of one period holds more than limit + burst, and the rate was reached', () => {
    const times = allowedOf(0);
    expect(busiestWindow(times, 1_000_000)).toBeLessThanOrEqual(40 + 4);
    const spanS = ((times.at(-1) as number) - (times[0] as number)) / 1e6;
    expect(spanS).toBeGreaterThan(2);
    // Saturated: about 40 a second (generous lower bound for a noisy machine).
    expect(times.length).toBeGreaterThanOrEqual(0.5 * 40 * spanS);
    expect(times.length).toBeLessThanOrEqual(4 + 40 * spanS + 1);
  });

  it('per-key limits are independent: the overridden key had its own, higher, limit', () => {
    const times = allowedOf(1);
    const busiest = busiestWindow(times, 1_000_000);
    expect(busiest).toBeLessThanOrEqual(80 + 8);
    expect(busiest).toBeGreaterThan(40 + 4);
  });

  it('sliding window: no trailing window of one period holds more than the limit', () => {
    const times = allowedOf(2);
    expect(busiestTrailingWindow(times, 1_000_000)).toBeLessThanOrEqual(40);
    const spanS = ((times.at(-1) as number) - (times[0] as number)) / 1e6;
    expect(times.length).toBeGreaterThanOrEqual(0.5 * 40 * spanS);
  });
});
