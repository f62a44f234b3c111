import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Engine, openStore, type RunStore } from '../../src';
import { type Postgres, postgres } from '../../src/postgres';
import { expectDocsShowTested } from '../support/docs-drift';
import { startTestCluster, type TestCluster } from '../support/postgres-cluster';
import { databasePerformance } from './docs-example-runbook';

// Keeps POSTGRES.md honest. docs-example-runbook.ts holds the runbook of its end-to-end section (shown there
// as `database-performance.ts`); here it runs through the real Engine against a real PostgreSQL 15 cluster of
// this file's own: a report query that has run too long, and test executions stuck in `running`. The last
// describe block checks that the docs still show exactly the tested code (import lines aside: the docs import
// the package, the test files the sources).

let cluster: TestCluster;
let setup: pg.Client;
let store: RunStore;
let engine: Engine;
let pgx: Postgres;
const clients: pg.Client[] = [];

beforeAll(async () => {
  // The embedded run store takes a few seconds to open: meanwhile the cluster starts.
  [cluster, store] = await Promise.all([startTestCluster(), openStore({ dataDir: ':memory:' })]);
  const admin = new pg.Client({ connectionString: cluster.url });
  await admin.connect();
  await admin.query('CREATE DATABASE aiwebtest');
  // Not a superuser: terminateBackends leaves superusers' sessions alone unless told otherwise.
  await admin.query('CREATE ROLE report LOGIN');
  await admin.end();
  setup = new pg.Client({ connectionString: urlAs('postgres'), application_name: 'test-setup' });
  await setup.connect();
  await setup.query(
    `CREATE TABLE test_executions (execution_id serial PRIMARY KEY, result text NOT NULL,
                                   started_at timestamptz NOT NULL, error_message text)`,
  );
  pgx = postgres({ url: urlAs('postgres'), name: 'aiwebtest' });
  engine = new Engine({ store, runbooks: [databasePerformance(pgx)] });
});

afterEach(async () => {
  for (const c of clients.splice(0)) await c.end().catch(() => {});
});

afterAll(async () => {
  await store?.close();
  await pgx?.db.close();
  await setup?.end();
  await cluster?.destroy();
});

function urlAs(user: string): string {
  return `postgres://${user}@127.0.0.1:${cluster.port}/aiwebtest`;
}

/** Two executions stuck for 45 and 12 minutes, one that started 2 minutes ago, one that passed. */
async function seedExecutions(): Promise<void> {
  await setup.query('TRUNCATE test_executions RESTART IDENTITY');
  await setup.query(`INSERT INTO test_executions (result, started_at) VALUES
    ('running', now() - interval '45 minutes'), ('running', now() - interval '12 minutes'),
    ('running', now() - interval '2 minutes'), ('passed', now() - interval '1 hour')`);
}

async function executions() {
  const { rows } = await setup.query(
    'SELECT execution_id, result, error_message FROM test_executions ORDER BY execution_id',
  );
  return rows.map((r) => [r.execution_id, r.result, r.error_message]);
}

/** A report query of its own session that runs (pg_sleep) until someone stops it; waits until it has run 1.2 s. */
async function longQuery() {
  const client = new pg.Client({ connectionString: urlAs('report'), application_name: 'report-service' });
  client.on('error', () => {});
  clients.push(client);
  await client.connect();
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid as number;
  const outcome = client.query('SELECT pg_sleep(60)').then(
    () => null,
    (e: { code?: string }) => e,
  );
  await vi.waitFor(
    async () => {
      const { rows } = await setup.query(
        `SELECT 1 FROM pg_stat_activity
          WHERE pid = $1 AND state = 'active' AND now() - query_start > interval '1200 milliseconds'`,
        [pid],
      );
      expect(rows).toHaveLength(1);
    },
    { timeout: 5_000, interval: 50 },
  );
  return { pid, outcome };
}

