import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conceptDrift } from '../../src/ml/drift/concept-drift';
import { dataDrift } from '../../src/ml/drift/data-drift';
import { connectPostgres, type PostgresDatabase } from '../../src/postgres/database';
import { stepContext } from '../support/kubernetes';
import { POSTGRES_URL } from '../support/stores';

// dataDrift and conceptDrift reading their samples from the real PostgreSQL (database `test`, a schema of this
// file's own). The samples are the fixed ones of reference/samples.json, so each feature's statistic must equal
// the value numpy/scipy computed for it (reference/expected.json).

type Sample<T> = { reference: T[]; current: T[] };
const samples = JSON.parse(readFileSync(new URL('./reference/samples.json', import.meta.url), 'utf8')) as {
  numeric: Record<string, Sample<number>>;
  categorical: Record<string, Sample<string>>;
};
const expected = JSON.parse(readFileSync(new URL('./reference/expected.json', import.meta.url), 'utf8')) as {
  numeric: Record<string, { psi: number; ks: { statistic: number; pValue: number } }>;
  categorical: Record<string, { psi: number; chiSquare: { statistic: number; pValue: number } }>;
};

const SCHEMA = `ml_test_${process.pid}`;
const TABLE = `${SCHEMA}.samples`;
let db: PostgresDatabase;
let pool: pg.Pool;

const n = (name: string) => samples.numeric[name] as Sample<number>;
const c = (name: string) => samples.categorical[name] as Sample<string>;

beforeAll(async () => {
  db = connectPostgres({ url: POSTGRES_URL });
  pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
  await pool.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await pool.query(`CREATE SCHEMA ${SCHEMA}`);
  await pool.query(
    `CREATE TABLE ${TABLE} (side text NOT NULL, latency float8, page_count int, response_ms float8, load_time float8, browser text, region text)`,
  );
  for (const side of ['reference', 'current'] as const) {
    // unnest pads the shorter arrays with NULLs, which the check skips: each feature keeps its own sample size.
    await pool.query(
      `INSERT INTO ${TABLE} SELECT $1, * FROM unnest($2::float8[], $3::int[], $4::float8[], $5::float8[], $6::text[], $7::text[])`,
      [
        side,
        n('normal-shifted')[side],
        n('integers-with-ties')[side],
        n('normal-same-equal-sizes')[side],
        n('lognormal-large')[side],
        c('browsers-same')[side],
        c('browsers-shifted')[side],
      ],
    );
  }
  await pool.query(
    `CREATE TABLE ${SCHEMA}.predictions (created_at timestamptz NOT NULL, model_name text NOT NULL, prediction text, ground_truth text)`,
  );
  // generation_model: 92% right 2–8 days ago, 70% right in the last 24 h; stable_model: 90% in both.
  await pool.query(
    `INSERT INTO ${SCHEMA}.predictions
       SELECT now() - interval '2 days' - (i * interval '1 hour'), 'generation_model', 'a', CASE WHEN i % 100 < 92 THEN 'a' ELSE 'b' END FROM generate_series(0, 99) i
       UNION ALL SELECT now() - (i * interval '10 minutes'), 'generation_model', 'a', CASE WHEN i % 10 < 7 THEN 'a' ELSE 'b' END FROM generate_series(0, 99) i
       UNION ALL SELECT now() - interval '3 days' - (i * interval '1 hour'), 'stable_model', 'a', CASE WHEN i % 10 < 9 THEN 'a' ELSE 'b' END FROM generate_series(0, 49) i
       UNION ALL SELECT now() - (i * interval '10 minutes'), 'stable_model', 'a', CASE WHEN i % 10 < 9 THEN 'a' ELSE 'b' END FROM generate_series(0, 49) i
       UNION ALL SELECT now() - (i * interval '10 minutes'), 'new_model', 'a', 'a' FROM generate_series(0, 4) i`,
  );
});

afterAll(async () => {
  await pool?.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await pool?.end();
  await db?.close();
});

