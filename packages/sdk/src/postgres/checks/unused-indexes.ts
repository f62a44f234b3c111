import { z } from 'zod';
import { type Evidence, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import type { PostgresDatabase } from '../database';
import { Size, toBytes } from './options';
import { formatBytes, hiddenNote, isoOf, listSome, MAX_ROWS, plural } from './wording';

/** Options of {@link unusedIndexes}. */
export const UnusedIndexesOptions = z.object({
  /** Smaller indexes are not worth reporting. @default "1MB" */
  minSize: Size.default('1MB'),
  /** Only indexes of these schemas. @default every schema */
  schemas: z.array(z.string().min(1)).min(1).optional(),
});
export type UnusedIndexesOptions = z.output<typeof UnusedIndexesOptions>;
export type UnusedIndexesOptionsInput = z.input<typeof UnusedIndexesOptions>;

/** An index no query has used since the statistics were reset. */
export type UnusedIndex = {
  schema: string;
  table: string;
  index: string;
  bytes: number;
  /** `pg_get_indexdef`, what a `CREATE INDEX` to restore it would say. */
  definition: string;
};

/** What {@link unusedIndexes} found. */
export type UnusedIndexesData = {
  /** Largest first (at most 50). */
  indexes: UnusedIndex[];
  /** All of them, before the cut. */
  count: number;
  totalBytes: number;
  /** When this database's statistics were last reset: "unused" means unused since then. */
  statsReset: string | null;
  minSizeBytes: number;
};

/**
 * What {@link unusedIndexes} read: the 50 largest unused indexes of at least the `minSize` it read with,
 * how many there were and their total size, and the statistics reset time. Replaying it with a larger
 * `minSize` judges them again; a smaller one cannot see indexes the recorded run did not read.
 */
export type UnusedIndexesObservation = {
  /** Largest first. */
  indexes: UnusedIndex[];
  count: number;
  totalBytes: number;
  statsReset: string | null;
  /** The `minSize` the indexes were read with, in bytes. */
  minSizeBytes: number;
};

const KIND = 'pg.unused-indexes';

/**
 * The manual's "check index usage" (Runbook 5, `pg_stat_user_indexes … idx_scan`), narrowed to what can
 * be acted on: indexes never scanned (`idx_scan = 0`) since the statistics reset, at least `minSize`, that
 * enforce nothing (not unique, not a primary key, not backing a constraint) and are valid (invalid ones are
 * {@link invalidIndexes}' business). Each costs write time and space for nothing.
 *
 * - `warn` when there is one: a candidate to drop, after checking that replicas (whose scans the primary
 *   does not count) and rare jobs (month-end reports) do not need it.
 * - `ok` otherwise.
 *
 * Replayable: `read` lists them ({@link UnusedIndexesObservation}), `judge` applies `minSize`.
 */
export function unusedIndexes(
  db: PostgresDatabase,
  options: UnusedIndexesOptionsInput = {},
): ReplayableCheck<UnusedIndexesData, UnusedIndexesObservation> {
  const p = parseOptions(KIND, UnusedIndexesOptions, options);
  const minBytes = toBytes(p.minSize);
  return defineCheck({
    kind: KIND,
    description: `Indexes never scanned, ${formatBytes(minBytes)} or larger, on ${db.display}`,
    async read(ctx): Promise<UnusedIndexesObservation> {
      const q = { signal: ctx.signal };
      const { rows } = await db.query<{
        schema: string;
        table: string;
        index: string;
        bytes: number;
        definition: string;
        count: number;
        total: number;
      }>(
        `SELECT s.schemaname AS schema, s.relname AS table, s.indexrelname AS index,
                pg_relation_size(s.indexrelid)::float8 AS bytes, pg_get_indexdef(s.indexrelid) AS definition,
                (count(*) OVER ())::int AS count, sum(pg_relation_size(s.indexrelid)) OVER ()::float8 AS total
           FROM pg_stat_user_indexes s
           JOIN pg_index i ON i.indexrelid = s.indexrelid
          WHERE s.idx_scan = 0
            AND NOT i.indisunique AND NOT i.indisprimary AND i.indisvalid
            AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)
            AND pg_relation_size(s.indexrelid) >= $1
            AND ($2::text[] IS NULL OR s.schemaname = ANY ($2))
          ORDER BY bytes DESC, schema, "table", index
          LIMIT ${MAX_ROWS}`,
        [minBytes, p.schemas ?? null],
        q,
      );
      const { rows: reset } = await db.query<{ reset: Date | null }>(
        'SELECT stats_reset AS reset FROM pg_stat_database WHERE datname = current_database()',
        [],
        q,
      );
      return {
        indexes: rows.map((r) => ({
          schema: r.schema,
          table: r.table,
          index: r.index,
          bytes: r.bytes,
          definition: r.definition,
        })),
        count: rows[0]?.count ?? 0,
        totalBytes: rows[0]?.total ?? 0,
        statsReset: isoOf(reset[0]?.reset ?? null),
        minSizeBytes: minBytes,
      };
    },
    judge(seen) {
      const counted = countAtLeast(seen, minBytes);
      const data: UnusedIndexesData = {
        indexes: counted.indexes,
        count: counted.count,
        totalBytes: counted.totalBytes,
        statsReset: seen.statsReset,
        minSizeBytes: minBytes,
      };
      const since = data.statsReset
        ? ` since ${data.statsReset.slice(0, 16).replace('T', ' ')} UTC`
        : ' since the statistics began';
      if (!data.count) {
        return finding('ok', `No unused index of ${formatBytes(minBytes)} or more${since}`, data);
      }
      const summary =
        `${counted.atLeast ? 'at least ' : ''}${plural(data.count, 'index', 'indexes')} never scanned${since} (${formatBytes(data.totalBytes)}): ` +
        `${listSome(data.indexes.map((i) => `${i.schema}.${i.index} on ${i.table} ${formatBytes(i.bytes)}`))}; ` +
        'check replicas before dropping';
      const evidence: Evidence[] = [
        {
          kind: 'table',
          title: 'Unused indexes',
          columns: ['SCHEMA', 'TABLE', 'INDEX', 'SIZE', 'DEFINITION'],
          rows: data.indexes.map((i) => [i.schema, i.table, i.index, formatBytes(i.bytes), i.definition]),
        },
      ];
      const hidden = hiddenNote(data.count, data.indexes.length);
      if (hidden) evidence.push({ kind: 'text', title: 'Not shown', text: hidden });
      return finding('warn', summary, data, evidence);
    },
  });
}

/**
 * The unused indexes of at least `minBytes` among those read, their count and size: as recorded when the
 * read's own `minSize` is not smaller (then "at least" when it is larger), else counted from the indexes
 * read, exactly when they tell (one of them is smaller, or they are all there were).
 */
function countAtLeast(
  seen: UnusedIndexesObservation,
  minBytes: number,
): { indexes: UnusedIndex[]; count: number; totalBytes: number; atLeast: boolean } {
  if (minBytes <= seen.minSizeBytes) {
    const { indexes, count, totalBytes } = seen;
    return { indexes, count, totalBytes, atLeast: minBytes < seen.minSizeBytes };
  }
  const indexes = seen.indexes.filter((i) => i.bytes >= minBytes);
  const totalBytes = indexes.reduce((sum, i) => sum + i.bytes, 0);
  const all = indexes.length < seen.indexes.length || seen.indexes.length === seen.count;
  return { indexes, count: indexes.length, totalBytes, atLeast: !all };
}
