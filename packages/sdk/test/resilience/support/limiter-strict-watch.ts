/**
 * A child process with one rate limiter of `service` (strict mode polled at the default interval). Prints
 * `ready` once it has read strict mode, then a line for every change it learns: the state, when it learned it
 * (`Date.now()`), and the limit its next take decided by. Runs until SIGTERM.
 *
 *   node --import tsx test/resilience/support/limiter-strict-watch.ts '<json input>'
 */
import { Redis } from 'ioredis';
import { createRateLimiter } from '../../../src/resilience/rate-limiter';

const input = JSON.parse(process.argv[2] ?? '{}') as { url: string; prefix: string; service: string };
const redis = new Redis(input.url);
const limiter = createRateLimiter(redis, {
  prefix: input.prefix,
  service: input.service,
  name: 'api',
  limit: 100,
  period: '1m',
});
const print = (line: unknown) => process.stdout.write(`${JSON.stringify(line)}\n`);
limiter.onStrictModeChange((state) => {
  const seenAt = Date.now();
  limiter.take(`pid-${process.pid}`).then(
    (decision) => print({ kind: 'strict', state, seenAt, limit: decision.limit }),
    (e: unknown) => print({ kind: 'error', message: String(e) }),
  );
});
await limiter.ready();
print({ kind: 'ready', limit: limiter.limitsFor('k').limit });

// The poll timer does not keep a process alive (a limiter must not); this interval does, until SIGTERM.
const alive = setInterval(() => {}, 60_000);
process.on('SIGTERM', () => {
  clearInterval(alive);
  limiter.close();
  redis.disconnect();
});
