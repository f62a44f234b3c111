import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRequestQueue, type RequestQueueOptionsInput } from '../../src/resilience/request-queue';
import { uniquePrefix } from '../support/redis-server';
import { type LimiterChild, startChild } from './support/limiter-processes';
import { connect, deleteKeys, REDIS_URL } from './support/limiter-redis';

// The request queue across real Node processes: the bound under concurrent enqueuers, the global drain rate
// across consumers on several "replicas", and redelivery of a crashed consumer's item.

const prefix = uniquePrefix('queue-procs');
let redis: Redis;
const children: LimiterChild[] = [];

beforeAll(() => {
  redis = connect();
});
afterAll(async () => {
  for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGKILL');
  await deleteKeys(redis, prefix);
  redis.disconnect();
});

function start(input: Record<string, unknown>): LimiterChild {
  const child = startChild('./limiter-queue-worker.ts', { url: REDIS_URL, ...input });
  children.push(child);
  return child;
}

type Done = {
  kind: 'done';
  accepted: number;
  rejected: number;
  longest: number;
  rejection: Record<string, unknown>;
};
type Delivered = { kind: 'delivered'; id: string; attempt: number; at: number; payload: { n: number } };

describe('bound', () => {
  it('four processes enqueueing 400 items each, 32 at a time, into a queue of 1000: exactly 1000 get in', async () => {
    const queue: RequestQueueOptionsInput = { key: `${prefix}:bound`, maxLength: 1000 };
    const enqueuers = Array.from({ length: 4 }, () =>
      start({ mode: 'enqueue', queue, count: 400, inFlight: 32 }),
    );
    await Promise.all(enqueuers.map((c) => c.line<{ kind: string }>((l) => l.kind === 'ready')));
    const startAt = Date.now() + 200;
    for (const c of enqueuers) c.send({ startAt });
    const done = await Promise.all(enqueuers.map((c) => c.line<Done>((l) => l.kind === 'done')));
    await Promise.all(enqueuers.map((c) => c.exited));

    expect(done.reduce((sum, d) => sum + d.accepted, 0)).toBe(1000);
    expect(done.reduce((sum, d) => sum + d.rejected, 0)).toBe(600);
    // No enqueue ever saw the queue longer than its bound, and it holds exactly the bound now.
    expect(Math.max(...done.map((d) => d.longest))).toBe(1000);
    expect(await redis.llen(`${prefix}:bound`)).toBe(1000);
    const rejection = done.find((d) => d.rejection)?.rejection;
    // The default drain rate is 50 a minute: a slot frees about every 1.2 s.
    expect(rejection).toMatchObject({ code: 'QUEUE_FULL', httpStatus: 429, retryAfterMs: 1200 });
    expect(rejection?.message).toMatch(/Retry-After: 2/);
  });
});

describe('drain', () => {
  it('three consumer processes together stay within the global rate, and each item is handled once', async () => {
    const queue: RequestQueueOptionsInput = {
      key: `${prefix}:drain`,
      rate: { limit: 15, period: '1s', burst: 1 },
      pollInterval: '50ms',
    };
    const local = createRequestQueue<{ n: number; from: number }>(redis, queue);
    for (let n = 0; n < 45; n++) await local.enqueue({ n, from: 0 });
    const consumers = Array.from({ length: 3 }, () =>
      start({ mode: 'consume', queue, concurrency: 4, handlerMs: 20 }),
    );

    const deliveries = () =>
      consumers.flatMap((c) => c.lines as Delivered[]).filter((l) => l.kind === 'delivered');
    await expect.poll(() => deliveries().length, { timeout: 15_000, interval: 100 }).toBe(45);
    for (const c of consumers) c.child.kill('SIGTERM');
    await Promise.all(consumers.map((c) => c.exited));

    const all = deliveries();
    expect(new Set(all.map((d) => d.payload.n)).size).toBe(45);
    expect(all.every((d) => d.attempt === 1)).toBe(true);
    // By the Redis time of each delivery: at most limit + burst in any closed window of one period.
    const times = all.map((d) => Math.round(d.at * 1000)).sort((a, b) => a - b);
    let busiest = 0;
    for (let i = 0, j = 0; i < times.length; i++) {
      while (j < times.length && (times[j] as number) <= (times[i] as number) + 1_000_000) j++;
      busiest = Math.max(busiest, j - i);
    }
    expect(busiest).toBeLessThanOrEqual(15 + 1);
    // 45 items at 15 a second take about 3 s, whatever the number of consumers.
    expect(((times.at(-1) as number) - (times[0] as number)) / 1e6).toBeGreaterThan(2.5);
    expect(await local.stats()).toMatchObject({ waiting: 0, processing: 0, deadLetters: 0 });
  }, 30_000);
});

describe('redelivery', () => {
  it("redelivers a killed consumer's item after the visibility timeout", async () => {
    const queue: RequestQueueOptionsInput = {
      key: `${prefix}:crash`,
      rate: { limit: 100, period: '1s', burst: 10 },
      visibilityTimeout: '1s',
      pollInterval: '50ms',
    };
    const local = createRequestQueue<{ n: number; from: number }>(redis, queue);
    const { id } = await local.enqueue({ n: 7, from: 0 });

    const doomed = start({ mode: 'hang', queue });
    const first = await doomed.line<Delivered>((l) => l.kind === 'delivered');
    expect(first).toMatchObject({ id, attempt: 1, payload: { n: 7 } });
    doomed.child.kill('SIGKILL');
    expect(await local.stats()).toMatchObject({ waiting: 0, processing: 1 });

    const survivor = start({ mode: 'consume', queue });
    const second = await survivor.line<Delivered>((l) => l.kind === 'delivered');
    expect(second).toMatchObject({ id, attempt: 2, payload: { n: 7 } });
    // Not before the first delivery's deadline (Redis time), which its dead consumer could no longer extend.
    expect(second.at - first.at).toBeGreaterThanOrEqual(1_000);
    await expect.poll(async () => (await local.stats()).processing, { timeout: 5_000 }).toBe(0);
    survivor.child.kill('SIGTERM');
    await survivor.exited;
    expect(await local.stats()).toMatchObject({ waiting: 0, processing: 0, deadLetters: 0 });
  }, 30_000);
});
