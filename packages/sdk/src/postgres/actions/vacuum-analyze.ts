import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { sleep } from '../../core/sleep';
import { type Action, defineAction } from '../../core/step';
import type { PostgresDatabase } from '../database';
import {
  displayRelation,
  LockTimeout,
  onMaintenanceSession,
  type QualifiedName,
  quoteRelation,
  RelationName,
  relationRef,
  requireRelation,
  utcText,
} from './relations';

/** Options of {@link vacuumAnalyze}. */
export const VacuumAnalyzeOptions = z
  .object({
    /** The table (or materialized view) to vacuum and analyze. */
    table: RelationName,
    /**
     * `VACUUM FULL`: rewrites the table to return space to the OS, under an ACCESS EXCLUSIVE lock (no reads,
     * no writes) for the whole rewrite, and needs free disk for a full copy. Requires `allowFull`. @default false
     */
    full: z.boolean().default(false),
    /** Says you mean `full` and its exclusive lock. @default false */
    allowFull: z.boolean().default(false),
    /** `lock_timeout` while waiting for the table's lock. @default "30s" */
    lockTimeout: LockTimeout,
    /** How long verify waits for the statistics to show the new vacuum and analyze. @default "10s" */
    verifyTimeout: Duration.default('10s'),
  })
  .refine((o) => !o.full || o.allowFull, {
    message:
      'VACUUM FULL locks the table exclusively (no reads or writes) while it rewrites it: set allowFull: true to mean it, or leave full off',
    path: ['full'],
  });
export type VacuumAnalyzeOptions = z.output<typeof VacuumAnalyzeOptions>;
export type VacuumAnalyzeOptionsInput = z.input<typeof VacuumAnalyzeOptions>;

/** What a vacuum plan fixes: the statistics it must see advance. */
export type VacuumAnalyzeParams = {
  schema: string;
  name: string;
  full: boolean;
  /** `last_vacuum` at plan time (UTC, microseconds), `null` for never. */
  lastVacuum: string | null;
  lastAnalyze: string | null;
  /** The table's storage at plan time: VACUUM FULL replaces it (and does not set `last_vacuum`). */
  relfilenode: string;
  lockTimeoutMs: number;
  verifyTimeoutMs: number;
};

type Stats = {
  last_vacuum: string | null;
  last_analyze: string | null;
  n_live_tup: string;
  n_dead_tup: string;
  relfilenode: string;
};

const KIND = 'pg.vacuum-analyze';

/**
 * `VACUUM (ANALYZE)` of one table, on a dedicated connection (PostgreSQL refuses VACUUM in a transaction
 * block) with no statement timeout and `lock_timeout` set.
 *
 * - **plan** checks the table in the catalog and reads `pg_stat_user_tables`: the changes are `last_vacuum`
 *   and `last_analyze` (→ `"advanced"`), or, for FULL, the table's storage (→ `"rewritten"`); the summary has
 *   live and dead rows.
 * - **verify** waits until the statistics show it: `last_vacuum` and `last_analyze` later than planned (FULL
 *   does not set `last_vacuum`, so there the table's `relfilenode` must have changed instead).
 * - **revert**: none (nothing to undo).
 *
 * Plain VACUUM is risk `low`, not destructive: it takes a lock that lets reads and writes go on. FULL is
 * risk `high` and counted destructive, so it needs approval: it blocks every query on the table until the
 * rewrite ends; and it is refused unless `allowFull` is set.
 */
