import { z } from 'zod';
import { finding } from '../../core/finding';
import type { Json } from '../../core/json';
import { parseOptions } from '../../core/parse-options';
import { type Action, defineAction, type StepContext } from '../../core/step';
import { isMlServiceError } from '../errors';
import type { AirflowClient } from './client';

const RUN_ID = /^[A-Za-z0-9_.~:+-]{1,250}$/;

/** A DAG id as Airflow allows it. */
export const DagId = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,250}$/, 'expected a DAG id of letters, digits, "_", "." or "-"');

/** Options of {@link airflowTrigger}. */
export const AirflowTriggerOptions = z.object({
  /** The DAG to run, e.g. `model_retraining`. */
  dag: DagId,
  /** The run's configuration (`dag_run.conf`), e.g. `{ training_data_path: "s3://…" }`. @default {} */
  conf: z.record(z.string(), z.json()).default({}),
  /** A note shown with the run in Airflow's UI. @default "Triggered by runbook <id>, run <run id>" */
  note: z.string().max(1000).optional(),
  /**
   * The run's id. @default `runbook__<run id>__<step>`: the same for every attempt of the step, so a retried
   * or resumed apply finds the run it started instead of starting another
   */
  dagRunId: z.string().regex(RUN_ID, 'expected letters, digits and "_.~:+-", at most 250').optional(),
});
export type AirflowTriggerOptions = z.output<typeof AirflowTriggerOptions>;
export type AirflowTriggerOptionsInput = z.input<typeof AirflowTriggerOptions>;

/** What an Airflow trigger plan fixes. */
export type AirflowTriggerParams = {
  dag: string;
  dagRunId: string;
  conf: Record<string, Json>;
  note: string;
};

/** What the trigger's apply returned: the run as Airflow holds it. */
export type AirflowTriggerResult = { dagRunId: string; state: string; alreadyTriggered: boolean };

const KIND = 'airflow.trigger-dag';

/**
 * Triggers a DAG run (the manual's `POST /api/v1/dags/model_retraining/dagRuns`), exactly once per step.
 *
 * - **plan**: `dagRuns[runbook__<run>__<step>]: null → "queued"` with the conf; no changes when a run with that
 *   id exists already.
 * - **apply**: `POST …/dagRuns` with the deterministic `dag_run_id`; a 409 (the run exists: an earlier attempt
 *   got through) counts as done, and the existing run is read instead.
 * - **verify**: the run exists and has not failed (`queued`, `running` or `success`). Use
 *   {@link waitForDagRun} to wait for it to finish.
 *
 * No revert: a started run cannot be un-triggered. Risk `low`, not destructive.
 */
export function airflowTrigger(
  airflow: AirflowClient,
  options: AirflowTriggerOptionsInput,
): Action<AirflowTriggerParams, AirflowTriggerResult> {
  const o = parseOptions(KIND, AirflowTriggerOptions, options);
  const target = airflow.ref(o.dag);
  return defineAction<AirflowTriggerParams, AirflowTriggerResult>({
    kind: KIND,
    target,
    risk: 'low',
    destructive: false,
    description: `Trigger a run of Airflow DAG ${o.dag}`,

    async plan(ctx) {
      const dagRunId = o.dagRunId ?? runIdFor(ctx);
      const params: AirflowTriggerParams = {
        dag: o.dag,
        dagRunId,
        conf: o.conf as Record<string, Json>,
        note: o.note ?? `Triggered by runbook ${ctx.runbookId}, run ${ctx.runId}`,
      };
      const existing = await airflow.getDagRun(o.dag, dagRunId, { signal: ctx.signal });
      if (existing) {
        return {
          summary: `DAG ${o.dag} run ${dagRunId} exists already (${existing.state})`,
          changes: [],
          params,
        };
      }
      return {
        summary: `Trigger DAG ${o.dag} as run ${dagRunId}${Object.keys(o.conf).length ? ` with conf ${JSON.stringify(o.conf)}` : ''}`,
        changes: [
          {
            target,
            field: `dagRuns[${dagRunId}]`,
            before: null,
            after: { state: 'queued', conf: params.conf },
          },
        ],
        params,
      };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      try {
        const run = await airflow.triggerDagRun(p.dag, {
          dagRunId: p.dagRunId,
          conf: p.conf,
          note: p.note,
          signal: ctx.signal,
        });
        ctx.log(`triggered DAG ${p.dag} run ${run.dagRunId} (${run.state})`);
        return { dagRunId: run.dagRunId, state: run.state, alreadyTriggered: false };
      } catch (e) {
        if (!(isMlServiceError(e) && e.status === 409)) throw e;
        const run = await airflow.getDagRun(p.dag, p.dagRunId, { signal: ctx.signal });
        ctx.log(
          `DAG ${p.dag} run ${p.dagRunId} was already triggered (${run?.state ?? 'unknown state'}); not triggering again`,
        );
        return { dagRunId: p.dagRunId, state: run?.state ?? 'unknown', alreadyTriggered: true };
      }
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      const run = await airflow.getDagRun(p.dag, p.dagRunId, { signal: ctx.signal });
      const data = { dagRunId: p.dagRunId, state: run?.state ?? null };
      if (!run) return finding('fail', `DAG ${p.dag} has no run ${p.dagRunId} after the trigger`, data);
      if (run.state === 'failed') return finding('fail', `DAG ${p.dag} run ${p.dagRunId} failed`, data);
      return finding('ok', `DAG ${p.dag} run ${p.dagRunId} is ${run.state}`, data);
    },
  });
}

/** The run id a step's trigger uses: stable across the step's attempts and the run's resumptions. */
export function runIdFor(ctx: Pick<StepContext, 'runId' | 'step'>): string {
  return `runbook__${ctx.runId}__${ctx.step}`.replace(/[^A-Za-z0-9_.~:+-]/g, '_').slice(0, 250);
}
