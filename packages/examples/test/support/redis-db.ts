import { Redis } from 'ioredis';

/**
 * A Redis database index of the test's own for as long as it holds the lease. A lab keys its breakers, queue
 * and agent caches without a per-lab prefix (as the platform does), so two labs must never share a database;
 * vitest runs test files in parallel, and a fixed index per file would run out of the 16 Redis has.
 *
 * The lease is a key in database 0 (`SET NX` with an expiry, so a killed test frees its index). Index 3 is the
 * lab's default (`aiwebtest-lab up`) and is never leased; 0 holds the leases.
 */
export interface RedisDbLease {
  index: number;
  /** `redis://127.0.0.1:6379/<index>`. */
  url: string;
  /** Empties the database and gives the index back. */
  release(): Promise<void>;
}

const BASE = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const CANDIDATES = [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const LEASE_MS = 15 * 60_000;

export async function leaseRedisDb(): Promise<RedisDbLease> {
  const leases = new Redis(`${BASE}/0`, { lazyConnect: true, maxRetriesPerRequest: 2 });
  await leases.connect();
  const owner = `${process.pid}-${Math.random().toString(16).slice(2)}`;
  const deadline = Date.now() + 120_000;
  try {
    for (;;) {
      for (const index of CANDIDATES) {
        const key = `aiwebtest:test:redis-db-lease:${index}`;
        if ((await leases.set(key, owner, 'PX', LEASE_MS, 'NX')) !== 'OK') continue;
        const url = `${BASE}/${index}`;
        const db = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2 });
        await db.connect();
        await db.flushdb(); // whatever a killed test left behind
        await db.quit();
        return {
          index,
          url,
          release: async () => {
            const cleaner = new Redis(url, { maxRetriesPerRequest: 2 });
            await cleaner.flushdb();
            await cleaner.quit();
            const again = new Redis(`${BASE}/0`, { maxRetriesPerRequest: 2 });
            // Only our own lease: an expired one may have been taken by another test since.
            if ((await again.get(key)) === owner) await again.del(key);
            await again.quit();
          },
        };
      }
      if (Date.now() > deadline)
        throw new Error('no Redis database index free for the test within 2 minutes');
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    await leases.quit();
  }
}
