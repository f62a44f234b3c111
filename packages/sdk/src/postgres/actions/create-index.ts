import { z } from 'zod';
import { toMillis } from '../../core/duration';
import { NonRetriableError, RunbookError } from '../../core/errors';
import { finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { type Action, defineAction, type StepContext } from '../../core/step';
import { isPostgresError, type PostgresDatabase, quoteIdent, type Session } from '../database';
import {
  displayRelation,
  Identifier,
  LockTimeout,
  type QualifiedName,
  quoteLiteral,
  quoteRelation,
  RelationName,
  relationRef,
  requireRelation,
  setLockTimeout,
} from './relations';

/** A key column: its name, or `{ name, order, nulls }` (ordering only for btree). */
export const IndexColumn = z.union([
  Identifier,
  z.object({
    name: Identifier,
    /** @default "asc" */
    order: z.enum(['asc', 'desc']).default('asc'),
    /** @default PostgreSQL's: last for asc, first for desc */
    nulls: z.enum(['first', 'last']).optional(),
  }),
]);

/**
 * One condition of a partial index's predicate, all ANDed: a column compared with a constant. Raw SQL is not
 * accepted, so the predicate can be checked (the column exists) and quoted (the value is a literal).
 */
export const IndexCondition = z.union([
  z.object({
    column: Identifier,
    op: z.enum(['=', '<>', '<', '<=', '>', '>=']),
    value: z.union([z.string(), z.number().finite(), z.boolean()]),
  }),
  z.object({ column: Identifier, op: z.enum(['is null', 'is not null']) }),
]);
export type IndexCondition = z.output<typeof IndexCondition>;

/** Options of {@link createIndexConcurrently}. */
export const CreateIndexOptions = z
  .object({
    /** The table to index. */
    table: RelationName,
    /** Key columns, in order. */
    columns: z.array(IndexColumn).min(1).max(32),
    /** Index name (created in the table's schema). @default `<table>_<columns>_idx`, cut to 63 bytes */
    name: Identifier.optional(),
    /** @default false */
    unique: z.boolean().default(false),
    /** Access method. @default "btree" */
    method: z.enum(['btree', 'hash', 'gist', 'spgist', 'gin', 'brin']).default('btree'),
    /** A partial index: only rows meeting every condition. @default all rows */
    where: z.array(IndexCondition).min(1).optional(),
    /** `lock_timeout` for the build's lock waits. @default "30s" */
    lockTimeout: LockTimeout,
  })
  .refine((o) => !o.unique || o.method === 'btree', {
    message: 'only btree indexes can be unique',
    path: ['unique'],
  })
  .refine((o) => o.method === 'btree' || o.columns.every((c) => typeof c === 'string'), {
    message: 'ordering (order, nulls) is only supported by btree indexes',
    path: ['columns'],
  });
export type CreateIndexOptions = z.output<typeof CreateIndexOptions>;
export type CreateIndexOptionsInput = z.input<typeof CreateIndexOptions>;

/** What a create-index plan fixes. */
export type CreateIndexParams = {
  schema: string;
  table: string;
  index: string;
  /** The statement apply runs (shown to approvers; apply rebuilds it from the same options). */
  ddl: string;
  /** An INVALID index of this name (a failed earlier build) to drop first, by oid; `null` when there is none. */
  dropInvalidOid: string | null;
  lockTimeoutMs: number;
};

export type CreateIndexApplied = { oid: string | null; droppedInvalid: boolean };

const KIND = 'pg.create-index-concurrently';

/**
 * `CREATE [UNIQUE] INDEX CONCURRENTLY`: builds an index without blocking writes, on a dedicated connection
 * with no statement timeout (a long maintenance statement) and `lock_timeout` bounding its lock waits.
 *
 * - **plan** checks the table and every column (and predicate column) in the catalog and shows the DDL.
 *   When a valid index of that name already exists on the table with the same definition, there is nothing
 *   to do; another definition (columns, order, nulls, method, uniqueness, WHERE, INCLUDE, opclass, storage
 *   parameters), another table or a non-index of that name is refused. "The same definition" is decided by
 *   PostgreSQL: the planned index is built on an empty temporary copy of the table (`LIKE`, dropped at commit;
 *   needs the TEMP privilege, which PUBLIC has by default) and both `pg_get_indexdef` texts are compared, less
 *   the `CREATE … ON <table>` part. An INVALID index of
 *   that name (left by a failed build) is dropped first with `DROP INDEX CONCURRENTLY`, and the plan says so;
 *   one still being built by another session is refused.
 * - **apply** drops the planned leftover (only if it is still the same, still invalid index), then builds;
 *   an index of that name that appeared since the plan is someone else's, and the apply refuses. When the
 *   build fails (duplicates for a unique index, lock timeout), the INVALID index it left behind is dropped
 *   again and the error says so — only one that appeared during our own statement, never another's.
 * - **verify** reads `pg_index` (`indisvalid`, `indisready`) and the definition, which must be the planned one.
 * - **revert** drops the index with `DROP INDEX CONCURRENTLY` (a dropped leftover is not brought back), only
 *   while it is the one the apply built (same oid; after a crash, the planned definition).
 *
 * Partial indexes take `where` as structured conditions, not SQL: they are checked against the catalog and
 * quoted as literals, so nothing a caller passes is ever interpreted as SQL. Risk `medium` (a long, I/O
 * heavy build; a unique index makes later duplicate inserts fail), not destructive.
 */
export function createIndexConcurrently(
  db: PostgresDatabase,
  options: CreateIndexOptionsInput,
): Action<CreateIndexParams, CreateIndexApplied> {
  const o = parseOptions(KIND, CreateIndexOptions, options);
  const table: QualifiedName = o.table;
  const columns = o.columns.map((c) => (typeof c === 'string' ? { name: c, order: 'asc' as const } : c));
  const indexName =
    o.name ??
    defaultIndexName(
      table.name,
      columns.map((c) => c.name),
    );
  const index: QualifiedName = { schema: table.schema, name: indexName };
  const ddl = buildDdl(o, quoteRelation(table), indexName, columns, true);
  // The same index on the temporary copy of the table that matchesPlanned builds.
  const planned = buildDdl(o, `pg_temp.${quoteIdent(table.name)}`, indexName, columns, false);
  const target = relationRef(db, table);
  const label = displayRelation(index);

  return defineAction<CreateIndexParams, CreateIndexApplied>({
    kind: KIND,
    target,
    risk: 'medium',
    destructive: false,
    description: `Build index ${label} on ${displayRelation(table)} without blocking writes (CREATE INDEX CONCURRENTLY)`,

    async plan(ctx) {
      const relation = await requireRelation(db, table, ['r', 'm'], ctx.signal);
      await requireColumns(
        db,
        relation.oid,
        table,
        [...columns.map((c) => c.name), ...(o.where ?? []).map((w) => w.column)],
        ctx.signal,
      );
      const existing = await readIndex(db, index, ctx.signal);
      const params = (dropInvalidOid: string | null): CreateIndexParams => ({
        schema: table.schema,
        table: table.name,
        index: indexName,
        ddl,
        dropInvalidOid,
        lockTimeoutMs: toMillis(o.lockTimeout),
      });
      const after = { definition: ddl, valid: true };
      if (!existing) {
        return {
          summary: `Build index ${label}: ${ddl}`,
          changes: [{ target, field: `index ${indexName}`, before: null, after }],
          params: params(null),
        };
      }
      if (existing.relkind !== 'i' || existing.table_oid !== relation.oid) {
        throw new NonRetriableError(
          `The name ${label} is taken by ${existing.relkind === 'i' ? `an index on another table (${existing.definition})` : 'another relation that is not an index'}. Choose another \`name\` for the index.`,
          { code: 'PG_NAME_TAKEN', details: { schema: index.schema, name: index.name } },
        );
      }
      if (existing.building_pid !== null) {
        throw new NonRetriableError(
          `Index ${label} is being built right now by backend ${existing.building_pid}. Wait for that build to end (pg_stat_progress_create_index), then plan again.`,
          { code: 'PG_INDEX_BUILDING', details: { pid: existing.building_pid } },
        );
      }
      if (existing.valid && existing.ready) {
        // The whole definition, not only columns, method and uniqueness: an index with another WHERE, order
        // or nulls is not the planned one, and taking it as done would leave the planned index unbuilt.
        const same = await matchesPlanned(db, table, index, planned, ctx.signal);
        if (!same) {
          throw new NonRetriableError(
            `An index named ${label} already exists with another definition: ${existing.definition}. Choose another \`name\`, or drop that index first.`,
            { code: 'PG_NAME_TAKEN', details: { schema: index.schema, name: index.name } },
          );
        }
        return {
          summary: `Index ${label} already exists and is valid: ${existing.definition}`,
          changes: [],
          params: params(null),
        };
      }
      return {
        summary: `Drop the INVALID index ${label} left by a failed build (DROP INDEX CONCURRENTLY), then build it again: ${ddl}`,
        changes: [
          {
            target,
            field: `index ${indexName}`,
            before: { definition: existing.definition, valid: false },
            after,
          },
        ],
        params: params(existing.oid),
      };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      return db.dedicated(
        async (session) => {
          await setLockTimeout(session, p.lockTimeoutMs, ctx.signal);
          const relation = await requireRelation(session, table, ['r', 'm'], ctx.signal);
          let droppedInvalid = false;
          if (p.dropInvalidOid !== null) {
            const leftover = await readIndex(session, index, ctx.signal);
            if (leftover && (leftover.oid !== p.dropInvalidOid || leftover.valid)) {
              throw new NonRetriableError(
                `Index ${label} changed since the plan (it was to drop the INVALID index with oid ${p.dropInvalidOid}); nothing was done. Plan again.`,
                { code: 'PG_PLAN_DRIFT' },
              );
            }
            if (leftover) {
              await dropConcurrently(session, index, ctx);
              droppedInvalid = true;
              ctx.log(`dropped the INVALID index ${label} left by a failed build`);
            }
          }
          // No relation of that name may exist now: one that appeared since the plan is someone else's (a
          // build of theirs, maybe still running). Having checked, we also know that an index of that name
          // after a failed CREATE can only have appeared during our own statement (see failedBuild).
          const before = await readIndex(session, index, ctx.signal);
          if (before) {
            throw new NonRetriableError(
              `${before.relkind === 'i' ? `An index ${label} (${before.valid ? 'valid' : 'INVALID'}: ${before.definition})` : `A relation named ${label}`} appeared since the plan, which saw ${p.dropInvalidOid === null ? 'none' : `only the INVALID index with oid ${p.dropInvalidOid}`}; it is not ours to build over or drop. Nothing was done. Plan again.`,
              { code: 'PG_PLAN_DRIFT', details: { oid: before.oid } },
            );
          }
          try {
            await session.query(ddl, [], { signal: ctx.signal, statementTimeoutMs: 0 });
          } catch (e) {
            throw await failedBuild(session, index, relation.oid, e, ctx);
          }
          const built = await readIndex(session, index, ctx.signal);
          ctx.log(`built index ${label}`, { valid: built?.valid ?? null });
          return { oid: built?.oid ?? null, droppedInvalid };
        },
        { signal: ctx.signal },
      );
    },

    async verify(ctx) {
      const now = await readIndex(db, index, ctx.signal);
      if (!now) return finding('fail', `Index ${label} does not exist`, { valid: false, ready: false });
      const data = { valid: now.valid, ready: now.ready, definition: now.definition };
      if (now.valid && now.ready && !(await matchesPlanned(db, table, index, planned, ctx.signal))) {
        return finding(
          'fail',
          `Index ${label} is valid, but has another definition than planned: ${now.definition} (planned: ${ddl})`,
          data,
        );
      }
      return now.valid && now.ready
        ? finding('ok', `Index ${label} is valid and ready: ${now.definition}`, data)
        : finding(
            'fail',
            `Index ${label} is ${now.valid ? '' : 'not valid'}${!now.valid && !now.ready ? ' and ' : ''}${now.ready ? '' : 'not ready'}`,
            data,
          );
    },

    async revert(ctx, applied) {
      if (applied.plan.changes.length === 0) return;
      await db.dedicated(
        async (session) => {
          await setLockTimeout(session, applied.plan.params.lockTimeoutMs, ctx.signal);
          const now = await readIndex(session, index, ctx.signal);
          const relation = await requireRelation(session, table, ['r', 'm'], ctx.signal);
          if (!now || now.table_oid !== relation.oid) return;
          // Only the index the apply built: by oid, or after a crash (no apply data) by the planned definition.
          const built = applied.data?.oid ?? null;
          const ours =
            built !== null ? now.oid === built : await matchesPlanned(db, table, index, planned, ctx.signal);
          if (!ours) {
            throw new NonRetriableError(
              `Index ${label} is no longer the one this action built${built !== null ? ` (oid ${built}; now ${now.oid})` : ''}: ${now.definition}. Not dropping it; drop it by hand if it must go.`,
              { code: 'PG_PLAN_DRIFT', details: { built, now: now.oid } },
            );
          }
          await dropConcurrently(session, index, ctx);
          ctx.log(`dropped index ${label}`);
        },
        { signal: ctx.signal },
      );
    },
  });
}

function buildDdl(
  o: CreateIndexOptions,
  relationSql: string,
  indexName: string,
  columns: { name: string; order: 'asc' | 'desc'; nulls?: 'first' | 'last' | undefined }[],
  concurrently: boolean,
): string {
  const keys = columns
    .map(
      (c) =>
        `${quoteIdent(c.name)}${c.order === 'desc' ? ' DESC' : ''}${c.nulls ? ` NULLS ${c.nulls.toUpperCase()}` : ''}`,
    )
    .join(', ');
  const where = o.where ? ` WHERE ${o.where.map(condition).join(' AND ')}` : '';
  return `CREATE ${o.unique ? 'UNIQUE ' : ''}INDEX ${concurrently ? 'CONCURRENTLY ' : ''}${quoteIdent(indexName)} ON ${relationSql} USING ${o.method} (${keys})${where}`;
}

function condition(c: IndexCondition): string {
  const column = quoteIdent(c.column);
  if (!('value' in c)) return `${column} ${c.op.toUpperCase()}`;
  const value =
    typeof c.value === 'string'
      ? quoteLiteral(c.value)
      : typeof c.value === 'boolean'
        ? String(c.value).toUpperCase()
        : String(c.value);
  return `${column} ${c.op} ${value}`;
}

/** PostgreSQL's own default shape, `<table>_<col>_<col>_idx`, cut to 63 bytes. */
function defaultIndexName(table: string, columns: string[]): string {
  const suffix = '_idx';
  let base = `${table}_${columns.join('_')}`;
  while (Buffer.byteLength(base + suffix, 'utf8') > 63) base = base.slice(0, -1);
  return base + suffix;
}

async function requireColumns(
  db: PostgresDatabase,
  tableOid: string,
  table: QualifiedName,
  names: string[],
  signal: AbortSignal,
): Promise<void> {
  const { rows } = await db.query<{ attname: string }>(
    `SELECT attname FROM pg_catalog.pg_attribute
      WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [tableOid],
    { signal },
  );
  const existing = new Set(rows.map((r) => r.attname));
  const missing = [...new Set(names)].filter((n) => !existing.has(n));
  if (missing.length > 0) {
    throw new NonRetriableError(
      `Table ${displayRelation(table)} has no column ${missing.map((m) => JSON.stringify(m)).join(', ')}. Its columns: ${rows
        .slice(0, 30)
        .map((r) => r.attname)
        .join(', ')}. Column names are case-sensitive.`,
      { code: 'PG_NOT_FOUND', details: { missing } },
    );
  }
}

type IndexRow = {
  oid: string;
  relkind: string;
  table_oid: string | null;
  valid: boolean;
  ready: boolean;
  unique: boolean;
  method: string | null;
  columns: string[];
  definition: string | null;
  /**
   * The definition less its `CREATE [UNIQUE] INDEX <name> ON <table> USING ` head: method, keys, INCLUDE,
   * WITH and WHERE, as `pg_get_indexdef` prints them (the whole text when the head is not as expected).
   */
  shape: string | null;
  building_pid: number | null;
};

/** The relation of this name, with its index facts when it is an index; `null` when there is none. */
async function readIndex(
  db: PostgresDatabase | Session,
  index: QualifiedName,
  signal: AbortSignal,
): Promise<IndexRow | null> {
  const { rows } = await db.query<IndexRow>(
    `SELECT c.oid::int8::text AS oid, c.relkind::text AS relkind, i.indrelid::int8::text AS table_oid,
            coalesce(i.indisvalid, false) AS valid, coalesce(i.indisready, false) AS ready,
            coalesce(i.indisunique, false) AS unique, am.amname::text AS method,
            coalesce(ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
                            LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                           ORDER BY k.n), ARRAY[]::text[]) AS columns,
            CASE WHEN c.relkind = 'i' THEN pg_catalog.pg_get_indexdef(c.oid) END AS definition,
            CASE WHEN c.relkind = 'i' THEN (
              SELECT CASE WHEN starts_with(d.def, d.head) THEN substr(d.def, length(d.head) + 1) ELSE d.def END
                FROM (SELECT pg_catalog.pg_get_indexdef(c.oid) AS def,
                             'CREATE ' || CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '
                             || quote_ident(c.relname) || ' ON '
                             -- pg_get_indexdef names our own temporary schema pg_temp
                             || CASE WHEN tn.oid = pg_catalog.pg_my_temp_schema() THEN 'pg_temp' ELSE quote_ident(tn.nspname) END
                             || '.' || quote_ident(t.relname) || ' USING ' AS head) d
            ) END AS shape,
            (SELECT p.pid FROM pg_catalog.pg_stat_progress_create_index p WHERE p.index_relid = c.oid LIMIT 1) AS building_pid
       FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
       LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
       LEFT JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
       LEFT JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [index.schema, index.name],
    { signal },
  );
  return rows[0] ?? null;
}

