import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Engine, type Notifier, openStore, type RunStore, sealPlan } from '@aiwebtest/runbooks';
import { connectPgBouncer } from '@aiwebtest/runbooks/postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AiWebTest, connectAiWebTest } from '../../src/aiwebtest/environment';
import {
  createSystemFailureRunbook,
  microsToIso,
  pgbouncerDatabaseAddress,
  pointPgBouncer,
  withDatabaseAddress,
} from '../../src/aiwebtest/system-failure';
import { freePort } from '../../src/lab/database/pgbouncer';
import { platformWorkloadsCheck } from '../../src/lab/dr/platform-health';
import type { TableRows } from '../../src/lab/dr/table-rows';
import { AFTER_RECORD_MARKER } from '../../src/lab/dr/total-failure';
import { type LabControl, startLabControl } from '../../src/lab/lab-control';
import { type LabObservability, startLabPrometheus } from '../../src/lab/observability';
import { stepContext } from '../support/apply-action';
import { findingsOf, resultOf, said, stepsOf } from '../support/run-steps';
import { startTestLab, type TestLab } from '../support/test-lab';
import { until } from '../support/until';

// Runbook 13 against a disaster-recovery lab: its own PostgreSQL archiving WAL with a base backup, its own
// supervised redis-server with an RDB snapshot, real PgBouncer, the lab exporter scraped by a real Prometheus
// (the pre-incident record lives there, outside what fails). The total-failure scenario wipes it all.

let lab: TestLab;
let control: LabControl;
let prometheus: LabObservability;
let platform: AiWebTest;
let store: RunStore;
let engine: Engine;
const notified: { channel?: string; message: string; severity?: string }[] = [];

beforeAll(async () => {
  lab = await startTestLab({ disasterRecovery: true });
  control = await startLabControl(lab, { port: 0 });
  prometheus = await startLabPrometheus({
    dir: lab.dir,
    port: await freePort(),
    exporterUrl: control.url,
    backendUrl: lab.env.backendUrl,
    // No Alertmanager: this test starts the runbook itself.
    alertmanagerUrl: `http://127.0.0.1:${await freePort()}`,
  });
  platform = connectAiWebTest({ ...lab.env, prometheusUrl: prometheus.url });
  store = await openStore({ dataDir: ':memory:' });
  const notifier: Notifier = {
    notify: async (n) => {
      notified.push({ channel: n.channel, message: n.message, severity: n.severity });
    },
  };
  engine = new Engine({
    store,
    notifier,
    runbooks: [createSystemFailureRunbook({ connect: () => platform })],
  });
}, 120_000);

afterAll(async () => {
  await platform?.close();
  await store?.close();
  await prometheus?.stop();
  await control?.close();
  await lab?.close();
});

/** A statement through PgBouncer on a new connection (what the application sees), `null` when it fails. */
async function throughPgBouncer<T extends pg.QueryResultRow>(
  sql: string,
  values: unknown[] = [],
): Promise<T[] | null> {
  // PgBouncer accepts the client and holds its query while it tries the server: bound the query too.
  const client = new pg.Client({
    connectionString: lab.env.databaseUrl,
    connectionTimeoutMillis: 2_000,
    query_timeout: 3_000,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.query<T>(sql, values)).rows;
  } catch {
    return null;
  } finally {
    await client.end().catch(() => {});
  }
}

async function counts(): Promise<Record<string, number> | null> {
  const rows = await throughPgBouncer<{ users: string; test_cases: string; test_executions: string }>(
    `SELECT (SELECT count(*) FROM users)::text AS users, (SELECT count(*) FROM test_cases)::text AS test_cases,
            (SELECT count(*) FROM test_executions)::text AS test_executions`,
  );
  const r = rows?.[0];
  return r
    ? { users: Number(r.users), test_cases: Number(r.test_cases), test_executions: Number(r.test_executions) }
    : null;
}

