import type { Engine } from '@aiwebtest/runbooks';
import { connectMlflow } from '@aiwebtest/runbooks/ml';
import { DEPLOYMENTS } from '@aiwebtest/runbooks/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDataDriftRunbook } from '../../src/aiwebtest/data-drift';
import { labHealth } from '../../src/lab/lab-health';
import { scenario } from '../../src/lab/scenarios';
import { findingsOf, said, stepsOf } from '../support/run-steps';
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

  it('does not promote a challenger that moved after the approved version was tested', async () => {
    const incident = await scenario('data-drift').inject(lab);
    try {
      // No trainingDataPath: the default is named after the run, so the run names one file from start to end.
      const { trainingDataPath: _, ...input } = INPUT;
      const started = await engine.start(
        'data-drift',
        { namespace: lab.namespace, ...input },
        { mode: 'execute', actor: 'alice' },
      );
      expect(started.status, said(started)).toBe('waiting_approval');
      const path = `s3://aiwebtest-ml-data/training/drift_recovery_${started.runId}.csv`;
      expect(started.pendingApproval?.plan.summary).toContain(`(retrained on ${path})`);
      expect(
        lab.ml?.airflow
          .runs('model_retraining')
          .filter((r) => r.dag_run_id === `runbook__${started.runId}__trigger-retraining`)
          .map((r) => r.conf.training_data_path),
      ).toEqual([path]);
      const ml = lab.ml;
      if (!ml) throw new Error('the lab has no model platform');
      const tested = ml.mlflow.aliases('generation_model').challenger;
      const champion = ml.mlflow.aliases('generation_model').champion;
      // Another registration moves the challenger to a version nobody tested while the approval waits.
      const untested = ml.mlflow.registerVersion('generation_model');
      await connectMlflow({ url: ml.mlflow.url }).setAlias('generation_model', 'challenger', untested);
      await engine.approve(started.runId, { actor: 'bob' });
      const done = await engine.resume(started.runId);
      expect(done.status, said(done)).toBe('escalated');
      expect(said(done)).toMatch(
        new RegExp(`^escalated: version ${tested} was approved, but it could not be promoted`),
      );
      expect((await engine.getRun(done.runId)).run.error?.message).toContain(
        `"challenger" is version ${untested} now, not ${tested} as expected`,
      );
      expect(ml.mlflow.aliases('generation_model')).toMatchObject({ champion, challenger: untested });
      expect(backendEnv().MLFLOW_MODEL_VERSION).toBeUndefined();
      expect(backendEnv().AB_TEST_ENABLED).toBe('false');
    } finally {
      await incident.undo();
    }
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
      const runs = (lab.ml?.airflow.runs('model_retraining') ?? []).filter(
        (r) => r.dag_run_id === `runbook__${started.runId}__trigger-retraining`,
      );
      expect(runs.map((r) => [r.state, r.conf.training_data_path])).toEqual([
        ['success', INPUT.trainingDataPath],
      ]);
      // The retrained version: the next number the registry gave (the test before registered some too).
      const retrained = lab.ml?.mlflow.aliases('generation_model').challenger ?? '';
      expect(Number(retrained)).toBeGreaterThan(4);
      expect(lab.ml?.mlflow.aliases('generation_model')).toEqual({
        champion: '3',
        previous: '2',
        challenger: retrained,
      });
      expect(lab.ml?.mlflow.version('generation_model', retrained)?.tags).toContainEqual({
        key: 'training_data',
        value: INPUT.trainingDataPath,
      });
      // The A/B test ran (the split was on) and is off again while the promotion waits: a declined promotion
      // ends the run there, with nothing left serving the challenger.
      const steps = await stepsOf(engine, started.runId);
      expect(steps.get('ab-test')?.result).toMatchObject({
        plan: {
          changes: expect.arrayContaining([
            expect.objectContaining({ field: expect.stringContaining('AB_TEST_ENABLED'), after: 'true' }),
          ]),
        },
      });
      expect(steps.get('ab-test-off')?.status).toBe('succeeded');
      expect(backendEnv()).toMatchObject({ AB_TEST_ENABLED: 'false', AB_TEST_CHALLENGER_VERSION: retrained });

      await expect(engine.approve(started.runId, { actor: 'alice' })).rejects.toMatchObject({
        code: 'FOUR_EYES',
      });
      await engine.approve(started.runId, { actor: 'bob' });
      const done = await engine.resume(started.runId);
      expect(done.status, JSON.stringify((await engine.getRun(done.runId)).run.error)).toBe('succeeded');
      expect(said(done)).toMatch(
        new RegExp(
          `^retrained generation_model on s3://aiwebtest-ml-data/training/drift_recovery_test\\.csv; version ${retrained} promoted to champion after an A/B test at 0\\.1; Data drift of generation_model: 0 of 4 features drifted`,
        ),
      );
      expect(lab.ml?.mlflow.aliases('generation_model')).toEqual({
        champion: retrained,
        previous: '3',
        challenger: retrained,
      });
      expect(backendEnv()).toMatchObject({ MLFLOW_MODEL_VERSION: retrained, AB_TEST_ENABLED: 'false' });
      // The drift job's next report finds none: the alert clears.
      await lab.ml?.predict(200);
      expect((await lab.ml?.monitor())?.datasetDrift).toBe(false);
      expect((await healthOf('data drift'))?.ok).toBe(true);
    } finally {
      await incident.undo();
    }
  });
});
