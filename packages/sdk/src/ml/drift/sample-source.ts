import { z } from 'zod';
import type { PostgresDatabase } from '../../postgres/database';

/**
 * Where drift checks read samples: a `PostgresDatabase` from `@aiwebtest/runbooks/postgres` (statements run in
 * a read-only transaction, cancelled with the step), or anything with pg's `query(sql, params)` — a `pg.Pool`,
 * a `pg.Client`, a PGlite instance.
 */
export type SampleSource =
  | PostgresDatabase
  | { query(sql: string, params?: unknown[]): Promise<{ rows: unknown[] }> };

/** One parameterized statement: `$1`, `$2`… are bound to `params`, never interpolated. */
export const SqlQuery = z.object({
  /** One read-only statement. */
  sql: z.string().min(1, 'expected a SELECT statement'),
  /** Values of `$1`, `$2`…. @default [] */
  params: z.array(z.union([z.string(), z.number(), z.boolean(), z.null()])).default([]),
});
export type SqlQuery = z.output<typeof SqlQuery>;

/** Runs `sql` with `params` and returns its rows. */
export async function readRows(
  source: SampleSource,
  sql: string,
  params: readonly unknown[],
  signal: AbortSignal,
): Promise<Record<string, unknown>[]> {
  if (isPostgresDatabase(source)) {
    return source.transaction(
      async (session) => {
        // A check never changes anything: PostgreSQL refuses a write in a read-only transaction.
        await session.query('SET TRANSACTION READ ONLY', [], { signal });
        return (await session.query(sql, [...params], { signal })).rows;
      },
      { signal },
    );
  }
  signal.throwIfAborted();
  // Two arguments only: pg's third argument is a callback.
  const result = await source.query(sql, [...params]);
  return result.rows as Record<string, unknown>[];
}

function isPostgresDatabase(source: SampleSource): source is PostgresDatabase {
  const s = source as Partial<PostgresDatabase>;
  return typeof s.transaction === 'function' && typeof s.dedicated === 'function';
}
