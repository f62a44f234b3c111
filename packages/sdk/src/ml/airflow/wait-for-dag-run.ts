import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { sleep } from '../../core/sleep';
import { type Check, defineCheck } from '../../core/step';
import type { AirflowClient } from './client';
import { DagId } from './trigger-dag';

/** Options of {@link waitForDagRun}. */
export const WaitForDagRunOptions = z.object({
  /** The DAG. */
  dag: DagId,
  /** The run to wait for (what `airflowTrigger`'s apply returned as `dagRunId`). */
  dagRunId: z.string().min(1),
  /** How long to wait for the run to end. @default "30m" */
  timeout: Duration.default('30m'),
  /** How often to ask. @default "10s" */
  pollInterval: Duration.default('10s'),
});
export type WaitForDagRunOptions = z.output<typeof WaitForDagRunOptions>;
export type WaitForDagRunOptionsInput = z.input<typeof WaitForDagRunOptions>;

/** What {@link waitForDagRun} saw. */
export type WaitForDagRunData = {
  dag: string;
  dagRunId: string;
  /** The last state read; `null` when the run does not exist. */
  state: string | null;
  /** How long the wait took, in ms. */
  waitedMs: number;
  /** Each state change as `[ms since the wait began, state]`. */
  states: [number, string][];
};

const KIND = 'airflow.wait-for-dag-run';

/**
 * Waits for a DAG run to end, reading `GET …/dagRuns/{id}` every `pollInterval` and logging each state change
 * (queued → running → success). A check: it only reads, so the engine may run it again.
 *
 * - `ok` when the run ends in `success`; `fail` when it ends in `failed` or does not exist;
 * - `unknown` when it is still going at `timeout` (the summary says its state).
 */
export function waitForDagRun(
  airflow: AirflowClient,
  options: WaitForDagRunOptionsInput,
): Check<WaitForDagRunData> {
  const o = parseOptions(KIND, WaitForDagRunOptions, options);
  const timeoutMs = toMillis(o.timeout);
  const intervalMs = Math.max(1, toMillis(o.pollInterval));
  return defineCheck({
    kind: KIND,
    description: `Wait for run ${o.dagRunId} of Airflow DAG ${o.dag}`,
    async run(ctx) {
      const started = Date.now();
      const states: [number, string][] = [];
      for (;;) {
        const run = await airflow.getDagRun(o.dag, o.dagRunId, { signal: ctx.signal });
        const waitedMs = Date.now() - started;
        const data = (state: string | null): WaitForDagRunData => ({
          dag: o.dag,
          dagRunId: o.dagRunId,
          state,
          waitedMs,
          states,
        });
        if (!run) return finding('fail', `DAG ${o.dag} has no run ${o.dagRunId}`, data(null));
        if (states.at(-1)?.[1] !== run.state) {
          states.push([waitedMs, run.state]);
          ctx.log(`DAG ${o.dag} run ${o.dagRunId}: ${run.state} after ${formatMillis(waitedMs)}`);
        }
        const evidence = [
          {
            kind: 'table' as const,
            title: `Run ${o.dagRunId}`,
            columns: ['after', 'state'],
            rows: states.map(([ms, s]) => [formatMillis(ms), s]),
          },
        ];
        if (run.state === 'success') {
          return finding(
            'ok',
            `DAG ${o.dag} run ${o.dagRunId} succeeded after ${formatMillis(waitedMs)}`,
            data(run.state),
            evidence,
          );
        }
        if (run.state === 'failed') {
          return finding(
            'fail',
            `DAG ${o.dag} run ${o.dagRunId} failed after ${formatMillis(waitedMs)}: see its task logs in Airflow`,
            data(run.state),
            evidence,
          );
        }
        if (waitedMs >= timeoutMs) {
          return finding(
            'unknown',
            `DAG ${o.dag} run ${o.dagRunId} is still ${run.state} after ${formatMillis(waitedMs)}`,
            data(run.state),
            evidence,
          );
        }
        await sleep(Math.min(intervalMs, timeoutMs - waitedMs), ctx.signal);
      }
    },
  });
}
