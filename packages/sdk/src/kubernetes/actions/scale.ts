import type { V1Scale } from '@kubernetes/client-node';
import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import type { StepContext } from '../../core/step';
import { type Action, defineAction } from '../../core/step';
import { type KubernetesCluster, k8sRef, type WorkloadKind } from '../cluster';
import { NamespaceName, ObjectName, parseOptions, WorkloadKindSchema } from '../options';
import { awaitRollout, describeWorkload } from './workload';

/** Options of {@link scale}. */
export const ScaleOptions = z.object({
  /** Namespace of the workload; must be one the cluster's `namespaces` option allows. */
  namespace: NamespaceName,
  /** Name of the Deployment or StatefulSet. */
  name: ObjectName,
  /** @default "Deployment" */
  kind: WorkloadKindSchema.default('Deployment'),
  /** The replica count to set. */
  replicas: z.number().int().min(0).max(10_000),
  /** How long verify waits for that many ready replicas. @default "5m" */
  timeout: Duration.default('5m'),
});
export type ScaleOptions = z.output<typeof ScaleOptions>;
export type ScaleOptionsInput = z.input<typeof ScaleOptions>;

/** What a scale plan fixes. */
export type ScaleParams = {
  namespace: string;
  name: string;
  kind: WorkloadKind;
  replicas: number;
  /** `spec.replicas` at plan time: what revert restores. */
  previous: number;
  timeoutMs: number;
};

const KIND = 'k8s.scale';

/**
 * `kubectl scale --replicas=N`: a merge patch `{"spec":{"replicas":N}}` on the workload's `/scale` subresource.
 *
 * - **plan** reads `/scale`; the change is `spec.replicas: before → N` (empty when it already is N).
 * - **verify** waits (at most `timeout`) until the rollout is done and exactly N replicas are ready; it fails
 *   fast when new pods crash-loop or cannot pull their image, and when something else (an autoscaler)
 *   changed `spec.replicas` meanwhile.
 * - **revert** patches `/scale` back to the planned `before`.
 *
 * Risk `medium` (scaling down removes capacity), not destructive.
 */
export function scale(cluster: KubernetesCluster, options: ScaleOptionsInput): Action<ScaleParams, null> {
  const o = parseOptions(KIND, ScaleOptions, options);
  const target = k8sRef(o.namespace, o.kind, o.name);
  const label = describeWorkload(o.kind, o.namespace, o.name);
  return defineAction<ScaleParams, null>({
    kind: KIND,
    target,
    risk: 'medium',
    destructive: false,
    description: `Scale ${label} to ${o.replicas} replicas (kubectl scale)`,

    async plan(ctx) {
      cluster.assertMayChange(o.namespace);
      const current = await readScale(cluster, o.kind, o.namespace, o.name, ctx);
      const previous = current.spec?.replicas ?? 0;
      return {
        summary:
          previous === o.replicas
            ? `${label} already has ${o.replicas} replicas`
            : `Scale ${label} from ${previous} to ${o.replicas} replicas`,
        changes:
          previous === o.replicas
            ? []
            : [{ target, field: 'spec.replicas', before: previous, after: o.replicas }],
        params: {
          namespace: o.namespace,
          name: o.name,
          kind: o.kind,
          replicas: o.replicas,
          previous,
          timeoutMs: toMillis(o.timeout),
        },
      };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      cluster.assertMayChange(p.namespace);
      await patchScale(cluster, p.kind, p.namespace, p.name, p.replicas, ctx);
      return null;
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      return awaitRollout(cluster, p, {
        timeoutMs: p.timeoutMs,
        signal: ctx.signal,
        alsoRequire: (workload, status) => {
          const desired = workload.spec?.replicas ?? 1;
          if (desired !== p.replicas) {
            return {
              fail: `spec.replicas is ${desired}, not the ${p.replicas} this step set: something else (an autoscaler?) scaled it`,
            };
          }
          if (status.readyReplicas !== p.replicas || status.currentReplicas !== p.replicas) {
            return {
              wait: `Waiting for ${label} to have ${p.replicas} ready replicas: ${status.readyReplicas} ready, ${status.currentReplicas} in total`,
            };
          }
          return undefined;
        },
      });
    },

    async revert(ctx, applied) {
      const p = applied.plan.params;
      cluster.assertMayChange(p.namespace);
      await patchScale(cluster, p.kind, p.namespace, p.name, p.previous, ctx);
      ctx.log(`scaled ${label} back to ${p.previous} replicas`);
    },
  });
}

function readScale(
  cluster: KubernetesCluster,
  kind: WorkloadKind,
  namespace: string,
  name: string,
  ctx: StepContext,
): Promise<V1Scale> {
  const what = `read the scale of ${describeWorkload(kind, namespace, name)}`;
  const request = { signal: ctx.signal };
  return kind === 'Deployment'
    ? cluster.call(what, (o) => cluster.apps.readNamespacedDeploymentScale({ name, namespace }, o), request)
    : cluster.call(what, (o) => cluster.apps.readNamespacedStatefulSetScale({ name, namespace }, o), request);
}

function patchScale(
  cluster: KubernetesCluster,
  kind: WorkloadKind,
  namespace: string,
  name: string,
  replicas: number,
  ctx: StepContext,
): Promise<V1Scale> {
  const what = `scale ${describeWorkload(kind, namespace, name)} to ${replicas}`;
  const body = { spec: { replicas } };
  const request = { signal: ctx.signal, contentType: 'application/merge-patch+json' } as const;
  return kind === 'Deployment'
    ? cluster.call(
        what,
        (o) => cluster.apps.patchNamespacedDeploymentScale({ name, namespace, body }, o),
        request,
      )
    : cluster.call(
        what,
        (o) => cluster.apps.patchNamespacedStatefulSetScale({ name, namespace, body }, o),
        request,
      );
}
