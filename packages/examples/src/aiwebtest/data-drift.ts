/**
 * Runbook 11 of the operations manual, "Data Drift Detected" (alert `DataDriftDetected`,
 * `model_data_drift_detected == 1`). Diagnosis: the latest drift report, its drifted features, and the drift
 * recomputed live (PSI per feature against the serving version's training data). Recovery: retrain on new data
 * (the `model_retraining` DAG, `conf.training_data_path`), wait for the run, take the version it registered as
 * `challenger`, send it a share of the traffic (the A/B split, turned off again when the test is over), and —
 * after a second person looks at the A/B results — promote that version to `champion` and pin the backend to it.
 *
 * The manual's "collect new training data from production / upload to S3" (steps 1–2) is the retraining DAG's
 * first task here: the runbook names the path, the DAG exports the labelled predictions to it.
 */
import { Duration, defineRunbook, onAlert, toMillis } from '@aiwebtest/runbooks';
import {
  abTrafficSplit,
  airflowTrigger,
  type DriftFeature,
  dataDrift,
  modelChampion,
  modelPromote,
  waitForDagRun,
} from '@aiwebtest/runbooks/ml';
import { z } from 'zod';
import { connectionOf, type PackRunbookOptions, PlatformNamespace } from './environment';
import { latestDriftReport, ModelNameInput, modelPlatformOf, RETRAINING_DAG } from './model-accuracy-drop';

/** The features of `generation_model` the drift is judged on (PSI, drift at ≥ 0.2, as the drift job does). */
export const GENERATION_MODEL_FEATURES: DriftFeature[] = [
  { name: 'page_count', kind: 'numeric', method: 'psi', threshold: 0.2 },
  { name: 'element_count', kind: 'numeric', method: 'psi', threshold: 0.2 },
  { name: 'steps', kind: 'numeric', method: 'psi', threshold: 0.2 },
  { name: 'browser', kind: 'categorical', method: 'psi', threshold: 0.2 },
];

/**
 * Values a feature needs on each side to be judged: PSI over 10 bins reads about 9/n from sampling noise
 * alone, so a few dozen values could look like drift.
 */
export const MIN_DRIFT_SAMPLES = 200;

/** The features of a training dataset (`$1`), one column each. */
export const TRAINING_FEATURES_SQL = `SELECT (features->>'page_count')::float8 AS page_count, (features->>'element_count')::float8 AS element_count,
        (features->>'steps')::float8 AS steps, features->>'browser' AS browser
   FROM training_data WHERE dataset = $1`;
/** The features of a model's (`$1`) predictions of the last `$2` seconds. */
export const RECENT_FEATURES_SQL = `SELECT (features->>'page_count')::float8 AS page_count, (features->>'element_count')::float8 AS element_count,
        (features->>'steps')::float8 AS steps, features->>'browser' AS browser
   FROM predictions WHERE model_name = $1 AND created_at > now() - make_interval(secs => $2::int) AND features <> '{}'::jsonb`;

/** Input of `data-drift`. */
export const DataDriftInput = z.object({
  /** The registered model. @default "generation_model" */
  model: ModelNameInput,
  /** The platform's namespace (the backend Deployment). @default "aiwebtest" */
  namespace: PlatformNamespace,
  /** The live window compared with the training data (the manual's drift checks are weekly). @default "7d" */
  currentWindow: Duration.default('7d'),
  /** Where the retraining data goes. @default `s3://aiwebtest-ml-data/training/drift_recovery_<run id>.csv` */
  trainingDataPath: z
    .string()
    .regex(/^[a-z0-9]+:\/\/\S+$/, 'expected a URI such as s3://bucket/path.csv')
    .optional(),
  /** How long the retraining may take. @default "2h" */
  retrainTimeout: Duration.default('2h'),
  /** The challenger's share of traffic during the A/B test (the manual: 0.1). @default 0.1 */
  abSplit: z.number().gt(0).max(1).default(0.1),
  /** How long the A/B test runs before promotion is asked for (the manual: 24–48 h). @default "24h" */
  abDuration: Duration.default('24h'),
});
export type DataDriftInput = z.input<typeof DataDriftInput>;

