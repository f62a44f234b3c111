import type { KubeObject } from '../object-store';

/**
 * How the workload controllers read the pods the kubelet reports on: `status.phase`, the `Ready`
 * condition and its `lastTransitionTime`, `metadata.deletionTimestamp`. They never write pod status.
 */

interface PodCondition {
  type: string;
  status: string;
  lastTransitionTime?: string;
}

interface PodStatusView {
  phase?: string;
  conditions?: PodCondition[];
  containerStatuses?: { restartCount?: number }[];
}

function statusOf(pod: KubeObject): PodStatusView {
  return (pod.status ?? {}) as PodStatusView;
}

/** `status.phase`, or `''` when the pod has none yet. */
export function podPhase(pod: KubeObject): string {
  return statusOf(pod).phase ?? '';
}

/** The pod's `Ready` condition is `True`. */
export function isPodReady(pod: KubeObject): boolean {
  return readyCondition(pod)?.status === 'True';
}

/** Phase `Running` and Ready: what a StatefulSet waits for before the next ordinal. */
export function isRunningAndReady(pod: KubeObject): boolean {
  return podPhase(pod) === 'Running' && isPodReady(pod);
}

/** Deleted, waiting for its containers to stop. */
export function isPodTerminating(pod: KubeObject): boolean {
  return pod.metadata.deletionTimestamp !== undefined;
}

/** Neither finished (`Succeeded`/`Failed`) nor being deleted: a pod that counts towards a replica count. */
export function isPodActive(pod: KubeObject): boolean {
  const phase = podPhase(pod);
  return phase !== 'Succeeded' && phase !== 'Failed' && !isPodTerminating(pod);
}

/** When the pod last became Ready (ms since the epoch), or `undefined` when it is not ready. */
export function readySince(pod: KubeObject): number | undefined {
  const ready = readyCondition(pod);
  if (ready?.status !== 'True') return undefined;
  const at = Date.parse(ready.lastTransitionTime ?? '');
  return Number.isNaN(at) ? undefined : at;
}

/**
 * Ready for at least `minReadySeconds` at `now`. With `minReadySeconds` 0 a ready pod is available at
 * once; otherwise a ready pod without a transition time is not, as in kube-controller-manager.
 */
export function isPodAvailable(pod: KubeObject, minReadySeconds: number, now: number): boolean {
  return msUntilAvailable(pod, minReadySeconds, now) === 0;
}

/**
 * 0 when the pod is available, the milliseconds until it will be when it is ready but has not been for
 * `minReadySeconds` yet, `undefined` when readiness alone cannot make it available.
 */
export function msUntilAvailable(pod: KubeObject, minReadySeconds: number, now: number): number | undefined {
  if (!isPodReady(pod)) return undefined;
  if (minReadySeconds <= 0) return 0;
  const since = readySince(pod);
  if (since === undefined) return undefined;
  return Math.max(0, since + minReadySeconds * 1000 - now);
}

/** The highest restart count of the pod's containers. */
export function maxRestarts(pod: KubeObject): number {
  return Math.max(0, ...(statusOf(pod).containerStatuses ?? []).map((c) => c.restartCount ?? 0));
}

function readyCondition(pod: KubeObject): PodCondition | undefined {
  return statusOf(pod).conditions?.find((c) => c.type === 'Ready');
}
