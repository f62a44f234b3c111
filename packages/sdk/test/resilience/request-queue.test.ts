import { inspect } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInputValidationError, isRunbookError, NonRetriableError } from '../../src/core/errors';
import {
  createRequestQueue,
  type Delivery,
  type RequestQueue,
  type RequestQueueOptionsInput,
} from '../../src/resilience/request-queue';
import { isQueueFullError, QueueFullError } from '../../src/resilience/request-queue-errors';
import { startTestRedis, uniquePrefix } from '../support/redis-server';
import { connect, deleteKeys, REDIS_URL } from './support/limiter-redis';

// The request queue in one process against a real Redis: order, the bound and its error, retries, dead
// letters, lease extension, stopping, events and option validation. The multi-process proofs are in
// request-queue-processes.test.ts.

let redis: Redis;
const prefix = uniquePrefix('queue');
let counter = 0;

beforeAll(() => {
  redis = connect();
});
afterAll(async () => {
  await deleteKeys(redis, prefix);
  redis.disconnect();
});

/** A queue on keys of its own, draining fast unless told otherwise. */
function queue<T = unknown>(options: RequestQueueOptionsInput = {}): RequestQueue<T> {
  return createRequestQueue<T>(redis, {
    key: `${prefix}:q${++counter}`,
    rate: { limit: 1000, period: '1s', burst: 100 },
    pollInterval: '20ms',
    retryDelay: '20ms',
    ...options,
  });
}

/** Runs `process` until `until` holds, then stops it and waits for it to finish. */
async function drain<T>(
  q: RequestQueue<T>,
  handler: (payload: T, delivery: Delivery) => Promise<void>,
  until: () => boolean | Promise<boolean>,
  concurrency = 1,
): Promise<void> {
  const stop = new AbortController();
  const running = q.process(handler, { concurrency, signal: stop.signal });
  await expect.poll(until, { timeout: 10_000, interval: 20 }).toBe(true);
  stop.abort();
  await running;
}

describe('enqueue and process', () => {
  it('delivers in order, payloads intact, and forgets acknowledged items', async () => {
    const q = queue<unknown>();
    const payloads = [{ prompt: 'héllo ✓', tags: [] }, [], 'text', 42, null, { nested: { empty: {} } }];
    const ids: string[] = [];
    for (const p of payloads) ids.push((await q.enqueue(p)).id);
    expect(await q.length()).toBe(payloads.length);
    expect(await redis.llen(q.keys.waiting)).toBe(payloads.length);

    const seen: { payload: unknown; delivery: Delivery }[] = [];
    await drain(
      q,
      async (payload, delivery) => {
        seen.push({ payload, delivery });
      },
      () => seen.length === payloads.length,
    );
    expect(seen.map((s) => s.payload)).toEqual(payloads);
    expect(seen.map((s) => s.delivery.id)).toEqual(ids);
    expect(
      seen.every((s) => s.delivery.attempt === 1 && s.delivery.deliveredAt >= s.delivery.enqueuedAt),
    ).toBe(true);
    await expect.poll(async () => (await q.stats()).processing).toBe(0);
    expect(await redis.hlen(q.keys.payloads)).toBe(0);
    expect(await redis.hlen(q.keys.attempts)).toBe(0);
  });

  it("uses the manual's key by default, with its other keys in the same cluster slot", () => {
    const q = createRequestQueue(redis);
    expect(q.keys).toEqual({
      waiting: 'agent:requests:queue',
      processing: '{agent:requests:queue}:processing',
      payloads: '{agent:requests:queue}:payloads',
      attempts: '{agent:requests:queue}:attempts',
      dead: '{agent:requests:queue}:dead',
      rate: '{agent:requests:queue}:rate',
    });
  });

  it('runs up to `concurrency` handlers at once, and finishes running handlers when stopped', async () => {
    const q = queue<number>();
    for (let n = 0; n < 6; n++) await q.enqueue(n);
    let active = 0;
    let most = 0;
    let finished = 0;
    await drain(
      q,
      async () => {
        active++;
        most = Math.max(most, active);
        await new Promise((resolve) => setTimeout(resolve, 100));
        active--;
        finished++;
      },
      () => most === 3,
      3,
    );
    // process() resolved only after the handlers it had started were done.
    expect(active).toBe(0);
    expect(most).toBe(3);
    const { local } = await q.stats();
    expect(local.completed).toBe(finished);
    expect(await q.length()).toBe(6 - local.delivered);
  });
});

