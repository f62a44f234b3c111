import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { NonRetriableError } from '../../core/errors';
import { type Cell, type Evidence, type FindingStatus, finding } from '../../core/finding';
import type { Json } from '../../core/json';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import { isPostgresError, type PostgresDatabase } from '../database';
import { firstKeyword, statementProblem } from './sql-statement';
import { clip, errorText, hiddenNote, isLockWait, lockWaitText, MAX_ROWS, plural } from './wording';

const Scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);

// Statements that would end, replace or loosen the read-only transaction the check runs in.
const REFUSED_KEYWORDS = new Set([
  'BEGIN',
  'START',
  'COMMIT',
  'END',
  'ROLLBACK',
  'ABORT',
  'SAVEPOINT',
  'RELEASE',
  'PREPARE',
  'SET',
  'RESET',
  'DISCARD',
]);

/** Options of {@link sqlCheck}. */
export const SqlCheckOptions = z.object({
  /** What it checks, in words: the summary starts with it, e.g. `"Test executions running > 10 minutes"`. */
  name: z.string().min(1).max(200),
  /**
   * One read-only statement, parameters as `$1`, `$2`… Refused when it holds more than one statement, or
   * transaction control / `SET`.
   */
  sql: z
    .string()
    .min(1)
    .superRefine((sql, issue) => {
      const problem = statementProblem(sql);
      if (problem) issue.addIssue({ code: 'custom', message: problem });
      else if (REFUSED_KEYWORDS.has(firstKeyword(sql))) {
        issue.addIssue({
          code: 'custom',
          message: `${firstKeyword(sql)} is not allowed: the statement runs in a read-only transaction of its own`,
        });
      }
    }),
  /** Values of `$1`, `$2`…, always bound, never interpolated. @default [] */
  params: z.array(z.union([Scalar, z.array(Scalar)])).default([]),
  /**
   * What the thresholds judge: the number in column `value` of the first row, or the number of rows.
   * `auto` takes `value` when the result has such a column, the row count otherwise. @default "auto"
   */
  measure: z.enum(['auto', 'value', 'rows']).default('auto'),
  /** Inclusive limits on the measure; none means the check only reports. @default {} */
  thresholds: z
    .object({
      /** `warn` at this measure or beyond. */
      warn: z.number().optional(),
      /** `fail` at this measure or beyond. */
      fail: z.number().optional(),
      /** `above`: bad when the measure is at or above the limits; `below`: at or below them. @default "above" */
      direction: z.enum(['above', 'below']).default('above'),
    })
    .default({ direction: 'above' }),
  /** Put the rows (at most 50) in the evidence and the data. @default true */
  rowsAsEvidence: z.boolean().default(true),
  /** Server-side bound on the statement. @default the database's `statementTimeout` */
  timeout: Duration.optional(),
});
export type SqlCheckOptions = z.output<typeof SqlCheckOptions>;
export type SqlCheckOptionsInput = z.input<typeof SqlCheckOptions>;

/** What {@link sqlCheck} found. */
export type SqlCheckData = {
  name: string;
  /** What was judged. */
  measure: 'value' | 'rows';
  /** The measure; `null` when `value` was null or not a number. */
  value: number | null;
  rowCount: number;
  columns: string[];
  /** The first 50 rows as JSON (dates as RFC 3339 strings), when `rowsAsEvidence`. */
  rows: Array<Record<string, Json>>;
  thresholds: { warn: number | null; fail: number | null; direction: 'above' | 'below' };
};

/**
 * What {@link sqlCheck} read: the result's shape, its first row's `value` as a number, and (with
 * `rowsAsEvidence`) its first 50 rows. Replaying it with other `thresholds` (or `measure`) judges the same
 * result again.
 */
export type SqlCheckObservation = {
  /** Set when the statement gave up waiting for a lock (`lock_timeout`): the error, in words. */
  lockWait: string | null;
  columns: string[];
  rowCount: number;
  /** The `value` column of the first row as a finite number; `null` when missing, null or not a number. */
  firstValue: number | null;
  /** The first 50 rows as JSON, when `rowsAsEvidence`; else empty. */
  rows: Array<Record<string, Json>>;
};

const KIND = 'pg.sql-check';

/**
 * A check written as one SQL query, for the application's own state — the manual's "tests stuck in running
 * for more than 10 minutes" (Runbook 3):
 *
 * ```ts
 * sqlCheck(db, {
 *   name: 'Test executions running > 10 minutes',
 *   sql: "SELECT execution_id, started_at FROM test_executions WHERE result = 'running' AND started_at < now() - $1::interval",
 *   params: ['10 minutes'],
 *   thresholds: { fail: 1 },          // measure: the row count (no `value` column)
 * });
 * ```
 *
 * The statement runs in a transaction started `READ ONLY`, so a mistaken `UPDATE`/`DELETE` (or `nextval()`)
 * is refused by PostgreSQL instead of changing data: the check then throws a non-retriable error saying so.
 * A text with more than one statement, or with transaction control or `SET`, is refused when the check is
 * built. (Read-only stops writes to data, not functions with other side effects such as
 * `pg_terminate_backend()`; give the check a role that may only read.)
 *
 * Every row is fetched (to count them); where there may be thousands, select `count(*) AS value` instead.
 *
 * - With `direction: 'above'` (default): `fail` when the measure is at or above `fail`, else `warn` at or
 *   above `warn`, else `ok`. With `below`, at or below. `unknown` when the measure is `value` and the query
 *   returned no number.
 *
 * Replayable: `read` runs the statement ({@link SqlCheckObservation}), `judge` applies `measure` and
 * `thresholds`.
 */
