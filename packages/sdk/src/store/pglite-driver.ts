import { mkdir } from 'node:fs/promises';
import { lockDataDir } from './data-dir-lock';
import { assertSchemaName, type Queryable, type SqlDriver } from './driver';

/** Options of the embedded PGlite driver. */
export interface PgliteDriverOptions {
  /** Directory the database lives in; `undefined` keeps it in memory (tests). */
  dataDir?: string;
  /** Schema holding the store's tables. @default "runbook" */
  schema?: string;
}

/**
 * Opens an embedded PostgreSQL (PGlite, WASM) driver. One process owns a data directory at a time, so
 * the embedded store serves one engine process; several processes share a real PostgreSQL.
 */
export async function openPgliteDriver(options: PgliteDriverOptions = {}): Promise<SqlDriver> {
  const schema = assertSchemaName(options.schema ?? 'runbook');
  const { PGlite } = await import('@electric-sql/pglite');
  let unlock = () => {};
  if (options.dataDir) {
    await mkdir(options.dataDir, { recursive: true });
    unlock = lockDataDir(options.dataDir);
  }
  let db: InstanceType<typeof PGlite>;
  try {
    db = options.dataDir ? new PGlite(options.dataDir) : new PGlite();
    await db.waitReady;
    await db.exec(`CREATE SCHEMA IF NOT EXISTS ${schema}; SET search_path TO ${schema};`);
  } catch (e) {
    unlock();
    throw e;
  }

  // PGlite runs one statement at a time; a transaction holds the connection, so queries from outside it
  // wait their turn instead of slipping into the open transaction.
  let queue: Promise<unknown> = Promise.resolve();
  const serialize = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work, work);
    queue = next.catch(() => {});
    return next;
  };
  const run = async <R>(q: { query: typeof db.query }, sql: string, params: readonly unknown[]) =>
    (await q.query<R>(sql, params as unknown[])).rows;

  return {
    dialect: 'pglite',
    query: (sql, params = []) => serialize(() => run(db, sql, params)),
    transaction: (fn) =>
      serialize(() =>
        db.transaction((tx) => {
          const scoped: Queryable = { query: (sql, params = []) => run(tx, sql, params) };
          return fn(scoped);
        }),
      ),
    queryRelaxed: (sql, params = []) => serialize(() => run(db, sql, params)),
    async close() {
      await queue;
      try {
        await db.close();
      } finally {
        unlock();
      }
    },
  };
}
