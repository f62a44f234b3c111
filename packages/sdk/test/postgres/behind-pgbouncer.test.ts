import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StepContext } from '../../src/core/step';
import { activeQueries } from '../../src/postgres/checks/active-queries';
import { connectivity } from '../../src/postgres/checks/connectivity';
import { sqlCheck } from '../../src/postgres/checks/sql-check';
import { tableSizes } from '../../src/postgres/checks/table-sizes';
import { connectPostgres, type PostgresDatabase } from '../../src/postgres/database';
import { startTestPgBouncer, type TestPgBouncer } from '../support/pgbouncer';
import { startTestCluster, type TestCluster } from '../support/postgres-cluster';

// The platform the manual describes reaches PostgreSQL through PgBouncer in transaction pooling. There, a
// startup parameter is refused and a session setting leaks to whichever client gets the server connection
// next; the SDK bounds each statement with SET LOCAL inside a transaction instead.

let cluster: TestCluster;
let bouncer: TestPgBouncer;
let direct: pg.Client;
let db: PostgresDatabase;

beforeAll(async () => {
  cluster = await startTestCluster();
  direct = new pg.Client({ connectionString: cluster.url });
  await direct.connect();
  await direct.query('CREATE TABLE jobs (id int PRIMARY KEY)');
  // One server connection: every client of the pool shares it, so a leaked setting would show.
  bouncer = await startTestPgBouncer({
    postgresPort: cluster.port,
    databases: { app: { dbname: 'postgres', poolSize: 1 } },
  });
  db = connectPostgres({ url: bouncer.url('app'), statementTimeout: '7s', lockTimeout: '300ms' });
});
afterAll(async () => {
  await db?.close();
  await direct?.end().catch(() => {});
  await bouncer?.stop();
  await cluster?.destroy();
});

const ctx = (): StepContext => ({
  runId: 'run-1',
  runbookId: 'test',
  step: 'step',
  mode: 'diagnose',
  attempt: 1,
  actor: 'test',
  signal: AbortSignal.timeout(20_000),
  log: () => {},
});

describe('PostgreSQL checks behind PgBouncer (transaction pooling)', () => {
  it('connect and query: no startup parameter for PgBouncer to refuse', async () => {
    const probe = await connectivity(db).run(ctx());
    expect(probe.status).not.toBe('fail');
    expect((await db.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it("bounds each statement within its own transaction, and the bound does not leak to the pool's next client", async () => {
    const bounded = await db.query<{ statement_timeout: string; lock_timeout: string }>(
      "SELECT current_setting('statement_timeout') AS statement_timeout, current_setting('lock_timeout') AS lock_timeout",
    );
    expect(bounded.rows[0]).toEqual({ statement_timeout: '7s', lock_timeout: '300ms' });
    // Another client of the same pool (the same, only, server connection) sees the server's defaults.
    const other = new pg.Client({ connectionString: bouncer.url('app') });
    await other.connect();
    try {
      const { rows } = await other.query(
        "SELECT current_setting('statement_timeout') AS t, current_setting('lock_timeout') AS l",
      );
      expect(rows[0]).toEqual({ t: '0', l: '0' });
    } finally {
      await other.end();
    }
  });

  it('a check on a table the incident holds locked fails fast, naming the lock, instead of stalling', async () => {
    const holder = new pg.Client({ connectionString: cluster.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE');
      const started = Date.now();
      const finding = await sqlCheck(db, {
        name: 'Jobs',
        sql: 'SELECT count(*)::int AS value FROM jobs',
      }).run(ctx());
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(finding.status).toBe('unknown');
      expect(finding.summary).toMatch(/^Jobs: not read, a lock was held longer than the lock timeout/);
      const sizes = await tableSizes(db).run(ctx());
      expect(sizes.status).toBe('unknown');
      expect(sizes.summary).toMatch(/^Table sizes: not read, a lock was held/);
      // The views of sessions take no lock on the table: they still answer, and show the holder.
      const active = await activeQueries(db, { minDuration: '0s', includeIdle: true }).run(ctx());
      expect(JSON.stringify(active.data)).toContain('LOCK TABLE jobs');
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await holder.end();
    }
  });
});
