import { Redis } from 'ioredis';

/**
 * The shared Redis of the test machine; every test uses keys under a prefix of its own (`uniquePrefix` of
 * test/support/redis-server.ts).
 */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A new client for the test Redis. */
export function connect(): Redis {
  return new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
}

/** Deletes every key under `prefix`, including the queue's `{prefix…}` hash-tagged keys. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  for (const pattern of [`${prefix}*`, `{${prefix}*`]) {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  }
}

/** Redis' clock in ms since the epoch (with a fraction). */
export async function redisNow(redis: Redis): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Number(micros) / 1000;
}