/**
 * Runbook 11. Escalates when there is no drift to act on, when retraining fails (check the training data
 * quality), or when the retraining registered no new challenger.
 */
export function createDataDriftRunbook(options: PackRunbookOptions = {}) {
  const connect = connectionOf(options);
  return defineRunbook({
    id: 'data-drift',
    title: 'Data drift detected',
    description:
      'Reads the latest data drift report and its drifted features, recomputes the drift live, retrains on new data, runs an A/B test of the retrained challenger and, with approval, promotes it to champion.',
    severity: 'P2',
    input: DataDriftInput,
    triggers: [onAlert({ alertname: 'DataDriftDetected' })],
    tags: ['component: models', 'runbook: 11'],
    async run({ input, step, mode, runId, signal }) {
      const { db, env, k8s } = connect();
      const models = modelPlatformOf(env);
      // 1. The latest report, 3. its drifted features.
      const report = await step.check('latest-data-drift-report', latestDriftReport(db, input.model));
      await step.check(
        'drifted-features',
        db.sqlCheck({
          name: 'Drifted features of the latest report',
          sql: `SELECT feature_name, stattest, drift_score, drift_detected FROM data_drift_features
                 WHERE report_id = (SELECT id FROM data_drift_reports WHERE model_name = $1 ORDER BY created_at DESC, id DESC LIMIT 1)
                   AND drift_detected = true ORDER BY feature_name`,
          params: [input.model],
        }),
      );
      const latest = report.data.rows[0] as
        | { reference_dataset?: string; drift_detected?: boolean }
        | undefined;
      if (!latest?.reference_dataset) {
        return step.escalate(
          `no data drift report of ${input.model} to act on: run the drift job (data_drift_check DAG)`,
        );
      }
      // 4. The distributions now, against the training data the report compared with.
      const live = await step.check(
        'live-data-drift',
        dataDrift(db.db, {
          model: input.model,
          reference: { sql: TRAINING_FEATURES_SQL, params: [latest.reference_dataset] },
          current: {
            sql: RECENT_FEATURES_SQL,
            params: [input.model, Math.ceil(toMillis(input.currentWindow) / 1000)],
          },
          features: GENERATION_MODEL_FEATURES,
          minSamples: MIN_DRIFT_SAMPLES,
        }),
      );
      if (!live.data.datasetDrift && !latest.drift_detected) {
        return step.done(`no dataset drift of ${input.model}: ${live.summary}`);
      }
      if (!models?.airflow) {
        return step.escalate(
          `${live.summary}; no MLflow/Airflow configured (MLFLOW_URL, AIRFLOW_URL): retrain by hand`,
        );
      }
      const champion = await step.check(
        'registry-champion',
        modelChampion(models.registry, { model: input.model }),
      );

      // Recovery steps 1–4: retrain on new data and wait for it. The default path is named after the run, not
      // the clock: a run resumed after the A/B wait (or another day) must name the same file.
      const path = input.trainingDataPath ?? `s3://aiwebtest-ml-data/training/drift_recovery_${runId}.csv`;
      const retrain = await step.act(
        'trigger-retraining',
        airflowTrigger(models.airflow, {
          dag: RETRAINING_DAG,
          conf: { model: input.model, training_data_path: path, drifted_features: live.data.driftedFeatures },
        }),
      );
      if (retrain.status === 'skipped' || mode !== 'execute') {
        return step.done(
          `${live.summary}; ${mode === 'plan' ? 'planned' : 'diagnosed'}: retrain on ${path}, A/B test at ${input.abSplit}, promote with approval`,
        );
      }
      const done = await step.check(
        'retraining-finished',
        waitForDagRun(models.airflow, {
          dag: RETRAINING_DAG,
          dagRunId: retrain.plan.params.dagRunId,
          timeout: input.retrainTimeout,
          pollInterval: '1s',
        }),
      );
      if (done.status !== 'ok') {
        return step.escalate(
          `retraining did not succeed (${done.summary}): check the training data quality and the feature engineering`,
        );
      }
      // Step 5: the retrained version, registered by the pipeline as the challenger.
      const challenger = await step.check(
        'registry-challenger',
        modelChampion(models.registry, { model: input.model, alias: 'challenger' }),
      );
      const version = challenger.data.version;
      if (challenger.status !== 'ok' || !version || version === champion.data.version) {
        return step.escalate(
          `the retraining registered no new challenger (${challenger.summary}): keep the current model and investigate`,
        );
      }
      // Steps 6–7: the A/B test. The split goes off as soon as the test is over, before the promotion is asked
      // for: a declined promotion ends the run without running any more of it, so nothing after the approval
      // could turn it off.
      await step.act(
        'ab-test',
        abTrafficSplit(k8s.cluster, {
          namespace: input.namespace,
          split: input.abSplit,
          extra: { AB_TEST_CHALLENGER_VERSION: version },
        }),
      );
      const abOff = () =>
        step.act(
          'ab-test-off',
          abTrafficSplit(k8s.cluster, { namespace: input.namespace, split: input.abSplit, enabled: false }),
        );
      const ab = await (async () => {
        await step.sleep('ab-test-duration', input.abDuration);
        return step.check(
          'ab-test-results',
          db.sqlCheck({
            name: `A/B test: accuracy per version of ${input.model} in the last hour`,
            sql: `SELECT model_version, round(avg(((prediction->>'label') = (ground_truth->>'label'))::int)::numeric, 3) AS accuracy,
                         round(avg(confidence)::numeric, 3) AS avg_confidence, count(*) AS predictions
                    FROM predictions WHERE model_name = $1 AND ground_truth IS NOT NULL AND created_at > now() - interval '1 hour'
                   GROUP BY model_version ORDER BY model_version`,
            params: [input.model],
          }),
        );
      })().catch(async (e: unknown) => {
        // Cancelled or handed over (the signal is aborted): the engine stops the run, no step may run now.
        if (!signal.aborted) await abOff();
        throw e;
      });
      await abOff();
      // Step 8: promotion is a person's decision, and what is promoted is the version they approved.
      await step.approve('approve-promotion', {
        summary: `Promote ${input.model} version ${version} (retrained on ${path}) from challenger to champion, replacing ${champion.data.version}?`,
        details: { abResults: ab.data.rows, drift: live.data.driftedFeatures },
      });
      await step.act(
        'promote-challenger',
        modelPromote(models.registry, { model: input.model, from: 'challenger', to: 'champion', version }),
        {
          onGiveUp: step.escalate(
            `version ${version} was approved, but it could not be promoted (the challenger moved since its A/B test?): champion stays ${champion.data.version}; look at the registry's aliases`,
          ),
        },
      );
      await step.act(
        'serve-champion',
        k8s.setEnv({ namespace: input.namespace, name: 'backend', env: { MLFLOW_MODEL_VERSION: version } }),
      );
      const trainedOn = challenger.data.tags.training_data ?? path;
      const after = await step.check(
        'data-drift-after',
        dataDrift(db.db, {
          model: input.model,
          reference: { sql: TRAINING_FEATURES_SQL, params: [trainedOn] },
          current: {
            sql: RECENT_FEATURES_SQL,
            params: [input.model, Math.ceil(toMillis(input.currentWindow) / 1000)],
          },
          features: GENERATION_MODEL_FEATURES,
          minSamples: MIN_DRIFT_SAMPLES,
        }),
      );
      if (after.data.datasetDrift) {
        return step.escalate(
          `version ${version} serves, but the inputs still drift against its training data (${after.summary}): investigate the drift source`,
        );
      }
      return step.done(
        `retrained ${input.model} on ${path}; version ${version} promoted to champion after an A/B test at ${input.abSplit}; ${after.summary}`,
      );
    },
  });
}

/** `data-drift` on the environment of `connectFromEnvironment` (env vars or the lab's lab.json). */
export const dataDriftRunbook = createDataDriftRunbook();
