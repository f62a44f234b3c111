import { z } from 'zod';
import { toMillis } from '../../core/duration';
import { NonRetriableError } from '../../core/errors';
import { finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { type Action, defineAction } from '../../core/step';
import type { PostgresDatabase, Session } from '../database';
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

/** Options of {@link reindexConcurrently}: exactly one of `index` and `table`. */
export const ReindexOptions = z
  .object({
    /** One index to rebuild. */
    index: RelationName.optional(),
    /** A table (or materialized view) whose indexes to rebuild. */
    table: RelationName.optional(),
    /** `lock_timeout` for the rebuild's lock waits. @default "30s" */
    lockTimeout: LockTimeout,
  })
  .refine((o) => (o.index === undefined) !== (o.table === undefined), {
    message: 'give exactly one of index and table',
    path: ['index'],
  });
export type ReindexOptions = z.output<typeof ReindexOptions>;
export type ReindexOptionsInput = z.input<typeof ReindexOptions>;

/** One index as planned: its storage (`relfilenode`) at plan time, which a rebuild replaces. */
export type PlannedIndex = { schema: string; name: string; relfilenode: string };

/** What a reindex plan fixes. */
export type ReindexParams = {
  scope: 'index' | 'table';
  schema: string;
  name: string;
  indexes: PlannedIndex[];
  lockTimeoutMs: number;
};

type IndexInfo = {
  schema: string;
  name: string;
  relfilenode: string;
  valid: boolean;
  ready: boolean;
  exclusion: boolean;
  size: string;
};

const KIND = 'pg.reindex-concurrently';

/**
 * `REINDEX INDEX|TABLE … CONCURRENTLY` (PostgreSQL 12+): rebuilds bloated or corrupt indexes without
 * blocking reads or writes, on a dedicated connection with no statement timeout and `lock_timeout` set.
 *
 * - **plan** checks the index or table in the catalog and lists the indexes to rebuild (`index <name>`:
 *   `{ relfilenode, valid }` → `"rebuilt"`). For a table, PostgreSQL skips invalid indexes and those of
 *   exclusion constraints; the plan leaves them out and says so. An exclusion index named directly is refused.
 * - **apply** runs the statement. A failed rebuild can leave an INVALID `<name>_ccnew` index behind;
 *   PostgreSQL then needs it dropped by hand (`DROP INDEX CONCURRENTLY`), which the error says.
 * - **verify**: every planned index exists, is valid and ready, and has new storage (its `relfilenode`
 *   changed). After a crash the engine cannot tell a rebuild happened from the plan alone, so it may rebuild
 *   again: harmless, only slow.
 * - **revert**: none (the old index storage is gone).
 *
 * Risk `medium` (I/O heavy), not destructive.
 */
export function reindexConcurrently(
  db: PostgresDatabase,
  options: ReindexOptionsInput,
): Action<ReindexParams, null> {
  const o = parseOptions(KIND, ReindexOptions, options);
  const scope: 'index' | 'table' = o.index ? 'index' : 'table';
  const relation = (o.index ?? o.table) as QualifiedName;
  const target = relationRef(db, relation);
  const label = `${scope} ${displayRelation(relation)}`;
  const kinds = scope === 'index' ? ['i'] : ['r', 'm'];

  return defineAction<ReindexParams, null>({
    kind: KIND,
    target,
    risk: 'medium',
    destructive: false,
    description: `Rebuild the indexes of ${label} without blocking (REINDEX CONCURRENTLY)`,

    async plan(ctx) {
      const found = await requireRelation(db, relation, kinds, ctx.signal);
      const all = await readIndexes(db, scope, found.oid, ctx.signal);
      const skipped = scope === 'table' ? all.filter((i) => !i.valid || i.exclusion) : [];
      const rebuilt = all.filter((i) => !skipped.includes(i));
      if (scope === 'index' && rebuilt[0]?.exclusion) {
        throw new NonRetriableError(
          `Index ${displayRelation(relation)} belongs to an exclusion constraint, which PostgreSQL cannot rebuild concurrently. Use a plain REINDEX in a maintenance window.`,
          { code: 'PG_NOT_SUPPORTED' },
        );
      }
      const note = skipped.length
        ? `; skipped (PostgreSQL does not rebuild them concurrently): ${skipped
            .map(
              (i) =>
                `${i.name} (${i.exclusion ? 'exclusion constraint' : 'INVALID: drop it or rebuild it by name'})`,
            )
            .join(', ')}`
        : '';
      return {
        summary:
          rebuilt.length === 0
            ? `${label} has no index to rebuild concurrently${note}`
            : `Rebuild ${rebuilt.length} index${rebuilt.length === 1 ? '' : 'es'} of ${label} concurrently: ${rebuilt
                .map((i) => `${i.name} (${i.size}${i.valid ? '' : ', INVALID'})`)
                .join(', ')}${note}`,
        changes: rebuilt.map((i) => ({
          target,
          field: `index ${i.schema}.${i.name}`,
          before: { relfilenode: i.relfilenode, valid: i.valid },
          after: 'rebuilt',
        })),
        params: {
          scope,
          schema: relation.schema,
          name: relation.name,
          indexes: rebuilt.map((i) => ({ schema: i.schema, name: i.name, relfilenode: i.relfilenode })),
          lockTimeoutMs: toMillis(o.lockTimeout),
        },
      };
    },

    async apply(ctx, plan) {
      await onMaintenanceSession(
        db,
        relation,
        kinds,
        plan.params.lockTimeoutMs,
        ctx.signal,
        async (session) => {
          try {
            await session.query(
              `REINDEX ${scope === 'index' ? 'INDEX' : 'TABLE'} CONCURRENTLY ${quoteRelation(relation)}`,
              [],
              { signal: ctx.signal, statementTimeoutMs: 0 },
            );
          } catch (e) {
            const leftovers = await ccnewLeftovers(session, plan.params.indexes, ctx.signal).catch(() => []);
            if (leftovers.length > 0 && e instanceof Error) {
              e.message += `. The failed rebuild left INVALID indexes ${leftovers.join(', ')}: drop them with DROP INDEX CONCURRENTLY before trying again.`;
            }
            throw e;
          }
          ctx.log(`rebuilt ${plan.params.indexes.length} index(es) of ${label}`);
        },
      );
      return null;
    },

    async verify(ctx, applied) {
      const planned = applied.plan.params.indexes;
      const { rows } = await db.query<{ name: string; relfilenode: string; valid: boolean; ready: boolean }>(
        `SELECT p.name, c.relfilenode::int8::text AS relfilenode, i.indisvalid AS valid, i.indisready AS ready
           FROM unnest($1::text[], $2::text[]) AS p(schema, name)
           JOIN pg_catalog.pg_namespace n ON n.nspname = p.schema
           JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = p.name
           JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid`,
        [planned.map((p) => p.schema), planned.map((p) => p.name)],
        { signal: ctx.signal },
      );
      const problems: string[] = [];
      for (const p of planned) {
        const now = rows.find((r) => r.name === p.name);
        if (!now) problems.push(`${p.name} is gone`);
        else if (!now.valid || !now.ready) problems.push(`${p.name} is not valid and ready`);
        else if (now.relfilenode === p.relfilenode) problems.push(`${p.name} was not rebuilt (same storage)`);
      }
      const data = { indexes: rows.map((r) => ({ ...r })) };
      return problems.length
        ? finding('fail', `Reindex of ${label}: ${problems.join('; ')}`, data)
        : finding('ok', `${planned.length} index(es) of ${label} rebuilt, valid and ready`, data);
    },
  });
}

async function readIndexes(
  db: PostgresDatabase,
  scope: 'index' | 'table',
  oid: string,
  signal: AbortSignal,
): Promise<IndexInfo[]> {
  const { rows } = await db.query<IndexInfo>(
    `SELECT n.nspname AS schema, c.relname AS name, c.relfilenode::int8::text AS relfilenode,
            i.indisvalid AS valid, i.indisready AS ready, i.indisexclusion AS exclusion,
            pg_catalog.pg_size_pretty(pg_catalog.pg_relation_size(c.oid)) AS size
       FROM pg_catalog.pg_index i
       JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE ${scope === 'index' ? 'i.indexrelid' : 'i.indrelid'} = $1::oid
      ORDER BY c.relname`,
    [oid],
    { signal },
  );
  return rows;
}

/** INVALID `<name>_ccnew…` indexes next to the planned ones: what a failed REINDEX CONCURRENTLY leaves. */
async function ccnewLeftovers(
  session: Session,
  planned: PlannedIndex[],
  signal: AbortSignal,
): Promise<string[]> {
  const { rows } = await session.query<{ name: string }>(
    `SELECT n.nspname || '.' || c.relname AS name
       FROM unnest($1::text[], $2::text[]) AS p(schema, name)
       JOIN pg_catalog.pg_namespace n ON n.nspname = p.schema
       JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND left(c.relname, length(p.name) + 6) = p.name || '_ccnew'
       JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid AND NOT i.indisvalid`,
    [planned.map((p) => p.schema), planned.map((p) => p.name)],
    { signal },
  );
  return rows.map((r) => r.name);
}
