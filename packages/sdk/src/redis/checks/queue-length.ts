import { z } from 'zod';
import { NonRetriableError } from '../../core/errors';
import { type FindingStatus, finding, worstStatus } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { type Check, defineCheck } from '../../core/step';
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
  /** `list`, `stream`, `zset`, `set`, or `none` when the key does not exist (an empty queue). */
  type: 'list' | 'stream' | 'zset' | 'set' | 'none';
  /** `LLEN`, `XLEN`, `ZCARD` or `SCARD`; 0 for `none`. */
  length: number;
  status: FindingStatus;
};

/** What {@link queueLength} found. */
export type QueueLengthData = { queues: QueueInfo[]; warnAt: number; failAt: number };

const KIND = 'redis.queue-length';

/** The length command of each type a queue may have. */
const LENGTH_OF = { list: 'LLEN', stream: 'XLEN', zset: 'ZCARD', set: 'SCARD' } as const;

/**
 * The manual's queue check (`redis-cli LLEN agent:requests:queue`, Runbook 7), for whatever type the queue
 * is: `TYPE`, then `LLEN` (list), `XLEN` (stream), `ZCARD` (sorted set, e.g. a delayed queue) or `SCARD`.
 * A key that does not exist is an empty queue.
 *
 * - `fail` at or above `failAt` entries (1000: the manual rejects new requests beyond it).
 * - `warn` at or above `warnAt` (800).
 * - `ok` below.
 *
 * Throws a `NonRetriableError` `REDIS_WRONG_TYPE` for a key of another type (a string, a hash): that is not a
 * queue, and the runbook names the wrong key.
 */
export function queueLength(
  redis: RedisInstance,
  options: QueueLengthOptionsInput = {},
): Check<QueueLengthData> {
  const p = parseOptions(KIND, QueueLengthOptions, options);
  return defineCheck({
    kind: KIND,
    description: `Length of ${p.key.join(', ')} on ${redis.display} (warn at ${p.warnAt}, fail at ${p.failAt})`,
    async run(ctx) {
      const queues: QueueInfo[] = [];
      for (const key of p.key) {
        const { type, length } = await lengthOf(redis, key, ctx.signal);
        const status: FindingStatus = length >= p.failAt ? 'fail' : length >= p.warnAt ? 'warn' : 'ok';
        queues.push({ key, type, length, status });
      }
      const status = worstStatus(queues.map((q) => q.status));
      const parts = queues.map((q) => {
        const limit =
          q.status === 'fail'
            ? ` (fail at ${p.failAt})`
            : q.status === 'warn'
              ? ` (warn at ${p.warnAt})`
              : '';
        return q.type === 'none'
          ? `${q.key}: empty (no such key)`
          : `${q.key}: ${plural(q.length, 'entry', 'entries')} (${q.type})${limit}`;
      });
      return finding(
        status,
        `Queue length on ${redis.display}: ${parts.join('; ')}`,
        { queues, warnAt: p.warnAt, failAt: p.failAt },
        [
          {
            kind: 'table',
            title: 'Queues',
            columns: ['KEY', 'TYPE', 'LENGTH', 'STATUS'],
            rows: queues.map((q) => [q.key, q.type, q.length, q.status]),
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
): Promise<{ type: QueueInfo['type']; length: number }> {
  // TYPE and the length in one transaction would need a script; instead, a key whose type changed between
  // the two commands (deleted and re-created) is read once more.
  for (let attempt = 0; ; attempt++) {
    const type = await redis.run('TYPE', (c) => c.type(key), signal);
    if (type === 'none') return { type, length: 0 };
    if (!Object.hasOwn(LENGTH_OF, type)) {
      throw new NonRetriableError(
        `Key ${JSON.stringify(key)} on ${redis.display} is a ${type}, not a queue (list, stream, sorted set or set). Check the key name.`,
        { code: 'REDIS_WRONG_TYPE', details: { key, type } },
      );
    }
    const command = LENGTH_OF[type as keyof typeof LENGTH_OF];
    try {
      const length = await redis.run(command, (c) => c.call(command, key) as Promise<number>, signal);
      return { type: type as QueueInfo['type'], length: Number(length) };
    } catch (e) {
      if (attempt > 0 || (e as { replyCode?: string }).replyCode !== 'WRONGTYPE') throw e;
    }
  }
}
