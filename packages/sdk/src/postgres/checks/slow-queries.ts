import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { type Evidence, type FindingStatus, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import { isPostgresError, type PostgresDatabase, quoteIdent } from '../database';
import { clip, formatDuration, isoOf, plural, queryText } from './wording';

/** Options of {@link slowQueries}. */
export const SlowQueriesOptions = z
  .object({
    /** Statements listed, slowest mean first. @default 10 (the manual's `LIMIT 10`) */
    limit: z.number().int().min(1).max(100).default(10),
    /** Statements with a mean execution time at least this long are slow (`warn`). @default "100ms" (the manual's p95 target) */
    minMeanTime: Duration.default('100ms'),
    /** A statement with a mean at least this long is a `fail`. @default "1s" (the manual's slow-query log line) */
    failMeanTime: Duration.default('1s'),
  })
  .refine((p) => toMillis(p.minMeanTime) <= toMillis(p.failMeanTime), {
    message: 'minMeanTime must not exceed failMeanTime',
    path: ['minMeanTime'],
  });
export type SlowQueriesOptions = z.output<typeof SlowQueriesOptions>;
export type SlowQueriesOptionsInput = z.input<typeof SlowQueriesOptions>;

/** One normalized statement of `pg_stat_statements`. */
export type SlowStatement = {
  queryId: string | null;
  database: string | null;
  user: string | null;
  /** Normalized text (`$1` for constants), at most 500 characters. */
  query: string;
  calls: number;
  meanMs: number;
  totalMs: number;
  maxMs: number | null;
  rows: number;
  /** Share of the execution time of all statements, 0–1. */
  shareOfTotal: number;
};

/** What {@link slowQueries} found. */
export type SlowQueriesData = {
  /** False when `pg_stat_statements` is not installed or not loaded. */
  available: boolean;
  /** What to do to make it available; `null` when it is. */
  reason: string | null;
  statements: SlowStatement[];
  /** Statements with a mean at or above `minMeanTime`, before the cut to `limit`. */
  slow: number;
  /** When the statistics were last reset (PostgreSQL 14+): the means cover the time since. */
  statsReset: string | null;
  minMeanMs: number;
  failMeanMs: number;
};

/** One statement of `pg_stat_statements` as {@link slowQueries} read it: times unrounded. */
export type SlowStatementRead = Omit<SlowStatement, 'shareOfTotal'> & {
  /** Share of the execution time of all statements, 0–1; `null` when no time was recorded. */
  share: number | null;
};

/**
 * What {@link slowQueries} read: the `limit` statements with the slowest mean (whatever their mean), and
 * how many statements had a mean at or above the `minMeanTime` it read with. Replaying it with another
 * `failMeanTime` or `minMeanTime` judges the same statements again; the count of slow statements is exact
 * when the statements read tell it, and "at least" otherwise.
 */
export type SlowQueriesObservation = {
  /** `null` when `pg_stat_statements` is available; else what to do to make it so. */
  reason: string | null;
  /** Slowest mean first. */
  statements: SlowStatementRead[];
  /** True when fewer than `limit` statements came back: these are all of them. */
  complete: boolean;
  /** Statements with a mean at or above `slowAtMs`, over all statements. */
  slow: number;
  slowAtMs: number;
  statsReset: string | null;
};

const KIND = 'pg.slow-queries';
const NOT_INSTALLED =
  'pg_stat_statements is not installed in this database: CREATE EXTENSION pg_stat_statements; ' +
  "(it also needs shared_preload_libraries = 'pg_stat_statements' and a restart)";
const NOT_LOADED =
  "pg_stat_statements is not loaded: add it to shared_preload_libraries (ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements') and restart PostgreSQL";

/**
 * The manual's "check slow queries" (Runbook 5): `pg_stat_statements` by mean execution time, with calls,
 * total time, rows and each statement's share of all execution time, for every database of the server.
 *
 * - `fail` when a statement's mean is at least `failMeanTime` (1 s, the manual's slow-query logging line).
 * - `warn` when one's mean is at least `minMeanTime` (100 ms, the manual's p95 latency target).
 * - `ok` when none is, `unknown` when `pg_stat_statements` is not installed (`CREATE EXTENSION`) or not
 *   loaded (`shared_preload_libraries`); the summary says which and what to do.
 *
 * The figures are cumulative since the last reset (`pg_stat_statements_reset()`), so an old slow query keeps
 * showing until then; the data carries the reset time.
 *
 * Replayable: `read` fetches the slowest statements ({@link SlowQueriesObservation}), `judge` applies
 * `minMeanTime` and `failMeanTime`.
 */
export function slowQueries(
  db: PostgresDatabase,
  options: SlowQueriesOptionsInput = {},
): ReplayableCheck<SlowQueriesData, SlowQueriesObservation> {
  const p = parseOptions(KIND, SlowQueriesOptions, options);
  const minMs = toMillis(p.minMeanTime);
  const failMs = toMillis(p.failMeanTime);
  return defineCheck({
    kind: KIND,
    description: `Statements with a mean over ${formatDuration(minMs)} in pg_stat_statements on ${db.display}`,
    async read(ctx): Promise<SlowQueriesObservation> {
      const q = { signal: ctx.signal };
      const seen: SlowQueriesObservation = {
        reason: null,
        statements: [],
        complete: true,
        slow: 0,
        slowAtMs: minMs,
        statsReset: null,
      };
      const { rows: ext } = await db.query<{ schema: string; version: number }>(
        `SELECT n.nspname AS schema, current_setting('server_version_num')::int AS version
           FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
          WHERE e.extname = 'pg_stat_statements'`,
        [],
        q,
      );
      const found = ext[0];
      if (!found) return { ...seen, reason: NOT_INSTALLED };
      const schema = quoteIdent(found.schema);
      // PostgreSQL 13 renamed mean_time/total_time/max_time to *_exec_time.
      const t = found.version >= 130000 ? '_exec_time' : '_time';
      let rows: Array<{
        queryid: string | null;
        database: string | null;
        user: string | null;
        query: string | null;
        calls: number;
        mean_ms: number;
        total_ms: number;
        max_ms: number | null;
        rows: number;
        share: number | null;
        slow: number;
      }>;
      try {
        ({ rows } = await db.query(
          `SELECT s.queryid::text AS queryid, d.datname AS database, r.rolname AS "user",
                  left(s.query, 501) AS query, s.calls::float8 AS calls,
                  s.mean${t}::float8 AS mean_ms, s.total${t}::float8 AS total_ms, s.max${t}::float8 AS max_ms,
                  s.rows::float8 AS rows,
                  s.total${t} / nullif(sum(s.total${t}) OVER (), 0) AS share,
                  (count(*) FILTER (WHERE s.mean${t} >= $1) OVER ())::int AS slow
             FROM ${schema}.pg_stat_statements s
             LEFT JOIN pg_database d ON d.oid = s.dbid
             LEFT JOIN pg_roles r ON r.oid = s.userid
            ORDER BY s.mean${t} DESC
            LIMIT $2`,
          [minMs, p.limit],
          q,
        ));
      } catch (e) {
        // 55000: "pg_stat_statements must be loaded via shared_preload_libraries".
        if (isPostgresError(e) && e.sqlstate === '55000') return { ...seen, reason: NOT_LOADED };
        throw e;
      }
      seen.complete = rows.length < p.limit;
      seen.slow = rows[0]?.slow ?? 0;
      seen.statements = rows.map((r) => ({
        queryId: r.queryid,
        database: r.database,
        user: r.user,
        query: queryText(r.query) ?? '',
        calls: r.calls,
        meanMs: r.mean_ms,
        totalMs: r.total_ms,
        maxMs: r.max_ms,
        rows: r.rows,
        share: r.share,
      }));
      if (found.version >= 140000) {
        const info = await db
          .query<{ reset: Date | null }>(
            `SELECT stats_reset AS reset FROM ${schema}.pg_stat_statements_info`,
            [],
            q,
          )
          .catch(() => ({ rows: [] as { reset: Date | null }[] }));
        seen.statsReset = isoOf(info.rows[0]?.reset ?? null);
      }
      return seen;
    },
    judge(seen) {
      const data: SlowQueriesData = {
        available: false,
        reason: null,
        statements: [],
        slow: 0,
        statsReset: null,
        minMeanMs: minMs,
        failMeanMs: failMs,
      };
      if (seen.reason !== null) {
        data.reason = seen.reason;
        return finding('unknown', seen.reason, data);
      }
      const listed = seen.statements.filter((r) => r.meanMs >= minMs);
      const count = slowCount(seen, listed.length, minMs);
      data.available = true;
      data.slow = count.slow;
      data.statements = listed.map((r) => ({
        queryId: r.queryId,
        database: r.database,
        user: r.user,
        query: r.query,
        calls: r.calls,
        meanMs: round(r.meanMs),
        totalMs: round(r.totalMs),
        maxMs: r.maxMs === null ? null : round(r.maxMs),
        rows: r.rows,
        shareOfTotal: Math.round((r.share ?? 0) * 1000) / 1000,
      }));
      data.statsReset = seen.statsReset;

      const worst = data.statements[0];
      const status: FindingStatus = !worst ? 'ok' : worst.meanMs >= failMs ? 'fail' : 'warn';
      const since = data.statsReset ? ` since ${data.statsReset.slice(0, 16).replace('T', ' ')} UTC` : '';
      const summary = worst
        ? `${count.atLeast ? 'at least ' : ''}${plural(data.slow, 'statement')} with a mean at or above ${formatDuration(minMs)}${since}; slowest ` +
          `${formatDuration(worst.meanMs)} mean × ${plural(worst.calls, 'call')}: ${clip(worst.query, 80)}`
        : `No statement with a mean at or above ${formatDuration(minMs)}${since}`;
      return finding(status, summary, data, evidenceOf(data));
    },
  });
}

/**
 * How many statements have a mean at or above `minMs`: the recorded count when the threshold is the one it
 * was read with, else what the slowest statements read tell (exactly when one of them is below the
 * threshold or they are all there are, else a lower bound).
 */
function slowCount(
  seen: SlowQueriesObservation,
  listed: number,
  minMs: number,
): { slow: number; atLeast: boolean } {
  if (minMs === seen.slowAtMs) return { slow: seen.slow, atLeast: false };
  if (listed < seen.statements.length || seen.complete) return { slow: listed, atLeast: false };
  // Every statement read is at or above minMs, and there are more: at least those, and (for a lower
  // threshold than the recorded one) at least the recorded count.
  if (minMs > seen.slowAtMs) return { slow: listed, atLeast: seen.slow > listed };
  return { slow: Math.max(listed, seen.slow), atLeast: true };
}

function evidenceOf(data: SlowQueriesData): Evidence[] {
  return [
    {
      kind: 'table',
      title: 'Slowest statements by mean execution time (pg_stat_statements)',
      columns: ['MEAN', 'CALLS', 'TOTAL', 'MAX', 'ROWS', '% OF TOTAL', 'DATABASE', 'USER', 'QUERY'],
      rows: data.statements.map((s) => [
        formatDuration(s.meanMs),
        s.calls,
        formatDuration(s.totalMs),
        s.maxMs === null ? null : formatDuration(s.maxMs),
        s.rows,
        `${Math.round(s.shareOfTotal * 1000) / 10}%`,
        s.database,
        s.user,
        s.query,
      ]),
    },
  ];
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
