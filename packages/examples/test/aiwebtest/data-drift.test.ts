import type { Engine } from '@aiwebtest/runbooks';
import { DEPLOYMENTS } from '@aiwebtest/runbooks/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDataDriftRunbook } from '../../src/aiwebtest/data-drift';
import { labHealth } from '../../src/lab/lab-health';
import { scenario } from '../../src/lab/scenarios';
import { findingsOf, said } from '../support/run-steps';
import { type RunbookLab, startRunbookLab } from '../support/runbook-lab';
import type { TestLab } from '../support/test-lab';

// Runbook 11 against the real lab: the drift monitor's reports in the lab database, the Airflow double running
// the retraining DAG (its last task registers the retrained version in the MLflow double as challenger), the
// A/B split on the simulated backend Deployment, and a promotion that waits for a second person.

let harness: RunbookLab;
let lab: TestLab;
let engine: Engine;

beforeAll(async () => {
  harness = await startRunbookLab(createDataDriftRunbook);
  ({ lab, engine } = harness);
}, 90_000);
afterAll(() => harness?.close());

const INPUT = {
  currentWindow: '60s',
  abDuration: '0s',
  retrainTimeout: '60s',
  trainingDataPath: 's3://aiwebtest-ml-data/training/drift_recovery_test.csv',
};
const backendEnv = () =>
  Object.fromEntries(
    (
      (
        lab.simulator.store.get(DEPLOYMENTS, lab.namespace, 'backend').spec as {
          template: { spec: { containers: { env?: { name: string; value?: string }[] }[] } };
        }
      ).template.spec.containers[0]?.env ?? []
    ).map((e) => [e.name, e.value]),
  );
const healthOf = async (name: string) => (await labHealth(lab)).checks.find((c) => c.name === name);

describe('data-drift on the lab', () => {
  it('finds no drift on the seeded lab', async () => {
    await lab.ml?.monitor();
    const run = await engine.start(
      'data-drift',
      { namespace: lab.namespace, ...INPUT },
      { mode: 'execute', actor: 'alice' },
    );
    expect(said(run)).toMatch(
      /^no dataset drift of generation_model: Data drift of generation_model: 0 of 4 features drifted/,
    );
    expect(lab.ml?.airflow.runs('model_retraining')).toEqual([]);
  });

  it('retrains on new data, A/B tests the challenger, and promotes it after a second person approves', async () => {
    const incident = await scenario('data-drift').inject(lab);
    try {
      expect((await healthOf('data drift'))?.ok).toBe(false);
      const started = await engine.start(
        'data-drift',
        { namespace: lab.namespace, ...INPUT },
        { mode: 'execute', actor: 'alice' },
      );
      expect(started.status, JSON.stringify((await engine.getRun(started.runId)).run.error)).toBe(
        'waiting_approval',
      );
      const findings = await findingsOf(engine, started.runId);
      expect(findings.get('live-data-drift')?.data).toMatchObject({
        datasetDrift: true,
        driftedFeatures: ['page_count', 'element_count', 'browser'],
      });
      expect(findings.get('drifted-features')?.data).toMatchObject({ rowCount: 3 });
      // Retrained and under test, not promoted yet.
      const runs = lab.ml?.airflow.runs('model_retraining') ?? [];
      expect(runs.map((r) => [r.state, r.conf.training_data_path])).toEqual([
        ['success', INPUT.trainingDataPath],
      ]);
      expect(lab.ml?.mlflow.aliases('generation_model')).toEqual({
        champion: '3',
        previous: '2',
        challenger: '5',
      });
      expect(lab.ml?.mlflow.version('generation_model', '5')?.tags).toContainEqual({
        key: 'training_data',
        value: INPUT.trainingDataPath,
      });
      expect(backendEnv()).toMatchObject({
        AB_TEST_ENABLED: 'true',
        AB_TEST_TRAFFIC_SPLIT: '0.1',
        AB_TEST_CHALLENGER_VERSION: '5',
      });

      await expect(engine.approve(started.runId, { actor: 'alice' })).rejects.toMatchObject({
        code: 'FOUR_EYES',
      });
      await engine.approve(started.runId, { actor: 'bob' });
      const done = await engine.resume(started.runId);
      expect(done.status, JSON.stringify((await engine.getRun(done.runId)).run.error)).toBe('succeeded');
      expect(said(done)).toMatch(
        /^retrained generation_model on s3:\/\/aiwebtest-ml-data\/training\/drift_recovery_test\.csv; version 5 promoted to champion after an A\/B test at 0\.1; Data drift of generation_model: 0 of 4 features drifted/,
      );
      expect(lab.ml?.mlflow.aliases('generation_model')).toEqual({
        champion: '5',
        previous: '3',
        challenger: '5',
      });
      expect(backendEnv()).toMatchObject({ MLFLOW_MODEL_VERSION: '5', AB_TEST_ENABLED: 'false' });
      // The drift job's next report finds none: the alert clears.
      await lab.ml?.predict(200);
      expect((await lab.ml?.monitor())?.datasetDrift).toBe(false);
      expect((await healthOf('data drift'))?.ok).toBe(true);
    } finally {
      await incident.undo();
    }
  });
});
