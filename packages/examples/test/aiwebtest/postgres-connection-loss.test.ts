import { type Engine, InputValidationError } from '@aiwebtest/runbooks';
import { DEPLOYMENTS, PODS, STATEFULSETS } from '@aiwebtest/runbooks/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresConnectionLossRunbook } from '../../src/aiwebtest/postgres-connection-loss';
import { exhaustConnections } from '../../src/lab/database/chaos';
import { readBackendHealth } from '../support/lab-backend';
import { findingsOf, said } from '../support/run-steps';
import { type RunbookLab, startRunbookLab } from '../support/runbook-lab';
import type { TestLab } from '../support/test-lab';
import { until } from '../support/until';

// Runbook 4 against the real lab: a real PgBouncer killed or exhausted, a crash-looping PostgreSQL pod in the
// simulated cluster, and the bridge that turns the runbook's rollout restarts into real restarts.
const RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';

let harness: RunbookLab;
let lab: TestLab;
let engine: Engine;

beforeAll(async () => {
  harness = await startRunbookLab(createPostgresConnectionLossRunbook);
  ({ lab, engine } = harness);
}, 90_000);
afterAll(() => harness?.close());

/** SELECT 1 through PgBouncer on a new connection, as the lab's pg_up does: true when it answers. */
async function throughPgBouncer(timeoutMs = 1500): Promise<boolean> {
  const client = new pg.Client({
    connectionString: lab.env.databaseUrl,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    const { rows } = await client.query<{ one: number }>('SELECT 1 AS one');
    return rows[0]?.one === 1;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

async function backendDatabaseUp(): Promise<boolean> {
  return (await readBackendHealth(lab.env.backendUrl)).database.up;
}

function restartedAt(kind: 'Deployment' | 'StatefulSet', name: string): string | undefined {
  const resource = kind === 'Deployment' ? DEPLOYMENTS : STATEFULSETS;
  const workload = lab.simulator.store.get(resource, lab.namespace, name) as unknown as {
    spec: { template: { metadata?: { annotations?: Record<string, string> } } };
  };
  return workload.spec.template.metadata?.annotations?.[RESTARTED_AT];
}

function postgresPods() {
  return lab.simulator.store
    .list(PODS, lab.namespace)
    .items.filter((p) => p.metadata.labels?.app === 'postgres' && !p.metadata.deletionTimestamp);
}

/** Crash-loops the PostgreSQL pods of the current revision only: a restart's new pods are healthy. */
function crashPostgres() {
  const hash = postgresPods()[0]?.metadata.labels?.['controller-revision-hash'];
  expect(hash).toBeTruthy();
  return lab.simulator.faults.inject({
    kind: 'crashLoop',
    namespace: lab.namespace,
    selector: `app=postgres,controller-revision-hash=${hash}`,
    message: 'PANIC: could not locate a valid checkpoint record',
  });
}

const findings = (runId: string) => findingsOf(engine, runId);

async function stepStatuses(runId: string): Promise<Record<string, string>> {
  const { steps } = await engine.getRun(runId);
  return Object.fromEntries(steps.map((s) => [s.name, s.status]));
}

describe('postgres-connection-loss', () => {
  it('refuses bad input naming the field', async () => {
    await expect(
      engine.start('postgres-connection-loss', { poolAlertAt: 2 }, { mode: 'diagnose', actor: 'alice' }),
    ).rejects.toThrow(InputValidationError);
    await expect(
      engine.start(
        'postgres-connection-loss',
        { readyTimeout: 'soon' },
        { mode: 'diagnose', actor: 'alice' },
      ),
    ).rejects.toThrow(/readyTimeout/);
  });

  it('healthy platform: says so and plans no change', async () => {
    const result = await engine.start('postgres-connection-loss', {}, { mode: 'plan', actor: 'alice' });
    expect(result.status).toBe('succeeded');
    expect(said(result)).toMatch(/^PostgreSQL is reachable through PgBouncer .*no recovery needed$/);
    const { steps } = await engine.getRun(result.runId);
    expect(steps.map((s) => s.name)).toEqual([
      'postgres-pods',
      'postgres-logs',
      'app-connection',
      'pgbouncer-pools',
      'pool-stats',
    ]);
  });

  it('PgBouncer killed and PostgreSQL crash-looping: diagnose names both and changes nothing', async () => {
    const fault = crashPostgres();
    await lab.pgbouncer.kill();
    try {
      await until('the postgres pod to crash', () =>
        postgresPods().some((p) =>
          (
            p.status as { containerStatuses?: { state?: { waiting?: { reason?: string } } }[] }
          ).containerStatuses?.some((c) => c.state?.waiting?.reason === 'CrashLoopBackOff'),
        ),
      );
      const before = {
        postgres: restartedAt('StatefulSet', 'postgres'),
        pgbouncer: restartedAt('Deployment', 'pgbouncer'),
      };
      const result = await engine.start('postgres-connection-loss', {}, { mode: 'diagnose', actor: 'alice' });
      expect(result.status).toBe('succeeded');
      expect(said(result)).toMatch(/PostgreSQL pod down: .*postgres-0.*CrashLoopBackOff/);
      expect(said(result)).toMatch(/PgBouncer is down/);
      const f = await findings(result.runId);
      expect(f.get('postgres-pods')?.status).toBe('fail');
      expect(f.get('app-connection')?.status).toBe('fail');
      expect(f.get('pgbouncer-pools')?.summary).toMatch(/^PgBouncer is down: SHOW POOLS/);
      expect(JSON.stringify(f.get('postgres-logs')?.evidence)).toContain(
        'could not locate a valid checkpoint',
      );
      expect(await stepStatuses(result.runId)).toMatchObject({
        'restart-postgres': 'skipped',
        'restart-pgbouncer': 'skipped',
        'restart-backend': 'skipped',
      });
      // Nothing changed: PgBouncer still down, no restart annotation moved.
      expect(lab.pgbouncer.running()).toBe(false);
      expect(restartedAt('StatefulSet', 'postgres')).toBe(before.postgres);
      expect(restartedAt('Deployment', 'pgbouncer')).toBe(before.pgbouncer);

      // Plan: exactly the three restarts, PostgreSQL's flagged high risk.
      const planned = await engine.start('postgres-connection-loss', {}, { mode: 'plan', actor: 'alice' });
      expect(said(planned)).toMatch(
        /Would restart statefulset\/postgres \(needs approval\), restart deployment\/pgbouncer, restart deployment\/backend/,
      );
      const { steps } = await engine.getRun(planned.runId);
      const postgresStep = steps.find((s) => s.name === 'restart-postgres')?.result as unknown as
        | { plan: { risk: string; changes: { target: string }[] } }
        | undefined;
      const postgresPlan = postgresStep?.plan;
      expect(postgresPlan?.risk).toBe('high');
      // The restart, and the crashed pod that would block the OrderedReady rolling update.
      expect(postgresPlan?.changes.map((c) => c.target)).toEqual([
        'k8s:aiwebtest/statefulset/postgres',
        'k8s:aiwebtest/pod/postgres-0',
      ]);
      expect(lab.pgbouncer.running()).toBe(false);

      // Execute: the PostgreSQL restart waits for a second person.
      const run = await engine.start('postgres-connection-loss', {}, { mode: 'execute', actor: 'alice' });
      expect(run.status).toBe('waiting_approval');
      expect(run.pendingApproval?.step).toBe('restart-postgres');
      await expect(engine.approve(run.runId, { actor: 'alice' })).rejects.toThrow();
      await engine.approve(run.runId, { actor: 'bob' });
      const done = await engine.resume(run.runId);
      expect(done.status, JSON.stringify(done.error ?? done.outcome)).toBe('succeeded');
      expect(said(done)).toMatch(/Recovered: postgres restart applied, pgbouncer restart applied/);

      // The real system: PgBouncer answers, the backend's database is up, the pods are ready.
      expect(lab.pgbouncer.running()).toBe(true);
      expect(await throughPgBouncer()).toBe(true);
      await until('the backend to see its database', backendDatabaseUp);
      expect(restartedAt('StatefulSet', 'postgres')).not.toBe(before.postgres);
      expect(restartedAt('Deployment', 'pgbouncer')).not.toBe(before.pgbouncer);
      expect(restartedAt('Deployment', 'backend')).toBeTruthy();
      const ready = postgresPods().every((p) =>
        (p.status as { conditions?: { type: string; status: string }[] }).conditions?.some(
          (c) => c.type === 'Ready' && c.status === 'True',
        ),
      );
      expect(ready).toBe(true);
      const after = await findings(run.runId);
      expect(after.get('verify-connectivity')?.summary).toMatch(/^SELECT NOW\(\) through PgBouncer answered/);
      expect(after.get('pool-utilization')?.status).not.toBe('fail');
      expect(lab.bridgeLog().some((l) => l.includes('pgbouncer: restarted'))).toBe(true);
      expect(lab.bridgeLog().some((l) => l.includes('backend: database connections reset'))).toBe(true);
      expect((await engine.verifyAudit()).ok).toBe(true);
    } finally {
      fault.clear();
      if (!lab.pgbouncer.running()) await lab.pgbouncer.restart();
    }
  });

  it('pool exhausted: diagnose names the saturated pool, a PgBouncer restart frees it', async () => {
    const hogs = await exhaustConnections({ url: lab.env.databaseUrl, count: 25 });
    try {
      const result = await engine.start(
        'postgres-connection-loss',
        { connectTimeout: '2s' },
        { mode: 'diagnose', actor: 'alice' },
      );
      expect(result.status).toBe('succeeded');
      expect(said(result)).toMatch(
        new RegExp(
          `pool ${lab.database}/postgres saturated: 20/20 server connections in use, \\d+ clients waiting`,
        ),
      );
      const f = await findings(result.runId);
      expect(f.get('pgbouncer-pools')?.status).toBe('fail');
      expect(f.get('postgres-pods')?.status).toBe('ok');
      expect(await throughPgBouncer()).toBe(false);

      // Execute: PostgreSQL is fine, so no approval; restarting PgBouncer drops the clients hogging the pool.
      const run = await engine.start(
        'postgres-connection-loss',
        { connectTimeout: '2s' },
        { mode: 'execute', actor: 'alice' },
      );
      expect(run.status, JSON.stringify(run.error ?? run.outcome)).toBe('succeeded');
      expect(said(run)).toMatch(
        /Recovered: postgres restart not needed \(pod ready\), pgbouncer restart applied/,
      );
      expect(await throughPgBouncer()).toBe(true);
      expect((await findings(run.runId)).get('pool-utilization')?.status).toBe('ok');
      expect((await engine.verifyAudit()).ok).toBe(true);
    } finally {
      await hogs.stop();
    }
  });

  it("PostgreSQL that a restart does not cure: escalates with the manual's words", async () => {
    // Every postgres pod crashes, the restarted ones too (a corrupt data directory would).
    const fault = lab.simulator.faults.inject({
      kind: 'crashLoop',
      namespace: lab.namespace,
      selector: 'app=postgres',
      message: 'PANIC: could not read file "global/pg_control": Input/output error',
    });
    try {
      await until('the postgres pod to fail', () =>
        postgresPods().every(
          (p) =>
            !(p.status as { conditions?: { type: string; status: string }[] }).conditions?.some(
              (c) => c.type === 'Ready' && c.status === 'True',
            ),
        ),
      );
      const run = await engine.start(
        'postgres-connection-loss',
        { readyTimeout: '10s' },
        { mode: 'execute', actor: 'alice' },
      );
      expect(run.status).toBe('waiting_approval');
      await engine.approve(run.runId, { actor: 'bob' });
      const done = await engine.resume(run.runId);
      expect(done.status).toBe('escalated');
      expect(said(done)).toBe("escalated: PostgreSQL won't start: check disk space and corruption");
      // It stopped there: PgBouncer and the backend were not restarted on top of a dead database.
      expect(await stepStatuses(run.runId)).not.toHaveProperty('restart-pgbouncer');
      expect((await engine.verifyAudit()).ok).toBe(true);
    } finally {
      fault.clear();
    }
    await until('postgres to recover once the fault is gone', () =>
      postgresPods().some((p) =>
        (p.status as { conditions?: { type: string; status: string }[] }).conditions?.some(
          (c) => c.type === 'Ready' && c.status === 'True',
        ),
      ),
    );
  });
});
