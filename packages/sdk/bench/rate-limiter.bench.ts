/**
 * Rate-limiter decisions per second as a multiple of raw INCR throughput, measured in the same run with the
 * same ioredis client and the same number of commands in flight.
 *
 *   npx tsx bench/rate-limiter.bench.ts     (REDIS_URL overrides redis://127.0.0.1:6379)
 *
 * Target (issue #5): GCRA decisions/s ≥ 0.5 × INCR/s. Exits with code 1 when a target is missed.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createRateLimiter } from '../src/resilience/rate-limiter';

const URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const OPS = Number(process.env.BENCH_OPS ?? 20_000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 64);
const REPEATS = 5;
const KEYS = 1000;
const prefix = `bench-limiter-${randomBytes(4).toString('hex')}`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** Operations per second of `op(i)` for i in [0, OPS), IN_FLIGHT at a time. */
async function throughput(op: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < OPS) await op(next++);
    }),
  );
  return OPS / ((performance.now() - started) / 1000);
}

async function main() {
  const redis = new Redis(URL);
  // Limits high enough that every take is allowed: the write path, the dearer one. (The sliding window's
  // highest limit, 10000 a second per key, is far above the 20 takes per key of one measurement.)
  const gcra = createRateLimiter(redis, { prefix, name: 'gcra', limit: 1_000_000, period: '1s' });
  const sliding = createRateLimiter(redis, {
    prefix,
    name: 'sw',
    algorithm: 'sliding-window',
    limit: 10_000,
    period: '1s',
  });
  const cases: Record<string, (i: number) => Promise<unknown>> = {
    'INCR, one key': () => redis.incr(`${prefix}:incr`),
    [`INCR, ${KEYS} keys`]: (i) => redis.incr(`${prefix}:incr:${i % KEYS}`),
    'GCRA take, one key': () => gcra.take('hot'),
    [`GCRA take, ${KEYS} keys`]: (i) => gcra.take(`user:${i % KEYS}`),
    [`sliding-window take, ${KEYS} keys`]: (i) => sliding.take(`user:${i % KEYS}`),
  };
  const samples = Object.fromEntries(Object.keys(cases).map((name) => [name, [] as number[]]));
  try {
    process.stderr.write(
      `warming up (${OPS} operations per measurement, ${IN_FLIGHT} in flight, median of ${REPEATS})…\n`,
    );
    for (const op of Object.values(cases)) await throughput(op);
    for (let r = 0; r < REPEATS; r++) {
      // Interleaved so that drift in the machine's load hits every figure alike.
      for (const [name, op] of Object.entries(cases)) samples[name]?.push(await throughput(op));
      await redis.del(...Array.from({ length: KEYS }, (_, i) => sliding.redisKey(`user:${i}`)));
      process.stderr.write(`  round ${r + 1}/${REPEATS}\n`);
    }
    const base = median(samples['INCR, one key'] ?? []);
    const baseKeys = median(samples[`INCR, ${KEYS} keys`] ?? []);
    let missed = 0;
    const line = (name: string, target?: number) => {
      const ops = median(samples[name] ?? []);
      const ratio = ops / base;
      if (target !== undefined && ratio < target) missed++;
      const verdict =
        target === undefined ? '' : `  target ≥ ${target}×: ${ratio >= target ? 'met' : 'MISSED'}`;
      return `${name.padEnd(34)} ${ops.toFixed(0).padStart(8)} ops/s  ${ratio.toFixed(2).padStart(5)}× INCR  ${(ops / baseKeys).toFixed(2).padStart(5)}× INCR(${KEYS} keys)${verdict}`;
    };
    console.log(
      `rate limiter vs raw INCR, same ioredis client, ${IN_FLIGHT} in flight, ${OPS} ops, median of ${REPEATS}`,
    );
    console.log(line('INCR, one key'));
    console.log(line(`INCR, ${KEYS} keys`));
    console.log(line('GCRA take, one key', 0.5));
    console.log(line(`GCRA take, ${KEYS} keys`, 0.5));
    console.log(line(`sliding-window take, ${KEYS} keys`));
    if (missed > 0) {
      console.error(`${missed} target(s) missed`);
      process.exitCode = 1;
    }
  } finally {
    gcra.close();
    sliding.close();
    let cursor = '0';
    do {
      const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = nextCursor;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
    redis.disconnect();
  }
}

await main();
