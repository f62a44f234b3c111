import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAirflow } from '../../src/ml/airflow/client';
import { connectMlflow } from '../../src/ml/mlflow/registry';
import { type AirflowDouble, startAirflowDouble } from '../../src/testing/ml/airflow-double';
import { type MlflowDouble, startMlflowDouble } from '../../src/testing/ml/mlflow-double';
import { expectDocsShowTested } from '../support/docs-drift';
import { engineFixture } from '../support/engine-fixture';
import { POSTGRES_URL, postgresStore, uniqueSchema } from '../support/stores';
import { modelAccuracyDrop } from './docs-example-runbook';

// Keeps ML.md honest: its end-to-end runbook is the code of docs-example-runbook.ts, and here it runs on the real
// engine against the MLflow and Airflow doubles and a predictions table in PostgreSQL (schema ml_test_docs_*).

const SCHEMA = `ml_test_docs_${process.pid}`;
let mlflow: MlflowDouble;
let airflow: AirflowDouble;
let pool: pg.Pool;

beforeAll(async () => {
  mlflow = await startMlflowDouble({
    models: [{ name: 'generation_model', versions: [{}, {}, {}, {}], aliases: { champion: 4, previous: 3 } }],
  });
  airflow = await startAirflowDouble({ users: { ops: 'pw-for-docs' }, queuedFor: 20, runFor: 100 });
  // The example's SQL names `predictions` unqualified: the pool's search_path is the test's schema.
  pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 2, options: `-c search_path=${SCHEMA}` });
  await pool.query(`CREATE SCHEMA ${SCHEMA}`);
  await pool.query(
    `CREATE TABLE ${SCHEMA}.predictions (created_at timestamptz, model_name text, prediction text, ground_truth text)`,
  );
  // 92% right two days ago, 70% right in the last hour.
  await pool.query(
    `INSERT INTO ${SCHEMA}.predictions
       SELECT now() - interval '2 days' - i * interval '1 minute', 'generation_model', 'a', CASE WHEN i % 100 < 92 THEN 'a' ELSE 'b' END FROM generate_series(0, 99) i
       UNION ALL SELECT now() - i * interval '30 seconds', 'generation_model', 'a', CASE WHEN i % 10 < 7 THEN 'a' ELSE 'b' END FROM generate_series(0, 99) i`,
  );
});

afterAll(async () => {
  await pool?.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await pool?.end();
  await airflow?.close();
  await mlflow?.close();
});

describe('ML.md', () => {
  it('shows the tested end-to-end runbook', () => {
    expectDocsShowTested(
      new URL('../../ML.md', import.meta.url),
      new URL('./docs-example-runbook.ts', import.meta.url),
      'model-accuracy-drop.ts',
    );
  });

  describe('its runbook on the engine', () => {
    const fx = engineFixture(() => postgresStore(uniqueSchema('ml_test_docs')));

    it('rolls the champion back to previous and retrains once', async () => {
      const registry = connectMlflow({ url: mlflow.url });
      const client = connectAirflow({ url: airflow.url, username: 'ops', password: 'pw-for-docs' });
      const engine = fx.engine([modelAccuracyDrop(registry, client, pool)]);
      const run = await engine.start(
        'model-accuracy-drop',
        { recentWindow: '1h' },
        { mode: 'execute', actor: 'alice' },
      );
      expect(run.status).toBe('succeeded');
      expect(run.outcome).toEqual({ kind: 'done', summary: 'rolled generation_model back from 4 to 3' });
      expect(mlflow.aliases('generation_model')).toEqual({ champion: '3', previous: '4' });
      expect(airflow.runs('model_retraining').map((r) => [r.dag_run_id, r.state])).toEqual([
        [`runbook__${run.runId}__trigger-retraining`, 'success'],
      ]);
    });
  });
});
