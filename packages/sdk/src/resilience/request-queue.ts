import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { durationBetween, toMillis } from '../core/duration';
import { isNonRetriableError, NonRetriableError } from '../core/errors';
import { type Disposable, TypedEvent } from '../core/events';
import { parseOptions } from '../core/parse-options';
import { sleep } from '../core/sleep';
import { cleanRedisError } from '../redis/connection';
import { LuaScript, redisMillis } from '../redis/lua-script';
import { ACK_SCRIPT, DEQUEUE_SCRIPT, ENQUEUE_SCRIPT, EXTEND_SCRIPT, FAIL_SCRIPT } from './lua/request-queue';
import { RatePeriod, rateIssue } from './rate-limiter';
import { QueueFullError } from './request-queue-errors';

const Positive = (min: number, max: number) =>
  durationBetween(min, max, `expected a duration from ${min}ms to ${max / 1000}s`);

/** Options of {@link createRequestQueue}. */
export const RequestQueueOptions = z.object({
  /**
   * The Redis list of waiting items, so that `redis-cli LLEN <key>` counts them (the manual's Runbook 7). The
   * queue's other keys are `{<key>}:processing`, `:payloads`, `:attempts`, `:dead` and `:rate`, in its cluster slot.
   * @default "agent:requests:queue"
   */
  key: z
    .string()
    .regex(/^[^\s{}]{1,200}$/, 'expected 1 to 200 characters without whitespace or braces')
    .default('agent:requests:queue'),
  /** Most items held, waiting or in processing; `enqueue` rejects beyond it (the manual: 1000). @default 1000 */
  maxLength: z.number().int().min(1).max(10_000_000).default(1000),
  /** The global drain rate shared by every consumer of every replica (the manual: 50/min). @default { limit: 50, period: "1m", burst: 1 } */
  rate: z
    .object({
      /** Deliveries per period. */
      limit: z.number().int().min(1).max(1_000_000),
      /** The period, e.g. `"1m"`: from 1ms to 1d. */
      period: RatePeriod,
      /** Deliveries allowed at once after a quiet spell. @default 1 (evenly spaced) */
      burst: z.number().int().min(1).max(1_000_000).default(1),
    })
    .superRefine((rate, ctx) => {
      // zod runs this even when the period failed its own bounds: only a valid one is used.
      if (!RatePeriod.safeParse(rate.period).success) return;
      const issue = rateIssue(rate.limit, toMillis(rate.period));
      if (issue) ctx.addIssue({ code: 'custom', path: ['limit'], message: issue });
    })
    .default({ limit: 50, period: '1m', burst: 1 }),
  /** A delivery not acknowledged this long after it began (extended while the handler runs) is redelivered. @default "30s" */
  visibilityTimeout: Positive(100, 86_400_000).default('30s'),
  /** Deliveries per item before it goes to the dead letters. @default 3 */
  maxAttempts: z.number().int().min(1).max(100).default(3),
  /** After a failed delivery, the item is invisible this long before it is retried. @default "1s" */
  retryDelay: Positive(0, 86_400_000).default('1s'),
  /** How often an idle consumer looks for new items. @default "250ms" */
  pollInterval: Positive(10, 60_000).default('250ms'),
  /** Dead letters kept (the oldest are dropped beyond it). @default 10000 */
  deadLetterLimit: z.number().int().min(1).max(1_000_000).default(10_000),
  /** Largest payload accepted, as JSON bytes. @default 1000000 */
  maxPayloadBytes: z
    .number()
    .int()
    .min(1)
    .max(512 * 1024 * 1024)
    .default(1_000_000),
});
/** Parsed {@link RequestQueueOptions}. */
export type RequestQueueOptions = z.output<typeof RequestQueueOptions>;
/** {@link RequestQueueOptions} as written by users. */
export type RequestQueueOptionsInput = z.input<typeof RequestQueueOptions>;

