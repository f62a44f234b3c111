import { z } from 'zod';
import { NonRetriableError, RunbookError } from '../../core/errors';
import { finding } from '../../core/finding';
import type { Json } from '../../core/json';
import { parseOptions } from '../../core/parse-options';
import type { RiskLevel } from '../../core/plan';
import { type Action, type Applied, defineAction, type StepContext } from '../../core/step';
import { type PostgresDatabase, quoteIdent, type Row, type Session } from '../database';
import { Identifier } from './relations';

/** A parameterized statement: `$1`, `$2`… in `sql` bound to `params`, never interpolated. */
export const SqlStatement = z.object({
  sql: z.string().trim().min(1, 'expected SQL'),
  /** @default [] */
  params: z.array(z.unknown()).default([]),
});

const usesKeys = (s: { sql: string }) => /\$1(?!\d)/.test(s.sql);
const KEYS_MESSAGE = 'must use the planned keys as $1 (e.g. WHERE id = ANY($1)); its own params are $2, $3…';

/** Options of {@link sqlAction}. */
export const SqlActionOptions = z.object({
  /** A kebab-case name for people and the log, e.g. `cancel-stuck-executions`. */
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected a kebab-case name'),
  /** The resource the lock and budget are keyed by, as a path under the database: `"test_executions"`. */
  target: z.string().regex(/^[^\s/]+(\/[^\s/]+)*$/, 'expected a path like "test_executions" (no spaces)'),
  /** The rows the update will change. Runs read-only; must return the `key` column. */
  select: SqlStatement,
  /** The key column in the select's rows. @default "id" */
  key: Identifier.default('id'),
  /** The change, bound to the planned keys as `$1` (an array) and `params` as `$2`, `$3`…. */
  update: SqlStatement.refine(usesKeys, KEYS_MESSAGE),
  /** Undoes the update for the keys it changed (`$1`); without it there is no revert. @default none */
  revert: SqlStatement.refine(usesKeys, KEYS_MESSAGE).optional(),
  /** Refuse to plan when the select returns more rows than this. */
  maxRows: z.number().int().min(1).max(10_000),
  /** How many rows may have joined or left the selection between plan and apply before the apply aborts. @default 0 */
  tolerance: z.number().int().min(0).default(0),
  /** What each row's `after` shows in the plan, e.g. `"status = cancelled"`. @default "updated" */
  effect: z.string().min(1).max(200).default('updated'),
  /** @default "medium" */
  risk: z.enum(['low', 'medium', 'high']).default('medium'),
  /** Needs approval by default. @default true when there is no `revert` */
  destructive: z.boolean().optional(),
});
export type SqlActionOptions = z.output<typeof SqlActionOptions>;
export type SqlActionOptionsInput = z.input<typeof SqlActionOptions>;

/** A key value as the select returned it. */
export type SqlKey = string | number;

/** What a SQL action plan fixes. */
export type SqlActionParams = {
  name: string;
  /** The keys of the rows to change, in the select's order. */
  keys: SqlKey[];
  selectSql: string;
  updateSql: string;
};

/** What apply did: which planned rows it updated, which had left the selection, which had joined it. */
export type SqlActionApplied = { updated: SqlKey[]; missing: SqlKey[]; added: SqlKey[] };

const KIND = 'pg.sql-action';
const SHOWN_CHARS = 200;
const SHOWN_COLUMNS = 30;

/**
 * A guarded data fix: the rows a SELECT finds get an UPDATE, keyed by the planned rows. The manual's
 * "cancel test executions running longer than 10 minutes":
 *
 * ```ts
 * sqlAction(db, {
 *   name: 'cancel-stuck-executions', target: 'test_executions', maxRows: 100,
 *   select: { sql: "SELECT id, started_at FROM test_executions WHERE status = 'running' AND started_at < now() - interval '10 minutes'" },
 *   update: { sql: "UPDATE test_executions SET status = 'cancelled' WHERE id = ANY($1) AND status = 'running'" },
 *   effect: 'status = cancelled',
 * });
 * ```
 *
 * - **plan** runs the select in a read-only transaction (at most `maxRows`, or it refuses) and lists each
 *   row (`row <key>=<value>`: the row, long values cut → `effect`); params keep the keys.
 * - **apply**, in one REPEATABLE READ transaction: runs the select again; when more than `tolerance` rows
 *   joined or left the selection it rolls back and fails (`PG_PLAN_DRIFT`). Otherwise it updates the planned
 *   rows that still match (never rows that joined since the plan, nor rows that left it) and rolls back
 *   unless the update changed exactly that many rows (`PG_ROW_COUNT_MISMATCH`). A concurrent change to one
 *   of those rows makes PostgreSQL fail the update (serialization failure, retriable): nothing is changed.
 * - **verify** runs the select again: none of the updated rows may still match.
 * - **revert** runs `revert` with the updated keys, when one was given.
 *
 * After a crash the engine may only know the plan (`applied.data` is null): with `tolerance` 0 the planned
 * keys are exactly the updated rows, so verify and revert use them; with a tolerance, up to that many planned
 * rows may have been left alone, so revert refuses (a person decides) and verify does not judge them.
 *
 * The statements are the runbook author's SQL (trusted code), not input; values go in `params`.
 */
