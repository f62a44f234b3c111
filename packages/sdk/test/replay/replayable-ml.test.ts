import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conceptDrift } from '../../src/ml/drift/concept-drift';
import { type DataDriftOptionsInput, dataDrift } from '../../src/ml/drift/data-drift';
import { modelChampion } from '../../src/ml/mlflow/model-champion';
import { connectMlflow, type MlflowRegistry } from '../../src/ml/mlflow/registry';
import { connectPostgres, type PostgresDatabase } from '../../src/postgres/database';
import { type MlflowDouble, startMlflowDouble } from '../../src/testing/ml/mlflow-double';
import { POSTGRES_URL } from '../support/stores';
import { observe, rejudge } from './replayable';

// The ML checks whose verdict a runbook tunes, run once for real (samples from the real PostgreSQL, the
// registry from the MLflow double), then judged again from their observation: by the same check (the live
// finding, exactly) and by one with another threshold.

let db: PostgresDatabase;
let mlflow: MlflowDouble;
let registry: MlflowRegistry;

beforeAll(async () => {
  db = connectPostgres({ url: POSTGRES_URL });
  mlflow = await startMlflowDouble({
    models: [{ name: 'generation_model', versions: [{}, {}], aliases: { champion: '2', previous: '1' } }],
  });
  registry = connectMlflow({ url: mlflow.url });
});

afterAll(async () => {
  await db?.close();
  await mlflow?.close();
});

describe('ML checks judge their observation again', () => {
  it('dataDrift: the recorded statistics, against another driftShare or a feature threshold', async () => {
    // latency is shifted by 30 in the current sample; browser is the same on both sides.
    const sample = (shift: number) => ({
      sql: `SELECT (g + $1)::float8 AS latency, (ARRAY['chrome', 'firefox'])[1 + g % 2] AS browser
              FROM generate_series(1, 100) g`,
      params: [shift],
    });
    const check = (o: Partial<DataDriftOptionsInput> = {}) =>
      dataDrift(db, {
        model: 'generation_model',
        reference: sample(0),
        current: sample(30),
        features: [
          { name: 'latency', kind: 'numeric' },
          { name: 'browser', kind: 'categorical' },
        ],
        ...o,
      });
    const live = await observe(check());
    expect(live.finding.status).toBe('fail');
    expect(live.observation).toMatchObject({ referenceRows: 100, currentRows: 100 });
    expect(live.observation.features.map((f) => [f.name, f.method])).toEqual([
      ['latency', 'ks'],
      ['browser', 'chi-square'],
    ]);
    // One of two features drifts: dataset drift above 20 %, not above 60 %.
    rejudge(live, check(), check({ driftShare: 0.6 }), 'warn');
    const strict = rejudge(
      live,
      check(),
      check({
        features: [
          { name: 'latency', kind: 'numeric', threshold: 1e-30 },
          { name: 'browser', kind: 'categorical' },
        ],
      }),
      'ok',
    );
    expect(strict.data.features[0]).toMatchObject({ name: 'latency', threshold: 1e-30, drifted: false });
  });

  it('conceptDrift: the recorded accuracies, against another failDropPercent', async () => {
    // 0.9 in the baseline window, 0.8 in the recent one: an 11 % drop.
    const check = (failDropPercent: number) =>
      conceptDrift(db, {
        model: 'generation_model',
        sql: `SELECT CASE WHEN $2::timestamptz > now() - interval '1 hour' THEN 0.8 ELSE 0.9 END::float8 AS accuracy,
                     100 AS samples
               WHERE $1::timestamptz < $2::timestamptz`,
        warnDropPercent: 5,
        failDropPercent,
      });
    const live = await observe(check(20));
    expect(live.finding.status).toBe('warn');
    expect(live.observation.baseline).toMatchObject({ accuracy: 0.9, samples: 100 });
    expect(live.observation.recent).toMatchObject({ accuracy: 0.8, samples: 100 });
    const replayed = rejudge(live, check(20), check(10), 'fail');
    expect(replayed.data.recentWindow).toEqual({
      from: live.observation.recent.from,
      to: live.observation.recent.to,
    });
  });

  it('modelChampion: the recorded champion, against another expected version', async () => {
    const check = (expectedVersion: string) =>
      modelChampion(registry, { model: 'generation_model', expectedVersion });
    const live = await observe(check('2'));
    expect(live.finding.status).toBe('ok');
    expect(live.observation).toMatchObject({
      registered: true,
      aliases: { champion: '2', previous: '1' },
      version: { version: '2', status: 'READY' },
    });
    const replayed = rejudge(live, check('2'), check('1'), 'warn');
    expect(replayed.summary).toBe(
      'Model generation_model "champion" is version 2 (READY), but version 1 was expected',
    );
  });
});