/** Another backend that may be building an index on the table now; `null` when none. */
async function otherBuilder(
  session: Session,
  tableOid: string,
  leftover: IndexRow,
  signal: AbortSignal,
): Promise<number | null> {
  if (leftover.building_pid !== null && leftover.building_pid !== session.pid) return leftover.building_pid;
  const { rows } = await session.query<{ pid: number }>(
    `SELECT l.pid FROM pg_catalog.pg_locks l
      WHERE l.locktype = 'relation' AND l.relation = $1::oid AND l.granted AND l.mode = 'ShareUpdateExclusiveLock'
        AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
        AND l.pid <> pg_backend_pid()
      ORDER BY l.pid LIMIT 1`,
    [tableOid],
    { signal },
  );
  return rows[0]?.pid ?? null;
}

async function dropConcurrently(session: Session, index: QualifiedName, ctx: StepContext): Promise<void> {
  await session.query(`DROP INDEX CONCURRENTLY IF EXISTS ${quoteRelation(index)}`, [], {
    signal: ctx.signal,
    statementTimeoutMs: 0,
  });
}

/**
 * Whether the index `index` (now) has the definition `plannedDdl` would give it. PostgreSQL decides: in one
 * transaction, the planned index is built on an empty temporary copy of the table (`LIKE`: the same column
 * types and collations, so the same default opclasses), and the two `pg_get_indexdef` texts are compared
 * less their head (name and table), in the same session (constants print in its TimeZone). The copy is
 * dropped at commit.
 */
