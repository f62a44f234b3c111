import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { NonRetriableError } from '../../core/errors';
import { finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import type { ResourceRef } from '../../core/resource';
import { type Action, defineAction, type StepContext } from '../../core/step';
import { type PostgresDatabase, quoteIdent } from '../database';
import { Identifier, quoteLiteral } from './relations';

// statement_timeout is an int4 GUC in milliseconds.
const MAX_TIMEOUT_MS = 2_147_483_647;

/** Options of {@link setStatementTimeout}: a role, a database, or both (the role in that database). */
export const SetStatementTimeoutOptions = z
  .object({
    /** The role whose sessions get the timeout (`ALTER ROLE … SET`). */
    role: Identifier.optional(),
    /** The database whose sessions get it (`ALTER DATABASE … SET`; with `role`, `ALTER ROLE … IN DATABASE …`). */
    database: Identifier.optional(),
    /** The new timeout (`0` for none), or `null` to remove the setting (`RESET`). */
    value: Duration.nullable(),
  })
  .refine((o) => o.role !== undefined || o.database !== undefined, {
    message: 'give a role, a database, or both',
    path: ['role'],
  })
  .refine((o) => o.value === null || toMillis(o.value) <= MAX_TIMEOUT_MS, {
    message: `statement_timeout is at most ${MAX_TIMEOUT_MS} ms`,
    path: ['value'],
  });
export type SetStatementTimeoutOptions = z.output<typeof SetStatementTimeoutOptions>;
export type SetStatementTimeoutOptionsInput = z.input<typeof SetStatementTimeoutOptions>;

/** What a statement-timeout plan fixes. */
export type SetStatementTimeoutParams = {
  role: string | null;
  database: string | null;
  /** The setting as stored before (`"30s"`, `"30000ms"`), `null` when there was none: what revert restores. */
  previous: string | null;
  /** The value to store (`"30000ms"`), `null` to reset. */
  value: string | null;
};

const KIND = 'pg.set-statement-timeout';
const FIELD = 'statement_timeout';

/**
 * Sets the default `statement_timeout` of a role's or a database's sessions (the manual: 30 seconds for API
 * queries): `ALTER ROLE r [IN DATABASE d] SET statement_timeout = '<n>ms'` or `ALTER DATABASE d SET …`;
 * `value: null` runs `RESET statement_timeout`. New sessions get it; open sessions keep theirs.
 *
 * - **plan** checks the role and database in the catalog and reads the current setting from
 *   `pg_db_role_setting`: `statement_timeout: before → after` (no change when they mean the same time).
 * - **verify** reads the setting back.
 * - **revert** restores the previous value, or RESETs when there was none — only while the setting is still
 *   the one the apply wrote (the same time in any spelling); a value someone set since is refused, not undone.
 *
 * Risk `medium` (too short a timeout fails legitimate queries), not destructive.
 */
export function setStatementTimeout(
  db: PostgresDatabase,
  options: SetStatementTimeoutOptionsInput,
): Action<SetStatementTimeoutParams, null> {
  const o = parseOptions(KIND, SetStatementTimeoutOptions, options);
  const role = o.role ?? null;
  const database = o.database ?? null;
  const value = o.value === null ? null : `${toMillis(o.value)}ms`;
  const target = settingRef(db, role, database);
  const label = [role && `role ${role}`, database && `database ${database}`].filter(Boolean).join(' in ');

  return defineAction<SetStatementTimeoutParams, null>({
    kind: KIND,
    target,
    risk: 'medium',
    destructive: false,
    description: `Set statement_timeout of ${label} to ${value ?? 'the server default'}`,

    async plan(ctx) {
      const previous = await readSetting(db, role, database, ctx);
      const same = sameTimeout(previous, value);
      return {
        summary: same
          ? `statement_timeout of ${label} is already ${previous ?? 'unset'}`
          : `Set statement_timeout of ${label} from ${previous ?? 'unset (server default)'} to ${value ?? 'unset (server default)'}; new sessions get it, open sessions keep theirs`,
        changes: same ? [] : [{ target, field: FIELD, before: previous, after: value }],
        params: { role, database, previous, value },
      };
    },

    async apply(ctx, plan) {
      await write(db, role, database, plan.params.value, ctx);
      ctx.log(`statement_timeout of ${label} set to ${plan.params.value ?? 'unset'}`);
      return null;
    },

    async verify(ctx, applied) {
      const now = await readSetting(db, role, database, ctx);
      const want = applied.plan.params.value;
      return now === want
        ? finding('ok', `statement_timeout of ${label} is ${now ?? 'unset'}`, { value: now })
        : finding('fail', `statement_timeout of ${label} is ${now ?? 'unset'}, not ${want ?? 'unset'}`, {
            value: now,
          });
    },

    async revert(ctx, applied) {
      const { value: written, previous } = applied.plan.params;
      // Someone may have changed the setting since the apply (a fix of their own): writing `previous` over it
      // would undo their change, not ours. The check and the write are two statements: a change landing
      // between them is not caught, but the window is a round trip, not the time since the apply.
      const now = await readSetting(db, role, database, ctx);
      if (!sameTimeout(now, written)) {
        throw new NonRetriableError(
          `statement_timeout of ${label} is now ${now ?? 'unset'}, not the ${written ?? 'unset (server default)'} this action set: someone changed it since. Refusing to restore ${previous ?? 'unset'} over their change; decide by hand which value it should have.`,
          { code: 'PG_SETTING_CHANGED', details: { current: now, applied: written, previous } },
        );
      }
      await write(db, role, database, previous, ctx);
      ctx.log(`statement_timeout of ${label} restored to ${applied.plan.params.previous ?? 'unset'}`);
    },
  });
}

function settingRef(db: PostgresDatabase, role: string | null, database: string | null): ResourceRef {
  const path: string[] = [];
  if (role !== null) path.push('role', encodeURIComponent(role));
  if (database !== null) path.push('database', encodeURIComponent(database));
  return db.ref(...path, 'setting', FIELD);
}

/** The role's and database's oids (checked to exist), then the stored value; `null` when not set. */
async function readSetting(
  db: PostgresDatabase,
  role: string | null,
  database: string | null,
  ctx: StepContext,
): Promise<string | null> {
  const { rows } = await db.query<{
    role_oid: string | null;
    database_oid: string | null;
    value: string | null;
  }>(
    `SELECT r.oid::int8::text AS role_oid, d.oid::int8::text AS database_oid,
            (SELECT substr(cfg, length('statement_timeout=') + 1)
               FROM pg_catalog.pg_db_role_setting s, unnest(s.setconfig) AS cfg
              WHERE s.setrole = coalesce(r.oid, 0) AND s.setdatabase = coalesce(d.oid, 0)
                AND cfg LIKE 'statement\\_timeout=%' LIMIT 1) AS value
       FROM (SELECT 1) one
       LEFT JOIN pg_catalog.pg_roles r ON r.rolname = $1
       LEFT JOIN pg_catalog.pg_database d ON d.datname = $2`,
    [role, database],
    { signal: ctx.signal },
  );
  const row = rows[0];
  if (role !== null && !row?.role_oid) {
    throw new NonRetriableError(
      `Role ${JSON.stringify(role)} does not exist. Role names are case-sensitive.`,
      {
        code: 'PG_NOT_FOUND',
        details: { role },
      },
    );
  }
  if (database !== null && !row?.database_oid) {
    throw new NonRetriableError(`Database ${JSON.stringify(database)} does not exist.`, {
      code: 'PG_NOT_FOUND',
      details: { database },
    });
  }
  return row?.value ?? null;
}

async function write(
  db: PostgresDatabase,
  role: string | null,
  database: string | null,
  value: string | null,
  ctx: StepContext,
): Promise<void> {
  // Utility statements take no bind parameters: identifiers are quoted (and were checked), the value is a literal.
  const subject =
    role !== null
      ? `ROLE ${quoteIdent(role)}${database !== null ? ` IN DATABASE ${quoteIdent(database)}` : ''}`
      : `DATABASE ${quoteIdent(database as string)}`;
  const change = value === null ? `RESET ${FIELD}` : `SET ${FIELD} = ${quoteLiteral(value)}`;
  await readSetting(db, role, database, ctx);
  await db.query(`ALTER ${subject} ${change}`, [], { signal: ctx.signal });
}

const UNIT_MS: Record<string, number> = {
  us: 0.001,
  ms: 1,
  s: 1_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Whether two stored settings mean the same timeout (`"1min"` and `"60000ms"`); `null` is unset. */
function sameTimeout(a: string | null, b: string | null): boolean {
  if (a === b) return true;
  if (a === null || b === null) return false;
  const ms = toMs(a);
  return ms !== null && ms === toMs(b);
}

/** Milliseconds of a stored `statement_timeout` (`"30s"`, `"30000"`, `"1min"`), `null` when unreadable. */
function toMs(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$/.exec(text);
  if (!match) return null;
  return Math.round(Number(match[1]) * (UNIT_MS[match[2] ?? 'ms'] ?? 1));
}