describe('bound', () => {
  it('rejects beyond maxLength with QUEUE_FULL, 429 and a Retry-After from the drain rate', async () => {
    const q = queue({ maxLength: 5, rate: { limit: 50, period: '1m' } });
    const rejected: { length: number; retryAfterMs: number }[] = [];
    q.onRejected((e) => rejected.push(e));
    const outcomes = await Promise.allSettled(Array.from({ length: 8 }, (_, n) => q.enqueue(n)));
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(5);
    const errors = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
    expect(errors).toHaveLength(3);
    const error = errors[0];
    expect(isQueueFullError(error)).toBe(true);
    expect(isRunbookError(error)).toBe(true);
    expect(error).toBeInstanceOf(QueueFullError);
    expect(error).toMatchObject({
      code: 'QUEUE_FULL',
      httpStatus: 429,
      retryAfterMs: 1200,
      retryAfterSeconds: 2,
    });
    expect((error as Error).message).toMatch(/is full \(5 of 5 .*HTTP 429 and Retry-After: 2/);
    expect(rejected).toEqual([
      { length: 5, retryAfterMs: 1200 },
      { length: 5, retryAfterMs: 1200 },
      { length: 5, retryAfterMs: 1200 },
    ]);
    expect(await q.length()).toBe(5);
  });

  it('counts items in processing against the bound, so a redelivery can never overfill the queue', async () => {
    const q = queue<number>({ maxLength: 2 });
    await q.enqueue(1);
    await q.enqueue(2);
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const stop = new AbortController();
    const running = q.process(() => released, { concurrency: 2, signal: stop.signal });
    await expect.poll(async () => (await q.stats()).processing).toBe(2);
    expect(await q.length()).toBe(0);
    await expect(q.enqueue(3)).rejects.toThrow(QueueFullError);
    release();
    stop.abort();
    await running;
    expect((await q.enqueue(3)).length).toBe(1);
  });

  it('refuses payloads that are not JSON or too large', async () => {
    const q = queue({ maxPayloadBytes: 10 });
    await expect(q.enqueue(undefined)).rejects.toThrow(TypeError);
    await expect(q.enqueue('x'.repeat(20))).rejects.toThrow(/22 bytes of JSON; the queue takes at most 10/);
  });
});

describe('failures', () => {
  it('retries a failing item up to maxAttempts, then dead-letters it with the last error', async () => {
    const q = queue<{ job: string }>({ maxAttempts: 3 });
    const failed: { attempt: number; willRetry: boolean }[] = [];
    const dead: { id: string | null; reason: string }[] = [];
    q.onFailed((e) => failed.push({ attempt: e.attempt, willRetry: e.willRetry }));
    q.onDeadLettered((e) => dead.push({ id: e.id, reason: e.reason }));
    const { id } = await q.enqueue({ job: 'summarize' });
    await drain(
      q,
      async (_payload, delivery) => {
        throw new Error(`upstream 503 on attempt ${delivery.attempt}`);
      },
      () => dead.length === 1,
    );
    expect(failed).toEqual([
      { attempt: 1, willRetry: true },
      { attempt: 2, willRetry: true },
      { attempt: 3, willRetry: false },
    ]);
    expect(dead).toEqual([{ id, reason: 'upstream 503 on attempt 3' }]);
    const [letter] = await q.deadLetters();
    expect(letter).toMatchObject({
      id,
      attempts: 3,
      error: 'upstream 503 on attempt 3',
      payload: { job: 'summarize' },
    });
    expect(letter?.deadAt).toBeGreaterThanOrEqual(letter?.enqueuedAt ?? Number.POSITIVE_INFINITY);
    expect(await q.stats()).toMatchObject({ waiting: 0, processing: 0, deadLetters: 1 });
    expect(await redis.hlen(q.keys.payloads)).toBe(0);
  });

  it('dead-letters at once on a NonRetriableError', async () => {
    const q = queue<number>({ maxAttempts: 5 });
    await q.enqueue(1);
    let calls = 0;
    await drain(
      q,
      async () => {
        calls++;
        throw new NonRetriableError('bad request: no model given');
      },
      async () => (await q.stats()).deadLetters === 1,
    );
    expect(calls).toBe(1);
    expect((await q.deadLetters())[0]).toMatchObject({ attempts: 1, error: 'bad request: no model given' });
  });

  it('dead-letters ids that something else pushed onto the list', async () => {
    const q = queue();
    await redis.lpush(q.keys.waiting, 'pushed-by-hand');
    let calls = 0;
    await drain(
      q,
      async () => {
        calls++;
      },
      async () => (await q.stats()).deadLetters === 1,
    );
    expect(calls).toBe(0);
    expect((await q.deadLetters())[0]).toMatchObject({ id: 'pushed-by-hand', payload: null });
  });

  it('spends no unit of the drain rate on ids without a payload', async () => {
    // One delivery an hour: a unit spent on the ids pushed by hand would hold the real item back for an hour.
    const q = queue<string>({ rate: { limit: 1, period: '1h', burst: 1 } });
    await redis.lpush(q.keys.waiting, 'junk-1', 'junk-2', 'junk-3');
    const handled: string[] = [];
    const stop = new AbortController();
    const running = q.process(
      async (payload) => {
        handled.push(payload);
      },
      { signal: stop.signal },
    );
    await expect.poll(async () => (await q.stats()).deadLetters, { timeout: 5_000 }).toBe(3);
    await q.enqueue('real');
    await expect.poll(() => handled, { timeout: 5_000 }).toEqual(['real']);
    stop.abort();
    await running;
  });

  it('keeps a dead letter readable when an item with a zero-padded enqueue time fails', async () => {
    const q = queue<string>({ maxAttempts: 1 });
    await redis.hset(q.keys.payloads, 'padded', '007|"x"');
    await redis.lpush(q.keys.waiting, 'padded');
    await drain(
      q,
      async () => {
        throw new NonRetriableError('bad item');
      },
      async () => (await q.stats()).deadLetters === 1,
    );
    const [letter] = await q.deadLetters();
    expect(letter).toMatchObject({ id: 'padded', enqueuedAt: null, payload: '007|"x"' });
  });

  it('looks again at once after dead-lettering a full batch of ids, instead of sleeping pollInterval', async () => {
    // 150 ids pushed by hand ahead of a real item: one call dead-letters at most 100 of them.
    const q = queue<string>({ pollInterval: '60s' });
    await redis.lpush(q.keys.waiting, ...Array.from({ length: 150 }, (_, i) => `junk-${i}`));
    await q.enqueue('real');
    const handled: string[] = [];
    const stop = new AbortController();
    const running = q.process(
      async (payload) => {
        handled.push(payload);
      },
      { signal: stop.signal },
    );
    try {
      // Far less than the minute a consumer that took the first batch for an empty queue would sleep.
      await expect.poll(() => handled, { timeout: 10_000, interval: 20 }).toEqual(['real']);
      expect((await q.stats()).deadLetters).toBe(150);
    } finally {
      stop.abort();
      await running;
    }
  });

  it('dead-letters values something else stored, without wedging the queue, and keeps the letters readable', async () => {
    const q = queue<string>({ maxAttempts: 1, visibilityTimeout: '100ms' });
    const errors: unknown[] = [];
    q.onError((e) => errors.push(e));
    await redis.hset(
      q.keys.payloads,
      'no-bar',
      'just text',
      'not-json',
      '123|{broken',
      'bad-time',
      'soon|"x"',
      // A leading zero is not a JSON number: spliced into a dead letter it would make the letter unreadable.
      'zero-padded',
      '007|"x"',
    );
    await redis.lpush(q.keys.waiting, 'no-bar', 'not-json', 'bad-time', 'zero-padded');
    await q.enqueue('real');
    const handled: string[] = [];
    await drain(
      q,
      async (payload) => {
        handled.push(payload);
      },
      async () => handled.length === 1 && (await q.stats()).deadLetters === 4,
    );
    expect(handled).toEqual(['real']);
    expect(errors).toEqual([]);
    const letters = await q.deadLetters();
    expect(letters.map((l) => [l.id, l.payload, l.enqueuedAt]).sort()).toEqual([
      ['bad-time', 'soon|"x"', null],
      ['no-bar', 'just text', null],
      ['not-json', '123|{broken', null],
      ['zero-padded', '007|"x"', null],
    ]);
    expect(await q.stats()).toMatchObject({ waiting: 0, processing: 0 });
  });
});

describe('Redis errors', () => {
  it('are reported as one process warning per outage while nobody listens, and to onError listeners', async () => {
    // A client that fails at once while disconnected, instead of queueing commands.
    const client = new Redis(REDIS_URL, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      lazyConnect: true,
    });
    await client.connect();
    const q = createRequestQueue<number>(client, { key: `${prefix}:errors`, pollInterval: '20ms' });
    const warnings: Error[] = [];
    const onWarning = (w: Error) => {
      if ((w as Error & { code?: string }).code === 'RUNBOOK_QUEUE_REDIS_ERROR') warnings.push(w);
    };
    process.on('warning', onWarning);
    const stop = new AbortController();
    const running = q.process(async () => {}, { signal: stop.signal });
    try {
      const outage = async () => {
        client.disconnect();
        // Many failed polls (every 20 ms), one warning.
        await new Promise((resolve) => setTimeout(resolve, 300));
        await client.connect();
        await q.length();
      };
      await outage();
      await expect.poll(() => warnings.length).toBe(1);
      expect(warnings[0]?.message).toMatch(
        new RegExp(`^Request queue ${prefix}:errors: a Redis call failed \\(`),
      );
      // Back, then lost again: a new outage, a new warning.
      await new Promise((resolve) => setTimeout(resolve, 100));
      await outage();
      await expect.poll(() => warnings.length).toBe(2);

      // With a listener, errors go to it and not to warnings.
      const errors: unknown[] = [];
      const listening = q.onError((e) => errors.push(e));
      await new Promise((resolve) => setTimeout(resolve, 100));
      await outage();
      expect(errors.length).toBeGreaterThan(1);
      expect(warnings).toHaveLength(2);
      listening.dispose();
    } finally {
      process.off('warning', onWarning);
      stop.abort();
      await running;
      client.disconnect();
    }
  });

  it('warns once per consumer outage, even while enqueues succeed', async () => {
    const q = queue<number>({ pollInterval: '20ms' });
    // The consumers fail on every poll (the drain rate's key holds a hash), while enqueue, which never reads
    // that key, keeps working.
    await redis.hset(q.keys.rate, 'written', 'by hand');
    await q.enqueue(0);
    const warnings: Error[] = [];
    const onWarning = (w: Error) => {
      if (w.message.startsWith(`Request queue ${q.keys.waiting}:`)) warnings.push(w);
    };
    process.on('warning', onWarning);
    const stop = new AbortController();
    const running = q.process(async () => {}, { signal: stop.signal });
    try {
      await expect.poll(() => warnings.length).toBe(1);
      for (let i = 1; i <= 10; i++) {
        await q.enqueue(i);
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
      expect(warnings).toHaveLength(1);
      expect(warnings[0]?.message).toMatch(/WRONGTYPE/);
    } finally {
      process.off('warning', onWarning);
      stop.abort();
      await running;
    }
  });

  it("never hands a listener ioredis' command arguments: a failed login's hold the password", async () => {
    const password = 'queue-Wrong-Password-31';
    const locked = await startTestRedis({ args: ['--requirepass', 'the-right-one'] });
    const client = new Redis({
      host: '127.0.0.1',
      port: locked.port,
      username: 'ops',
      password,
      maxRetriesPerRequest: 0,
      retryStrategy: () => 50,
    });
    client.on('error', () => {});
    const q = createRequestQueue<number>(client, { key: `${prefix}:login`, pollInterval: '20ms' });
    const errors: unknown[] = [];
    q.onError((e) => errors.push(e));
    const stop = new AbortController();
    const running = q.process(async () => {}, { signal: stop.signal });
    try {
      await expect.poll(() => errors.length, { timeout: 10_000 }).toBeGreaterThan(0);
      // What console.error and loggers that print causes show.
      const printed = inspect(errors, { depth: Number.POSITIVE_INFINITY, showHidden: true });
      expect(printed).toMatch(/WRONGPASS/);
      expect(printed).not.toContain(password);
    } finally {
      stop.abort();
      await running;
      client.disconnect();
      await locked.stop();
    }
  });
});

describe('leases', () => {
  it("keeps a slow handler's item by extending its deadline: delivered once, acknowledged", async () => {
    const q = queue<number>({ visibilityTimeout: '300ms' });
    const completed: { attempt: number; acknowledged: boolean }[] = [];
    q.onCompleted((e) => completed.push({ attempt: e.attempt, acknowledged: e.acknowledged }));
    await q.enqueue(1);
    let deliveries = 0;
    await drain(
      q,
      async (_p, delivery) => {
        deliveries++;
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        expect(delivery.signal.aborted).toBe(false);
      },
      () => completed.length === 1,
      2,
    );
    expect(deliveries).toBe(1);
    expect(completed).toEqual([{ attempt: 1, acknowledged: true }]);
  });

  it('tells a handler that lost its item, and does not count its late acknowledgement', async () => {
    const q = queue<number>({ visibilityTimeout: '300ms' });
    await q.enqueue(1);
    const completed: { attempt: number; acknowledged: boolean }[] = [];
    q.onCompleted((e) => completed.push({ attempt: e.attempt, acknowledged: e.acknowledged }));
    const lost: number[] = [];
    await drain(
      q,
      async (_p, delivery) => {
        if (delivery.attempt === 1) {
          // As a sweep does when this process stalls past the deadline: the item goes back to the queue.
          await redis.multi().zrem(q.keys.processing, delivery.id).rpush(q.keys.waiting, delivery.id).exec();
          await new Promise<void>((resolve) => delivery.signal.addEventListener('abort', () => resolve()));
          lost.push(delivery.attempt);
        }
      },
      () => completed.length === 2,
      2,
    );
    expect(lost).toEqual([1]);
    expect(completed.sort((a, b) => a.attempt - b.attempt)).toEqual([
      { attempt: 1, acknowledged: false },
      { attempt: 2, acknowledged: true },
    ]);
  });
});

describe('options', () => {
  const message = (options: unknown) => {
    try {
      createRequestQueue(redis, options as RequestQueueOptionsInput);
    } catch (e) {
      expect(isInputValidationError(e)).toBe(true);
      return (e as Error).message;
    }
    throw new Error('expected the options to be rejected');
  };

  it('names each bad field', async () => {
    expect(message({ maxLength: 0 })).toMatch(/maxLength:/);
    expect(message({ key: '{tag}:queue' })).toMatch(/key:.*braces/);
    expect(message({ rate: { limit: 0, period: '1m' } })).toMatch(/rate\.limit:/);
    expect(message({ rate: { limit: 50, period: 'a minute' } })).toMatch(/rate\.period:/);
    expect(message({ rate: { limit: 50, period: '2d' } })).toMatch(
      /rate\.period: expected a period from 1ms to 1d/,
    );
    expect(message({ rate: { limit: 2_000, period: 1 } })).toMatch(
      /rate\.limit: expected at most 1000 per 1ms/,
    );
    expect(message({ visibilityTimeout: '10ms' })).toMatch(/visibilityTimeout:.*from 100ms/);
    expect(message({ maxAttempts: 0 })).toMatch(/maxAttempts:/);
    const q = queue();
    await expect(q.process(async () => {}, { concurrency: 0 })).rejects.toThrow(/concurrency:/);
  });
});