export function sqlCheck(
  db: PostgresDatabase,
  options: SqlCheckOptionsInput,
): ReplayableCheck<SqlCheckData, SqlCheckObservation> {
  const p = parseOptions(KIND, SqlCheckOptions, options);
  const timeoutMs = p.timeout === undefined ? undefined : toMillis(p.timeout);
  const { warn, fail, direction } = p.thresholds;
  return defineCheck({
    kind: KIND,
    description: p.name,
    async read(ctx): Promise<SqlCheckObservation> {
      let result: Awaited<ReturnType<PostgresDatabase['query']>>;
      try {
        result = await db.transaction(
          async (session) => {
            await session.query('SET TRANSACTION READ ONLY', [], { signal: ctx.signal });
            return session.query(p.sql, p.params, {
              signal: ctx.signal,
              ...(timeoutMs === undefined ? {} : { statementTimeoutMs: timeoutMs }),
            });
          },
          { signal: ctx.signal },
        );
      } catch (e) {
        if (isLockWait(e)) {
          return { lockWait: errorText(e), columns: [], rowCount: 0, firstValue: null, rows: [] };
        }
        if (isPostgresError(e) && e.sqlstate === '25006') {
          throw new NonRetriableError(
            `sqlCheck "${p.name}" tried to change data, and PostgreSQL refused it: ${errorText(e)}. ` +
              'A check only reads; write the change as an action.',
            { cause: e, code: 'SQL_CHECK_NOT_READ_ONLY', details: { sqlstate: e.sqlstate } },
          );
        }
        throw e;
      }
      const columns = result.fields.map((f) => f.name);
      const raw = result.rows[0]?.value;
      const n =
        typeof raw === 'boolean' ? Number(raw) : raw === null || raw === undefined ? Number.NaN : Number(raw);
      const shown = p.rowsAsEvidence ? result.rows.slice(0, MAX_ROWS) : [];
      return {
        lockWait: null,
        columns,
        rowCount: result.rows.length,
        firstValue: Number.isFinite(n) ? n : null,
        rows: shown.map((r) => Object.fromEntries(columns.map((c) => [c, toJson(r[c])]))),
      };
    },
    judge(seen) {
      const thresholds = { warn: warn ?? null, fail: fail ?? null, direction };
      if (seen.lockWait !== null) {
        return finding('unknown', lockWaitText(p.name, seen.lockWait), {
          name: p.name,
          measure: p.measure === 'auto' ? 'rows' : p.measure,
          value: null,
          rowCount: 0,
          columns: [],
          rows: [],
          thresholds,
        });
      }
      const { columns, rowCount } = seen;
      const measure = p.measure === 'auto' ? (columns.includes('value') ? 'value' : 'rows') : p.measure;
      const value: number | null = measure === 'value' ? seen.firstValue : rowCount;
      const rows = p.rowsAsEvidence ? seen.rows : [];
      const data: SqlCheckData = { name: p.name, measure, value, rowCount, columns, rows, thresholds };
      const evidence: Evidence[] = [];
      if (p.rowsAsEvidence) {
        evidence.push({
          kind: 'table',
          title: p.name,
          columns,
          rows: data.rows.map((r) => columns.map((c) => toCell(r[c] ?? null))),
        });
        const hidden = hiddenNote(rowCount, rows.length);
        if (hidden) evidence.push({ kind: 'text', title: 'Not shown', text: hidden });
      }

      const what = measure === 'rows' ? plural(rowCount, 'row') : `value ${value}`;
      if (value === null) {
        const got = rowCount ? 'null or not a number' : 'no row';
        return finding('unknown', `${p.name}: column "value" is ${got}`, data, evidence);
      }
      const beyond = (limit: number | undefined) =>
        limit !== undefined && (direction === 'above' ? value >= limit : value <= limit);
      const status: FindingStatus = beyond(fail) ? 'fail' : beyond(warn) ? 'warn' : 'ok';
      const side = direction === 'above' ? '≥' : '≤';
      const limit =
        status === 'fail' ? ` (${side} fail ${fail})` : status === 'warn' ? ` (${side} warn ${warn})` : '';
      return finding(status, `${p.name}: ${what}${limit}`, data, evidence);
    },
  });
}

/** A value as `pg` returns it, as JSON: dates as RFC 3339, bytes as `\x…` hex, big integers as strings. */
function toJson(v: unknown): Json {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? String(v) : v.toISOString();
  if (Buffer.isBuffer(v)) return `\\x${v.toString('hex')}`;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (Array.isArray(v)) return v.map(toJson);
  // An interval (postgres-interval) prints itself the way PostgreSQL does: "00:10:00", "1 day".
  const printable = v as { toPostgres?: () => string };
  if (typeof printable.toPostgres === 'function') return printable.toPostgres();
  if (typeof v === 'object') {
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, toJson(x)]));
  }
  return String(v);
}

function toCell(v: Json): Cell {
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return v;
  if (typeof v === 'string') return clip(v, 200);
  return clip(JSON.stringify(v), 200);
}
