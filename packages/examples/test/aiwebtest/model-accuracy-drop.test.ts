import type { Engine } from '@aiwebtest/runbooks';
import { DEPLOYMENTS } from '@aiwebtest/runbooks/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModelAccuracyDropRunbook } from '../../src/aiwebtest/model-accuracy-drop';
import { labHealth } from '../../src/lab/lab-health';
import { scenario } from '../../src/lab/scenarios';
import { findingsOf, said, stepsOf } from '../support/run-steps';
import { type RunbookLab, startRunbookLab } from '../support/runbook-lab';
import type { TestLab } from '../support/test-lab';

// Runbook 10 against the real lab: the MLflow and Airflow doubles over HTTP, predictions written to the lab
// database by the version the backend's pods are configured with, the Kubernetes simulator for the backend.

let harness: RunbookLab;
let lab: TestLab;
let engine: Engine;

beforeAll(async () => {
  harness = await startRunbookLab(createModelAccuracyDropRunbook);
  ({ lab, engine } = harness);
}, 90_000);
afterAll(() => harness?.close());

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

describe('model-accuracy-drop on the lab', () => {
  it('diagnoses a healthy model and changes nothing', async () => {
    const run = await engine.start(
      'model-accuracy-drop',
      { namespace: lab.namespace, driftWindow: '30s' },
      { mode: 'execute', actor: 'alice' },
    );
    expect(run.status).toBe('succeeded');
    expect(said(run)).toMatch(/^generation_model is healthy/);
    expect(lab.ml?.mlflow.aliases('generation_model')).toEqual({ champion: '3', previous: '2' });
  });

  it('rolls a bad champion back to the previous version, pins and restarts the backend, retrains, and the accuracy recovers', async () => {
    const incident = await scenario('model-accuracy-drop').inject(lab);
    try {
      expect((await healthOf('model accuracy'))?.ok).toBe(false);
      expect(backendEnv().MLFLOW_MODEL_VERSION).toBe('4');
      const run = await engine.start(
        'model-accuracy-drop',
        { namespace: lab.namespace, driftWindow: '30s', recoveryTimeout: '60s' },
        { mode: 'execute', actor: 'alice' },
      );
      expect(run.status, said(run)).toBe('succeeded');
      expect(said(run)).toMatch(
        /^rolled generation_model back from version 4 to 3; generation_model version 3: accuracy 0\.\d+ on \d+ predictions/,
      );

      const findings = await findingsOf(engine, run.runId);
      expect(findings.get('concept-drift')?.status).toBe('fail');
      expect(findings.get('registry-champion')?.data).toMatchObject({
        version: '4',
        aliases: { champion: '4', previous: '3' },
      });
      expect(findings.get('prediction-stats')?.data).toMatchObject({
        columns: ['model_name', 'model_version', 'avg_confidence', 'predictions'],
      });
      const steps = await stepsOf(engine, run.runId);
      expect([...steps.keys()]).toEqual([
        'model-accuracy',
        'latest-data-drift-report',
        'concept-drift-checks',
        'concept-drift',
        'prediction-stats',
        'registry-champion',
        'rollback-target',
        'mark-rolled-back',
        'rollback-model',
        'pin-backend-model-version',
        'restart-backend',
        'trigger-retraining',
        'accuracy-recovered',
      ]);
      // The effects: the registry, the backend, Airflow, and the lab's own judgement.
      expect(lab.ml?.mlflow.aliases('generation_model')).toEqual({ champion: '3', previous: '4' });
      expect(lab.ml?.mlflow.version('generation_model', '4')?.tags).toContainEqual({
        key: 'rolled_back',
        value: 'rolled back to version 3 by runbook model-accuracy-drop',
      });
      expect(backendEnv().MLFLOW_MODEL_VERSION).toBe('3');
      const runs = lab.ml?.airflow.runs('model_retraining') ?? [];
      expect(runs.map((r) => [r.dag_run_id, r.conf])).toEqual([
        [
          `runbook__${run.runId}__trigger-retraining`,
          { model: 'generation_model', reason: 'model-accuracy-drop', rolled_back_from: '4' },
        ],
      ]);
      expect(lab.ml?.servingVersion()).toBe('3');

      // A second run while the window still holds the bad version's predictions: "previous" is now the bad
      // version 4, which was rolled back from; the run must not roll back to it.
      const again = await engine.start(
        'model-accuracy-drop',
        { namespace: lab.namespace, driftWindow: '30s', recoveryTimeout: '60s' },
        { mode: 'execute', actor: 'alice' },
      );
      expect(again.status, said(again)).toBe('escalated');
      expect(said(again)).toMatch(/the previous version 4 was itself rolled back from \(rolled_back: /);
      expect(lab.ml?.mlflow.aliases('generation_model')).toEqual({ champion: '3', previous: '4' });
      expect(backendEnv().MLFLOW_MODEL_VERSION).toBe('3');
      // The 30 s window of model_accuracy still holds the bad version's predictions: outweigh them.
      await lab.ml?.predict(2000);
      expect(await healthOf('model accuracy')).toMatchObject({
        ok: true,
        detail: expect.stringMatching(/^generation_model version 3: accuracy/),
      });
    } finally {
      await incident.undo();
    }
  });
});
