import type { PGlite } from '@electric-sql/pglite';
import type { Queryable, SqlDriver } from '../../store/driver';
import { RunStore } from '../../store/run-store';

// `openStore({ dataDir: ':memory:' })` runs initdb and the migrations: one to three seconds of WASM work
// per store. A test run wants a fresh store every time, so the first one is kept as a migrated template
// (a data-directory image, about 40 MB, for the life of the process) and every store is a copy of it,
// which takes a few hundred milliseconds.

const SCHEMA = 'runbook';
let template: Promise<Blob> | undefined;

/** A fresh, migrated, empty in-memory run store (embedded PGlite); close it when done. */
export async function openMemoryStore(): Promise<RunStore> {
  const { PGlite } = await import('@electric-sql/pglite');
  template ??= makeTemplate(PGlite).catch((e: unknown) => {
    template = undefined; // the next store tries again
    throw e;
  });
  const db = new PGlite({ loadDataDir: await template });
  return new RunStore(await pgliteDriver(db));
}

async function makeTemplate(PGliteClass: typeof PGlite): Promise<Blob> {
  const db = new PGliteClass();
  try {
    await new RunStore(await pgliteDriver(db)).migrate();
    return await db.dumpDataDir('none');
  } finally {
    await db.close();
  }
}

/**
 * A driver over an open PGlite, as the store's own embedded driver makes it (`openPgliteDriver`, which
 * opens its database itself and so cannot start from a template): one statement at a time, a transaction
 * holding the connection.
 */
async function pgliteDriver(db: PGlite): Promise<SqlDriver> {
  await db.waitReady;
  await db.exec(`CREATE SCHEMA IF NOT EXISTS ${SCHEMA}; SET search_path TO ${SCHEMA};`);
  let queue: Promise<unknown> = Promise.resolve();
  const serialize = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work, work);
    queue = next.catch(() => {});
    return next;
  };
  const run = async <R>(q: Pick<PGlite, 'query'>, sql: string, params: readonly unknown[]) =>
    (await q.query<R>(sql, params as unknown[])).rows;
  return {
    dialect: 'pglite',
    query: (sql, params = []) => serialize(() => run(db, sql, params)),
    queryRelaxed: (sql, params = []) => serialize(() => run(db, sql, params)),
    transaction: (fn) =>
      serialize(() =>
        db.transaction((tx) => {
          const scoped: Queryable = { query: (sql, params = []) => run(tx, sql, params) };
          return fn(scoped);
        }),
      ),
    async close() {
      await queue;
      await db.close();
    },
  };
}
