import pg from 'pg';
import { z } from 'zod';
import { Duration } from '../../core/duration';
import { NonRetriableError } from '../../core/errors';
import type { ResourceRef } from '../../core/resource';
import type { PostgresDatabase, Session } from '../database';
import { quoteIdent } from '../database';

// PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes; a longer name would silently name another object.
const MAX_IDENTIFIER_BYTES = 63;

/** A PostgreSQL identifier as stored in the catalog: any text up to 63 bytes, without NUL. */
export const Identifier = z
  .string()
  .min(1, 'expected a name')
  .refine((s) => Buffer.byteLength(s, 'utf8') <= MAX_IDENTIFIER_BYTES, 'longer than 63 bytes')
  .refine((s) => !s.includes('\0'), 'must not contain NUL');

/** A relation: `"name"` (in `public`), `"schema.name"` (split at the first dot), or `{ schema, name }` for names with dots. */
export const RelationName = z
  .union([
    z.string().min(1, 'expected a name'),
    z.object({
      /** @default "public" */
      schema: Identifier.default('public'),
      name: Identifier,
    }),
  ])
  .transform((value, ctx) => {
    const parts =
      typeof value === 'string'
        ? value.includes('.')
          ? { schema: value.slice(0, value.indexOf('.')), name: value.slice(value.indexOf('.') + 1) }
          : { schema: 'public', name: value }
        : value;
    for (const part of [parts.schema, parts.name]) {
      const checked = Identifier.safeParse(part);
      if (!checked.success) {
        ctx.addIssue({ code: 'custom', message: checked.error.issues[0]?.message ?? 'invalid name' });
        return z.NEVER;
      }
    }
    return parts;
  });
/** A schema-qualified relation name. */
export type QualifiedName = { schema: string; name: string };
/** {@link RelationName} as written by users. */
export type RelationNameInput = z.input<typeof RelationName>;

/** How long a maintenance statement waits for a lock before it gives up (`lock_timeout`). @default "30s" */
export const LockTimeout = Duration.default('30s');

/** `schema.name`, quoted for SQL. Only for names already found in the catalog. */
export function quoteRelation(relation: QualifiedName): string {
  return `${quoteIdent(relation.schema)}.${quoteIdent(relation.name)}`;
}

/** `schema.name` as people read it. */
export function displayRelation(relation: QualifiedName): string {
  return `${relation.schema}.${relation.name}`;
}

/** The resource reference of a relation: `postgres:<db>/relation/<schema>.<name>` (each part URI-encoded, dots too). */
export function relationRef(db: PostgresDatabase, relation: QualifiedName): ResourceRef {
  const encode = (s: string) => encodeURIComponent(s).replace(/\./g, '%2E');
  return db.ref('relation', `${encode(relation.schema)}.${encode(relation.name)}`);
}

/** A relation as the catalog describes it. */
export interface CatalogRelation extends QualifiedName {
  oid: string;
  /** `r` table, `p` partitioned table, `i` index, `m` materialized view, `v` view, … */
  relkind: string;
  relfilenode: string;
}

const RELKIND_WORDS: Record<string, string> = {
  r: 'a table',
  p: 'a partitioned table',
  i: 'an index',
  I: 'a partitioned index',
  m: 'a materialized view',
  v: 'a view',
  S: 'a sequence',
  f: 'a foreign table',
  c: 'a composite type',
  t: 'a TOAST table',
};

/** Reads a relation from the catalog by exact schema and name (never through `search_path`); `null` when absent. */
export async function findRelation(
  db: PostgresDatabase | Session,
  relation: QualifiedName,
  signal: AbortSignal,
): Promise<CatalogRelation | null> {
  const { rows } = await db.query<{ oid: string; relkind: string; relfilenode: string }>(
    `SELECT c.oid::int8::text AS oid, c.relkind::text AS relkind, c.relfilenode::int8::text AS relfilenode
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [relation.schema, relation.name],
    { signal },
  );
  const row = rows[0];
  return row ? { ...relation, ...row } : null;
}

/**
 * Reads a relation and insists that it exists and is one of `kinds`; otherwise a non-retriable error that
 * says what was found instead. Identifiers reach SQL only after this check.
 */
export async function requireRelation(
  db: PostgresDatabase | Session,
  relation: QualifiedName,
  kinds: string[],
  signal: AbortSignal,
): Promise<CatalogRelation> {
  const found = await findRelation(db, relation, signal);
  const wanted = kinds.map((k) => RELKIND_WORDS[k] ?? k).join(' or ');
  if (!found) {
    throw new NonRetriableError(
      `${wanted[0]?.toUpperCase()}${wanted.slice(1)} named ${displayRelation(relation)} does not exist. Check the schema and the exact name (names are case-sensitive; unqualified names are looked up in "public").`,
      { code: 'PG_NOT_FOUND', details: { schema: relation.schema, name: relation.name } },
    );
  }
  if (!kinds.includes(found.relkind)) {
    throw new NonRetriableError(
      `${displayRelation(relation)} is ${RELKIND_WORDS[found.relkind] ?? `a relation of kind ${found.relkind}`}, not ${wanted}.`,
      {
        code: 'PG_WRONG_KIND',
        details: { schema: relation.schema, name: relation.name, relkind: found.relkind },
      },
    );
  }
  return found;
}

/**
 * Prepares a dedicated maintenance session: no statement timeout is set here (each long statement passes
 * `statementTimeoutMs: 0`), but `lock_timeout` bounds every wait for a lock, so a maintenance statement
 * queued behind a long transaction gives up instead of blocking everything queued behind it.
 */
export async function setLockTimeout(
  session: Session,
  lockTimeoutMs: number,
  signal: AbortSignal,
): Promise<void> {
  await session.query(`SET lock_timeout = ${Math.max(0, Math.floor(lockTimeoutMs))}`, [], { signal });
}

/**
 * Runs maintenance `work` on a dedicated connection (outside any transaction block, as VACUUM, REINDEX
 * CONCURRENTLY and REFRESH need) with `lock_timeout` set, after checking the relation still exists with one
 * of the expected kinds.
 */
export function onMaintenanceSession<T>(
  db: PostgresDatabase,
  relation: QualifiedName,
  kinds: string[],
  lockTimeoutMs: number,
  signal: AbortSignal,
  work: (session: Session) => Promise<T>,
): Promise<T> {
  return db.dedicated(
    async (session) => {
      await setLockTimeout(session, lockTimeoutMs, signal);
      await requireRelation(session, relation, kinds, signal);
      return work(session);
    },
    { signal },
  );
}

/** A string literal for the few utility statements that take no bind parameters (`ALTER ROLE … SET`, index predicates). */
export function quoteLiteral(value: string): string {
  return pg.escapeLiteral(value);
}

/** Timestamps are carried as UTC text with microseconds: a JS `Date` would lose them and never compare equal. */
export function utcText(column: string): string {
  return `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}
