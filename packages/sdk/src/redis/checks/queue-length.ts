import { z } from 'zod';
import { NonRetriableError } from '../../core/errors';
import { type FindingStatus, finding, worstStatus } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import type { RedisInstance } from '../connection';
import { plural } from '../wording';

/** Options of {@link queueLength}. */
export const QueueLengthOptions = z
  .object({
    /** The queue's key, or several (each is judged; the worst counts). @default "agent:requests:queue" (the manual's) */
    key: z
      .union([z.string().min(1), z.array(z.string().min(1)).min(1).max(100)])
      .default('agent:requests:queue')
      .transform((k) => (Array.isArray(k) ? k : [k])),
    /** `warn` at or above this many entries. @default 800 */
    warnAt: z.number().int().min(0).default(800),
    /** `fail` at or above this many entries: the manual rejects new requests beyond 1000. @default 1000 */
    failAt: z.number().int().min(0).default(1000),
  })
  .refine((o) => o.warnAt <= o.failAt, { message: 'warnAt must not exceed failAt', path: ['warnAt'] });
export type QueueLengthOptions = z.output<typeof QueueLengthOptions>;
export type QueueLengthOptionsInput = z.input<typeof QueueLengthOptions>;

/** One queue as {@link queueLength} read it. */
export type QueueInfo = {
  key: string;
  /** `list`, `stream`, `zset`, `set`, or `none` when the key does not exist (nothing waiting). */
  type: 'list' | 'stream' | 'zset' | 'set' | 'none';
  /** Entries of the key itself: `LLEN`, `XLEN`, `ZCARD` or `SCARD`; 0 for `none`. */
  waiting: number;
  /**
   * Items the SDK's request queue has delivered and not yet acknowledged (or holds for a retry): `ZCARD` of
   * `{<key>}:processing`. `null` when there is no such sorted set (another kind of queue).
   */
  processing: number | null;
  /** What is judged: `waiting` plus `processing`, as the request queue's bound counts them. */
  length: number;
  status: FindingStatus;
};

/** What {@link queueLength} found. */
export type QueueLengthData = { queues: QueueInfo[]; warnAt: number; failAt: number };

/**
 * What {@link queueLength} read: each queue's type and counts, before judging. Replaying it with other
 * `warnAt` / `failAt` judges the same lengths again.
 */
export type QueueLengthObservation = {
  queues: Pick<QueueInfo, 'key' | 'type' | 'waiting' | 'processing'>[];
};

const KIND = 'redis.queue-length';

/** The length command of each type a queue may have. */
const LENGTH_OF = { list: 'LLEN', stream: 'XLEN', zset: 'ZCARD', set: 'SCARD' } as const;

/**
 * The sorted set where the SDK's request queue (`createRequestQueue` of `@aiwebtest/runbooks/resilience`)
 * keeps the items it delivered and not yet acknowledged, next to the list `key` of waiting ones. Its bound
 * (`maxLength`, the manual's 1000) counts both, so this check does too.
 */
function processingKey(key: string): string {
  return `{${key}}:processing`;
}

/**
 * The manual's queue check (`redis-cli LLEN agent:requests:queue`, Runbook 7), for whatever type the queue
 * is: `TYPE`, then `LLEN` (list), `XLEN` (stream), `ZCARD` (sorted set, e.g. a delayed queue) or `SCARD`.
 * A key that does not exist has nothing waiting.
 *
 * The SDK's request queue keeps the items being processed (delivered, not yet acknowledged, or waiting out a
 * retry delay) in a sorted set `{<key>}:processing` beside its list, and rejects new items when the two hold
 * `maxLength` together. For a list (or a missing key) the check adds that set's `ZCARD` when it exists, read
 * with `LLEN` in one `MULTI`, so the check and the queue's bound count the same items.
 *
 * - `fail` at or above `failAt` entries (1000: the manual rejects new requests beyond it).
 * - `warn` at or above `warnAt` (800).
 * - `ok` below.
 *
 * Throws a `NonRetriableError` `REDIS_WRONG_TYPE` for a key of another type (a string, a hash): that is not a
 * queue, and the runbook names the wrong key.
 *
 * Replayable: `read` counts ({@link QueueLengthObservation}), `judge` applies `warnAt` and `failAt`.
 */
