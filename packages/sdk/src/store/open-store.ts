import { z } from 'zod';
import { InputValidationError } from '../core/errors';
import { openPgliteDriver } from './pglite-driver';
import { openPostgresDriver } from './postgres-driver';
import { RunStore } from './run-store';

/** Where runs are kept. With a `url` it is PostgreSQL; without, the embedded PGlite store under `dataDir`. */
export const StoreOptions = z.object({
  /** PostgreSQL connection string (`postgres://…`). When absent, the embedded store is used. */
  url: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'expected a postgres:// or postgresql:// connection string')
    .optional(),
  /** Directory of the embedded store; ignored with `url`. `":memory:"` keeps it in memory. @default ".runbook/store" */
  dataDir: z.string().min(1).default('.runbook/store'),
  /** Schema holding the tables. @default "runbook" */
  schema: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'expected lowercase letters, digits and "_"')
    .default('runbook'),
  /** PostgreSQL pool size. @default 10 */
  poolSize: z.number().int().min(1).max(100).default(10),
  /**
   * Commit the writes the engine can redo (check results, finished actions, notifications) without waiting
   * for PostgreSQL's WAL flush. Losing one in a database crash costs a re-run of a check or a re-plan that
   * finds the change already made; the writes that guard against doing anything twice (the apply marker with
   * its lock and budget, approvals, run creation and ending) always wait. @default true
   */
  relaxedCommits: z.boolean().default(true),
});
/** Options of {@link openStore}. */
export type StoreOptions = z.input<typeof StoreOptions>;

/** Opens (and migrates) a run store: PostgreSQL when `url` is given, the embedded PGlite store otherwise. */
export async function openStore(options: StoreOptions = {}): Promise<RunStore> {
  const parsed = StoreOptions.safeParse(options);
  if (!parsed.success) {
    throw new InputValidationError(
      'store options',
      parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    );
  }
  const o = parsed.data;
  const driver = o.url
    ? await openPostgresDriver({
        connectionString: o.url,
        schema: o.schema,
        max: o.poolSize,
        relaxedCommits: o.relaxedCommits,
      })
    : await openPgliteDriver({
        ...(o.dataDir === ':memory:' ? {} : { dataDir: o.dataDir }),
        schema: o.schema,
      });
  const store = new RunStore(driver);
  try {
    await store.migrate();
  } catch (e) {
    await driver.close().catch(() => {});
    throw e;
  }
  return store;
}