export function sqlAction(
  db: PostgresDatabase,
  options: SqlActionOptionsInput,
): Action<SqlActionParams, SqlActionApplied> {
  const o = parseOptions(KIND, SqlActionOptions, options);
  const target = db.ref(...o.target.split('/'));
  const risk: RiskLevel = o.risk;
  const revert = o.revert;

  const selectKeys = async (
    session: Session,
    limit: number,
    signal: AbortSignal,
  ): Promise<{ rows: Row[]; keys: SqlKey[] }> => {
    const sql = o.select.sql.replace(/;\s*$/, '');
    // On lines of their own, so a trailing comment in the select cannot swallow the wrapper.
    const { rows } = await session.query(
      `SELECT * FROM (\n${sql}\n) AS planned_rows LIMIT ${limit}`,
      o.select.params,
      {
        signal,
      },
    );
    return { rows, keys: rows.map((r) => keyOf(r, o.key, o.name)) };
  };

  const readOnly = <T>(ctx: StepContext, work: (s: Session) => Promise<T>) =>
    db.transaction(
      async (s) => {
        await s.query('SET TRANSACTION READ ONLY', [], { signal: ctx.signal });
        return work(s);
      },
      { signal: ctx.signal },
    );

  return defineAction<SqlActionParams, SqlActionApplied>({
    kind: KIND,
    target,
    risk,
    destructive: o.destructive ?? revert === undefined,
    description: `SQL action ${o.name} on ${target}`,

    async plan(ctx) {
      const { rows, keys } = await readOnly(ctx, (s) => selectKeys(s, o.maxRows + 1, ctx.signal));
      if (rows.length > o.maxRows) {
        throw new NonRetriableError(
          `SQL action ${o.name}: the select returns more than maxRows (${o.maxRows}) rows; refusing to change them all. Narrow the select, or raise maxRows if that many is really meant.`,
          { code: 'PG_TOO_MANY_ROWS', details: { maxRows: o.maxRows } },
        );
      }
      const seen = new Set<string>();
      for (const k of keys) {
        if (seen.has(String(k))) {
          throw new NonRetriableError(
            `SQL action ${o.name}: the select returns the key ${o.key}=${k} twice. Select one row per key (the key must be unique).`,
            { code: 'PG_DUPLICATE_KEY' },
          );
        }
        seen.add(String(k));
      }
      const shown = keys.slice(0, 10).join(', ');
      return {
        summary:
          rows.length === 0
            ? `SQL action ${o.name}: no row matches; nothing to change`
            : `SQL action ${o.name}: ${o.effect} for ${rows.length} row${rows.length === 1 ? '' : 's'} of ${o.target} (${o.key} ${shown}${keys.length > 10 ? ', …' : ''})`,
        changes: rows.map((row, i) => ({
          target,
          field: `row ${o.key}=${keys[i]}`,
          before: displayRow(row),
          after: o.effect,
        })),
        params: { name: o.name, keys, selectSql: o.select.sql, updateSql: o.update.sql },
      };
    },

    async apply(ctx, plan) {
      const planned = plan.params.keys;
      return db.transaction(
        async (s) => {
          await s.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ', [], { signal: ctx.signal });
          const { keys } = await selectKeys(s, o.maxRows + o.tolerance + 1, ctx.signal);
          const now = new Set(keys.map(String));
          const was = new Set(planned.map(String));
          const added = keys.filter((k) => !was.has(String(k)));
          const missing = planned.filter((k) => !now.has(String(k)));
          if (added.length + missing.length > o.tolerance) {
            throw new RunbookError(
              'PG_PLAN_DRIFT',
              `SQL action ${o.name}: the selection moved since the plan (${added.length} row(s) joined${added.length ? `: ${added.slice(0, 10).join(', ')}` : ''}; ${missing.length} left${missing.length ? `: ${missing.slice(0, 10).join(', ')}` : ''}), more than the tolerance of ${o.tolerance}. Rolled back: nothing was changed. Plan again to see the rows as they are now.`,
              { retriable: false, details: { added, missing, tolerance: o.tolerance } },
            );
          }
          const keep = planned.filter((k) => now.has(String(k)));
          const result = await s.query(o.update.sql, [keep, ...o.update.params], { signal: ctx.signal });
          if (result.rowCount !== keep.length) {
            throw new RunbookError(
              'PG_ROW_COUNT_MISMATCH',
              `SQL action ${o.name}: the update changed ${result.rowCount ?? 0} row(s), but ${keep.length} planned row(s) still match. Rolled back: nothing was changed. Check that the update's WHERE clause selects exactly the keys in $1.`,
              { retriable: false, details: { expected: keep.length, actual: result.rowCount } },
            );
          }
          if (missing.length)
            ctx.log(`${missing.length} planned row(s) no longer matched and were left alone`, { missing });
          if (added.length)
            ctx.log(`${added.length} row(s) joined the selection since the plan and were left alone`, {
              added,
            });
          ctx.log(`updated ${keep.length} row(s)`);
          return { updated: keep, missing, added };
        },
        { signal: ctx.signal },
      );
    },

    async verify(ctx, applied) {
      const known = changedKeys(applied, o.tolerance);
      // Recovered with a tolerance: any planned row may be one the apply left alone (it had left the selection).
      const changed = known ?? applied.plan.params.keys;
      // Only the changed rows: the selection may be larger than any bound by now.
      const sql = o.select.sql.replace(/;\s*$/, '');
      const { rows } = await readOnly(ctx, (s) =>
        s.query(
          `SELECT * FROM (\n${sql}\n) AS planned_rows WHERE ${quoteIdent(o.key)} = ANY($${o.select.params.length + 1})`,
          [...o.select.params, changed],
          { signal: ctx.signal },
        ),
      );
      const keys = rows.map((r) => keyOf(r, o.key, o.name));
      const now = new Set(keys.map(String));
      const still = changed.filter((k) => now.has(String(k)));
      if (known === null && still.length) {
        // Not `fail` (which reverts): a planned row that matches now may never have been updated by us.
        return finding(
          'unknown',
          `SQL action ${o.name}: the apply was recovered after a crash, so which planned rows it updated is not known (up to ${o.tolerance}, the tolerance, may have been left alone); ${still.length} planned row(s) match the select (${o.key} ${still.slice(0, 10).join(', ')}). Check them by hand.`,
          { stillMatching: still },
        );
      }
      return still.length
        ? finding(
            'fail',
            `SQL action ${o.name}: ${still.length} updated row(s) still match the select (${o.key} ${still.slice(0, 10).join(', ')})`,
            { stillMatching: still },
          )
        : finding(
            'ok',
            `SQL action ${o.name}: none of the ${changed.length} ${known === null ? 'planned' : 'updated'} row(s) matches the select any more`,
            {
              stillMatching: [],
            },
          );
    },

    ...(revert
      ? {
          async revert(ctx, applied) {
            const changed = changedKeys(applied, o.tolerance);
            if (changed === null) {
              // The planned keys may include rows that left the selection and were not updated (the tolerance
              // allowed it); someone else may have finished them since. Reverting them would undo their work.
              const planned = applied.plan.params.keys;
              throw new NonRetriableError(
                `SQL action ${o.name}: the apply was recovered after a crash, so which of the ${planned.length} planned rows it updated is not known: with a tolerance of ${o.tolerance}, planned rows that had left the selection were left alone, and reverting them could undo someone else's change. Refusing to revert; a person must decide which rows to restore (planned ${o.key} ${planned.slice(0, 20).join(', ')}${planned.length > 20 ? ', …' : ''}).`,
                { code: 'PG_REVERT_UNKNOWN_ROWS', details: { planned, tolerance: o.tolerance } },
              );
            }
            const result = await db.transaction(
              (s) => s.query(revert.sql, [changed, ...revert.params], { signal: ctx.signal }),
              {
                signal: ctx.signal,
              },
            );
            ctx.log(`reverted ${result.rowCount ?? 0} row(s)`);
          },
        }
      : {}),
  });
}