async function matchesPlanned(
  db: PostgresDatabase,
  table: QualifiedName,
  index: QualifiedName,
  plannedDdl: string,
  signal: AbortSignal,
): Promise<boolean> {
  return db.transaction(
    async (s) => {
      await s.query(
        `CREATE TEMPORARY TABLE ${quoteIdent(table.name)} (LIKE ${quoteRelation(table)}) ON COMMIT DROP`,
        [],
        { signal },
      );
      await s.query(plannedDdl, [], { signal });
      const { rows } = await s.query<{ schema: string }>(
        'SELECT nspname AS schema FROM pg_catalog.pg_namespace WHERE oid = pg_catalog.pg_my_temp_schema()',
        [],
        { signal },
      );
      const planned = await readIndex(s, { schema: rows[0]?.schema ?? 'pg_temp', name: index.name }, signal);
      const existing = await readIndex(s, index, signal);
      return (
        planned !== null &&
        existing !== null &&
        planned.shape !== null &&
        existing.unique === planned.unique &&
        existing.shape === planned.shape
      );
    },
    { signal },
  );
}

/**
 * After a failed build: drop the INVALID index it left (unless we were cancelled), and say what happened.
 * The apply checked that no relation of that name existed before its statement, so an index of that name now
 * appeared during it — but not necessarily from it: when the statement failed because the name was taken
 * (42P07), or another session is building that index (its progress row, or the table's SHARE UPDATE
 * EXCLUSIVE lock, which a concurrent build holds from start to end, and which shows even when its progress
 * row is hidden from our role), it is theirs and is left alone.
 */
