import { z } from 'zod';
import { type Evidence, type FindingStatus, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import type { PostgresDatabase } from '../database';
import { Size, toBytes } from './options';
import { formatBytes, listSome, plural } from './wording';

/** Options of {@link databaseSizes}. */
export const DatabaseSizesOptions = z
  .object({
    /** A database at least this large is a `warn`. @default none (sizes are reported, not judged) */
    warnAbove: Size.optional(),
    /** A database at least this large is a `fail`. @default none */
    failAbove: Size.optional(),
    /** Include `template0`/`template1`. @default false */
    includeTemplates: z.boolean().default(false),
  })
  .refine(
    (p) =>
      p.warnAbove === undefined || p.failAbove === undefined || toBytes(p.warnAbove) <= toBytes(p.failAbove),
    {
      message: 'warnAbove must not exceed failAbove',
      path: ['warnAbove'],
    },
  );
export type DatabaseSizesOptions = z.output<typeof DatabaseSizesOptions>;
export type DatabaseSizesOptionsInput = z.input<typeof DatabaseSizesOptions>;

/** One database of the server. */
export type DatabaseSize = {
  name: string;
  /** `pg_database_size()`; `null` when we may not connect to it (no CONNECT privilege). */
  bytes: number | null;
  /** Client connections to it now. */
  connections: number;
  allowsConnections: boolean;
};

/** What {@link databaseSizes} found. */
export type DatabaseSizesData = {
  /** Largest first. */
  databases: DatabaseSize[];
  totalBytes: number;
};

/**
 * What {@link databaseSizes} read: every database with its size and connections, largest first. Replaying
 * it with other `warnAbove` / `failAbove` judges the same sizes again.
 */
export type DatabaseSizesObservation = { databases: DatabaseSize[] };

const KIND = 'pg.database-sizes';

/**
 * The manual's "check database size" (Runbook 5): `pg_database_size()` of every database, largest first,
 * with its current connections. The manual gives no size limit, so sizes are only judged against
 * `warnAbove` / `failAbove` when given (`ok` otherwise); disk space itself is not visible from SQL.
 *
 * Replayable: `read` measures ({@link DatabaseSizesObservation}), `judge` applies `warnAbove` and `failAbove`.
 */
export function databaseSizes(
  db: PostgresDatabase,
  options: DatabaseSizesOptionsInput = {},
): ReplayableCheck<DatabaseSizesData, DatabaseSizesObservation> {
  const p = parseOptions(KIND, DatabaseSizesOptions, options);
  const warnBytes = p.warnAbove === undefined ? Number.POSITIVE_INFINITY : toBytes(p.warnAbove);
  const failBytes = p.failAbove === undefined ? Number.POSITIVE_INFINITY : toBytes(p.failAbove);
  return defineCheck({
    kind: KIND,
    description: `Size of each database on ${db.display}`,
    async read(ctx): Promise<DatabaseSizesObservation> {
      const { rows } = await db.query<{
        name: string;
        bytes: number | null;
        connections: number;
        allows: boolean;
      }>(
        `SELECT d.datname AS name,
                CASE WHEN has_database_privilege(d.oid, 'CONNECT')
                     THEN pg_database_size(d.oid)::float8 END AS bytes,
                (SELECT count(*)::int FROM pg_stat_activity a
                  WHERE a.datid = d.oid AND a.backend_type = 'client backend') AS connections,
                d.datallowconn AS allows
           FROM pg_database d
          WHERE $1 OR NOT d.datistemplate
          ORDER BY 2 DESC NULLS LAST, 1`,
        [p.includeTemplates],
        { signal: ctx.signal },
      );
      return {
        databases: rows.map((r) => ({
          name: r.name,
          bytes: r.bytes,
          connections: r.connections,
          allowsConnections: r.allows,
        })),
      };
    },
    judge({ databases }) {
      const totalBytes = databases.reduce((sum, d) => sum + (d.bytes ?? 0), 0);
      const over = (limit: number) => databases.filter((d) => (d.bytes ?? 0) >= limit);
      const failing = over(failBytes);
      const warning = over(warnBytes);
      const status: FindingStatus = failing.length ? 'fail' : warning.length ? 'warn' : 'ok';
      const largest = databases[0];
      const head = `${plural(databases.length, 'database')}, ${formatBytes(totalBytes)} in all`;
      const flagged = status === 'fail' ? failing : warning;
      const limit = status === 'fail' ? failBytes : warnBytes;
      const summary =
        status === 'ok'
          ? `${head}${largest?.bytes != null ? `; largest ${largest.name} ${formatBytes(largest.bytes)}` : ''}`
          : `${head}; at or above ${formatBytes(limit)}: ${listSome(flagged.map((d) => `${d.name} ${formatBytes(d.bytes ?? 0)}`))}`;
      const evidence: Evidence[] = [
        {
          kind: 'table',
          title: 'Databases',
          columns: ['DATABASE', 'SIZE', 'BYTES', 'CONNECTIONS', 'ALLOWS CONNECTIONS'],
          rows: databases
            .slice(0, 50)
            .map((d) => [
              d.name,
              d.bytes === null ? null : formatBytes(d.bytes),
              d.bytes,
              d.connections,
              d.allowsConnections,
            ]),
        },
      ];
      return finding(status, summary, { databases, totalBytes }, evidence);
    },
  });
}
