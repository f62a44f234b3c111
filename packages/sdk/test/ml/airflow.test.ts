import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineRunbook } from '../../src/core/runbook';
import { connectAirflow } from '../../src/ml/airflow/client';
import { airflowTrigger } from '../../src/ml/airflow/trigger-dag';
import { waitForDagRun } from '../../src/ml/airflow/wait-for-dag-run';
import {
  type AirflowDouble,
  type AirflowDoubleOptions,
  startAirflowDouble,
} from '../../src/testing/ml/airflow-double';
import { type MlflowDouble, startMlflowDouble } from '../../src/testing/ml/mlflow-double';
import { engineFixture } from '../support/engine-fixture';
import { sealAsEngine, stepContext } from '../support/kubernetes';
import { postgresStore, uniqueSchema } from '../support/stores';

// Triggering and following Airflow DAG runs against the Airflow double (both REST APIs over real HTTP).

const PASSWORD = 'airflow-secret-pw';
let airflow: AirflowDouble | undefined;
let mlflow: MlflowDouble | undefined;

async function start(options: AirflowDoubleOptions = {}): Promise<AirflowDouble> {
  airflow = await startAirflowDouble({ users: { ops: PASSWORD }, queuedFor: 20, runFor: 80, ...options });
  return airflow;
}

afterEach(async () => {
  await airflow?.close();
  await mlflow?.close();
  airflow = undefined;
  mlflow = undefined;
});