/** Options of {@link RequestQueue.process}. */
export const ProcessOptions = z.object({
  /** Handlers running at once in this process. @default 1 */
  concurrency: z.number().int().min(1).max(1000).default(1),
  /** Stops taking new items when aborted; `process()` resolves once the running handlers have finished. */
  signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, 'expected an AbortSignal').optional(),
});
/** {@link ProcessOptions} as written by users. */
export type ProcessOptionsInput = z.input<typeof ProcessOptions>;

/** What a handler gets with each item. */
export interface Delivery {
  /** The item's id (from `enqueue`). */
  id: string;
  /** 1 for the first delivery. */
  attempt: number;
  /** When it was enqueued (Redis clock, ms since the epoch). */
  enqueuedAt: number;
  /** When this delivery began (Redis clock, ms since the epoch, with a fraction). */
  deliveredAt: number;
  /** Aborted when this consumer no longer holds the item (its deadline passed and it may be redelivered). */
  signal: AbortSignal;
}

/** An item that used up its attempts (or failed with a `NonRetriableError`), as kept in the dead letters. */
export interface DeadLetter<T> {
  id: string;
  attempts: number;
  /** The last error's message. */
  error: string;
  enqueuedAt: number | null;
  deadAt: number;
  payload: T;
}

/** Counts of the queue in Redis, and of this process's events since the queue object was created. */
export interface RequestQueueStats {
  /** Items waiting (`LLEN key`). */
  waiting: number;
  /** Items delivered and not yet acknowledged, or waiting out a retry delay. */
  processing: number;
  /** Items in the dead letters. */
  deadLetters: number;
  /** The bound on waiting + processing. */
  maxLength: number;
  /** The global drain rate. */
  rate: { limit: number; periodMs: number; burst: number };
  /** This process: accepted, rejected, delivered, completed, failed (and retried), dead-lettered, redelivered. */
  local: Record<
    'enqueued' | 'rejected' | 'delivered' | 'completed' | 'failed' | 'deadLettered' | 'redelivered',
    number
  >;
}

/** A bounded queue in Redis drained at a global rate by consumers on any number of replicas. */
export interface RequestQueue<T> {
  /** The Redis keys it uses. */
  readonly keys: Readonly<
    Record<'waiting' | 'processing' | 'payloads' | 'attempts' | 'dead' | 'rate', string>
  >;
  /** Adds an item, or throws {@link QueueFullError} (HTTP 429) when the queue holds `maxLength` items. */
  enqueue(payload: T): Promise<{ id: string; length: number }>;
  /**
   * Delivers items to `handler` until `signal` aborts, at most `concurrency` at once here and at the global
   * rate across all consumers. A handler that returns acknowledges the item; one that throws has it retried
   * after `retryDelay` (at most `maxAttempts` deliveries in all, a `NonRetriableError` none more), then
   * dead-lettered. Delivery is at least once: an item whose consumer dies is redelivered after
   * `visibilityTimeout`, so handlers must tolerate a repeat.
   */
  process(
    handler: (payload: T, delivery: Delivery) => Promise<void>,
    options?: ProcessOptionsInput,
  ): Promise<void>;
  /** Items waiting (`LLEN`). */
  length(): Promise<number>;
  stats(): Promise<RequestQueueStats>;
  /** The newest dead letters first. */
  deadLetters(count?: number): Promise<DeadLetter<T>[]>;
  onEnqueued(listener: (e: { id: string; length: number }) => void): Disposable;
  onRejected(listener: (e: { length: number; retryAfterMs: number }) => void): Disposable;
  onDelivered(listener: (e: { id: string; attempt: number; waitedMs: number }) => void): Disposable;
  /** `acknowledged: false` when a later delivery of the item existed (this one had lost it). */
  onCompleted(
    listener: (e: { id: string; attempt: number; durationMs: number; acknowledged: boolean }) => void,
  ): Disposable;
  onFailed(
    listener: (e: { id: string; attempt: number; error: unknown; willRetry: boolean }) => void,
  ): Disposable;
  onDeadLettered(
    listener: (e: { id: string | null; attempt: number | null; reason: string }) => void,
  ): Disposable;
  /** Items of crashed or stalled consumers put back, `count` per sweep. */
  onRedelivered(listener: (e: { count: number }) => void): Disposable;
  /**
   * Redis errors of the consumer loop (it keeps going, after `pollInterval`), as copies without the failed
   * command's arguments and with the client's password scrubbed. While no listener is attached, the first error
   * after a successful consumer call is reported as a process warning (`RUNBOOK_QUEUE_REDIS_ERROR`), so that an
   * outage is never silent.
   */
  onError(listener: (error: unknown) => void): Disposable;
}