const sideQuery = (side: string) => ({
  sql: `SELECT latency, page_count, response_ms, load_time, browser, region FROM ${TABLE} WHERE side = $1`,
  params: [side],
});

describe('dataDrift on PostgreSQL', () => {
  it('judges each feature with its method and matches the numpy/scipy values; 3 of 5 drifted is dataset drift', async () => {
    const check = dataDrift(db, {
      model: 'generation_model',
      reference: sideQuery('reference'),
      current: sideQuery('current'),
      features: [
        { name: 'latency', kind: 'numeric' },
        { name: 'page_count', kind: 'numeric', method: 'psi' },
        { name: 'response_ms', kind: 'numeric' },
        { name: 'browser', kind: 'categorical' },
        { name: 'region', kind: 'categorical' },
      ],
    });
    const found = await check.run(stepContext());
    expect(found.status).toBe('fail');
    expect(found.summary).toBe(
      'Data drift of generation_model: 3 of 5 features drifted (60% > 20%: dataset drift): latency, page_count, region',
    );
    const byName = Object.fromEntries(found.data.features.map((f) => [f.name, f]));
    const want = {
      latency: expected.numeric['normal-shifted']?.ks,
      response_ms: expected.numeric['normal-same-equal-sizes']?.ks,
      browser: expected.categorical['browsers-same']?.chiSquare,
      region: expected.categorical['browsers-shifted']?.chiSquare,
    };
    for (const [name, w] of Object.entries(want)) {
      expect(Math.abs((byName[name]?.statistic ?? Number.NaN) - (w?.statistic ?? 0)), name).toBeLessThan(
        1e-9,
      );
      expect(Math.abs((byName[name]?.pValue ?? Number.NaN) - (w?.pValue ?? 0)), name).toBeLessThan(1e-6);
    }
    expect(
      Math.abs((byName.page_count?.score ?? 0) - (expected.numeric['integers-with-ties']?.psi ?? 0)),
    ).toBeLessThan(1e-9);
    expect(byName.page_count).toMatchObject({
      method: 'psi',
      threshold: 0.1,
      drifted: true,
      referenceCount: 200,
      currentCount: 250,
    });
    expect(byName.latency).toMatchObject({
      method: 'ks',
      threshold: 0.05,
      referenceCount: 500,
      currentCount: 400,
    });
    expect(found.data).toMatchObject({
      datasetDrift: true,
      shareOfDriftedFeatures: 0.6,
      referenceRows: 2000,
      currentRows: 1500,
    });
    expect(found.evidence[0]).toMatchObject({
      kind: 'table',
      columns: expect.arrayContaining(['feature', 'p-value', 'drifted']),
    });
    expect(found.data.report).toContain('# Data drift report: generation_model');
    expect(found.data.report).toContain(
      '| latency | numeric | ks | 0.1435 | 0.000188853 | p < 0.05 | **yes** |',
    );
    expect(found.data.report).toContain(
      '| region | categorical | chi-square | 112.336 | 3.447e-24 | p < 0.05 | **yes** |',
    );
  });

  it('is only a warning when exactly 20% drift (the limit is "more than"), with per-feature thresholds; reads through a pg.Pool too', async () => {
    const found = await dataDrift(pool, {
      reference: sideQuery('reference'),
      current: sideQuery('current'),
      features: [
        { name: 'latency', kind: 'numeric' },
        { name: 'response_ms', kind: 'numeric' },
        { name: 'browser', kind: 'categorical' },
        // p = 0.0135: drift at 0.05, not at 0.01.
        { name: 'load_time', kind: 'numeric', threshold: 0.01 },
        // PSI 1.82: drift at the default 0.1, not at 5.
        { name: 'region', kind: 'categorical', method: 'psi', threshold: 5 },
      ],
    }).run(stepContext());
    expect(found.status).toBe('warn');
    expect(found.data).toMatchObject({
      datasetDrift: false,
      numberOfDriftedFeatures: 1,
      driftedFeatures: ['latency'],
      shareOfDriftedFeatures: 0.2,
    });
  });

  it('leaves features with too few values unjudged (unknown when none can be judged)', async () => {
    const found = await dataDrift(db, {
      reference: { sql: `SELECT latency FROM ${TABLE} WHERE side = 'reference' LIMIT 10` },
      current: { sql: `SELECT latency FROM ${TABLE} WHERE side = 'current' LIMIT 10` },
      features: [{ name: 'latency', kind: 'numeric' }],
    }).run(stepContext());
    expect(found.status).toBe('unknown');
    expect(found.data.features[0]).toMatchObject({ drifted: null, score: null, referenceCount: 10 });
  });

  it('refuses a missing column, a non-numeric value, a write, and bad options, naming what is wrong', async () => {
    const missing = dataDrift(db, {
      reference: sideQuery('reference'),
      current: sideQuery('current'),
      features: [{ name: 'color', kind: 'categorical' }],
    });
    await expect(missing.run(stepContext())).rejects.toMatchObject({
      code: 'ML_DRIFT_NO_SUCH_COLUMN',
      message: expect.stringContaining('no column "color"'),
    });
    const text = dataDrift(db, {
      reference: sideQuery('reference'),
      current: sideQuery('current'),
      features: [{ name: 'browser', kind: 'numeric' }],
    });
    await expect(text.run(stepContext())).rejects.toMatchObject({
      code: 'ML_DRIFT_BAD_VALUE',
      message: expect.stringContaining('numeric feature "browser"'),
    });
    const write = dataDrift(db, {
      reference: { sql: `UPDATE ${TABLE} SET latency = 0 WHERE false RETURNING latency` },
      current: sideQuery('current'),
      features: [{ name: 'latency', kind: 'numeric' }],
    });
    await expect(write.run(stepContext())).rejects.toMatchObject({ sqlstate: '25006' });
    expect(() =>
      dataDrift(db, {
        reference: sideQuery('r'),
        current: sideQuery('c'),
        features: [{ name: 'x', kind: 'numeric', method: 'chi-square' }],
      }),
    ).toThrow(/features\[0\]\.method: chi-square judges categorical features/);
    expect(() => dataDrift(db, { reference: sideQuery('r'), current: sideQuery('c'), features: [] })).toThrow(
      /features: expected at least one feature/,
    );
  });
});

