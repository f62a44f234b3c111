import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { connectPostgres, isPostgresError } from '../../src/postgres/database';
import { startTestCluster } from '../support/postgres-cluster';
import { POSTGRES_URL } from '../support/stores';

// The connection layer every postgres check and action uses, against the real PostgreSQL of the test setup.

const db = connectPostgres({ url: POSTGRES_URL, poolSize: 1, statementTimeout: '5s' });

afterAll(async () => {
  await db.close();
});

describe('PostgresDatabase (real PostgreSQL)', () => {
  it('gives the pool slot back when a step is cancelled while it waits for a connection', async () => {
    for (let i = 0; i < 3; i++) {
      const controller = new AbortController();
      const pending = db.query('SELECT 1', [], { signal: controller.signal });
      controller.abort(new Error('cancelled'));
      await expect(pending).rejects.toThrow('cancelled');
    }
    // With a pool of one, a leaked slot would make this wait forever.
    const { rows } = await db.query<{ one: number }>('SELECT 1 AS one');
    expect(rows).toEqual([{ one: 1 }]);
  });

  it('an abort ends the wait for a pool slot', async () => {
    const busy = db.query('SELECT pg_sleep(1)'); // takes the only slot
    const controller = new AbortController();
    const waiting = db.query('SELECT 1', [], { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('no slot wanted')), 50);
    const started = Date.now();
    await expect(waiting).rejects.toThrow('no slot wanted');
    expect(Date.now() - started).toBeLessThan(500);
    await busy;
    expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('cancels the running statement on the server when the signal aborts', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const pending = db.query('SELECT pg_sleep(30)', [], { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('step cancelled')), 200);
    await expect(pending).rejects.toThrow('step cancelled');
    expect(Date.now() - started).toBeLessThan(5_000);
    const { rows } = await db.query<{ n: string }>(
      "SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'",
    );
    expect(rows[0]?.n).toBe('0');
  });

  it('turns a SQL error into a PostgresError with the SQLSTATE, and never shows the password', async () => {
    const error = await db.query('SELECT * FROM no_such_table_here').catch((e: unknown) => e);
    expect(isPostgresError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'PG_ERROR', sqlstate: '42P01', retriable: false });
    const unreachable = connectPostgres({
      url: 'postgres://alice:s3cret-pw@127.0.0.1:1/x',
      connectTimeout: '1s',
    });
    const failed = await unreachable.query('SELECT 1').catch((e: unknown) => e);
    await unreachable.close();
    expect(failed).toMatchObject({ code: 'PG_CONNECTION', retriable: true });
    expect(String((failed as Error).message)).not.toContain('s3cret-pw');
  });

  it('a wrong parameter count is a bug (not retriable) and keeps the connection', async () => {
    const error = await db.query('SELECT 1', [5]).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'PG_ERROR', sqlstate: '08P01', retriable: false });
    expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('an abort ends the wait even when the server cannot be asked to cancel (no free connection slot)', async () => {
    // A cluster of its own with three connection slots: the query's, and two holders, so the cancel
    // request (a fourth connection) is refused with "too many clients".
    const cluster = await startTestCluster({
      settings: { max_connections: '3', superuser_reserved_connections: '0' },
    });
    const full = connectPostgres({ url: cluster.url, poolSize: 1, connectTimeout: '2s' });
    const holders = [new pg.Client(cluster.url), new pg.Client(cluster.url)];
    try {
      const controller = new AbortController();
      const pending = full.query('SELECT pg_sleep(30)', [], { signal: controller.signal });
      await new Promise((r) => setTimeout(r, 300)); // the query runs
      for (const h of holders) await h.connect();
      const aborted = Date.now();
      controller.abort(new Error('give up'));
      await expect(pending).rejects.toThrow('give up');
      // Bounded by the grace period (2 s), not by the 30 s statement.
      expect(Date.now() - aborted).toBeLessThan(4_000);
    } finally {
      for (const h of holders) await h.end().catch(() => {});
      await full.close();
      await cluster.destroy();
    }
  });

  it('refuses bad options naming the field', () => {
    expect(() => connectPostgres({ url: 'mysql://x' })).toThrow(/url/);
  });
});
