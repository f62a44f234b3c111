/**
 * The record monitoring keeps of the application's data: the row counts of the manual's data-integrity
 * tables and the database time they were counted at. The lab exporter publishes them on every scrape
 * (`aiwebtest_table_rows{table}`, `aiwebtest_table_rows_timestamp_seconds`), so that after a
 * disaster the last counts before it are in Prometheus, outside the systems that failed.
 */
import type { Queryable } from '../database/database-metrics';

/** The tables of the manual's "check data integrity" step. */
export const INTEGRITY_TABLES = ['users', 'test_cases', 'test_executions'] as const;
export type IntegrityTable = (typeof INTEGRITY_TABLES)[number];

export interface TableRows {
  counts: Record<IntegrityTable, number>;
  /**
   * `statement_timestamp()` of the counting statement, in microseconds since the epoch (exact in a float64):
   * every transaction committed before it is counted, so a restore to exactly this time has these counts.
   */
  recordedAtMicros: number;
}

/** Counts the tables in one statement (one snapshot), with the database's time of that statement. */
export async function readTableRows(db: Queryable): Promise<TableRows> {
  const { rows } = await db.query<{ at: string; users: string; test_cases: string; test_executions: string }>(
    `SELECT (extract(epoch FROM statement_timestamp()) * 1000000)::bigint::text AS at,
            (SELECT count(*) FROM users)::text AS users,
            (SELECT count(*) FROM test_cases)::text AS test_cases,
            (SELECT count(*) FROM test_executions)::text AS test_executions`,
  );
  const row = rows[0];
  if (!row) throw new Error('the count statement returned no row');
  return {
    counts: {
      users: Number(row.users),
      test_cases: Number(row.test_cases),
      test_executions: Number(row.test_executions),
    },
    recordedAtMicros: Number(row.at),
  };
}
