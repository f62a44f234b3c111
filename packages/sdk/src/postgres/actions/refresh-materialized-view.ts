import { z } from 'zod';
import { toMillis } from '../../core/duration';
import { NonRetriableError } from '../../core/errors';
import { finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
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
} from './relations';

/** Options of {@link refreshMaterializedView}. */
export const RefreshMaterializedViewOptions = z.object({
  /** The materialized view. */
  view: RelationName,
  /**
   * Allow a plain (blocking) refresh when a concurrent one is impossible (no unique index covering all rows,
   * or the view was never populated). With `false` such a plan is refused. @default true
   */
  allowBlocking: z.boolean().default(true),
  /** `lock_timeout` while waiting for the view's lock. @default "30s" */
  lockTimeout: LockTimeout,
});
export type RefreshMaterializedViewOptions = z.output<typeof RefreshMaterializedViewOptions>;
export type RefreshMaterializedViewOptionsInput = z.input<typeof RefreshMaterializedViewOptions>;

/** What a refresh plan fixes. */
export type RefreshMaterializedViewParams = {
  schema: string;
  name: string;
  concurrently: boolean;
  /** The unique index that makes a concurrent refresh possible, `null` for none. */
  uniqueIndex: string | null;
  /** The view's storage at plan time: a plain refresh replaces it. */
  relfilenode: string;
  /** `xmin` of the view's `pg_class` row at plan time: every refresh writes a new version of that row. */
  catalogXmin: string;
  lockTimeoutMs: number;
};

const KIND = 'pg.refresh-materialized-view';

/**
 * `REFRESH MATERIALIZED VIEW [CONCURRENTLY]`, on a dedicated connection with no statement timeout and
 * `lock_timeout` set.
 *
 * - **plan** checks the view in the catalog. CONCURRENTLY (readers keep reading the old contents) when the
 *   view is populated and has a unique, valid index without a WHERE clause or expressions (what PostgreSQL
 *   requires: it covers every row); otherwise a plain refresh, and the plan says it blocks reads of the view
 *   until it ends (refused when `allowBlocking` is false).
 * - **verify**: the view is populated (`pg_class.relispopulated`), a refresh committed since the plan, and for
 *   a plain refresh it has new storage (`relfilenode` changed). "A refresh committed" is read from the view's
 *   `pg_class` row: every `REFRESH`, concurrent or not, writes a new version of it (it sets
 *   `relispopulated`, even to the same value), so its `xmin` differs from the plan's. VACUUM and ANALYZE
 *   update that row in place and do not count. The contents themselves are not compared (a concurrent
 *   refresh that found nothing to change leaves every row as it was): other changes to that catalog row
 *   (`ALTER MATERIALIZED VIEW`, `GRANT`) also give it a new `xmin`, so verify confirms "populated, and a
 *   refresh (or such a change) committed after the plan", and fails when nothing did.
 * - **revert**: none (the old contents are gone).
 *
 * Risk `medium`, not destructive.
 */
export function refreshMaterializedView(
  db: PostgresDatabase,
  options: RefreshMaterializedViewOptionsInput,
): Action<RefreshMaterializedViewParams, null> {
  const o = parseOptions(KIND, RefreshMaterializedViewOptions, options);
  const view: QualifiedName = o.view;
  const target = relationRef(db, view);
  const label = displayRelation(view);

  return defineAction<RefreshMaterializedViewParams, null>({
    kind: KIND,
    target,
    risk: 'medium',
    destructive: false,
    description: `Refresh materialized view ${label} (concurrently when it has a unique index)`,

    async plan(ctx) {
      const found = await requireRelation(db, view, ['m'], ctx.signal);
      const { rows } = await db.query<{
        populated: boolean;
        unique_index: string | null;
        catalog_xmin: string;
      }>(
        `SELECT c.relispopulated AS populated, c.xmin::text AS catalog_xmin,
                (SELECT ic.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
                  WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indisready
                    AND i.indpred IS NULL AND i.indexprs IS NULL
                  ORDER BY ic.relname LIMIT 1) AS unique_index
           FROM pg_catalog.pg_class c WHERE c.oid = $1::oid`,
        [found.oid],
        { signal: ctx.signal },
      );
      const populated = rows[0]?.populated ?? false;
      const uniqueIndex = rows[0]?.unique_index ?? null;
      const concurrently = populated && uniqueIndex !== null;
      const why = !uniqueIndex
        ? 'it has no unique index without WHERE clause or expressions'
        : 'it was never populated';
      if (!concurrently && !o.allowBlocking) {
        throw new NonRetriableError(
          `Materialized view ${label} cannot be refreshed concurrently (${why}), and allowBlocking is false. Add a unique index on its key columns, or allow a blocking refresh.`,
          { code: 'PG_REFRESH_WOULD_BLOCK' },
        );
      }
      return {
        summary: concurrently
          ? `Refresh materialized view ${label} CONCURRENTLY (readers keep the old contents; unique index ${uniqueIndex})`
          : `Refresh materialized view ${label} WITHOUT CONCURRENTLY, because ${why}: it blocks every read of the view until the refresh ends`,
        changes: [
          {
            target,
            field: 'contents',
            before: { populated },
            after: concurrently ? 'refreshed concurrently' : 'refreshed (blocking reads)',
          },
        ],
        params: {
          schema: view.schema,
          name: view.name,
          concurrently,
          uniqueIndex,
          relfilenode: found.relfilenode,
          catalogXmin: rows[0]?.catalog_xmin ?? '',
          lockTimeoutMs: toMillis(o.lockTimeout),
        },
      };
    },

    async apply(ctx, plan) {
      await onMaintenanceSession(db, view, ['m'], plan.params.lockTimeoutMs, ctx.signal, async (session) => {
        await session.query(
          `REFRESH MATERIALIZED VIEW ${plan.params.concurrently ? 'CONCURRENTLY ' : ''}${quoteRelation(view)}`,
          [],
          { signal: ctx.signal, statementTimeoutMs: 0 },
        );
        ctx.log(`refreshed ${label}${plan.params.concurrently ? ' concurrently' : ''}`);
      });
      return null;
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      const found = await requireRelation(db, view, ['m'], ctx.signal);
      const { rows } = await db.query<{ populated: boolean; catalog_xmin: string }>(
        'SELECT relispopulated AS populated, xmin::text AS catalog_xmin FROM pg_catalog.pg_class WHERE oid = $1::oid',
        [found.oid],
        { signal: ctx.signal },
      );
      const populated = rows[0]?.populated ?? false;
      const replaced = found.relfilenode !== p.relfilenode;
      // `populated` alone cannot fail a concurrent refresh (it is its precondition): a new version of the
      // view's catalog row since the plan is what shows that a refresh committed (see the JSDoc).
      const refreshed = rows[0]?.catalog_xmin !== p.catalogXmin;
      const data = { populated, relfilenode: found.relfilenode, replaced, refreshed };
      if (!populated) return finding('fail', `Materialized view ${label} is not populated`, data);
      if (!refreshed) {
        return finding(
          'fail',
          `Materialized view ${label} was not refreshed since the plan: its catalog row is the version the plan read (xmin ${p.catalogXmin})`,
          data,
        );
      }
      if (!p.concurrently && !replaced) {
        return finding(
          'fail',
          `Materialized view ${label} still has the storage it had before the refresh`,
          data,
        );
      }
      return finding(
        'ok',
        `Materialized view ${label} refreshed${p.concurrently ? ' concurrently' : ''} and populated`,
        data,
      );
    },
  });
}