const scripts = {
  enqueue: new LuaScript(ENQUEUE_SCRIPT),
  dequeue: new LuaScript(DEQUEUE_SCRIPT),
  ack: new LuaScript(ACK_SCRIPT),
  fail: new LuaScript(FAIL_SCRIPT),
  extend: new LuaScript(EXTEND_SCRIPT),
};
const REAP_PER_CALL = 100;

/**
 * A bounded request queue in Redis (the manual's Runbook 7: "Enable request queuing with Redis (max queue size:
 * 1000)", drained at 50 requests a minute). Every change is one Lua script, so the bound holds under any number
 * of concurrent enqueuers, and the drain rate (GCRA, by Redis' clock) holds across every consumer of every
 * replica.
 */
export function createRequestQueue<T = unknown>(
  redis: Redis,
  options: RequestQueueOptionsInput = {},
): RequestQueue<T> {
  const o = parseOptions('request-queue', RequestQueueOptions, options);
  const tag = `{${o.key}}`;
  const keys = {
    waiting: o.key,
    processing: `${tag}:processing`,
    payloads: `${tag}:payloads`,
    attempts: `${tag}:attempts`,
    dead: `${tag}:dead`,
    rate: `${tag}:rate`,
  };
  const keyList = [keys.waiting, keys.processing, keys.payloads, keys.attempts, keys.dead, keys.rate];
  const periodMs = toMillis(o.rate.period);
  const intervalUs = (periodMs * 1000) / o.rate.limit;
  const intervalMs = Math.ceil(intervalUs / 1000);
  const visibilityMs = toMillis(o.visibilityTimeout);
  const pollMs = toMillis(o.pollInterval);
  const events = {
    enqueued: new TypedEvent<{ id: string; length: number }>(),
    rejected: new TypedEvent<{ length: number; retryAfterMs: number }>(),
    delivered: new TypedEvent<{ id: string; attempt: number; waitedMs: number }>(),
    completed: new TypedEvent<{ id: string; attempt: number; durationMs: number; acknowledged: boolean }>(),
    failed: new TypedEvent<{ id: string; attempt: number; error: unknown; willRetry: boolean }>(),
    deadLettered: new TypedEvent<{ id: string | null; attempt: number | null; reason: string }>(),
    redelivered: new TypedEvent<{ count: number }>(),
    error: new TypedEvent<unknown>(),
  };
  const local = {
    enqueued: 0,
    rejected: 0,
    delivered: 0,
    completed: 0,
    failed: 0,
    deadLettered: 0,
    redelivered: 0,
  };
  let errorListeners = 0;
  // Whether the current run of consumer errors was reported as a process warning. Only a successful consumer
  // call ends the run: an enqueue that succeeds says nothing about the consumers' outage.
  let warned = false;
  const run = (script: LuaScript, args: (string | number)[]) => script.run(redis, keyList, args);
  const runConsumer = async (script: LuaScript, args: (string | number)[]) => {
    const reply = await run(script, args);
    warned = false;
    return reply;
  };
  /** Reports a Redis error of the consumer side: to `onError` listeners, or else once per outage as a warning. */
  const reportError = (raw: unknown) => {
    // ioredis attaches the failed command with its arguments: a failed login's holds the password.
    const e = cleanRedisError(raw, redis);
    events.error.emit(e);
    if (errorListeners > 0 || warned) return;
    warned = true;
    const message = e.message.slice(0, 300);
    process.emitWarning(
      `Request queue ${o.key}: a Redis call failed (${message}). Consumers keep trying every ${pollMs}ms; this is reported once until a consumer call succeeds again. Attach onError() to handle these errors yourself.`,
      { code: 'RUNBOOK_QUEUE_REDIS_ERROR' },
    );
  };

  /** Runs one delivery to its end: lease kept alive while the handler runs, then acknowledged or failed. */
  async function deliver(
    handler: (payload: T, delivery: Delivery) => Promise<void>,
    id: string,
    attempt: number,
    stored: string,
    nowUs: number,
  ): Promise<void> {
    const started = performance.now();
    const lease = new AbortController();
    const keepAlive = setInterval(
      () => {
        runConsumer(scripts.extend, [id, attempt, visibilityMs * 1000]).then(
          (held) => {
            if (held !== 1)
              lease.abort(new Error(`Lost item ${id}: its deadline passed and it may be redelivered.`));
          },
          (e: unknown) => reportError(e),
        );
      },
      Math.max(10, Math.floor(visibilityMs / 3)),
    );
    keepAlive.unref();
    const bar = stored.indexOf('|');
    const delivery: Delivery = {
      id,
      attempt,
      enqueuedAt: Number(stored.slice(0, bar)),
      deliveredAt: redisMillis(nowUs),
      signal: lease.signal,
    };
    let failure: { error: unknown } | null = null;
    try {
      let payload: T;
      try {
        payload = JSON.parse(stored.slice(bar + 1)) as T;
      } catch (e) {
        throw new NonRetriableError(`The stored payload of item ${id} is not JSON.`, { cause: e });
      }
      local.delivered++;
      events.delivered.emit({
        id,
        attempt,
        waitedMs: Math.max(0, delivery.deliveredAt - delivery.enqueuedAt),
      });
      await handler(payload, delivery);
    } catch (error) {
      failure = { error };
    } finally {
      clearInterval(keepAlive);
    }
    // A Redis error here leaves the item in processing: it is redelivered after its deadline.
    try {
      if (!failure) {
        const acknowledged = (await runConsumer(scripts.ack, [id, attempt])) === 1;
        local.completed++;
        events.completed.emit({ id, attempt, durationMs: performance.now() - started, acknowledged });
        return;
      }
      const { error } = failure;
      const message = error instanceof Error ? error.message : String(error);
      const outcome = await runConsumer(scripts.fail, [
        id,
        attempt,
        o.maxAttempts,
        toMillis(o.retryDelay) * 1000,
        message.slice(0, 2000),
        o.deadLetterLimit,
        isNonRetriableError(error) ? '1' : '0',
      ]);
      local.failed++;
      events.failed.emit({ id, attempt, error, willRetry: outcome === 1 });
      if (outcome === 2) {
        local.deadLettered++;
        events.deadLettered.emit({ id, attempt, reason: message });
      }
    } catch (e) {
      reportError(e);
    }
  }

  return {
    keys,

    async enqueue(payload) {
      const json = JSON.stringify(payload);
      if (json === undefined) throw new TypeError('enqueue() needs a JSON-serializable payload.');
      if (Buffer.byteLength(json) > o.maxPayloadBytes) {
        throw new RangeError(
          `The payload is ${Buffer.byteLength(json)} bytes of JSON; the queue takes at most ${o.maxPayloadBytes}.`,
        );
      }
      const id = randomUUID();
      const [ok, length] = (await run(scripts.enqueue, [o.maxLength, id, json])) as [number, number];
      if (ok !== 1) {
        local.rejected++;
        events.rejected.emit({ length, retryAfterMs: intervalMs });
        throw new QueueFullError(o.key, length, o.maxLength, intervalMs);
      }
      local.enqueued++;
      events.enqueued.emit({ id, length });
      return { id, length };
    },

    async process(handler, processOptions = {}) {
      const { concurrency, signal } = parseOptions('request-queue process', ProcessOptions, processOptions);
      const stop = signal ?? new AbortController().signal;
      const running = new Set<Promise<void>>();
      const stopped = new Promise<void>((resolve) => {
        if (stop.aborted) resolve();
        else stop.addEventListener('abort', () => resolve(), { once: true });
      });
      const pause = (ms: number) => sleep(ms, stop).catch(() => {});
      while (!stop.aborted) {
        if (running.size >= concurrency) {
          await Promise.race([...running, stopped]);
          continue;
        }
        let reply: unknown[];
        try {
          reply = (await runConsumer(scripts.dequeue, [
            visibilityMs * 1000,
            o.maxAttempts,
            String(intervalUs),
            String(o.rate.burst * intervalUs),
            REAP_PER_CALL,
            o.deadLetterLimit,
          ])) as unknown[];
        } catch (e) {
          reportError(e);
          await pause(pollMs);
          continue;
        }
        const [status, requeued, buried] = reply as [number, number, number];
        if (requeued > 0) {
          local.redelivered += requeued;
          events.redelivered.emit({ count: requeued });
        }
        for (let i = 0; i < buried; i++) {
          local.deadLettered++;
          events.deadLettered.emit({
            id: null,
            attempt: null,
            // The sweep buries both items whose last attempt timed out and ids without a readable payload;
            // each dead letter records which (deadLetters()).
            reason:
              'dead-lettered by the sweep: not acknowledged on its last attempt, or no readable payload',
          });
        }
        // A batch limit was reached with nothing delivered yet, and more may be waiting: look again at once.
        if (status === 3) continue;
        if (status === 0) await pause(pollMs);
        else if (status === 1) {
          // Consumers that were told the same wait do not all come back at the same instant.
          const waitMs = Math.ceil(Number(reply[3]) / 1000);
          await pause(waitMs + Math.random() * Math.min(50, waitMs / 10));
        } else {
          const [, , , id, attempt, stored, nowUs] = reply as [
            number,
            number,
            number,
            string,
            number,
            string,
            number,
          ];
          const task = deliver(handler, id, attempt, stored, nowUs).finally(() => running.delete(task));
          running.add(task);
        }
      }
      await Promise.allSettled([...running]);
    },

    length: () => redis.llen(keys.waiting),

    async stats() {
      const [waiting, processing, dead] = await Promise.all([
        redis.llen(keys.waiting),
        redis.zcard(keys.processing),
        redis.llen(keys.dead),
      ]);
      return {
        waiting,
        processing,
        deadLetters: dead,
        maxLength: o.maxLength,
        rate: { limit: o.rate.limit, periodMs, burst: o.rate.burst },
        local: { ...local },
      };
    },

    async deadLetters(count = 100) {
      const entries = await redis.lrange(keys.dead, 0, Math.max(0, count - 1));
      return entries.map((entry) => JSON.parse(entry) as DeadLetter<T>);
    },

    onEnqueued: (l) => events.enqueued.on(l),
    onRejected: (l) => events.rejected.on(l),
    onDelivered: (l) => events.delivered.on(l),
    onCompleted: (l) => events.completed.on(l),
    onFailed: (l) => events.failed.on(l),
    onDeadLettered: (l) => events.deadLettered.on(l),
    onRedelivered: (l) => events.redelivered.on(l),
    onError(listener) {
      errorListeners++;
      const subscription = events.error.on(listener);
      let disposed = false;
      const dispose = () => {
        if (disposed) return;
        disposed = true;
        errorListeners--;
        subscription.dispose();
      };
      return { dispose, [Symbol.dispose]: dispose };
    },
  };
}
