/**
 * A child process that hammers rate limiters for the multi-process proofs: prints `ready`, reads `{ startAt }`
 * (ms since the epoch) from stdin, then for each of `runs` makes `inFlight` takes at a time on one key from
 * `startAt` for `durationMs`, and prints the Redis time of every allowed take.
 *
 *   node --import tsx test/resilience/support/limiter-hammer.ts '<json input>'
 */
import { Redis } from 'ioredis';
import { createRateLimiter, type RateLimiterOptionsInput } from '../../../src/resilience/rate-limiter';
import { readLine } from './limiter-processes';

interface Input {
  url: string;
  durationMs: number;
  inFlight: number;
  runs: { options: RateLimiterOptionsInput; key: string }[];
}

const input = JSON.parse(process.argv[2] ?? '{}') as Input;
const redis = new Redis(input.url);
const limiters = input.runs.map((run) => createRateLimiter(redis, run.options));
await Promise.all(limiters.map((l) => l.ready()));
process.stdout.write(`${JSON.stringify({ kind: 'ready' })}\n`);

const { startAt } = await readLine<{ startAt: number }>();
await new Promise((resolve) => setTimeout(resolve, Math.max(0, startAt - Date.now())));
const endAt = startAt + input.durationMs;
const results = await Promise.all(
  input.runs.map(async (run, i) => {
    const limiter = limiters[i];
    if (!limiter) throw new Error('no limiter');
    const allowed: number[] = [];
    let denied = 0;
    await Promise.all(
      Array.from({ length: input.inFlight }, async () => {
        while (Date.now() < endAt) {
          const decision = await limiter.take(run.key);
          if (decision.allowed) allowed.push(decision.at);
          else denied++;
        }
      }),
    );
    return { allowed, denied };
  }),
);
process.stdout.write(`${JSON.stringify({ kind: 'done', results })}\n`);
for (const limiter of limiters) limiter.close();
redis.disconnect();
