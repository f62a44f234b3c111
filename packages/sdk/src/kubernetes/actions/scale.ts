import type { V1Pod, V1Scale } from '@kubernetes/client-node';
import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { type Finding, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { sleep } from '../../core/sleep';
import type { StepContext } from '../../core/step';
import { type Action, type Applied, defineAction } from '../../core/step';
import { type KubernetesCluster, k8sRef, type RequestOptions, type WorkloadKind } from '../cluster';
import { isKubernetesApiError } from '../errors';
import { NamespaceName, ObjectName, WorkloadKindSchema } from '../options';
import { selectorText } from '../revisions';
import { describeWorkload, type FailingContainer, failingContainers, readWorkload } from './workload';

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
 * - **verify** waits (at most `timeout`) until the workload has exactly N pods and the scale made nothing
 *   worse: at least N minus the pods that were already not ready before the apply are ready. So scaling
 *   out during an incident with one crash-looping pod succeeds when the new pods are ready. It fails fast
 *   when pods created by the scale crash-loop, cannot pull their image or are OOM-killed. When something
 *   else (an autoscaler) changed `spec.replicas` meanwhile the finding is `unknown`: the engine then
 *   leaves it alone instead of reverting over the autoscaler.
 * - **revert** patches `/scale` back to the planned `before`.
 *
 * Risk `medium` (scaling down removes capacity), not destructive.
 */
export function scale(
  cluster: KubernetesCluster,
  options: ScaleOptionsInput,
): Action<ScaleParams, ScaleApplied> {
  const o = parseOptions(KIND, ScaleOptions, options);
  const target = k8sRef(o.namespace, o.kind, o.name);
  const label = describeWorkload(o.kind, o.namespace, o.name);
  return defineAction<ScaleParams, ScaleApplied>({
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
      // The pods before the change, so that verify can tell the pods the scale created from older ones.
      const workload = await readWorkload(cluster, p.kind, p.namespace, p.name, { signal: ctx.signal });
      const before = await listPods(cluster, p, selectorText(workload.spec?.selector), {
        signal: ctx.signal,
      });
      await patchScale(cluster, p.kind, p.namespace, p.name, p.replicas, ctx);
      return { podsBefore: before.map((pod) => pod.metadata?.name ?? '') };
    },

    async verify(ctx, applied) {
      return awaitScale(cluster, applied, ctx.signal);
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

/** What the scale's verify saw. */
export type ScaleWaitData = {
  replicas: number;
  pods: number;
  ready: number;
  /** Ready pods needed: the replica count minus pods already not ready before the apply. */
  needReady: number;
  failing: FailingContainer[];
  elapsedMs: number;
};

const POLL = { firstMs: 5, maxMs: 1_000 } as const;

/** What the apply of {@link scale} returns. */
export type ScaleApplied = {
  /** Names of the workload's pods just before the change. */
  podsBefore: string[];
};

/** Verify of {@link scale}: see its doc. Bounded by the timeout and the step's signal, every request included. */
async function awaitScale(
  cluster: KubernetesCluster,
  applied: Applied<ScaleParams, ScaleApplied>,
  stepSignal: AbortSignal,
): Promise<Finding<ScaleWaitData>> {
  const p = applied.plan.params;
  const label = describeWorkload(p.kind, p.namespace, p.name);
  const started = Date.now();
  const deadline = started + p.timeoutMs;
  // Requests stop at the deadline too, so a slow API cannot stretch the wait past the timeout.
  const request = { signal: AbortSignal.any([stepSignal, AbortSignal.timeout(p.timeoutMs)]) };
  // Which pods existed before the change: from the apply, or, when the apply was recovered after a crash
  // and its result lost, those created before the apply's second (creationTimestamp has whole seconds).
  const appliedSecond = Math.floor(Date.parse(applied.appliedAt) / 1000) * 1000;
  const before = applied.data ? new Set(applied.data.podsBefore) : undefined;
  const isOld = (pod: V1Pod) =>
    before
      ? before.has(pod.metadata?.name ?? '')
      : (pod.metadata?.creationTimestamp?.getTime() ?? 0) < appliedSecond;
  let data: ScaleWaitData = {
    replicas: p.replicas,
    pods: 0,
    ready: 0,
    needReady: p.replicas,
    failing: [],
    elapsedMs: 0,
  };
  let lastError: string | undefined;
  let seen = false;
  const result = (status: 'ok' | 'fail' | 'unknown', summary: string) =>
    finding(status, `${label}: ${summary}`, { ...data, elapsedMs: Date.now() - started });

  for (let delay: number = POLL.firstMs; ; delay = Math.min(delay * 2, POLL.maxMs)) {
    stepSignal.throwIfAborted();
    try {
      const workload = await readWorkload(cluster, p.kind, p.namespace, p.name, request);
      seen = true;
      const desired = workload.spec?.replicas ?? 1;
      if (desired !== p.replicas) {
        return result(
          'unknown',
          `spec.replicas is now ${desired}, not the ${p.replicas} this step set: something else (an autoscaler?) scaled it; not judged, not reverted`,
        );
      }
      const pods = await listPods(cluster, p, selectorText(workload.spec?.selector), request);
      const oldUnready = pods.filter((pod) => isOld(pod) && !isReady(pod)).length;
      const newPods = pods.filter((pod) => !isOld(pod));
      data = {
        ...data,
        pods: pods.length,
        ready: pods.filter(isReady).length,
        needReady: Math.max(0, p.replicas - oldUnready),
        failing: failingContainers(newPods),
      };
      lastError = undefined;
      if (data.failing.length > 0) {
        const f = data.failing[0] as FailingContainer;
        return result(
          'fail',
          `pods created by the scale are failing: ${f.pod}/${f.container} ${f.reason}${f.message ? ` (${f.message})` : ''}`,
        );
      }
      if (data.pods === p.replicas && data.ready >= data.needReady) {
        return result('ok', `${data.pods} pods, ${data.ready} ready (scaled to ${p.replicas})`);
      }
    } catch (e) {
      if (stepSignal.aborted) throw stepSignal.reason;
      if (isKubernetesApiError(e) && e.retriable) lastError = e.message;
      else throw e;
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      const waited = formatMillis(p.timeoutMs);
      return lastError && !seen
        ? result('unknown', `could not read the workload for ${waited}: ${lastError}`)
        : result(
            'fail',
            `not scaled after ${waited}: ${data.pods} pods (want ${p.replicas}), ${data.ready} ready (want ${data.needReady})`,
          );
    }
    await sleep(Math.min(delay, left), stepSignal);
  }
}

/** The workload's pods that are not being deleted. */
async function listPods(
  cluster: KubernetesCluster,
  p: ScaleParams,
  labelSelector: string,
  request: RequestOptions,
): Promise<V1Pod[]> {
  const list = await cluster.call(
    `list pods of ${describeWorkload(p.kind, p.namespace, p.name)}`,
    (o) => cluster.core.listNamespacedPod({ namespace: p.namespace, labelSelector }, o),
    request,
  );
  return list.items.filter((pod) => !pod.metadata?.deletionTimestamp);
}

function isReady(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}
