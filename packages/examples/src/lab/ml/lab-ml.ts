/**
 * The lab's model platform (runbooks 10–11): an MLflow registry double holding `generation_model` (versions 1–4,
 * `champion` = 3, `previous` = 2), an Airflow double with the `model_retraining` DAG, and the backend's
 * predictions: a writer that serves the version the backend's pods are configured with (`MLFLOW_MODEL_VERSION`,
 * else the registry's champion; `AB_TEST_*` sends a share to the challenger) and labels them (ground truth comes
 * back at once: the lab compresses time), and a drift monitor that does what the manual's weekly Evidently job
 * does, every few seconds: a data drift report (the live inputs against the serving version's training data) and
 * a concept drift check (recent accuracy against the model's baseline).
 *
 * What "breaks" is real in this small world: a bad version serves worse labels, shifted inputs drift against the
 * training data. What heals it is what the runbooks do: point the backend back at a good version, retrain on
 * the new data (the DAG collects production's labelled predictions) and promote the result.
 */
import { type DataDriftData, dataDrift } from '@aiwebtest/runbooks/ml';
import {
  type AirflowDouble,
  type KubernetesSimulator,
  type MlflowDouble,
  startAirflowDouble,
  startMlflowDouble,
} from '@aiwebtest/runbooks/testing';
import type pg from 'pg';
import {
  GENERATION_MODEL_FEATURES,
  MIN_DRIFT_SAMPLES,
  RECENT_FEATURES_SQL,
  TRAINING_FEATURES_SQL,
} from '../../aiwebtest/data-drift';
import { podsMatching } from '../platform/platform-status';

/** The model the platform serves, as the manual names it. */
export const LAB_MODEL = 'generation_model';
/** The retraining DAG. */
export const RETRAINING_DAG = 'model_retraining';
/** The training data every seeded version was trained on. */
export const BASELINE_DATASET = 's3://aiwebtest-ml-data/training/baseline.csv';
/** The Airflow user the lab's runbooks use (in the Airflow URL of lab.json, which only its owner can read). */
export const LAB_AIRFLOW_USER = 'runbooks';

/** Input distributions: what users send the model. `shifted` is the data-drift incident. */
export type Population = 'baseline' | 'shifted';

/** The features of one prediction. */
export interface Features {
  page_count: number;
  element_count: number;
  steps: number;
  browser: string;
}

export interface LabMlOptions {
  pool: pg.Pool;
  simulator: KubernetesSimulator;
  namespace: string;
  /** How often predictions are written. @default 500 */
  tickMs?: number;
  /** Predictions per tick. @default 10 */
  batch?: number;
  /** How often the drift monitor reports. @default 2000 */
  monitorMs?: number;
  /** How long a retraining DAG run takes. @default 1500 */
  retrainMs?: number;
}

/** The lab's model platform, running. */
export interface LabMl {
  mlflow: MlflowDouble;
  airflow: AirflowDouble;
  /** The Airflow user's password (in the Airflow URL of lab.json). */
  airflowPassword: string;
  /** What users send now. */
  population: Population;
  /** The version predictions are served by (pods' `MLFLOW_MODEL_VERSION`, else the champion alias). */
  servingVersion(): string | undefined;
  /** One round of the drift monitor now (tests); returns the data drift report written. */
  monitor(): Promise<DataDriftData | undefined>;
  /** Writes one batch of predictions now (tests). */
  predict(count?: number): Promise<void>;
  close(): Promise<void>;
}

/** How well each version really does on the baseline population (the registry does not know). */
const TRUE_ACCURACY: Record<string, number> = { '1': 0.88, '2': 0.9, '3': 0.93, '4': 0.71 };
/** A retrained version's accuracy on the population it was trained on. */
const RETRAINED_ACCURACY = 0.94;
/** What serving a population a model was not trained on costs it. */
const DRIFT_PENALTY = 0.05;