async function backendExists(pid: number): Promise<boolean> {
  return (await setup.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rows.length === 1;
}

describe('database-performance (POSTGRES.md)', () => {
  it('terminates the long query after a second person approves, then times out the stuck executions', async () => {
    await seedExecutions();
    const slow = await longQuery();

    const started = await engine.start(
      'database-performance',
      { queryLimit: '1s' },
      { mode: 'execute', actor: 'alice' },
    );
    expect(started.status).toBe('waiting_approval');
    expect(started.pendingApproval?.plan).toMatchObject({
      action: 'pg.terminate-backends',
      target: 'postgres:aiwebtest/backends',
      risk: 'high',
      destructive: true,
      changes: [
        {
          field: `backend ${slow.pid}`,
          before: { user: 'report', application: 'report-service', query: 'SELECT pg_sleep(60)' },
          after: 'terminated',
        },
      ],
    });
    expect(await backendExists(slow.pid)).toBe(true); // nothing is applied before the approval

    await expect(engine.approve(started.runId, { actor: 'alice' })).rejects.toMatchObject({
      code: 'FOUR_EYES',
    });
    await engine.approve(started.runId, { actor: 'bob' });
    const run = await engine.resume(started.runId);

    expect(run.status).toBe('succeeded');
    expect(run.outcome).toEqual({
      kind: 'done',
      summary: 'long-running queries terminated: 1; stuck executions timed out: 2',
    });
    const { steps } = await engine.getRun(run.runId);
    expect(steps.map((s) => [s.name, s.status])).toEqual([
      ['active-queries', 'succeeded'],
      ['terminate-long-queries', 'succeeded'],
      ['stuck-executions', 'succeeded'],
      ['cancel-stuck-executions', 'succeeded'],
    ]);
    expect(steps[0]?.result).toMatchObject({ status: 'fail' });
    expect(steps[1]?.result).toMatchObject({ status: 'applied', verification: { status: 'ok' } });
    expect(steps[2]?.result).toMatchObject({
      status: 'fail',
      summary: 'Test executions running longer than 10m: 2 rows (≥ fail 1)',
    });
    expect(steps[3]?.result).toMatchObject({
      status: 'applied',
      plan: { action: 'pg.sql-action', target: 'postgres:aiwebtest/test_executions', destructive: false },
      verification: { status: 'ok' },
    });

    // The effect: the backend is gone (its client got "terminating connection due to administrator
    // command"), exactly the two stuck executions are marked, the young one and the finished one are not.
    expect(await backendExists(slow.pid)).toBe(false);
    expect(await slow.outcome).toMatchObject({ code: '57P01' });
    expect(await executions()).toEqual([
      [1, 'error', 'Execution timeout'],
      [2, 'error', 'Execution timeout'],
      [3, 'running', null],
      [4, 'passed', null],
    ]);
    expect((await engine.verifyAudit()).ok).toBe(true);
  });

  it('in plan mode plans both actions and changes nothing', async () => {
    await seedExecutions();
    const slow = await longQuery();

    const run = await engine.start(
      'database-performance',
      { queryLimit: '1s' },
      { mode: 'plan', actor: 'alice' },
    );

    expect(run.status).toBe('succeeded');
    expect(run.outcome).toEqual({
      kind: 'done',
      summary: 'long-running queries terminated: planned; stuck executions timed out: planned',
    });
    expect(await backendExists(slow.pid)).toBe(true);
    expect(await executions()).toEqual([
      [1, 'running', null],
      [2, 'running', null],
      [3, 'running', null],
      [4, 'passed', null],
    ]);
    await setup.query('SELECT pg_terminate_backend($1)', [slow.pid]);
  });
});

describe('the docs show exactly the code tested here', () => {
  it('POSTGRES.md shows database-performance.ts as tested', () => {
    expectDocsShowTested(
      new URL('../../POSTGRES.md', import.meta.url),
      new URL('./docs-example-runbook.ts', import.meta.url),
      'database-performance.ts',
    );
  });
});
