import type { V1Deployment, V1StatefulSet } from '@kubernetes/client-node';
import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { RunbookError } from '../../core/errors';
import { parseOptions } from '../../core/parse-options';
import { type Action, defineAction } from '../../core/step';
import { type KubernetesCluster, k8sRef, type WorkloadKind } from '../cluster';
import { NamespaceName, ObjectName, WorkloadKindSchema } from '../options';
import { REVISION_ANNOTATION } from '../revisions';
import {
  awaitRollout,
  describeWorkload,
  patchWorkload,
  pausedError,
  readWorkload,
  rfc3339Now,
  type Workload,
} from './workload';

/** The template annotation `kubectl rollout restart` sets. */
export const RESTARTED_AT_ANNOTATION = 'kubectl.kubernetes.io/restartedAt';

/** Options of {@link rolloutRestart}. */
export const RolloutRestartOptions = z.object({
  /** Namespace of the workload; must be one the cluster's `namespaces` option allows. */
  namespace: NamespaceName,
  /** Name of the Deployment or StatefulSet. */
  name: ObjectName,
  /** @default "Deployment" */
  kind: WorkloadKindSchema.default('Deployment'),
  /** How long verify waits for the rollout to be done before it fails. @default "5m" */
  timeout: Duration.default('5m'),
});
export type RolloutRestartOptions = z.output<typeof RolloutRestartOptions>;
export type RolloutRestartOptionsInput = z.input<typeof RolloutRestartOptions>;

/** What a restart plan fixes, and `apply()` uses. */
export type RolloutRestartParams = {
  namespace: string;
  name: string;
  kind: WorkloadKind;
  /** The `restartedAt` value to write, chosen at plan time (the approved value is the applied value). */
  restartedAt: string;
  /** The annotation's value before, `null` when the workload was never restarted. */
  previous: string | null;
  /** The revision running at plan time: the Deployment's revision annotation, or the StatefulSet's `updateRevision`. */
  revision: string | null;
  timeoutMs: number;
};

/** What `apply()` returns. */
export type RolloutRestartApplied = {
  /** `metadata.generation` after the patch: the rollout is of this generation. */
  generation: number;
};

const KIND = 'k8s.rollout-restart';
const FIELD = `spec.template.metadata.annotations["${RESTARTED_AT_ANNOTATION}"]`;

/**
 * `kubectl rollout restart`: a strategic-merge patch setting the pod template's
 * `kubectl.kubernetes.io/restartedAt` annotation, so the controller replaces every pod.
 *
 * - **plan** reads the workload; refuses a paused Deployment (as kubectl does) and a StatefulSet with the
 *   `OnDelete` strategy (its pods would not be replaced, so the restart could never be verified). The new
 *   `restartedAt` (RFC 3339, whole seconds) is chosen here, so the approved plan is what is applied; a later
 *   re-plan has a new timestamp, which the engine accepts because the starting point (`before`) is the same.
 *   When the clock has not moved past the previous value, the new one is a second later, so the template
 *   always changes and the restart always happens.
 * - **apply** re-checks `paused` and sends the patch with the planned value.
 * - **verify** waits (at most `timeout`) until `kubectl rollout status` would say done; it fails as soon as
 *   pods of the new revision crash-loop, cannot pull their image or are OOM-killed, or the progress
 *   deadline is exceeded, naming the reason.
 * - **revert**: none. A restart cannot be undone (the old pods are gone); a failed verify is handed to a human.
 *
 * Risk `medium`, not destructive, budget 3 per hour per workload (the manual: restart up to 3 times, then page).
 */
export function rolloutRestart(
  cluster: KubernetesCluster,
  options: RolloutRestartOptionsInput,
): Action<RolloutRestartParams, RolloutRestartApplied> {
  const o = parseOptions(KIND, RolloutRestartOptions, options);
  const target = k8sRef(o.namespace, o.kind, o.name);
  const label = describeWorkload(o.kind, o.namespace, o.name);
  return defineAction<RolloutRestartParams, RolloutRestartApplied>({
    kind: KIND,
    target,
    risk: 'medium',
    destructive: false,
    budget: { max: 3, per: '1h' },
    description: `Restart every pod of ${label} (kubectl rollout restart)`,

    async plan(ctx) {
      cluster.assertMayChange(o.namespace);
      const workload = await readWorkload(cluster, o.kind, o.namespace, o.name, { signal: ctx.signal });
      assertRestartable(o.kind, workload, o.namespace, o.name);
      const previous = workload.spec?.template?.metadata?.annotations?.[RESTARTED_AT_ANNOTATION] ?? null;
      const restartedAt = nextRestartedAt(previous);
      const revision = revisionOf(o.kind, workload);
      const ready = `${workload.status?.readyReplicas ?? 0}/${workload.spec?.replicas ?? 1} ready`;
      return {
        summary: `Restart ${label} (revision ${revision ?? 'unknown'}, ${ready}): every pod is replaced`,
        changes: [{ target, field: FIELD, before: previous, after: restartedAt }],
        params: {
          namespace: o.namespace,
          name: o.name,
          kind: o.kind,
          restartedAt,
          previous,
          revision,
          timeoutMs: toMillis(o.timeout),
        },
      };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      cluster.assertMayChange(p.namespace);
      const workload = await readWorkload(cluster, p.kind, p.namespace, p.name, { signal: ctx.signal });
      assertRestartable(p.kind, workload, p.namespace, p.name);
      const patched = await patchWorkload(
        cluster,
        p.kind,
        p.namespace,
        p.name,
        { spec: { template: { metadata: { annotations: { [RESTARTED_AT_ANNOTATION]: p.restartedAt } } } } },
        { signal: ctx.signal, contentType: 'application/strategic-merge-patch+json' },
      );
      ctx.log(`patched ${RESTARTED_AT_ANNOTATION}=${p.restartedAt}`, {
        generation: patched.metadata?.generation ?? null,
      });
      return { generation: patched.metadata?.generation ?? 0 };
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      return awaitRollout(cluster, p, { timeoutMs: p.timeoutMs, signal: ctx.signal });
    },
  });
}

/** kubectl refuses to restart a paused Deployment; an `OnDelete` StatefulSet would never roll. */
function assertRestartable(kind: WorkloadKind, workload: Workload, namespace: string, name: string): void {
  if (kind === 'Deployment' && (workload as V1Deployment).spec?.paused) {
    throw pausedError(
      `Refused to restart Deployment ${namespace}/${name}: can't restart paused deployment (run rollout resume first).`,
      namespace,
      name,
    );
  }
  if (kind === 'StatefulSet' && (workload as V1StatefulSet).spec?.updateStrategy?.type === 'OnDelete') {
    throw new RunbookError(
      'K8S_ON_DELETE',
      `Refused to restart StatefulSet ${namespace}/${name}: it uses the OnDelete update strategy, so changing its template replaces no pod. Delete its pods one at a time instead, or switch it to RollingUpdate.`,
      { retriable: false, details: { namespace, name } },
    );
  }
}

/** Now, or one second after `previous` when the clock has not passed it (so the template always changes). */
function nextRestartedAt(previous: string | null): string {
  const now = Date.now();
  const before = previous === null ? Number.NaN : Date.parse(previous);
  return Number.isNaN(before) || now >= before + 1_000 ? rfc3339Now(now) : rfc3339Now(before + 1_000);
}

function revisionOf(kind: WorkloadKind, workload: Workload): string | null {
  if (kind === 'Deployment') return workload.metadata?.annotations?.[REVISION_ANNOTATION] ?? null;
  return (workload as V1StatefulSet).status?.updateRevision ?? null;
}
