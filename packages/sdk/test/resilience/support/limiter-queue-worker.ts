/**
 * A child process for the request-queue proofs. Modes:
 * - `enqueue`: prints `ready`, reads `{ startAt }` from stdin, then enqueues `count` items with `inFlight`
 *   enqueues at a time, and prints how many were accepted and the first rejection.
 * - `consume`: processes items with `concurrency` handlers of `handlerMs` each, printing every delivery, until
 *   SIGTERM (then it finishes the running handlers and exits).
 * - `hang`: like `consume`, but handlers never finish: the test kills the process mid-delivery.
 *
 *   node --import tsx test/resilience/support/limiter-queue-worker.ts '<json input>'
 */
import { Redis } from 'ioredis';
import { createRequestQueue, type RequestQueueOptionsInput } from '../../../src/resilience/request-queue';
import { isQueueFullError } from '../../../src/resilience/request-queue-errors';
import { readLine } from './limiter-processes';

interface Input {
  url: string;
  mode: 'enqueue' | 'consume' | 'hang';
  queue: RequestQueueOptionsInput;
  count?: number;
  inFlight?: number;
  concurrency?: number;
  handlerMs?: number;
}

const input = JSON.parse(process.argv[2] ?? '{}') as Input;
const redis = new Redis(input.url);
const queue = createRequestQueue<{ n: number; from: number }>(redis, input.queue);
const print = (line: unknown) => process.stdout.write(`${JSON.stringify(line)}\n`);

if (input.mode === 'enqueue') {
  print({ kind: 'ready' });
  const { startAt } = await readLine<{ startAt: number }>();
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, startAt - Date.now())));
  let next = 0;
  let accepted = 0;
  let rejected = 0;
  let rejection: Record<string, unknown> | null = null;
  let longest = 0;
  await Promise.all(
    Array.from({ length: input.inFlight ?? 1 }, async () => {
      while (next < (input.count ?? 0)) {
        const n = next++;
        try {
          const { length } = await queue.enqueue({ n, from: process.pid });
          longest = Math.max(longest, length);
          accepted++;
        } catch (e) {
          if (!isQueueFullError(e)) throw e;
          rejected++;
          rejection ??= {
            code: e.code,
            httpStatus: e.httpStatus,
            retryAfterMs: e.retryAfterMs,
            message: e.message,
          };
        }
      }
    }),
  );
  print({ kind: 'done', accepted, rejected, rejection, longest });
} else {
  const stop = new AbortController();
  process.on('SIGTERM', () => stop.abort());
  print({ kind: 'ready' });
  await queue.process(
    async (payload, delivery) => {
      print({
        kind: 'delivered',
        id: delivery.id,
        attempt: delivery.attempt,
        at: delivery.deliveredAt,
        payload,
      });
      if (input.mode === 'hang') await new Promise(() => {});
      await new Promise((resolve) => setTimeout(resolve, input.handlerMs ?? 0));
    },
    { concurrency: input.concurrency ?? 1, signal: stop.signal },
  );
  print({ kind: 'stopped' });
}
redis.disconnect();
