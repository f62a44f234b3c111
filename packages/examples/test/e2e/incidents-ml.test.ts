import { describe, expect, it } from 'vitest';
import { drillLabForFile, findingSummary as finding } from '../support/drill-lab';

// End to end: the model incidents injected for real into the lab (the MLflow and Airflow doubles, predictions in
// the lab database), the manual's alert fired by a real Prometheus scraping the lab's model_accuracy and
// model_data_drift_detected, delivered by a real Alertmanager to the runbook service, which runs the routed
// runbook (a second identity approves where policy asks: the promotion of the retrained model); the lab's
// model checks healthy again; the audit chain intact.
const lab = drillLabForFile();

describe('incidents: models (runbooks 10, 11)', () => {
  it('model-accuracy-drop → ModelAccuracyLow → model-accuracy-drop rolls the champion back and pins the backend', async () => {
    const r = await lab().drill.drill('model-accuracy-drop', { healthChecks: ['model accuracy'] });
    expect(r.alertname).toBe('ModelAccuracyLow');
    expect(r.run.run.status).toBe('succeeded');
    expect(finding(r, 'registry-champion')).toBe('Model generation_model "champion" is version 4 (READY)');
    expect(finding(r, 'concept-drift')).toMatch(/^Concept drift of generation_model: accuracy 0\.\d+/);
    expect(finding(r, 'accuracy-recovered')).toMatch(/^generation_model version 3: accuracy/);
    expect(lab().up.lab.ml?.mlflow.aliases('generation_model')).toMatchObject({
      champion: '3',
      previous: '4',
    });
    expect(lab().up.lab.ml?.airflow.runs('model_retraining')).toHaveLength(1);
    expect(r.auditOk).toBe(true);
  }, 300_000);

  it('data-drift → DataDriftDetected → data-drift retrains, A/B tests and (approved) promotes the challenger', async () => {
    const r = await lab().drill.drill('data-drift', { healthChecks: ['data drift'] });
    expect(r.alertname).toBe('DataDriftDetected');
    expect(r.run.run.status).toBe('succeeded');
    expect(finding(r, 'live-data-drift')).toMatch(/dataset drift/);
    expect(finding(r, 'retraining-finished')).toMatch(/succeeded/);
    expect(r.approvals).toBeGreaterThan(0);
    expect(lab().up.lab.ml?.mlflow.aliases('generation_model').champion).toBe(
      lab().up.lab.ml?.mlflow.aliases('generation_model').challenger,
    );
    expect(r.auditOk).toBe(true);
  }, 300_000);
});