describe('conceptDrift on PostgreSQL', () => {
  const sql = `SELECT avg((prediction = ground_truth)::int) AS accuracy, count(*) AS samples FROM ${SCHEMA}.predictions
               WHERE model_name = $3 AND ground_truth IS NOT NULL AND created_at >= $1 AND created_at < $2`;

  it('fails when accuracy fell from 0.92 to 0.70 (a 23.9% drop) and is below the 0.85 floor', async () => {
    const found = await conceptDrift(db, {
      model: 'generation_model',
      sql,
      params: ['generation_model'],
      minAccuracy: 0.85,
    }).run(stepContext());
    expect(found.status).toBe('fail');
    expect(found.data).toMatchObject({
      baselineAccuracy: 0.92,
      recentAccuracy: 0.7,
      accuracyDropPercent: 23.91,
      baselineSamples: 100,
      recentSamples: 100,
    });
    expect(found.summary).toBe(
      'Concept drift of generation_model: accuracy 0.7 in the last 24h vs 0.92 before (drop 23.913%, below the minimum 0.85)',
    );
  });

  it('is ok for a stable model, and unknown with too few labelled predictions', async () => {
    const stable = await conceptDrift(db, { sql, params: ['stable_model'] }).run(stepContext());
    expect([stable.status, stable.data.accuracyDropPercent]).toEqual(['ok', 0]);
    const fresh = await conceptDrift(pool, { sql, params: ['new_model'] }).run(stepContext());
    expect(fresh.status).toBe('unknown');
    expect(fresh.summary).toMatch(/not enough labelled predictions \(baseline 0, recent 5; need 30/);
  });
});
