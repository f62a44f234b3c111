/**
 * The lab's application database on the real PostgreSQL server, one per test file: a fresh name, so files
 * running side by side never see each other's rows, and dropped at the end.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { dropLabDatabase, prepareLabDatabase } from '../../src/lab/database/lab-database';

/** The server's maintenance database, from which lab databases are created and dropped. */
export const ADMIN_URL =
  process.env.AIWEBTEST_TEST_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A lab database name no other test file uses (`aiwebtest_lab_t_<hex>`). */
export const labDatabaseName = (): string => `aiwebtest_lab_t_${randomBytes(4).toString('hex')}`;

export interface SeededLabDatabase {
  /** The database's name. */
  database: string;
  /** Its connection URL. */
  url: string;
  /** One open session on it. */
  db: pg.Client;
  /** Ends the session and drops the database. */
  close(): Promise<void>;
}

/** Creates and seeds a lab database under a fresh name, with one session open on it. */
export async function startSeededLabDatabase(): Promise<SeededLabDatabase> {
  const database = labDatabaseName();
  const { url } = await prepareLabDatabase({ adminUrl: ADMIN_URL, database });
  const db = new pg.Client({ connectionString: url });
  const close = async () => {
    await db.end().catch(() => {});
    await dropLabDatabase({ adminUrl: ADMIN_URL, database });
  };
  try {
    await db.connect();
  } catch (e) {
    await close();
    throw e;
  }
  return { database, url, db, close };
}