/** Starts the doubles, seeds the baseline training data, and starts the writer and the monitor. */
export async function startLabMl(options: LabMlOptions): Promise<LabMl> {
  const tickMs = options.tickMs ?? 500;
  const batch = options.batch ?? 10;
  const monitorMs = options.monitorMs ?? 2000;
  const random = mulberry32(20261128);
  const trainedOn = new Map<string, { population: Population; dataset: string; accuracy: number }>();
  for (const [version, accuracy] of Object.entries(TRUE_ACCURACY)) {
    trainedOn.set(version, { population: 'baseline', dataset: BASELINE_DATASET, accuracy });
  }
  const tags = { training_data: BASELINE_DATASET };
  const mlflow = await startMlflowDouble({
    models: [
      {
        name: LAB_MODEL,
        description: 'Scores generated test scenarios (the generation agent keeps those above 0.7).',
        versions: [{ tags }, { tags }, { tags, stage: 'Production' }, { tags, stage: 'Staging' }],
        aliases: { champion: '3', previous: '2' },
      },
    ],
  });
  const airflowPassword = `lab-${Math.floor(random() * 1e9).toString(36)}`;
  const state = { population: 'baseline' as Population };
  const airflow = await startAirflowDouble({
    dags: [RETRAINING_DAG, 'data_drift_check'],
    users: { [LAB_AIRFLOW_USER]: airflowPassword },
    queuedFor: 200,
    runFor: options.retrainMs ?? 1500,
    onRunSuccess: async (run) => {
      if (run.dag_id !== RETRAINING_DAG) return;
      // The DAG collects production's labelled predictions as its training data (the manual's step 1–2).
      const dataset =
        typeof run.conf.training_data_path === 'string'
          ? run.conf.training_data_path
          : `s3://aiwebtest-ml-data/training/${run.dag_run_id}.csv`;
      await options.pool.query(
        `INSERT INTO training_data (dataset, features, label)
         SELECT $1, features, ground_truth->>'label' FROM predictions
          WHERE model_name = $2 AND ground_truth IS NOT NULL AND features <> '{}'::jsonb
          ORDER BY created_at DESC LIMIT 500`,
        [dataset, LAB_MODEL],
      );
      const version = mlflow.registerVersion(LAB_MODEL, {
        runId: run.dag_run_id
          .replace(/[^a-f0-9]/gi, '')
          .slice(0, 32)
          .padEnd(32, '0'),
        tags: { training_data: dataset, dag_run_id: run.dag_run_id },
      });
      trainedOn.set(version, { population: state.population, dataset, accuracy: RETRAINED_ACCURACY });
      // The pipeline's last task registers the result as the challenger; promoting it is a person's call.
      await fetch(`${mlflow.url}/api/2.0/mlflow/registered-models/alias`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: LAB_MODEL, alias: 'challenger', version }),
      });
    },
  });

  const backendEnv = (): Record<string, string> => {
    // The env of the backend's current pods: what the running backend was started with.
    const pods = podsMatching(options.simulator.store, options.namespace, { app: 'backend' });
    const env: Record<string, string> = {};
    for (const pod of pods) {
      const containers =
        (pod.spec as { containers?: { env?: { name: string; value?: string }[] }[] } | undefined)
          ?.containers ?? [];
      for (const e of containers[0]?.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
    }
    return env;
  };
  const servingVersion = () => backendEnv().MLFLOW_MODEL_VERSION ?? mlflow.aliases(LAB_MODEL).champion;

  const ensureBaseline = async () => {
    const { rows } = await options.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM training_data WHERE dataset = $1',
      [BASELINE_DATASET],
    );
    if ((rows[0]?.n ?? 0) > 0) return;
    const features = Array.from({ length: 500 }, () => JSON.stringify(draw('baseline', random)));
    await options.pool.query(
      `INSERT INTO training_data (dataset, features, label) SELECT $1, f::jsonb, 'valid_test' FROM unnest($2::text[]) AS f`,
      [BASELINE_DATASET, features],
    );
  };

  const predict = async (count = batch, ageSeconds = 0) => {
    const env = backendEnv();
    const champion = env.MLFLOW_MODEL_VERSION ?? mlflow.aliases(LAB_MODEL).champion;
    if (champion === undefined) return;
    const split = env.AB_TEST_ENABLED === 'true' ? Number(env.AB_TEST_TRAFFIC_SPLIT ?? 0) : 0;
    const challenger = env.AB_TEST_CHALLENGER_VERSION ?? mlflow.aliases(LAB_MODEL).challenger;
    const rows: unknown[][] = [];
    for (let i = 0; i < count; i++) {
      const version = challenger && split > 0 && random() < split ? challenger : champion;
      const model = trainedOn.get(version) ?? { population: 'baseline', accuracy: 0.5 };
      const accuracy = model.accuracy - (model.population === state.population ? 0 : DRIFT_PENALTY);
      const truth = random() < 0.7 ? 'valid_test' : 'invalid_test';
      const right = random() < accuracy;
      const label = right ? truth : truth === 'valid_test' ? 'invalid_test' : 'valid_test';
      const confidence = right ? 0.8 + random() * 0.18 : 0.5 + random() * 0.25;
      rows.push([
        version,
        JSON.stringify(draw(state.population, random)),
        label,
        truth,
        Math.round(confidence * 1000) / 1000,
        ageSeconds * (1 - i / count),
      ]);
    }
    await options.pool.query(
      `INSERT INTO predictions (model_name, model_version, input_hash, features, prediction, ground_truth, confidence, created_at)
       SELECT $1, r->>0, md5(r->>1), (r->>1)::jsonb, jsonb_build_object('label', r->>2), jsonb_build_object('label', r->>3),
              (r->>4)::float8, now() - make_interval(secs => (r->>5)::float8)
         FROM jsonb_array_elements($2::jsonb) AS r`,
      [LAB_MODEL, JSON.stringify(rows)],
    );
  };

  const monitor = async (): Promise<DataDriftData | undefined> => {
    const version = servingVersion();
    if (version === undefined) return undefined;
    const dataset = trainedOn.get(version)?.dataset ?? BASELINE_DATASET;
    const check = dataDrift(options.pool, {
      model: LAB_MODEL,
      reference: { sql: TRAINING_FEATURES_SQL, params: [dataset] },
      current: { sql: RECENT_FEATURES_SQL, params: [LAB_MODEL, 60] },
      features: GENERATION_MODEL_FEATURES,
      minSamples: MIN_DRIFT_SAMPLES,
    });
    const found = await check.run({
      runId: 'lab-drift-monitor',
      runbookId: 'lab',
      step: 'monitor',
      mode: 'diagnose',
      attempt: 1,
      actor: 'lab',
      signal: AbortSignal.timeout(5_000),
      log() {},
    });
    const d = found.data;
    if (d.features.every((f) => f.drifted === null)) return d;
    await options.pool.query(
      `WITH report AS (
         INSERT INTO data_drift_reports (model_name, model_version, reference_dataset, drift_detected, drift_share, number_of_features, number_of_drifted_features, report)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id)
       INSERT INTO data_drift_features (report_id, feature_name, stattest, drift_score, drift_detected)
       SELECT report.id, f->>'name', f->>'method', (f->>'score')::float8, (f->>'drifted')::boolean
         FROM report, jsonb_array_elements($9::jsonb) AS f`,
      [
        LAB_MODEL,
        version,
        dataset,
        d.datasetDrift,
        d.shareOfDriftedFeatures,
        d.numberOfFeatures,
        d.numberOfDriftedFeatures,
        d.report,
        JSON.stringify(d.features),
      ],
    );
    await options.pool.query(
      `INSERT INTO concept_drift_checks (model_name, model_version, accuracy, baseline_accuracy, accuracy_drop_percent)
       SELECT $1, $2, a.accuracy, $3::float8, round(((($3::float8 - a.accuracy) / $3::float8) * 100)::numeric, 2)::float8
         FROM (SELECT avg(((prediction->>'label') = (ground_truth->>'label'))::int)::float8 AS accuracy
                 FROM predictions WHERE model_name = $1 AND ground_truth IS NOT NULL AND created_at > now() - interval '30 seconds') a
        WHERE a.accuracy IS NOT NULL`,
      [LAB_MODEL, version, TRUE_ACCURACY['3']],
    );
    return d;
  };

  await ensureBaseline();
  // A minute of history at once, so that accuracy and the first drift report are there from the start.
  await predict(600, 60);
  await monitor().catch(() => undefined);

  const timers: NodeJS.Timeout[] = [];
  // Each loop skips a tick while its previous one still runs (a slow database must not pile them up).
  const every = (ms: number, work: () => Promise<unknown>) => {
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      work()
        .catch(() => {}) // the database is down in another scenario: the next tick tries again
        .finally(() => {
          busy = false;
        });
    }, ms);
    timer.unref();
    timers.push(timer);
  };
  every(tickMs, () => predict());
  every(monitorMs, monitor);

  return {
    mlflow,
    airflow,
    airflowPassword,
    get population() {
      return state.population;
    },
    set population(p: Population) {
      state.population = p;
    },
    servingVersion,
    monitor,
    predict: (count) => predict(count),
    async close() {
      for (const t of timers) clearInterval(t);
      await Promise.allSettled([mlflow.close(), airflow.close()]);
    },
  };
}

/** One prediction's inputs, drawn from a population. */
function draw(population: Population, random: () => number): Features {
  const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const shifted = population === 'shifted';
  const browsers = shifted
    ? ([
        ['chrome', 0.3],
        ['firefox', 0.2],
        ['safari', 0.1],
        ['edge', 0.4],
      ] as const)
    : ([
        ['chrome', 0.6],
        ['firefox', 0.3],
        ['safari', 0.1],
      ] as const);
  let u = random();
  let browser: string = browsers[0][0];
  for (const [name, p] of browsers) {
    if (u < p) {
      browser = name;
      break;
    }
    u -= p;
  }
  return {
    page_count: Math.max(1, Math.round((shifted ? 20 : 12) + normal() * (shifted ? 4 : 3))),
    element_count: Math.max(10, Math.round((shifted ? 220 : 150) + normal() * (shifted ? 40 : 30))),
    steps: Math.max(1, Math.round(8 + normal() * 2)),
    browser,
  };
}

/** A small seeded generator: the lab's traffic is the same every run. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