/**
 * The keys the apply updated: its own record, or, when that was lost in a crash (`data` null), the planned
 * keys if the tolerance is 0 — the apply then updated exactly the planned rows or rolled back (a row that
 * joined or left is drift beyond the tolerance, and the row count must match). With a tolerance: `null`,
 * not knowable.
 */
function changedKeys(
  applied: Applied<SqlActionParams, SqlActionApplied>,
  tolerance: number,
): SqlKey[] | null {
  if (applied.data) return applied.data.updated;
  return tolerance === 0 ? applied.plan.params.keys : null;
}

function keyOf(row: Row, key: string, name: string): SqlKey {
  if (!(key in row)) {
    throw new NonRetriableError(
      `SQL action ${name}: the select returns no column "${key}" (it returns ${Object.keys(row).join(', ')}). Select the key column, or set \`key\`.`,
      { code: 'PG_NO_KEY' },
    );
  }
  const value = row[key];
  if (typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))) return value;
  throw new NonRetriableError(
    `SQL action ${name}: the key column "${key}" holds ${value === null ? 'NULL' : typeof value}; keys must be non-null numbers or text (ids, uuids).`,
    { code: 'PG_NO_KEY' },
  );
}

/** A row as people read it in a plan: at most 30 columns, long values cut, everything JSON. */
function displayRow(row: Row): Json {
  const out: Record<string, Json> = {};
  for (const [column, value] of Object.entries(row).slice(0, SHOWN_COLUMNS))
    out[column] = displayValue(value);
  return out;
}

function displayValue(value: unknown): Json {
  if (value === null || value === undefined) return null;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? String(value) : value.toISOString();
  if (Buffer.isBuffer(value)) return `<${value.length} bytes>`;
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > SHOWN_CHARS ? `${text.slice(0, SHOWN_CHARS)}…` : text;
}
