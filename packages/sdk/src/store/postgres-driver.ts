import { createHash } from 'node:crypto';
import type { Pool, PoolClient, PoolConfig } from 'pg';
import { assertSchemaName, type Queryable, type SqlDriver } from './driver';

/** Options of the PostgreSQL driver. */
export interface PostgresDriverOptions {
  /** `postgres://user:password@host:5432/db`. */
  connectionString: string;
  /** Schema holding the store's tables; created if missing. @default "runbook" */
  schema?: string;
  /** Pool size. @default 10 */
  max?: number;
  /** Give up connecting after this long (pg waits forever by default). @default 10000 */
  connectionTimeoutMillis?: number;
  /** Server-side bound on any store statement. @default 30000 */
  statementTimeoutMillis?: number;
  /** Commit redoable writes without waiting for the WAL flush (see `SqlDriver.queryRelaxed`). @default true */
  relaxedCommits?: boolean;
}

/** Opens a pooled PostgreSQL driver. `pg` is a peer dependency, loaded only here. */
export async function openPostgresDriver(options: PostgresDriverOptions): Promise<SqlDriver> {
  const schema = assertSchemaName(options.schema ?? 'runbook');
  const { default: pg } = await import('pg');
  const config: PoolConfig = {
    connectionString: options.connectionString,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 10_000,
    statement_timeout: options.statementTimeoutMillis ?? 30_000,
    // Generic plans: the store's statements are key lookups whose best plan never depends on the values,
    // and re-planning the multi-CTE statements on every call would cost more than running them.
    options: `-c search_path=${schema} -c plan_cache_mode=force_generic_plan`,
    application_name: 'aiwebtest-runbooks',
  };
  const pool: Pool = new pg.Pool(config);
  // A second, smaller pool whose sessions commit without waiting for the WAL flush. WAL is written in order,
  // so the next synchronous commit from either pool makes every earlier relaxed commit durable too.
  const relaxedPool: Pool | undefined =
    options.relaxedCommits === false
      ? undefined
      : new pg.Pool({
          ...config,
          max: Math.max(2, Math.ceil((config.max ?? 10) / 2)),
          options: `${config.options} -c synchronous_commit=off`,
        });
  // An idle client's error (server restart) must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  relaxedPool?.on('error', () => {});
  const bootstrap = await pool.connect();
  try {
    await bootstrap.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  } catch (e) {
    // Two processes creating the schema at once race on the catalog; the loser sees a unique violation.
    if ((e as { code?: string }).code !== '23505') throw e;
  } finally {
    bootstrap.release();
  }

  // Every statement is a named prepared statement (named by a hash of its text), so PostgreSQL parses and
  // plans the store's multi-CTE statements once per connection instead of on every step.
  const names = new Map<string, string>();
  const nameOf = (sql: string) => {
    let name = names.get(sql);
    if (!name) {
      name = `rb_${createHash('sha1').update(sql).digest('hex').slice(0, 20)}`;
      names.set(sql, name);
    }
    return name;
  };
  const on = (client: Pool | PoolClient): Queryable => ({
    async query<R>(sql: string, params: readonly unknown[] = []) {
      const result = await client.query({ name: nameOf(sql), text: sql, values: params as unknown[] });
      return result.rows as R[];
    },
  });

  return {
    dialect: 'postgres',
    ...on(pool),
    queryRelaxed: on(relaxedPool ?? pool).query,
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const value = await fn(on(client));
        await client.query('COMMIT');
        return value;
      } catch (e) {
        await client.query('ROLLBACK').catch(() => {});
        throw e;
      } finally {
        client.release();
      }
    },
    async close() {
      await Promise.all([pool.end(), relaxedPool?.end()]);
    },
  };
}
