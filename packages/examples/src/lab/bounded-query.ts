import type pg from 'pg';
import type { Queryable } from './database/database-metrics';

/**
 * A {@link Queryable} over `pool` whose every statement gives up after `timeoutMs`: the lab's exporter, health
 * check and activity must keep answering while a chaos scenario holds a lock or the pool is starved, so waits
 * are bounded by PostgreSQL itself (`statement_timeout`, `lock_timeout`) and the wait for a pool client by a timer.
 */
export function boundedQueryable(pool: pg.Pool, timeoutMs: number): Queryable {
  const ms = String(Math.max(1, Math.round(timeoutMs)));

  return {
    async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]) {
      const client = await connectWithin(pool, timeoutMs);
      if (!guarded.has(client)) {
        guarded.add(client);
        client.on('error', () => {});
      }
      let failed: Error | undefined;
      try {
        await client.query('BEGIN');
        await client.query(
          `SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', $1, true)`,
          [ms],
        );
        const result = await client.query<R>(text, values);
        await client.query('COMMIT');
        return result;
      } catch (e) {
        await client.query('ROLLBACK').catch(() => {});
        failed = e instanceof Error ? e : new Error(String(e));
        throw e;
      } finally {
        // After an error the connection may be dead (PgBouncer restarted): the pool drops it rather than
        // handing it out again; a new one costs little.
        client.release(failed);
      }
    },
  };
}

/**
 * Clients given a listener for 'error': a checked-out client whose server goes away (PgBouncer killed) emits
 * it, and unheard it would end the process. The failing query rejects anyway, which is where callers learn of it.
 */
const guarded = new WeakSet<pg.PoolClient>();

/** `pool.connect()`, or a rejection after `ms`; a client that arrives late goes straight back to the pool. */
function connectWithin(pool: pg.Pool, ms: number): Promise<pg.PoolClient> {
  return new Promise((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new Error(`no database connection within ${ms} ms`));
    }, ms);
    pool.connect().then(
      (client) => {
        clearTimeout(timer);
        if (late) client.release();
        else resolve(client);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
