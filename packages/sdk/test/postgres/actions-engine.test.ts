import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { finding } from '../../src/core/finding';
import { defineRunbook } from '../../src/core/runbook';
import { defineCheck } from '../../src/core/step';
import { terminateBackends } from '../../src/postgres/actions';
import { connectPostgres, type PostgresDatabase } from '../../src/postgres/database';
import { openStore } from '../../src/store/open-store';
import { engineFixture } from '../support/engine-fixture';
import { startTestCluster, type TestCluster } from '../support/postgres-cluster';

// The manual's "kill long-running queries" (runbook 5, step 1) as a runbook on the real Engine against a real
// PostgreSQL cluster: find them, terminate with a second person's approval, verify. The run store is a
// PostgreSQL store in a database of the same cluster.

const APP = 'report-service';

let cluster: TestCluster;
let db: PostgresDatabase;
let setup: pg.Client;
const clients: pg.Client[] = [];

beforeAll(async () => {
  cluster = await startTestCluster();
  setup = new pg.Client({ connectionString: cluster.url, application_name: 'test-setup' });
  await setup.connect();
  await setup.query('CREATE ROLE app LOGIN');
  await setup.query('CREATE DATABASE runbooks');
  db = connectPostgres({ url: cluster.url, name: 'aiwebtest' });
});

afterEach(async () => {
  for (const c of clients.splice(0)) await c.end().catch(() => {});
});

afterAll(async () => {
  await db?.close();
  await setup?.end();
  await cluster?.destroy();
});

/** A report query that runs far too long, from a client of its own. */
async function longQuery() {
  const client = new pg.Client({
    connectionString: cluster.url.replace('postgres@', 'app@'),
    application_name: APP,
  });
  client.on('error', () => {});
  clients.push(client);
  await client.connect();
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid as number;
  const outcome = client.query('SELECT pg_sleep(60)').then(
    () => null,
    (e: { code?: string }) => e,
  );
  await vi.waitFor(async () => expect(await active(pid)).toBe(true), { timeout: 5_000, interval: 20 });
  return { pid, outcome };
}

async function active(pid: number): Promise<boolean> {
  const { rows } = await setup.query(
    `SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND now() - query_start > interval '200 milliseconds'`,
    [pid],
  );
  return rows.length === 1;
}

async function exists(pid: number): Promise<boolean> {
  return (await setup.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rows.length === 1;
}

/** Diagnosis: the manual's query for active queries running longer than the threshold (without our own). */
const longQueries = (minDuration: string) =>
  defineCheck({
    kind: 'test.long-queries',
    async run(ctx) {
      const { rows } = await db.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity
          WHERE state = 'active' AND now() - query_start > $1::interval AND pid <> pg_backend_pid()
            AND application_name = $2 ORDER BY pid`,
        [minDuration, APP],
        { signal: ctx.signal },
      );
      const pids = rows.map((r) => r.pid);
      return finding(pids.length ? 'fail' : 'ok', `${pids.length} long-running queries`, { pids });
    },
  });

const slowQueries = defineRunbook({
  id: 'slow-queries',
  title: 'Database performance: kill long-running queries',
  severity: 'P2',
  input: z.object({ minDuration: z.string() }),
  async run({ input, step }) {
    const found = await step.check('long-queries', longQueries(input.minDuration));
    if (found.status === 'ok') return step.done('no long-running queries');
    await step.act(
      'terminate',
      terminateBackends(db, { filter: { minDuration: input.minDuration, application: APP } }),
    );
    return step.done(`terminated ${(found.data as { pids: number[] }).pids.length} long-running queries`);
  },
});

describe('terminating long-running queries through the engine', () => {
  const fx = engineFixture(async () => {
    const store = await openStore({ url: cluster.url.replace(/\/postgres$/, '/runbooks') });
    return { store, dispose: () => store.close() };
  });

  it('waits for a second person’s approval, then terminates exactly the planned backend and verifies it is gone', async () => {
    const slow = await longQuery();
    const engine = fx.engine([slowQueries]);
    const started = await engine.start(
      'slow-queries',
      { minDuration: '200ms' },
      { mode: 'execute', actor: 'alice' },
    );
    expect(started.status).toBe('waiting_approval');
    expect(started.pendingApproval?.plan).toMatchObject({
      action: 'pg.terminate-backends',
      target: 'postgres:aiwebtest/backends',
      destructive: true,
      changes: [
        { field: `backend ${slow.pid}`, after: 'terminated', before: { user: 'app', application: APP } },
      ],
    });
    expect(await exists(slow.pid)).toBe(true); // nothing happened yet

    await expect(engine.approve(started.runId, { actor: 'alice' })).rejects.toMatchObject({
      code: 'FOUR_EYES',
    });
    await engine.approve(started.runId, { actor: 'bob' });
    const resumed = await engine.resume(started.runId);
    expect(resumed.status).toBe('succeeded');
    expect(resumed.outcome).toEqual({ kind: 'done', summary: 'terminated 1 long-running queries' });

    const { steps } = await engine.getRun(started.runId);
    expect(steps.map((s) => [s.name, s.status])).toEqual([
      ['long-queries', 'succeeded'],
      ['terminate', 'succeeded'],
    ]);
    const act = steps[1]?.result as { status: string; verification: { status: string; summary: string } };
    expect(act.status).toBe('applied');
    expect(act.verification).toMatchObject({
      status: 'ok',
      summary: expect.stringMatching(/^1 backend terminated/),
    });
    expect(await exists(slow.pid)).toBe(false);
    expect(await slow.outcome).toMatchObject({ code: '57P01' });
    expect((await engine.verifyAudit()).ok).toBe(true);
  });

  it('a query that finished while the approval waited is not touched: the resumed step has nothing to do', async () => {
    const slow = await longQuery();
    const engine = fx.engine([slowQueries]);
    const started = await engine.start(
      'slow-queries',
      { minDuration: '200ms' },
      { mode: 'execute', actor: 'alice' },
    );
    expect(started.status).toBe('waiting_approval');
    await setup.query('SELECT pg_cancel_backend($1)', [slow.pid]);
    expect(await slow.outcome).toMatchObject({ code: '57014' });
    // The client sees the error a moment before the server reports the session idle.
    await vi.waitFor(async () => expect(await active(slow.pid)).toBe(false), {
      timeout: 5_000,
      interval: 20,
    });
    await engine.approve(started.runId, { actor: 'bob' });
    const resumed = await engine.resume(started.runId);
    expect(resumed.status).toBe('succeeded');
    const { steps } = await engine.getRun(started.runId);
    expect(steps[1]?.result).toMatchObject({ status: 'noop' });
    expect(await exists(slow.pid)).toBe(true); // the session itself was left alone
  });
});