export function queueLength(
  redis: RedisInstance,
  options: QueueLengthOptionsInput = {},
): ReplayableCheck<QueueLengthData, QueueLengthObservation> {
  const p = parseOptions(KIND, QueueLengthOptions, options);
  return defineCheck({
    kind: KIND,
    description: `Length of ${p.key.join(', ')} on ${redis.display} (warn at ${p.warnAt}, fail at ${p.failAt})`,
    async read(ctx): Promise<QueueLengthObservation> {
      const queues: QueueLengthObservation['queues'] = [];
      for (const key of p.key) queues.push({ key, ...(await lengthOf(redis, key, ctx.signal)) });
      return { queues };
    },
    judge(seen) {
      const queues: QueueInfo[] = seen.queues.map(({ key, type, waiting, processing }) => {
        const length = waiting + (processing ?? 0);
        const status: FindingStatus = length >= p.failAt ? 'fail' : length >= p.warnAt ? 'warn' : 'ok';
        return { key, type, waiting, processing, length, status };
      });
      const status = worstStatus(queues.map((q) => q.status));
      const parts = queues.map((q) => {
        const limit =
          q.status === 'fail'
            ? ` (fail at ${p.failAt})`
            : q.status === 'warn'
              ? ` (warn at ${p.warnAt})`
              : '';
        if (q.processing === null) {
          return q.type === 'none'
            ? `${q.key}: empty (no such key)`
            : `${q.key}: ${plural(q.length, 'entry', 'entries')} (${q.type})${limit}`;
        }
        return `${q.key}: ${plural(q.length, 'entry', 'entries')} (${q.waiting.toLocaleString('en-US')} waiting, ${q.processing.toLocaleString('en-US')} processing)${limit}`;
      });
      return finding(
        status,
        `Queue length on ${redis.display}: ${parts.join('; ')}`,
        { queues, warnAt: p.warnAt, failAt: p.failAt },
        [
          {
            kind: 'table',
            title: 'Queues',
            columns: ['KEY', 'TYPE', 'WAITING', 'PROCESSING', 'LENGTH', 'STATUS'],
            rows: queues.map((q) => [q.key, q.type, q.waiting, q.processing ?? '-', q.length, q.status]),
          },
        ],
      );
    },
  });
}

async function lengthOf(
  redis: RedisInstance,
  key: string,
  signal: AbortSignal,
): Promise<{ type: QueueInfo['type']; waiting: number; processing: number | null }> {
  const processing = processingKey(key);
  // TYPE and the lengths in one transaction would need a script; instead, a key whose type changed between
  // the two round trips (deleted and re-created) is read once more.
  for (let attempt = 0; ; attempt++) {
    const [type, processingType] = await redis.run(
      'TYPE',
      async (c) => {
        const replies = (await c.multi().type(key).type(processing).exec()) ?? [];
        return replies.map(([error, reply]) => {
          if (error) throw error;
          return String(reply);
        });
      },
      signal,
    );
    if (type !== 'none' && !Object.hasOwn(LENGTH_OF, type ?? '')) {
      throw new NonRetriableError(
        `Key ${JSON.stringify(key)} on ${redis.display} is a ${type}, not a queue (list, stream, sorted set or set). Check the key name.`,
        { code: 'REDIS_WRONG_TYPE', details: { key, type } },
      );
    }
    // Only a list (or nothing waiting) is the request queue's layout; its processing set is a sorted set.
    const withProcessing = (type === 'list' || type === 'none') && processingType === 'zset';
    if (type === 'none' && !withProcessing) return { type, waiting: 0, processing: null };
    const command = type === 'none' ? null : LENGTH_OF[type as keyof typeof LENGTH_OF];
    // One MULTI: an item the queue moves from waiting to processing (one script) is counted once.
    const replies = await redis.run(
      [command, withProcessing ? 'ZCARD' : null].filter(Boolean).join(' + '),
      async (c) => {
        const transaction = c.multi();
        if (command) transaction.call(command, key);
        if (withProcessing) transaction.zcard(processing);
        return (await transaction.exec()) ?? [];
      },
      signal,
    );
    const wrongType = replies.find(([error]) => error && /^WRONGTYPE/.test(error.message));
    if (wrongType && attempt === 0) continue;
    const failed = replies.find(([error]) => error);
    if (failed?.[0]) throw redis.toError(failed[0], command ?? 'ZCARD');
    const counts = replies.map(([, reply]) => Number(reply));
    return {
      type: type as QueueInfo['type'],
      waiting: command ? (counts[0] ?? 0) : 0,
      processing: withProcessing ? (counts[command ? 1 : 0] ?? 0) : null,
    };
  }
}
