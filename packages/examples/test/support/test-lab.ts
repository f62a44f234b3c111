import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dropLabDatabase } from '../../src/lab/database/lab-database';
import { type LabOptions, type RunningLab, startLab } from '../../src/lab/start-lab';
import { leaseRedisDb } from './redis-db';

const ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

/** A lab of the test file's own: its directory, database and Redis database; `close()` removes all three. */
export interface TestLab extends RunningLab {
  /** The application database's name. */
  database: string;
}

/** Starts a lab for one test file (a fresh seeded database, a leased Redis database, a temporary directory). */
export async function startTestLab(options: Partial<LabOptions> = {}): Promise<TestLab> {
  const dir = await mkdtemp(join(tmpdir(), 'aiwebtest-lab-'));
  const database = `aiwebtest_lab_t_${Math.random().toString(16).slice(2, 10)}`;
  const redis = await leaseRedisDb();
  let lab: RunningLab;
  try {
    lab = await startLab({ dir, database, resetDatabase: true, redisUrl: redis.url, ...options });
  } catch (e) {
    await redis.release();
    await dropLabDatabase({ adminUrl: ADMIN_URL, database }).catch(() => {});
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    ...lab,
    database,
    close: async () => {
      await lab.close();
      await dropLabDatabase({ adminUrl: ADMIN_URL, database });
      await redis.release();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
