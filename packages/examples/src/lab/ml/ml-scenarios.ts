/**
 * The model incidents of the chaos catalog: `model-accuracy-drop` (runbook 10) and `data-drift` (runbook 11),
 * and the lab health checks that say whether they are over.
 */
import { DEPLOYMENTS } from '@aiwebtest/runbooks/testing';
import { boundedQueryable } from '../bounded-query';
import type { LabParts } from '../lab-parts';
import { LAB_MODEL, type LabMl } from './lab-ml';
import { latestDataDrift, modelAccuracy } from './ml-metrics';

/** The accuracy below which runbook 10's alert fires (the manual: `model_accuracy < 0.85`). */
export const MIN_ACCURACY = 0.85;

function mlOf(parts: LabParts): LabMl {
  if (!parts.ml) throw new Error('this lab has no model platform (parts.ml): start it with startLab');
  return parts.ml;
}

async function setAlias(ml: LabMl, alias: string, version: string): Promise<void> {
  const response = await fetch(`${ml.mlflow.url}/api/2.0/mlflow/registered-models/alias`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: LAB_MODEL, alias, version }),
  });
  if (!response.ok) throw new Error(`setting alias ${alias} of ${LAB_MODEL} failed: HTTP ${response.status}`);
}

/** Sets (or, with `null`, removes) variables of the backend Deployment's container, as a deploy would. */
function setBackendEnv(parts: LabParts, env: Record<string, string | null>): void {
  const deployment = parts.simulator.store.get(DEPLOYMENTS, parts.namespace, 'backend');
  const template = (
    deployment.spec as { template: { spec: { containers: { env?: { name: string; value?: string }[] }[] } } }
  ).template;
  const container = template.spec.containers[0];
  if (!container) throw new Error('the backend Deployment has no container');
  let vars = (container.env ?? []).filter((e) => !(e.name in env));
  for (const [name, value] of Object.entries(env)) if (value !== null) vars = [...vars, { name, value }];
  container.env = vars;
  parts.simulator.store.update(DEPLOYMENTS, {
    ...deployment,
    metadata: { ...deployment.metadata, resourceVersion: undefined },
  });
}

/** A bad model version (4) became champion and the backend was deployed pinned to it. */
export async function injectModelAccuracyDrop(
  parts: LabParts,
): Promise<{ description: string; undo: () => Promise<void> }> {
  const ml = mlOf(parts);
  await setAlias(ml, 'previous', '3');
  await setAlias(ml, 'champion', '4');
  setBackendEnv(parts, { MLFLOW_MODEL_VERSION: '4' });
  await parts.simulator.settle({ timeoutMs: 10_000 });
  // The new pods have served for a while already: the alert can see it at once.
  await ml.predict(300);
  return {
    description: `${LAB_MODEL} version 4 (accuracy about 0.71) is champion and the backend is pinned to it (MLFLOW_MODEL_VERSION=4); the champion before it (3) is kept as "previous"`,
    async undo() {
      await setAlias(ml, 'champion', '3');
      await setAlias(ml, 'previous', '2');
      // The mark runbook 10 leaves on the version it rolled back from: the lab is as before the incident.
      await fetch(`${ml.mlflow.url}/api/2.0/mlflow/model-versions/delete-tag`, {
        method: 'DELETE',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: LAB_MODEL, version: '4', key: 'rolled_back' }),
      });
      setBackendEnv(parts, { MLFLOW_MODEL_VERSION: null });
      await parts.simulator.settle({ timeoutMs: 10_000 }).catch(() => {});
    },
  };
}

/** Users' inputs shift: bigger pages, more elements, another browser mix than the training data. */
export async function injectDataDrift(
  parts: LabParts,
): Promise<{ description: string; undo: () => Promise<void> }> {
  const ml = mlOf(parts);
  const championBefore = ml.mlflow.aliases(LAB_MODEL).champion ?? '3';
  ml.population = 'shifted';
  await ml.predict(300);
  await ml.monitor();
  return {
    description: `the inputs of ${LAB_MODEL} shifted (page_count, element_count and the browser mix): 3 of 4 features drift against the training data of the serving version`,
    async undo() {
      ml.population = 'baseline';
      await setAlias(ml, 'champion', championBefore);
      setBackendEnv(parts, {
        MLFLOW_MODEL_VERSION: null,
        AB_TEST_ENABLED: null,
        AB_TEST_TRAFFIC_SPLIT: null,
        AB_TEST_CHALLENGER_VERSION: null,
      });
      await parts.simulator.settle({ timeoutMs: 10_000 }).catch(() => {});
      await ml.predict(300);
      await ml.monitor();
    },
  };
}

/** The lab health checks of runbooks 10 and 11. */
export async function modelChecks(
  parts: LabParts,
  timeoutMs: number,
): Promise<{ name: string; ok: boolean; detail: string }[]> {
  if (!parts.ml) return [];
  const db = boundedQueryable(parts.pool, timeoutMs);
  try {
    const accuracy = (await modelAccuracy(db)).find((r) => r.model === LAB_MODEL)?.accuracy;
    const drift = (await latestDataDrift(db)).find((r) => r.model === LAB_MODEL)?.drift ?? false;
    const serving = parts.ml.servingVersion();
    return [
      {
        name: 'model accuracy',
        ok: accuracy === undefined || accuracy >= MIN_ACCURACY,
        detail:
          accuracy === undefined
            ? 'no labelled predictions in the last 30 s'
            : `${LAB_MODEL} version ${serving}: accuracy ${accuracy.toFixed(3)}${accuracy < MIN_ACCURACY ? ` < ${MIN_ACCURACY} (model accuracy drop runbook)` : ''}`,
      },
      {
        name: 'data drift',
        ok: !drift,
        detail: drift
          ? `the latest data drift report of ${LAB_MODEL} found dataset drift (data drift runbook)`
          : `the latest data drift report of ${LAB_MODEL} found no dataset drift`,
      },
    ];
  } catch (e) {
    return [
      { name: 'model accuracy', ok: false, detail: `could not read predictions: ${(e as Error).message}` },
    ];
  }
}
