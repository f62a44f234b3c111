import { z } from 'zod';
import { type Evidence, type FindingStatus, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import type { PostgresDatabase } from '../database';
import { Ratio } from './options';
import {
  errorText,
  formatBytes,
  isLockWait,
  isoOf,
  listSome,
  lockWaitText,
  MAX_ROWS,
  percent,
  plural,
} from './wording';

/** Options of {@link tableSizes}. */
export const TableSizesOptions = z
  .object({
    /** Largest tables listed. @default 20 */
    limit: z.number().int().min(1).max(MAX_ROWS).default(20),
    /** Only tables of these schemas. @default every schema (the manual looks at `public`) */
    schemas: z.array(z.string().min(1)).min(1).optional(),
    /**
     * `warn` when dead rows are at least this share of a table's rows. @default 0.2 (autovacuum's default
     * `autovacuum_vacuum_scale_factor`: past it autovacuum should already have run)
     */
    warnDeadRatio: Ratio.default(0.2),
    /** `fail` at or above this share of dead rows. @default 0.5 (half the table is garbage) */
    failDeadRatio: Ratio.default(0.5),
    /** Dead-row shares are only judged on tables with at least this many dead rows (small tables churn). @default 1000 */
    minDeadRows: z.number().int().nonnegative().default(1000),
  })
  .refine((p) => p.warnDeadRatio <= p.failDeadRatio, {
    message: 'warnDeadRatio must not exceed failDeadRatio',
    path: ['warnDeadRatio'],
  });
export type TableSizesOptions = z.output<typeof TableSizesOptions>;
export type TableSizesOptionsInput = z.input<typeof TableSizesOptions>;

/** One user table: its size and how much of it is dead rows waiting for vacuum. */
export type TableSize = {
  schema: string;
  table: string;
  /** `pg_total_relation_size`: heap, indexes and TOAST. */
  totalBytes: number;
  /** `pg_relation_size`: the heap alone. */
  tableBytes: number;
  /** `pg_indexes_size`. */
  indexBytes: number;
  liveRows: number;
  deadRows: number;
  /** The bloat estimate: `n_dead_tup / (n_live_tup + n_dead_tup)`, 0–1. */
  deadRatio: number;
  lastVacuum: string | null;
  lastAutovacuum: string | null;
  lastAnalyze: string | null;
  lastAutoanalyze: string | null;
};

/** What {@link tableSizes} found. */
export type TableSizesData = {
  /** The `limit` largest tables, largest first. */
  largest: TableSize[];
  /** Tables (any size) whose dead-row share reaches `warnDeadRatio`, worst first (at most 50). */
  bloated: TableSize[];
};

/** One table as {@link tableSizes} read it: its sizes, dead-row share (unrounded) and ranks. */
export type TableRead = Omit<TableSize, 'deadRatio'> & {
  /** `n_dead_tup / (n_live_tup + n_dead_tup)`, unrounded. */
  ratio: number;
  /** Rank by total size, 1 the largest. */
  bySize: number;
  /** Rank by dead-row share among the tables over the read's `minDeadRows` and `warnDeadRatio`; else `null`. */
  byDead: number | null;
};

/**
 * What {@link tableSizes} read: the `limit` largest tables, and the 50 with the most dead rows over
 * `minDeadRows` and `warnDeadRatio`. Replaying it with another `failDeadRatio`, or a higher
 * `warnDeadRatio` / `minDeadRows` / lower `limit`, judges them again; tables the recorded run did not read
 * (a lower `warnDeadRatio`, say) cannot be.
 */
export type TableSizesObservation = {
  /** Set when a lock held the statement past the lock timeout: the error, in words. */
  lockWait: string | null;
  /** In the order of their size rank. */
  tables: TableRead[];
};

/** A row of the table-sizes query. */
type TableRow = {
  schema: string;
  table: string;
  total: number;
  heap: number;
  indexes: number;
  live: number;
  dead: number;
  last_vacuum: Date | null;
  last_autovacuum: Date | null;
  last_analyze: Date | null;
  last_autoanalyze: Date | null;
  by_size: number;
  by_dead: number;
  ratio: number;
};

const KIND = 'pg.table-sizes';

/**
 * The manual's "check table bloat" (Runbook 5): the largest tables by `pg_total_relation_size`, and a bloat
 * estimate with the last (auto)vacuum and (auto)analyze times from `pg_stat_user_tables`.
 *
 * The bloat estimate is the share of dead row versions, `n_dead_tup / (n_live_tup + n_dead_tup)`: what the
 * manual's `VACUUM ANALYZE` would reclaim for reuse. It is cheap (statistics, no table scan) but does not
 * see free space a past VACUUM left inside the files (use the `pgstattuple` extension for that), and the
 * counters are estimates the statistics system updates with a short delay.
 *
 * - `fail` when a table with at least `minDeadRows` dead rows has a dead share of `failDeadRatio` (0.5).
 * - `warn` at `warnDeadRatio` (0.2, where autovacuum should already have stepped in).
 * - `ok` otherwise.
 *
 * Replayable: `read` fetches the tables ({@link TableSizesObservation}), `judge` applies the ratios.
 */
export function tableSizes(
  db: PostgresDatabase,
  options: TableSizesOptionsInput = {},
): ReplayableCheck<TableSizesData, TableSizesObservation> {
  const p = parseOptions(KIND, TableSizesOptions, options);
  return defineCheck({
    kind: KIND,
    description: `Largest tables and dead-row share (vacuum need) on ${db.display}`,
    async read(ctx): Promise<TableSizesObservation> {
      let rows: TableRow[];
      try {
        ({ rows } = await db.query<TableRow>(
          `WITH t AS (
           SELECT s.schemaname AS schema, s.relname AS table,
                  pg_total_relation_size(s.relid)::float8 AS total, pg_relation_size(s.relid)::float8 AS heap,
                  pg_indexes_size(s.relid)::float8 AS indexes,
                  s.n_live_tup::float8 AS live, s.n_dead_tup::float8 AS dead,
                  coalesce(s.n_dead_tup::float8 / nullif(s.n_live_tup + s.n_dead_tup, 0), 0) AS ratio,
                  s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze
             FROM pg_stat_user_tables s
            WHERE $1::text[] IS NULL OR s.schemaname = ANY ($1)
         ), ranked AS (
           SELECT t.*, (row_number() OVER (ORDER BY total DESC, schema, "table"))::int AS by_size,
                  CASE WHEN dead >= $3 AND ratio >= $4
                       THEN (row_number() OVER (ORDER BY dead >= $3 AND ratio >= $4 DESC, ratio DESC, dead DESC))::int END AS by_dead
             FROM t
         )
         SELECT * FROM ranked WHERE by_size <= $2 OR by_dead <= ${MAX_ROWS} ORDER BY by_size`,
          [p.schemas ?? null, p.limit, p.minDeadRows, p.warnDeadRatio],
          { signal: ctx.signal },
        ));
      } catch (e) {
        if (!isLockWait(e)) throw e;
        return { lockWait: errorText(e), tables: [] };
      }
      return {
        lockWait: null,
        tables: rows.map((r) => ({
          schema: r.schema,
          table: r.table,
          totalBytes: r.total,
          tableBytes: r.heap,
          indexBytes: r.indexes,
          liveRows: r.live,
          deadRows: r.dead,
          ratio: r.ratio,
          lastVacuum: isoOf(r.last_vacuum),
          lastAutovacuum: isoOf(r.last_autovacuum),
          lastAnalyze: isoOf(r.last_analyze),
          lastAutoanalyze: isoOf(r.last_autoanalyze),
          bySize: r.by_size,
          byDead: r.by_dead,
        })),
      };
    },
    judge(seen) {
      if (seen.lockWait !== null) {
        return finding('unknown', lockWaitText('Table sizes', seen.lockWait), { largest: [], bloated: [] });
      }
      const view = (r: TableRead): TableSize => ({
        schema: r.schema,
        table: r.table,
        totalBytes: r.totalBytes,
        tableBytes: r.tableBytes,
        indexBytes: r.indexBytes,
        liveRows: r.liveRows,
        deadRows: r.deadRows,
        deadRatio: Math.round(r.ratio * 1000) / 1000,
        lastVacuum: r.lastVacuum,
        lastAutovacuum: r.lastAutovacuum,
        lastAnalyze: r.lastAnalyze,
        lastAutoanalyze: r.lastAutoanalyze,
      });
      // The read ranked by its own minDeadRows and warnDeadRatio: judged again by these (the same, or stricter).
      const needsVacuum = (r: TableRead): r is TableRead & { byDead: number } =>
        r.byDead !== null && r.deadRows >= p.minDeadRows && r.ratio >= p.warnDeadRatio;
      const largest = seen.tables.filter((r) => r.bySize <= p.limit).map(view);
      const bloated = seen.tables
        .filter(needsVacuum)
        .sort((a, b) => a.byDead - b.byDead)
        .map(view);
      const failing = bloated.filter((t) => t.deadRatio >= p.failDeadRatio);
      const status: FindingStatus = failing.length ? 'fail' : bloated.length ? 'warn' : 'ok';
      const name = (t: TableSize) => `${t.schema}.${t.table}`;
      const top = largest[0];
      const head = top
        ? `Largest table ${name(top)} ${formatBytes(top.totalBytes)} (${plural(largest.length, 'table')} listed)`
        : 'No user tables';
      const summary =
        status === 'ok'
          ? `${head}; no table with ${percent(p.warnDeadRatio)}+ dead rows`
          : `${plural(bloated.length, 'table')} ${bloated.length === 1 ? 'needs' : 'need'} VACUUM: ${listSome(
              bloated.map((t) => `${name(t)} ${percent(t.deadRatio)} dead (${t.deadRows} rows)`),
            )}`;
      return finding(status, summary, { largest, bloated }, evidenceOf(largest, bloated));
    },
  });
}

function evidenceOf(largest: TableSize[], bloated: TableSize[]): Evidence[] {
  const columns = [
    'TABLE',
    'TOTAL',
    'TABLE',
    'INDEXES',
    'LIVE ROWS',
    'DEAD ROWS',
    'DEAD %',
    'LAST VACUUM',
    'LAST ANALYZE',
  ];
  const row = (t: TableSize) => [
    `${t.schema}.${t.table}`,
    formatBytes(t.totalBytes),
    formatBytes(t.tableBytes),
    formatBytes(t.indexBytes),
    t.liveRows,
    t.deadRows,
    percent(t.deadRatio),
    latest(t.lastVacuum, t.lastAutovacuum),
    latest(t.lastAnalyze, t.lastAutoanalyze),
  ];
  const evidence: Evidence[] = [{ kind: 'table', title: 'Largest tables', columns, rows: largest.map(row) }];
  if (bloated.length)
    evidence.push({ kind: 'table', title: 'Tables that need VACUUM', columns, rows: bloated.map(row) });
  return evidence;
}

/** The later of a manual and an automatic run, marked `(auto)` when it was autovacuum's. */
function latest(manual: string | null, auto: string | null): string | null {
  if (manual === null) return auto === null ? 'never' : `${auto} (auto)`;
  if (auto === null || manual >= auto) return manual;
  return `${auto} (auto)`;
}
