/**
 * Runbook 10 of the operations manual, "Model Accuracy Drop" (alert `ModelAccuracyLow`, `model_accuracy < 0.85`).
 * Diagnosis: the accuracy Prometheus sees, the latest data drift report, the concept drift checks, the prediction
 * statistics of the last day, and which version the registry serves. Recovery: roll the `champion` alias back
 * to the `previous` version (MLflow aliases; the manual's stage transition is the legacy form), pin the backend
 * to it (`MLFLOW_MODEL_VERSION`), restart the backend, trigger the retraining DAG, and watch the accuracy of the
 * rolled-back version recover.
 */
import {
  type Check,
  Duration,
  defineCheck,
  defineRunbook,
  finding,
  formatMillis,
  onAlert,
  toMillis,
} from '@aiwebtest/runbooks';
import {
  type AirflowClient,
  airflowTrigger,
  conceptDrift,
  connectAirflow,
  connectMlflow,
  type MlflowRegistry,
  modelChampion,
  modelRollback,
  modelVersionTag,
} from '@aiwebtest/runbooks/ml';
import type { Postgres } from '@aiwebtest/runbooks/postgres';
import { z } from 'zod';
import {
  type AiWebTestEnvironment,
  connectionOf,
  type PackRunbookOptions,
  PlatformNamespace,
} from './environment';
import { prometheusQuery } from './prometheus-query';

/** The manual's model name. */
export const GENERATION_MODEL = 'generation_model';
/** The manual's retraining DAG. */
export const RETRAINING_DAG = 'model_retraining';
/** The model version tag a rollback leaves on the version it rolled back from; no rollback goes back to it. */
export const ROLLED_BACK_TAG = 'rolled_back';

/** A registered model name as the runbooks take it. */
export const ModelNameInput = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,128}$/, 'expected a registered model name such as "generation_model"')
  .default(GENERATION_MODEL);

/** Input of `model-accuracy-drop`. The defaults are the manual's values. */
export const ModelAccuracyDropInput = z.object({
  /** The registered model. @default "generation_model" */
  model: ModelNameInput,
  /** The platform's namespace (the backend Deployment). @default "aiwebtest" */
  namespace: PlatformNamespace,
  /** The accuracy the model must get back above (the alert: 0.85). @default 0.85 */
  minAccuracy: z.number().min(0).max(1).default(0.85),
  /** The recent window of the live concept drift check; the baseline is the 7 windows before it. @default "24h" */
  driftWindow: Duration.default('24h'),
  /** How long to wait for the rolled-back version's accuracy to recover. @default "10m" */
  recoveryTimeout: Duration.default('10m'),
  /** Trigger the retraining DAG after the rollback (the manual's step 4). @default true */
  retrain: z.boolean().default(true),
});
export type ModelAccuracyDropInput = z.input<typeof ModelAccuracyDropInput>;

/** The model platform's clients, from the environment. */
export interface ModelPlatform {
  registry: MlflowRegistry;
  airflow: AirflowClient | undefined;
}

/** The registry and Airflow of the environment; `undefined` without an MLflow URL. */
export function modelPlatformOf(env: AiWebTestEnvironment): ModelPlatform | undefined {
  if (!env.mlflowUrl) return undefined;
  return {
    registry: connectMlflow({ url: env.mlflowUrl, name: 'mlflow' }),
    airflow: env.airflowUrl
      ? connectAirflow({
          url: env.airflowUrl,
          name: 'airflow',
          ...(env.airflowUser ? { username: env.airflowUser } : {}),
          ...(env.airflowPassword ? { password: env.airflowPassword } : {}),
        })
      : undefined,
  };
}

/** The manual's "latest data drift report" query (runbooks 10 and 11, diagnosis step 1 or 2). */
export function latestDriftReport(db: Postgres, model: string) {
  return db.sqlCheck({
    name: `Latest data drift report of ${model}`,
    sql: `SELECT id, model_version, reference_dataset, drift_detected, drift_share, number_of_drifted_features, created_at
            FROM data_drift_reports WHERE model_name = $1 ORDER BY created_at DESC LIMIT 1`,
    params: [model],
  });
}

/** Accuracy of labelled predictions: `$1` window start, `$2` end, `$3` the model (conceptDrift's form). */
export const ACCURACY_SQL = `SELECT avg(((prediction->>'label') = (ground_truth->>'label'))::int)::float8 AS accuracy, count(*)::int AS samples
  FROM predictions WHERE model_name = $3 AND ground_truth IS NOT NULL AND created_at >= $1 AND created_at < $2`;

/** What {@link accuracyRecovers} saw. */
export interface AccuracyRecoveryData {
  model: string;
  version: string;
  accuracy: number | null;
  samples: number;
  waitedMs: number;
}