/** Runs to the end in execute mode, approving each plan as a second person. */
async function executeApproving(input: Record<string, unknown>) {
  let run = await engine.start('system-failure', input, { mode: 'execute', actor: 'alice' });
  const approved: string[] = [];
  while (run.status === 'waiting_approval') {
    approved.push(run.pendingApproval?.step ?? '?');
    await engine.approve(run.runId, { actor: 'bob' });
    run = await engine.resume(run.runId);
  }
  return { run, approved };
}

describe('system-failure (runbook 13) on a disaster-recovery lab', () => {
  it('refuses to restore anything while the platform runs', async () => {
    const result = await engine.start('system-failure', {}, { mode: 'diagnose', actor: 'alice' });
    expect(result.status).toBe('succeeded');
    expect(said(result)).toMatch(/^not a complete failure: the database answers/);
  });

  it('total failure: PostgreSQL back at the pre-incident point with its counts, Redis keys back, every workload ready', async () => {
    const dr = lab.disasterRecovery;
    if (!dr) throw new Error('the lab has no disaster recovery');
    // Keys of the platform's Redis the snapshot must bring back.
    await lab.redis.set('aiwebtest:lab:dr-test:session', 'alice');
    await lab.redis.rpush('aiwebtest:lab:dr-test:queue', 'a', 'b', 'c');
    await until('Prometheus to scrape the lab', async () => dr.tableRows.servedAt > 0, 20_000);
    const before = await counts();
    expect(before?.users).toBeGreaterThan(0);

    const incident = await control.inject('total-failure');
    expect(incident.description).toMatch(/wrote 1 user and 3 executions after the record/);
    // The record the scenario waited for is what monitoring holds; nothing was written between the two.
    const record = dr.tableRows.last as TableRows;
    expect(record.counts).toEqual(before);

    // The disaster, for real.
    expect(await throughPgBouncer('SELECT 1')).toBeNull();
    expect(platformWorkloadsCheck(lab).ok).toBe(false);
    expect(await lab.redis.exists('aiwebtest:lab:dr-test:session', 'aiwebtest:lab:dr-test:queue')).toBe(0);

    const diagnosis = await engine.start('system-failure', {}, { mode: 'diagnose', actor: 'alice' });
    const found = await findingsOf(engine, diagnosis.runId);
    expect(found.get('database-server')?.status).toBe('fail');
    expect(found.get('pods')?.status).toBe('fail');
    expect(found.get('pre-incident-record')?.data).toMatchObject({
      counts: record.counts,
      recordedAtMicros: record.recordedAtMicros,
    });

    const { run, approved } = await executeApproving({});
    expect(run.status, JSON.stringify(run.error ?? run.outcome)).toBe('succeeded');
    expect(approved).toEqual(['restore-postgres', 'point-pgbouncer', 'restore-redis', 'redeploy']);
    expect(said(run)).toMatch(/Recovered: PostgreSQL restored to/);

    // PostgreSQL: restored to exactly the recorded point, through PgBouncer, on a new timeline and port.
    const steps = await stepsOf(engine, run.runId);
    const restorePlan = resultOf<{ plan: { params: { target: unknown; port: number } } }>(
      steps,
      'restore-postgres',
    ).plan.params;
    expect(restorePlan.target).toEqual({
      kind: 'time',
      value: microsToIso(record.recordedAtMicros).replace('Z', '+00:00'),
    });
    const ini = await readFile(dr.pgbouncerIni, 'utf8');
    expect(pgbouncerDatabaseAddress(ini, lab.database)).toEqual({
      host: '127.0.0.1',
      port: restorePlan.port,
    });
    expect(await counts()).toEqual(record.counts);
    // What was written after the record is gone: the restore stopped at the record's time.
    const after = await throughPgBouncer<{ users: string; executions: string }>(
      `SELECT (SELECT count(*) FROM users WHERE username LIKE $1)::text AS users,
              (SELECT count(*) FROM test_executions WHERE error_message = $2)::text AS executions`,
      [`${AFTER_RECORD_MARKER}-%`, AFTER_RECORD_MARKER],
    );
    expect(after).toEqual([{ users: '0', executions: '0' }]);
    const findings = await findingsOf(engine, run.runId);
    expect(findings.get('restored-counts')?.status).toBe('ok');
    expect(findings.get('data-integrity')?.status).toBe('ok');

    // Redis: a new process loaded the snapshot.
    expect(dr.redis.starts()).toBeGreaterThan(1);
    expect(await lab.redis.get('aiwebtest:lab:dr-test:session')).toBe('alice');
    expect(await lab.redis.lrange('aiwebtest:lab:dr-test:queue', 0, -1)).toEqual(['a', 'b', 'c']);

    // Every workload redeployed and ready; the API healthy, the smoke test answered; the status page told.
    expect(platformWorkloadsCheck(lab)).toMatchObject({ ok: true });
    expect(findings.get('backend-health')?.status).toBe('ok');
    expect(findings.get('smoke-test')?.summary).toMatch(/^sample request answered/);
    expect(notified).toEqual([
      expect.objectContaining({
        channel: 'statuspage',
        severity: 'P0',
        message: expect.stringContaining('back online'),
      }),
    ]);
    expect((await engine.verifyAudit()).ok).toBe(true);
  }, 150_000);

  it("rewrites only the database entry of PgBouncer's ini", () => {
    const ini =
      '[databases]\napp = host=10.0.0.1 port=5432 dbname=app pool_size=5\nother = host=x\n\n[pgbouncer]\nlisten_port = 6432\n';
    const moved = withDatabaseAddress(ini, 'app', { host: '127.0.0.1', port: 6543 });
    expect(moved).toBe(
      '[databases]\napp = host=127.0.0.1 port=6543 dbname=app pool_size=5\nother = host=x\n\n[pgbouncer]\nlisten_port = 6432\n',
    );
    expect(pgbouncerDatabaseAddress(moved, 'app')).toEqual({ host: '127.0.0.1', port: 6543 });
    expect(pgbouncerDatabaseAddress(moved, 'listen_port')).toBeNull();
    expect(() => withDatabaseAddress(ini, 'missing', { host: 'h', port: 1 })).toThrow(/no entry for missing/);
  });

  it('refuses to point PgBouncer over an ini someone changed since the plan, and to revert over a later change', async () => {
    const ini = join(lab.dir, 'stale-check.ini');
    const text = (address: string) =>
      `[databases]\napp = host=${address} port=5432 dbname=app\n\n[pgbouncer]\nlisten_port = 6432\n`;
    await writeFile(ini, text('10.0.0.1'));
    // The console is never reached: each refusal comes before any write, RELOAD or RECONNECT.
    const console = connectPgBouncer({ url: `postgres://admin@127.0.0.1:${await freePort()}/pgbouncer` });
    const action = pointPgBouncer({ ini, database: 'app', to: { host: '10.0.0.2', port: 5432 }, console });
    const plan = sealPlan(action, await action.plan(stepContext()));
    expect(plan.params.before).toEqual({ host: '10.0.0.1', port: 5432 });

    await writeFile(ini, text('10.0.0.9'));
    await expect(action.apply(stepContext(), plan)).rejects.toMatchObject({
      code: 'STALE_PLAN',
      retriable: false,
      message: expect.stringContaining('sends app to 10.0.0.9:5432 now, not 10.0.0.1:5432 as planned'),
    });
    expect(await readFile(ini, 'utf8')).toBe(text('10.0.0.9'));

    const applied = { plan, data: { at: '' }, appliedAt: new Date().toISOString(), recovered: false };
    await expect(action.revert?.(stepContext(), applied)).rejects.toMatchObject({
      code: 'STALE_REVERT',
      message: expect.stringContaining(
        'sends app to 10.0.0.9:5432 now, not 10.0.0.2:5432 as the apply left it',
      ),
    });
    expect(await readFile(ini, 'utf8')).toBe(text('10.0.0.9'));
  });

  it('names the field of a bad restoreTo', async () => {
    await expect(
      engine.start('system-failure', { restoreTo: 'yesterday' }, { mode: 'diagnose', actor: 'alice' }),
    ).rejects.toThrow(/restoreTo/);
  });
});
