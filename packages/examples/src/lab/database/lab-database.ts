import pg from 'pg';
import { z } from 'zod';
import { SCHEMA_SQL, SEED_SQL } from './schema';

/** A PostgreSQL connection URL (`postgres://` or `postgresql://`). */
export const PostgresUrl = z
  .string()
  .regex(/^postgres(ql)?:\/\/[^\s]+$/, 'expected a postgres://user@host:port/database URL');

/**
 * A database name of our own making: lower-case letters, digits and `_`, as an unquoted identifier would be.
 * It is still quoted wherever it reaches SQL; the narrow alphabet keeps it safe in pgbouncer.ini and URLs too.
 */
export const LabDatabaseName = z
  .string()
  .regex(
    /^[a-z_][a-z0-9_]{0,62}$/,
    'expected lower-case letters, digits and "_" (at most 63), not starting with a digit',
  )
  .refine((name) => !['postgres', 'template0', 'template1', 'pgbouncer'].includes(name), {
    message: 'expected a database of the lab, not a system database',
  });

export const PrepareLabDatabaseOptions = z.object({
  /** A URL of a database on the server with the right to create databases, e.g. `postgres://postgres@127.0.0.1:5432/postgres`. */
  adminUrl: PostgresUrl,
  /** @default "aiwebtest_lab" */
  database: LabDatabaseName.default('aiwebtest_lab'),
  /** Drop the database (disconnecting its sessions) and build it afresh. @default false */
  reset: z.boolean().default(false),
});
export type PrepareLabDatabaseOptions = z.input<typeof PrepareLabDatabaseOptions>;

/** A key for `pg_advisory_xact_lock`, so that two labs starting at once do not both seed. */
const SCHEMA_LOCK_KEY = 0x41_57_54_4c; // "AWTL"

/** Parses `options` with `schema`, throwing one error that names every bad field. */
export function parseInput<S extends z.ZodType>(what: string, schema: S, options: unknown): z.output<S> {
  const parsed = schema.safeParse(options);
  if (!parsed.success) {
    const fields = parsed.error.issues
      .map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`)
      .join('; ');
    throw new Error(`invalid ${what} options: ${fields}`);
  }
  return parsed.data;
}

/** `url` with its database replaced by `database` (user, host, port and query kept). */
export function databaseUrl(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

/**
 * Makes the lab database ready: creates it when missing, applies the schema in one transaction, and seeds it
 * when it has no users. Safe to call on every lab start (and concurrently). With `reset` it drops the database
 * first, so the lab starts from the seed again.
 */
export async function prepareLabDatabase(options: PrepareLabDatabaseOptions): Promise<{ url: string }> {
  const { adminUrl, database, reset } = parseInput('prepareLabDatabase', PrepareLabDatabaseOptions, options);
  const name = pg.escapeIdentifier(database);
  const admin = new pg.Client({ connectionString: adminUrl, application_name: 'aiwebtest-lab-prepare' });
  await admin.connect();
  try {
    if (reset) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (!rowCount) {
      try {
        await admin.query(`CREATE DATABASE ${name}`);
      } catch (e) {
        // Another lab created it between our look and our create: that is the state we wanted.
        const code = (e as { code?: string }).code;
        if (code !== '42P04' && code !== '23505') throw e;
      }
    }
  } finally {
    await admin.end();
  }

  const url = databaseUrl(adminUrl, database);
  const client = new pg.Client({ connectionString: url, application_name: 'aiwebtest-lab-prepare' });
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK_KEY]);
    await client.query(SCHEMA_SQL);
    await enablePgStatStatements(client);
    const { rows } = await client.query<{ empty: boolean }>(
      'SELECT NOT EXISTS (SELECT 1 FROM users) AS empty',
    );
    if (rows[0]?.empty) await client.query(SEED_SQL);
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  } finally {
    await client.end();
  }
  return { url };
}

/**
 * Creates the `pg_stat_statements` extension when the server preloads its library: only then can the view be
 * read (runbooks 5 and 8 query it). On a server without it the view would exist but fail on every read, which
 * is worse than its absence, so nothing is created.
 */
async function enablePgStatStatements(client: pg.Client): Promise<void> {
  const { rows } = await client.query<{ loaded: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements')
        AND 'pg_stat_statements' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
        AS loaded`,
  );
  if (rows[0]?.loaded) await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
}

/** Drops the lab database, disconnecting its sessions (tests, `lab down --purge`). */
export async function dropLabDatabase(options: { adminUrl: string; database: string }): Promise<void> {
  const { adminUrl, database } = parseInput(
    'dropLabDatabase',
    z.object({ adminUrl: PostgresUrl, database: LabDatabaseName }),
    options,
  );
  const admin = new pg.Client({ connectionString: adminUrl, application_name: 'aiwebtest-lab-prepare' });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}