/**
 * The manual's step 5 ("Model Accuracy should recover to > 0.85") measured on the predictions themselves: the
 * accuracy of the labelled predictions the given version made in the last 30 s, asked every 2 s until it is at
 * least `minAccuracy` on 30 or more predictions, or `timeoutMs` passes (`fail`).
 */
export function accuracyRecovers(
  db: Postgres,
  o: { model: string; version: string; minAccuracy: number; timeoutMs: number },
): Check<AccuracyRecoveryData> {
  return defineCheck<AccuracyRecoveryData>({
    kind: 'aiwebtest.model-accuracy-recovers',
    description: `Accuracy of ${o.model} version ${o.version} back above ${o.minAccuracy}`,
    async run(ctx) {
      const started = Date.now();
      for (;;) {
        const { rows } = await db.db.query<{ accuracy: number | null; samples: number }>(
          `SELECT avg(((prediction->>'label') = (ground_truth->>'label'))::int)::float8 AS accuracy, count(*)::int AS samples
             FROM predictions WHERE model_name = $1 AND model_version = $2 AND ground_truth IS NOT NULL
              AND created_at > now() - interval '30 seconds'`,
          [o.model, o.version],
          { signal: ctx.signal },
        );
        const accuracy = rows[0]?.accuracy ?? null;
        const samples = rows[0]?.samples ?? 0;
        const waitedMs = Date.now() - started;
        const data = { model: o.model, version: o.version, accuracy, samples, waitedMs };
        const shown =
          accuracy === null
            ? 'no labelled predictions'
            : `accuracy ${accuracy.toFixed(3)} on ${samples} predictions`;
        if (accuracy !== null && samples >= 30 && accuracy >= o.minAccuracy) {
          return finding(
            'ok',
            `${o.model} version ${o.version}: ${shown} (≥ ${o.minAccuracy}) after ${formatMillis(waitedMs)}`,
            data,
          );
        }
        if (waitedMs >= o.timeoutMs) {
          return finding(
            'fail',
            `${o.model} version ${o.version}: ${shown} after ${formatMillis(waitedMs)}, still below ${o.minAccuracy}`,
            data,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        ctx.signal.throwIfAborted();
      }
    },
  });
}

/**
 * Runbook 10. Diagnosis runs in every mode; the rollback and the backend pin need approval by the engine's
 * policy (medium risk). Escalates when the registry has no `previous` version to roll back to or that version
 * was itself rolled back from (tag `rolled_back`: a second run after a rollback), and — as the
 * manual says — when the rollback does not bring the accuracy back (investigate the training data quality).
 */
export function createModelAccuracyDropRunbook(options: PackRunbookOptions = {}) {
  const connect = connectionOf(options);
  return defineRunbook({
    id: 'model-accuracy-drop',
    title: 'Model accuracy drop',
    description:
      'Reads the model accuracy, the latest data drift report, concept drift, prediction statistics and the registry champion; rolls the champion back to the previous version, pins and restarts the backend, triggers retraining and waits for the accuracy to recover.',
    severity: 'P2',
    input: ModelAccuracyDropInput,
    triggers: [onAlert({ alertname: 'ModelAccuracyLow' })],
    tags: ['component: models', 'runbook: 10'],
    async run({ input, step, mode }) {
      const platform = connect();
      const { db, env, k8s } = platform;
      const models = modelPlatformOf(env);

      // 1. Current model accuracy (Prometheus).
      const accuracy = await step.check(
        'model-accuracy',
        prometheusQuery({
          url: env.prometheusUrl,
          query: `model_accuracy{model="${input.model}"}`,
          judge: (samples) => {
            if (!samples.length)
              return { status: 'unknown', summary: `no model_accuracy series for ${input.model}` };
            const worst = Math.min(...samples.map((s) => s.value));
            return {
              status: worst < input.minAccuracy ? 'fail' : 'ok',
              summary: `model_accuracy of ${input.model} is ${worst.toFixed(3)} (alert below ${input.minAccuracy})`,
            };
          },
        }),
      );
      // 2. The latest data drift report.
      const drift = await step.check('latest-data-drift-report', latestDriftReport(db, input.model));
      // 3. Concept drift: the recorded checks, and the live comparison.
      await step.check(
        'concept-drift-checks',
        db.sqlCheck({
          name: `Concept drift checks of ${input.model}`,
          sql: `SELECT created_at, model_version, accuracy, accuracy_drop_percent FROM concept_drift_checks
                 WHERE model_name = $1 ORDER BY created_at DESC LIMIT 10`,
          params: [input.model],
        }),
      );
      const windowMs = toMillis(input.driftWindow);
      const concept = await step.check(
        'concept-drift',
        conceptDrift(db.db, {
          model: input.model,
          sql: ACCURACY_SQL,
          params: [input.model],
          recentWindow: windowMs,
          baselineWindow: windowMs * 7,
          minAccuracy: input.minAccuracy,
        }),
      );
      // 4. Prediction logs of the last day.
      await step.check(
        'prediction-stats',
        db.sqlCheck({
          name: `Predictions of ${input.model} in the last 24 hours`,
          sql: `SELECT model_name, model_version, round(AVG(confidence)::numeric, 3) AS avg_confidence, COUNT(*) AS predictions
                  FROM predictions WHERE model_name = $1 AND created_at > NOW() - INTERVAL '24 hours'
                 GROUP BY model_name, model_version ORDER BY model_version`,
          params: [input.model],
        }),
      );
      if (!models)
        return step.escalate('no MLflow registry configured (MLFLOW_URL): roll the model back by hand');
      // 5. The registry's champion.
      const champion = await step.check(
        'registry-champion',
        modelChampion(models.registry, { model: input.model }),
      );

      const low = accuracy.status === 'fail' || concept.status === 'fail';
      if (!low) {
        return step.done(
          `${input.model} is healthy: ${accuracy.summary}; ${concept.summary}; no change needed`,
        );
      }
      const driftRow = drift.data.rows[0] as { drift_detected?: boolean } | undefined;
      const current = champion.data.version;
      const previous = champion.data.aliases.previous;
      if (!previous || previous === current) {
        return step.escalate(
          `${input.model} accuracy is low (${accuracy.summary}) and the registry has no previous version to roll back to (aliases: ${JSON.stringify(champion.data.aliases)}): investigate the training data quality`,
        );
      }
      // A rollback keeps the version it left as "previous": after one, "previous" is the bad version. A second
      // run (the accuracy still low) must not roll "back" to it, so each rollback tags the version it left.
      const target = await step.check(
        'rollback-target',
        modelChampion(models.registry, { model: input.model, alias: 'previous' }),
      );
      const rolledBack = target.data.tags[ROLLED_BACK_TAG];
      if (rolledBack !== undefined) {
        return step.escalate(
          `${input.model} accuracy is low (${accuracy.summary}) but the previous version ${previous} was itself rolled back from (${ROLLED_BACK_TAG}: ${rolledBack}): not rolling back to it; investigate the training data quality and pick a good version by hand`,
        );
      }

      // Step 1: roll back to the previous version (the champion alias; the old one is kept as "previous"),
      // marking the version left first, so that no later run rolls back to it.
      if (current) {
        await step.act(
          'mark-rolled-back',
          modelVersionTag(models.registry, {
            model: input.model,
            version: current,
            key: ROLLED_BACK_TAG,
            value: `rolled back to version ${previous} by runbook model-accuracy-drop`,
          }),
        );
      }
      await step.act(
        'rollback-model',
        modelRollback(models.registry, { model: input.model, version: previous }),
      );
      // Steps 2–3: the backend serves it.
      await step.act(
        'pin-backend-model-version',
        k8s.setEnv({ namespace: input.namespace, name: 'backend', env: { MLFLOW_MODEL_VERSION: previous } }),
      );
      await step.act('restart-backend', k8s.rolloutRestart({ namespace: input.namespace, name: 'backend' }));
      // Step 4: retraining.
      let retraining = 'retraining not asked for';
      if (input.retrain) {
        if (models.airflow) {
          const retrain = await step.act(
            'trigger-retraining',
            airflowTrigger(models.airflow, {
              dag: RETRAINING_DAG,
              conf: { model: input.model, reason: 'model-accuracy-drop', rolled_back_from: current ?? null },
            }),
          );
          retraining =
            retrain.status === 'skipped'
              ? 'retraining not triggered (diagnose)'
              : `retraining run ${retrain.plan.params.dagRunId}`;
        } else {
          retraining = 'no Airflow configured (AIRFLOW_URL): trigger model_retraining by hand';
        }
      }
      if (mode !== 'execute') {
        return step.done(
          `${input.model} accuracy low; ${mode === 'plan' ? 'planned' : 'diagnosed'}: roll back ${current} → ${previous}, pin the backend, ${retraining}`,
        );
      }
      // Step 5: the accuracy recovers.
      const recovered = await step.check(
        'accuracy-recovered',
        accuracyRecovers(db, {
          model: input.model,
          version: previous,
          minAccuracy: input.minAccuracy,
          timeoutMs: toMillis(input.recoveryTimeout),
        }),
      );
      if (recovered.status !== 'ok') {
        return step.escalate(
          driftRow?.drift_detected
            ? `rollback to ${previous} did not bring the accuracy back (${recovered.summary}) and the data drifts: collect new training data from production (data drift runbook)`
            : `rollback to ${previous} did not bring the accuracy back (${recovered.summary}): investigate the training data quality`,
        );
      }
      return step.done(
        `rolled ${input.model} back from version ${current} to ${previous}; ${recovered.summary}; ${retraining}`,
      );
    },
  });
}

/** `model-accuracy-drop` on the environment of `connectFromEnvironment` (env vars or the lab's lab.json). */
export const modelAccuracyDrop = createModelAccuracyDropRunbook();