async function failedBuild(
  session: Session,
  index: QualifiedName,
  tableOid: string,
  error: unknown,
  ctx: StepContext,
): Promise<unknown> {
  if (ctx.signal.aborted) return error;
  let cleanup = '';
  try {
    const leftover = await readIndex(session, index, ctx.signal);
    if (leftover && leftover.table_oid === tableOid && !leftover.valid) {
      const other = await otherBuilder(session, tableOid, leftover, ctx.signal);
      if (isPostgresError(error) && error.sqlstate === '42P07') {
        cleanup = ` The INVALID index ${displayRelation(index)} that took the name is not this build's; it was left alone.`;
      } else if (other !== null) {
        cleanup = ` An INVALID index ${displayRelation(index)} exists, but backend ${other} may be building it (${leftover.building_pid === other ? 'pg_stat_progress_create_index' : 'it holds the table’s SHARE UPDATE EXCLUSIVE lock'}); it was left alone.`;
      } else {
        await dropConcurrently(session, index, ctx);
        cleanup = ` The INVALID index ${displayRelation(index)} the failed build left was dropped.`;
      }
    }
  } catch (e) {
    cleanup = ` The INVALID index ${displayRelation(index)} it left could not be dropped (${e instanceof Error ? e.message : String(e)}); the next run of this action drops it first.`;
  }
  const sqlstate = isPostgresError(error) ? error.sqlstate : null;
  const hint =
    sqlstate === '23505'
      ? ' The table has duplicate keys: remove them before building a unique index.'
      : sqlstate === '55P03'
        ? ' A lock could not be taken within lock_timeout: a long transaction holds the table; retry later or raise lockTimeout.'
        : '';
  return new RunbookError(
    'PG_INDEX_BUILD_FAILED',
    `Building index ${displayRelation(index)} failed: ${error instanceof Error ? error.message : String(error)}.${hint}${cleanup}`,
    {
      cause: error,
      details: { sqlstate },
      retriable: isPostgresError(error) ? error.retriable : false,
    },
  );
}