describe('AirflowClient (Airflow double over HTTP)', () => {
  it('v2: takes a bearer token from /auth/token and posts exactly {logical_date: null, conf, dag_run_id, note}', async () => {
    const double = await start();
    const client = connectAirflow({ url: double.url, username: 'ops', password: PASSWORD });
    const run = await client.triggerDagRun('model_retraining', {
      dagRunId: 'r1',
      conf: { training_data_path: 's3://data/x.csv' },
      note: 'drift recovery',
    });
    expect(run).toMatchObject({
      dagId: 'model_retraining',
      dagRunId: 'r1',
      state: 'queued',
      conf: { training_data_path: 's3://data/x.csv' },
    });
    expect(double.requests.map((r) => [r.method, r.path, r.auth ?? null, r.status])).toEqual([
      ['POST', '/auth/token', null, 201],
      ['POST', '/api/v2/dags/model_retraining/dagRuns', 'bearer', 200],
    ]);
    expect(double.requests[0]?.body).toEqual({ username: 'ops', password: '[REDACTED]' });
    expect(double.requests[1]?.body).toEqual({
      logical_date: null,
      conf: { training_data_path: 's3://data/x.csv' },
      dag_run_id: 'r1',
      note: 'drift recovery',
    });
    expect(JSON.stringify(client)).not.toContain(PASSWORD);
  });

  it('v2 double refuses what the real API refuses: extra fields and a missing logical_date (422), no token (401)', async () => {
    const double = await start();
    const token = (
      (await (
        await fetch(`${double.url}/auth/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ username: 'ops', password: PASSWORD }),
        })
      ).json()) as { access_token: string }
    ).access_token;
    const post = (body: unknown, auth = `Bearer ${token}`) =>
      fetch(`${double.url}/api/v2/dags/model_retraining/dagRuns`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: auth },
        body: JSON.stringify(body),
      });
    const extra = await post({ logical_date: null, conf: {}, execution_date: '2026-01-01' });
    expect(extra.status).toBe(422);
    expect(await extra.json()).toEqual({
      detail: [
        {
          type: 'extra_forbidden',
          loc: ['body', 'execution_date'],
          msg: 'Extra inputs are not permitted',
          input: '2026-01-01',
        },
      ],
    });
    const missing = await post({ conf: {} });
    expect(((await missing.json()) as { detail: { loc: string[] }[] }).detail[0]?.loc).toEqual([
      'body',
      'logical_date',
    ]);
    expect((await post({ logical_date: null }, 'Bearer forged')).status).toBe(401);
    expect(double.runs('model_retraining')).toEqual([]);
  });

  it('v1: basic auth and {dag_run_id, conf}; a wrong password is a 401 MlServiceError without the password', async () => {
    const double = await start();
    const client = connectAirflow({ url: double.url, apiVersion: 'v1', username: 'ops', password: PASSWORD });
    await client.triggerDagRun('model_retraining', { dagRunId: 'r1', conf: { a: 1 } });
    expect(double.requests.map((r) => [r.path, r.auth, r.body])).toEqual([
      ['/api/v1/dags/model_retraining/dagRuns', 'basic', { dag_run_id: 'r1', conf: { a: 1 } }],
    ]);
    expect(double.runs('model_retraining')[0]).toMatchObject({ api: 'v1', dag_run_id: 'r1' });
    const wrong = connectAirflow({
      url: double.url,
      apiVersion: 'v1',
      username: 'ops',
      password: 'nope-wrong-pw',
    });
    const error = await wrong.getDagRun('model_retraining', 'r1').catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'AIRFLOW_ERROR',
      status: 401,
      errorCode: 'Unauthorized',
      retriable: false,
    });
    expect(String((error as Error).message)).not.toContain('nope-wrong-pw');
  });

  it('a run goes queued → running → success on the double, and onRunSuccess sees it', async () => {
    const seen: string[] = [];
    // Long enough that a busy machine still sees each state when polling every 10 ms.
    const double = await start({
      queuedFor: 400,
      runFor: 400,
      onRunSuccess: (run) => void seen.push(`${run.dag_run_id}:${run.state}`),
    });
    const client = connectAirflow({ url: double.url, username: 'ops', password: PASSWORD });
    await client.triggerDagRun('model_retraining', { dagRunId: 'r1', conf: {} });
    const states = new Set<string>();
    for (let i = 0; i < 100 && !states.has('success'); i++) {
      states.add((await client.getDagRun('model_retraining', 'r1'))?.state ?? 'missing');
      await new Promise((r) => setTimeout(r, 10));
    }
    expect([...states]).toEqual(['queued', 'running', 'success']);
    expect(seen).toEqual(['r1:success']);
    expect(await client.getDagRun('model_retraining', 'nope')).toBeNull();
  });
});

describe('airflowTrigger', () => {
  it('plans a deterministic run id; a retried apply (409) does not trigger twice; verify reads the run', async () => {
    const double = await start();
    const client = connectAirflow({ url: double.url, username: 'ops', password: PASSWORD });
    const ctx = stepContext({ runId: 'run-7', step: 'retrain', runbookId: 'data-drift' });
    const action = airflowTrigger(client, {
      dag: 'model_retraining',
      conf: { training_data_path: 's3://d.csv' },
    });
    const plan = sealAsEngine(action, await action.plan(ctx));
    expect(plan.changes).toEqual([
      {
        target: 'airflow:127.0.0.1/dag/model_retraining',
        field: 'dagRuns[runbook__run-7__retrain]',
        before: null,
        after: { state: 'queued', conf: { training_data_path: 's3://d.csv' } },
      },
    ]);
    const first = await action.apply(ctx, plan);
    const second = await action.apply(ctx, plan);
    expect(first).toEqual({ dagRunId: 'runbook__run-7__retrain', state: 'queued', alreadyTriggered: false });
    expect(second).toMatchObject({ dagRunId: 'runbook__run-7__retrain', alreadyTriggered: true });
    expect(double.runs('model_retraining')).toHaveLength(1);
    expect(double.runs('model_retraining')[0]?.note).toBe('Triggered by runbook data-drift, run run-7');
    // Re-planned after the apply (as the engine does after a crash), there is nothing left to do.
    expect((await action.plan(ctx)).changes).toEqual([]);
    const applied = { plan, data: first, appliedAt: new Date().toISOString(), recovered: false };
    expect((await action.verify?.(ctx, applied))?.status).toBe('ok');
  });

  it('refuses an unknown DAG with a message naming it, and retries a 5xx', async () => {
    const double = await start();
    const client = connectAirflow({ url: double.url, username: 'ops', password: PASSWORD });
    const action = airflowTrigger(client, { dag: 'no_such_dag' });
    const plan = sealAsEngine(action, {
      summary: 's',
      changes: [],
      params: { dag: 'no_such_dag', dagRunId: 'x', conf: {}, note: 'n' },
    });
    await expect(action.apply(stepContext(), plan)).rejects.toMatchObject({
      status: 404,
      retriable: false,
      message: expect.stringContaining('The Dag with ID: `no_such_dag` was not found'),
    });
    double.faults.inject({ status: 502, path: '/api/v2/dags', times: 1 });
    await expect(client.getDagRun('model_retraining', 'x')).rejects.toMatchObject({
      status: 502,
      retriable: true,
    });
  });
});

describe('waitForDagRun', () => {
  it('polls until success, logging each state change', async () => {
    const double = await start({ queuedFor: 400, runFor: 400 });
    const client = connectAirflow({ url: double.url, username: 'ops', password: PASSWORD });
    await client.triggerDagRun('model_retraining', { dagRunId: 'r1', conf: {} });
    const log: string[] = [];
    const found = await waitForDagRun(client, {
      dag: 'model_retraining',
      dagRunId: 'r1',
      pollInterval: 10,
      timeout: '10s',
    }).run(stepContext({ log: (m) => log.push(m) }));
    expect(found.status).toBe('ok');
    expect(found.data.states.map(([, s]) => s)).toEqual(['queued', 'running', 'success']);
    expect(log.map((l) => l.replace(/after .*/, ''))).toEqual([
      'DAG model_retraining run r1: queued ',
      'DAG model_retraining run r1: running ',
      'DAG model_retraining run r1: success ',
    ]);
  });

  it('fails on a failed run, and is unknown when the run outlasts the timeout', async () => {
    const double = await start({ outcome: () => 'failed', runFor: '1h' });
    const client = connectAirflow({ url: double.url, username: 'ops', password: PASSWORD });
    await client.triggerDagRun('model_retraining', { dagRunId: 'r1', conf: {} });
    const slow = await waitForDagRun(client, {
      dag: 'model_retraining',
      dagRunId: 'r1',
      pollInterval: 20,
      timeout: 150,
    }).run(stepContext());
    expect([slow.status, slow.data.state]).toEqual(['unknown', 'running']);
    await double.finish('model_retraining', 'r1', 'failed');
    const failed = await waitForDagRun(client, {
      dag: 'model_retraining',
      dagRunId: 'r1',
      pollInterval: 20,
    }).run(stepContext());
    expect([failed.status, failed.summary]).toEqual([
      'fail',
      expect.stringMatching(/^DAG model_retraining run r1 failed/),
    ]);
  });
});

describe('retraining through the engine, registering a version in the MLflow double on success', () => {
  const fx = engineFixture(() => postgresStore(uniqueSchema('ml_test_airflow')));

  it('triggers once, waits for the run, and the onRunSuccess hook registered the new version', async () => {
    mlflow = await startMlflowDouble({ models: [{ name: 'generation_model', versions: [{}, {}] }] });
    const registryDouble = mlflow;
    const double = await start({
      onRunSuccess: (run) => {
        registryDouble.registerVersion('generation_model', { tags: { dag_run_id: run.dag_run_id } });
      },
    });
    const client = connectAirflow({ url: double.url, username: 'ops', password: PASSWORD });
    const retrain = defineRunbook({
      id: 'retrain',
      title: 'Retrain the model',
      severity: 'P3',
      input: z.object({ path: z.string() }),
      async run({ input, step }) {
        const triggered = await step.act(
          'trigger',
          airflowTrigger(client, { dag: 'model_retraining', conf: { training_data_path: input.path } }),
        );
        if (triggered.status === 'skipped') return step.done('diagnose only');
        // The plan fixed the run id: the same whether this attempt applied it or found it done.
        const dagRunId = triggered.plan.params.dagRunId;
        const waited = await step.check(
          'wait',
          waitForDagRun(client, { dag: 'model_retraining', dagRunId, pollInterval: 20, timeout: '10s' }),
        );
        return step.done(`retraining ${waited.data.state}`);
      },
    });
    const engine = fx.engine([retrain]);
    const run = await engine.start('retrain', { path: 's3://d.csv' }, { mode: 'execute', actor: 'alice' });
    expect(run.status).toBe('succeeded');
    expect(run.outcome).toEqual({ kind: 'done', summary: 'retraining success' });
    expect(double.runs('model_retraining').map((r) => r.dag_run_id)).toEqual([
      `runbook__${run.runId}__trigger`,
    ]);
    expect(mlflow.version('generation_model', '3')?.tags).toEqual([
      { key: 'dag_run_id', value: `runbook__${run.runId}__trigger` },
    ]);
  });
});