export function vacuumAnalyze(
  db: PostgresDatabase,
  options: VacuumAnalyzeOptionsInput,
): Action<VacuumAnalyzeParams, null> {
  const o = parseOptions(KIND, VacuumAnalyzeOptions, options);
  const table: QualifiedName = o.table;
  const target = relationRef(db, table);
  const label = displayRelation(table);
  const statement = `VACUUM (${o.full ? 'FULL, ' : ''}ANALYZE) ${quoteRelation(table)}`;

  return defineAction<VacuumAnalyzeParams, null>({
    kind: KIND,
    target,
    risk: o.full ? 'high' : 'low',
    destructive: o.full,
    description: o.full
      ? `VACUUM FULL ANALYZE ${label}: rewrites it under an exclusive lock`
      : `VACUUM ANALYZE ${label}`,

    async plan(ctx) {
      const found = await requireRelation(db, table, ['r', 'm'], ctx.signal);
      const stats = await readStats(db, table, ctx.signal);
      const rows = stats ? `${stats.n_live_tup} live rows, ${stats.n_dead_tup} dead` : 'no statistics yet';
      return {
        summary: `${o.full ? 'VACUUM FULL ANALYZE (exclusive lock: no reads or writes until it ends)' : 'VACUUM ANALYZE'} ${label} (${rows}; last vacuum ${stats?.last_vacuum ?? 'never'}, last analyze ${stats?.last_analyze ?? 'never'})`,
        changes: o.full
          ? [
              { target, field: 'relfilenode', before: found.relfilenode, after: 'rewritten' },
              { target, field: 'last_analyze', before: stats?.last_analyze ?? null, after: 'advanced' },
            ]
          : [
              { target, field: 'last_vacuum', before: stats?.last_vacuum ?? null, after: 'advanced' },
              { target, field: 'last_analyze', before: stats?.last_analyze ?? null, after: 'advanced' },
            ],
        params: {
          schema: table.schema,
          name: table.name,
          full: o.full,
          lastVacuum: stats?.last_vacuum ?? null,
          lastAnalyze: stats?.last_analyze ?? null,
          relfilenode: found.relfilenode,
          lockTimeoutMs: toMillis(o.lockTimeout),
          verifyTimeoutMs: toMillis(o.verifyTimeout),
        },
      };
    },

    async apply(ctx, plan) {
      await onMaintenanceSession(
        db,
        table,
        ['r', 'm'],
        plan.params.lockTimeoutMs,
        ctx.signal,
        async (session) => {
          await session.query(statement, [], { signal: ctx.signal, statementTimeoutMs: 0 });
          ctx.log(`${statement} done`);
        },
      );
      return null;
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      const deadline = Date.now() + p.verifyTimeoutMs;
      let seen: { vacuumed: boolean; analyzed: boolean; rewritten: boolean } | undefined;
      // Statistics may reach the views a moment after the statement (before PostgreSQL 15 they go through
      // the statistics collector), so look again for a short while.
      for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
        const { rows } = await db.query<{ vacuumed: boolean; analyzed: boolean; rewritten: boolean }>(
          `SELECT coalesce(s.last_vacuum > coalesce($3::timestamptz, '-infinity'), false) AS vacuumed,
                  coalesce(s.last_analyze > coalesce($4::timestamptz, '-infinity'), false) AS analyzed,
                  c.relfilenode::int8::text <> $5 AS rewritten
             FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_catalog.pg_stat_user_tables s ON s.relid = c.oid
            WHERE n.nspname = $1 AND c.relname = $2`,
          [p.schema, p.name, p.lastVacuum, p.lastAnalyze, p.relfilenode],
          { signal: ctx.signal },
        );
        seen = rows[0];
        const done = seen?.analyzed && (p.full ? seen.rewritten : seen.vacuumed);
        const left = deadline - Date.now();
        if (!seen || done || left <= 0) break;
        await sleep(Math.min(delay, left), ctx.signal);
      }
      if (!seen) return finding('fail', `${label} no longer exists`, null);
      const stats = await readStats(db, table, ctx.signal);
      const data = {
        ...seen,
        lastVacuum: stats?.last_vacuum ?? null,
        lastAnalyze: stats?.last_analyze ?? null,
      };
      const missing = [
        ...(p.full
          ? seen.rewritten
            ? []
            : ['the table was not rewritten']
          : seen.vacuumed
            ? []
            : ['last_vacuum did not advance']),
        ...(seen.analyzed ? [] : ['last_analyze did not advance']),
      ];
      return missing.length
        ? finding('fail', `${label}: ${missing.join(', ')} within ${formatMillis(p.verifyTimeoutMs)}`, data)
        : finding(
            'ok',
            `${label} ${p.full ? 'rewritten' : 'vacuumed'} and analyzed (last vacuum ${data.lastVacuum ?? 'n/a'}, last analyze ${data.lastAnalyze})`,
            data,
          );
    },
  });
}

async function readStats(
  db: PostgresDatabase,
  table: QualifiedName,
  signal: AbortSignal,
): Promise<Stats | null> {
  const { rows } = await db.query<Stats>(
    `SELECT ${utcText('s.last_vacuum')} AS last_vacuum, ${utcText('s.last_analyze')} AS last_analyze,
            s.n_live_tup::text AS n_live_tup, s.n_dead_tup::text AS n_dead_tup, c.relfilenode::int8::text AS relfilenode
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_catalog.pg_stat_user_tables s ON s.relid = c.oid
      WHERE n.nspname = $1 AND c.relname = $2`,
    [table.schema, table.name],
    { signal },
  );
  return rows[0] ?? null;
}
