import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { parseOptions } from '../../core/parse-options';
import type { Action, Check } from '../../core/step';
import { type KubernetesCluster, k8sRef, type WorkloadKind } from '../cluster';
import { NamespaceName, ObjectName, WorkloadKindSchema } from '../options';
import { rolloutStatus } from '../rollout-status';
import { awaitRollout, describeWorkload, type RolloutWaitData, readWorkload } from './workload';

/** Options of {@link waitForRollout}. */
export const WaitForRolloutOptions = z.object({
  /** Namespace of the workload. */
  namespace: NamespaceName,
  /** Name of the Deployment or StatefulSet. */
  name: ObjectName,
  /** @default "Deployment" */
  kind: WorkloadKindSchema.default('Deployment'),
  /** How long to wait for the rollout to be done. @default "5m" */
  timeout: Duration.default('5m'),
});
export type WaitForRolloutOptions = z.output<typeof WaitForRolloutOptions>;
export type WaitForRolloutOptionsInput = z.input<typeof WaitForRolloutOptions>;

/** What a wait plan fixes. */
export type WaitForRolloutParams = {
  namespace: string;
  name: string;
  kind: WorkloadKind;
  timeoutMs: number;
};

const KIND = 'k8s.wait-for-rollout';

/**
 * `kubectl rollout status --timeout`: waits until a Deployment's or StatefulSet's rollout is done.
 *
 * Waiting changes nothing, so this is at heart a check; it is both, so a runbook may write either form:
 * - `step.check('wait', waitForRollout(...))` — **preferred**: waits (at most `timeout`) and returns an
 *   `ok` finding when done, `fail` naming the reason (crash loop, image pull, OOM kill, progress deadline,
 *   or the time ran out), `unknown` when the API could not be read. Takes no lock; checks run in every mode.
 * - `step.act('wait', waitForRollout(...))` — as the manual's steps read: **plan** reads the status; when
 *   the rollout is already done the plan is empty and the step is a no-op. Otherwise the plan's one entry,
 *   `status.rollout: progressing → done`, is the transition awaited, not a change made; **apply** makes no
 *   request; **verify** waits as above, and its `fail` fails the step. No revert (nothing was changed).
 *   The act form holds the workload's lease lock while it waits, so no other runbook restarts it meanwhile.
 *
 * Risk `low`, not destructive, no budget.
 */
export function waitForRollout(
  cluster: KubernetesCluster,
  options: WaitForRolloutOptionsInput,
): Action<WaitForRolloutParams, null> & Check<RolloutWaitData> {
  const o = parseOptions(KIND, WaitForRolloutOptions, options);
  const target = k8sRef(o.namespace, o.kind, o.name);
  const label = describeWorkload(o.kind, o.namespace, o.name);
  const params: WaitForRolloutParams = {
    namespace: o.namespace,
    name: o.name,
    kind: o.kind,
    timeoutMs: toMillis(o.timeout),
  };
  return {
    kind: KIND,
    target,
    risk: 'low',
    destructive: false,
    description: `Wait until the rollout of ${label} is done (kubectl rollout status)`,

    async run(ctx) {
      cluster.assertContext();
      return awaitRollout(cluster, params, { timeoutMs: params.timeoutMs, signal: ctx.signal });
    },

    async plan(ctx) {
      cluster.assertMayChange(o.namespace);
      const workload = await readWorkload(cluster, o.kind, o.namespace, o.name, { signal: ctx.signal });
      const status = rolloutStatus(workload, o.kind);
      return {
        summary:
          status.state === 'done'
            ? `${label}: already rolled out (${status.message})`
            : `Wait up to ${o.timeout} for ${label} to roll out (now: ${status.message})`,
        changes:
          status.state === 'done'
            ? []
            : [{ target, field: 'status.rollout', before: status.state, after: 'done' }],
        params,
      };
    },

    async apply(_ctx, plan) {
      // Waiting changes nothing: the guard is the only thing to do before verify waits.
      cluster.assertMayChange(plan.params.namespace);
      return null;
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      return awaitRollout(cluster, p, { timeoutMs: p.timeoutMs, signal: ctx.signal });
    },
  };
}
