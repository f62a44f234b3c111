/**
 * `model_accuracy{model}` (runbook 10's alert, `model_accuracy < 0.85`) and `model_data_drift_detected{model}`
 * (runbook 11's, `== 1`): the accuracy of the labelled predictions of the last 30 seconds, and whether the
 * latest data drift report found dataset drift.
 */
import { Gauge, type Registry } from 'prom-client';
import type { Queryable } from '../database/database-metrics';

/** The window of `model_accuracy` (the lab compresses the manual's daily check into seconds). */
export const ACCURACY_WINDOW_SECONDS = 30;

/** Accuracy per model over the window; models without labelled predictions in it are left out. */
export async function modelAccuracy(db: Queryable): Promise<{ model: string; accuracy: number }[]> {
  const { rows } = await db.query<{ model: string; accuracy: number }>(
    `SELECT model_name AS model, avg(((prediction->>'label') = (ground_truth->>'label'))::int)::float8 AS accuracy
       FROM predictions WHERE ground_truth IS NOT NULL AND created_at > now() - make_interval(secs => $1)
      GROUP BY model_name`,
    [ACCURACY_WINDOW_SECONDS],
  );
  return rows;
}

/** Whether the latest data drift report of each model found dataset drift. */
export async function latestDataDrift(db: Queryable): Promise<{ model: string; drift: boolean }[]> {
  const { rows } = await db.query<{ model: string; drift: boolean }>(
    `SELECT DISTINCT ON (model_name) model_name AS model, drift_detected AS drift
       FROM data_drift_reports ORDER BY model_name, created_at DESC, id DESC`,
  );
  return rows;
}

/** Registers both gauges on the lab exporter; a failed read leaves the last values. */
export function registerModelMetrics(registry: Registry, db: Queryable): void {
  new Gauge({
    name: 'model_accuracy',
    help: `Share of the model's labelled predictions of the last ${ACCURACY_WINDOW_SECONDS} s that were right (absent without any).`,
    labelNames: ['model'],
    registers: [registry],
    async collect() {
      try {
        const rows = await modelAccuracy(db);
        this.reset();
        for (const r of rows) this.set({ model: r.model }, r.accuracy);
      } catch {
        // The database did not answer: the last values stand.
      }
    },
  });
  new Gauge({
    name: 'model_data_drift_detected',
    help: 'Whether the latest data drift report of the model found dataset drift (more than 20% of its features drifted).',
    labelNames: ['model'],
    registers: [registry],
    async collect() {
      try {
        const rows = await latestDataDrift(db);
        this.reset();
        for (const r of rows) this.set({ model: r.model }, r.drift ? 1 : 0);
      } catch {
        // as above
      }
    },
  });
}
