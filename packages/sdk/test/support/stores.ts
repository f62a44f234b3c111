import { openStore } from '../../src/store/open-store';
import type { RunStore } from '../../src/store/run-store';

/** The real PostgreSQL the tests use (CI starts it on 127.0.0.1:5432). */
export const POSTGRES_URL =
  process.env.RUNBOOK_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A store under test plus how to dispose of it. */
export interface StoreUnderTest {
  store: RunStore;
  dispose(): Promise<void>;
}

let counter = 0;

/** A fresh schema name, so test files never see each other's rows. */
export function uniqueSchema(prefix: string): string {
  counter++;
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${counter}`;
}

/** Both drivers, for suites that must pass on each: embedded PGlite (in memory) and the real PostgreSQL. */
export const DRIVERS = {
  pglite: async (): Promise<StoreUnderTest> => {
    const store = await openStore({ dataDir: ':memory:' });
    return { store, dispose: () => store.close() };
  },
  postgres: async (): Promise<StoreUnderTest> => postgresStore(uniqueSchema('t')),
} as const;

/** A PostgreSQL store in its own schema, dropped on dispose. */
export async function postgresStore(schema: string): Promise<StoreUnderTest> {
  const store = await openStore({ url: POSTGRES_URL, schema });
  return {
    store,
    async dispose() {
      await store.driver.query(`DROP SCHEMA ${schema} CASCADE`);
      await store.close();
    },
  };
}
