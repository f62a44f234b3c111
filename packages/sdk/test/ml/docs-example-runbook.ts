// The end-to-end runbook of ML.md ("End to end: the manual's rollback and retraining"), shown there as
// `model-accuracy-drop.ts`. Everything between the docs markers appears there exactly, except the import lines:
// the docs import from the package, this file from the sources. docs-examples.test.ts runs it against the MLflow
// and Airflow doubles and PostgreSQL, and fails when the two drift apart.

// docs:begin model-accuracy-drop.ts
import { z } from 'zod';
import { defineRunbook, onAlert } from '../../src';
import {
  type AirflowClient,
  airflowTrigger,
  conceptDrift,
  type MlflowRegistry,
  modelChampion,
  modelRollback,
  type SampleSource,
  waitForDagRun,
} from '../../src/ml';

/** Accuracy of labelled predictions in a window: `$1` start, `$2` end, `$3` the model. */
const ACCURACY_SQL = `SELECT avg((prediction = ground_truth)::int) AS accuracy, count(*) AS samples
  FROM predictions WHERE model_name = $3 AND ground_truth IS NOT NULL AND created_at >= $1 AND created_at < $2`;

/** The manual's runbook 10: judge the accuracy, roll the champion back to `previous`, retrain. */
export function modelAccuracyDrop(registry: MlflowRegistry, airflow: AirflowClient, db: SampleSource) {
  return defineRunbook({
    id: 'model-accuracy-drop',
    title: 'Model accuracy drop',
    severity: 'P2',
    input: z.object({
      model: z.string().default('generation_model'),
      recentWindow: z.string().default('24h'),
    }),
    triggers: [onAlert({ alertname: 'ModelAccuracyLow' })],
    async run({ input, step }) {
      const champion = await step.check('registry-champion', modelChampion(registry, { model: input.model }));
      const concept = await step.check(
        'concept-drift',
        conceptDrift(db, {
          model: input.model,
          sql: ACCURACY_SQL,
          params: [input.model],
          recentWindow: input.recentWindow,
          minAccuracy: 0.85,
        }),
      );
      if (concept.status !== 'fail') return step.done(concept.summary);
      const previous = champion.data.aliases.previous;
      if (!previous) return step.escalate('no previous model version to roll back to');
      // A second run would roll back to the version this one replaced: the pack's model-accuracy-drop also tags the
      // replaced version (modelVersionTag) and escalates instead of rolling back to a tagged one.
      await step.act('rollback-model', modelRollback(registry, { model: input.model, version: previous }));
      const retrain = await step.act(
        'trigger-retraining',
        airflowTrigger(airflow, { dag: 'model_retraining' }),
      );
      if (retrain.status !== 'skipped') {
        const dagRunId = retrain.plan.params.dagRunId;
        await step.check(
          'retraining',
          waitForDagRun(airflow, { dag: 'model_retraining', dagRunId, pollInterval: '1s' }),
        );
      }
      return step.done(`rolled ${input.model} back from ${champion.data.version} to ${previous}`);
    },
  });
}
// docs:end model-accuracy-drop.ts
