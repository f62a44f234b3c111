import type { LabelSelectorObject } from '../label-selector';
import type { KubeObject } from '../object-store';
import type { PodTemplateSpec } from './pod-template';
import { timestamp } from './reconcile';
import { rsReplicas, rsStatus } from './replicaset-controller';

/**
 * A Deployment's rollout arithmetic and status, as kube-controller-manager computes them: the surge and
 * unavailability fenceposts, the status summed from its ReplicaSets, and the `Available` and
 * `Progressing` conditions with the progress deadline.
 */

export interface DeploymentSpec {
  replicas?: number;
  selector?: LabelSelectorObject;
  template?: PodTemplateSpec;
  strategy?: {
    type?: 'RollingUpdate' | 'Recreate' | string;
    rollingUpdate?: { maxSurge?: number | string; maxUnavailable?: number | string };
  };
  minReadySeconds?: number;
  revisionHistoryLimit?: number;
  progressDeadlineSeconds?: number;
  paused?: boolean;
}

export interface DeploymentCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  lastUpdateTime: string;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface DeploymentStatus {
  observedGeneration?: number;
  replicas?: number;
  updatedReplicas?: number;
  readyReplicas?: number;
  availableReplicas?: number;
  unavailableReplicas?: number;
  conditions?: DeploymentCondition[];
  collisionCount?: number;
}

/** Reasons of the `Progressing` condition (what `kubectl rollout status` and `describe` show). */
export const Reason = {
  newReplicaSetCreated: 'NewReplicaSetCreated',
  foundNewReplicaSet: 'FoundNewReplicaSet',
  replicaSetUpdated: 'ReplicaSetUpdated',
  newReplicaSetAvailable: 'NewReplicaSetAvailable',
  progressDeadlineExceeded: 'ProgressDeadlineExceeded',
  paused: 'DeploymentPaused',
  resumed: 'DeploymentResumed',
  minimumReplicasAvailable: 'MinimumReplicasAvailable',
  minimumReplicasUnavailable: 'MinimumReplicasUnavailable',
} as const;

export const deploymentSpec = (d: KubeObject): DeploymentSpec => (d.spec ?? {}) as DeploymentSpec;
export const deploymentStatus = (d: KubeObject): DeploymentStatus => (d.status ?? {}) as DeploymentStatus;
export const desiredReplicas = (d: KubeObject): number => deploymentSpec(d).replicas ?? 1;

const isRollingUpdate = (d: KubeObject) => deploymentSpec(d).strategy?.type !== 'Recreate';

/**
 * An int-or-percent field against `total`: `"25%"` of 10 is 3 rounding up (surge) or 2 rounding down
 * (unavailability).
 */
export function scaledValue(value: number | string | undefined, total: number, roundUp: boolean): number {
  if (value === undefined) return 0;
  if (typeof value === 'number') return value;
  const percent = /^(\d+)%$/.exec(value.trim());
  if (!percent) return Number.parseInt(value, 10) || 0;
  const exact = (Number(percent[1]) * total) / 100;
  return roundUp ? Math.ceil(exact) : Math.floor(exact);
}

/** `[maxSurge, maxUnavailable]` resolved; when both come out 0, 1 pod may be unavailable so a rollout can move. */
function fenceposts(d: KubeObject): [number, number] {
  const rolling = deploymentSpec(d).strategy?.rollingUpdate ?? {};
  const replicas = desiredReplicas(d);
  const surge = scaledValue(rolling.maxSurge ?? '25%', replicas, true);
  const unavailable = scaledValue(rolling.maxUnavailable ?? '25%', replicas, false);
  return surge === 0 && unavailable === 0 ? [0, 1] : [surge, unavailable];
}

/** How many pods above `spec.replicas` a rollout may create (0 for Recreate). */
export function maxSurge(d: KubeObject): number {
  return isRollingUpdate(d) ? fenceposts(d)[0] : 0;
}

/** How many of `spec.replicas` may be unavailable during a rollout (0 for Recreate), never more than all. */
export function maxUnavailable(d: KubeObject): number {
  const replicas = desiredReplicas(d);
  if (!isRollingUpdate(d) || replicas === 0) return 0;
  return Math.min(fenceposts(d)[1], replicas);
}

const sum = (sets: KubeObject[], of: (rs: KubeObject) => number | undefined) =>
  sets.reduce((n, rs) => n + (of(rs) ?? 0), 0);

/** Status from the ReplicaSets (their specs and the counts their controller reports), conditions carried over. */
export function calculateStatus(
  d: KubeObject,
  allRSs: KubeObject[],
  newRS: KubeObject | undefined,
  now: number,
): DeploymentStatus {
  const previous = deploymentStatus(d);
  const available = sum(allRSs, (rs) => rsStatus(rs).availableReplicas);
  const unavailable = Math.max(0, sum(allRSs, rsReplicas) - available);
  const status: DeploymentStatus = {
    observedGeneration: d.metadata.generation,
    replicas: sum(allRSs, (rs) => rsStatus(rs).replicas),
    updatedReplicas: newRS ? (rsStatus(newRS).replicas ?? 0) : 0,
    readyReplicas: sum(allRSs, (rs) => rsStatus(rs).readyReplicas),
    availableReplicas: available,
    unavailableReplicas: unavailable,
    conditions: structuredClone(previous.conditions ?? []),
    ...(previous.collisionCount !== undefined ? { collisionCount: previous.collisionCount } : {}),
  };
  if (available >= desiredReplicas(d) - maxUnavailable(d)) {
    setCondition(
      status,
      condition(
        'Available',
        'True',
        Reason.minimumReplicasAvailable,
        'Deployment has minimum availability.',
        now,
      ),
    );
  } else {
    setCondition(
      status,
      condition(
        'Available',
        'False',
        Reason.minimumReplicasUnavailable,
        'Deployment does not have minimum availability.',
        now,
      ),
    );
  }
  return status;
}

/** The status as stored: zero counts and empty lists left out, like the API server's `omitempty`. */
export function compactStatus(status: DeploymentStatus): DeploymentStatus {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(status)) {
    if (value === undefined || (value === 0 && key !== 'collisionCount')) continue;
    if (Array.isArray(value) && value.length === 0) continue;
    out[key] = value;
  }
  return out as DeploymentStatus;
}

export function condition(
  type: string,
  status: DeploymentCondition['status'],
  reason: string,
  message: string,
  now: number,
): DeploymentCondition {
  const at = timestamp(now);
  return { type, status, lastUpdateTime: at, lastTransitionTime: at, reason, message };
}

export function getCondition(status: DeploymentStatus, type: string): DeploymentCondition | undefined {
  return status.conditions?.find((c) => c.type === type);
}

export function removeCondition(status: DeploymentStatus, type: string): void {
  status.conditions = (status.conditions ?? []).filter((c) => c.type !== type);
}

/**
 * Sets a condition unless one with the same status and reason is there (which keeps its times, so that
 * a settled deployment is not rewritten); a changed reason with the same status keeps the transition time.
 */
export function setCondition(status: DeploymentStatus, next: DeploymentCondition): void {
  const current = getCondition(status, next.type);
  if (current && current.status === next.status && current.reason === next.reason) return;
  const added = { ...next };
  if (current && current.status === next.status) added.lastTransitionTime = current.lastTransitionTime;
  removeCondition(status, next.type);
  status.conditions = [...(status.conditions ?? []), added];
}

export function hasProgressDeadline(d: KubeObject): boolean {
  const seconds = deploymentSpec(d).progressDeadlineSeconds;
  return seconds !== undefined && seconds < 2 ** 31 - 1;
}

/** All replicas updated and available, and the latest spec observed: the rollout is done. */
export function deploymentComplete(d: KubeObject, status: DeploymentStatus): boolean {
  const replicas = desiredReplicas(d);
  return (
    (status.updatedReplicas ?? 0) === replicas &&
    (status.replicas ?? 0) === replicas &&
    (status.availableReplicas ?? 0) === replicas &&
    (status.observedGeneration ?? 0) >= d.metadata.generation
  );
}

/** Whether `next` shows progress over the stored status: more updated, fewer old, more ready or available. */
export function deploymentProgressing(d: KubeObject, next: DeploymentStatus): boolean {
  const prev = deploymentStatus(d);
  const oldBefore = (prev.replicas ?? 0) - (prev.updatedReplicas ?? 0);
  const oldAfter = (next.replicas ?? 0) - (next.updatedReplicas ?? 0);
  return (
    (next.updatedReplicas ?? 0) > (prev.updatedReplicas ?? 0) ||
    oldAfter < oldBefore ||
    (next.readyReplicas ?? 0) > (prev.readyReplicas ?? 0) ||
    (next.availableReplicas ?? 0) > (prev.availableReplicas ?? 0)
  );
}

/**
 * When the progress deadline passes (ms since the epoch) for a rollout that is still going, else
 * `undefined`. Condition times have whole seconds, so the deadline counts from the end of the second
 * the last progress was recorded in: it never fires early, at most a second late.
 */
export function progressDeadline(d: KubeObject, status: DeploymentStatus): number | undefined {
  if (!hasProgressDeadline(d)) return undefined;
  const cond = getCondition(status, 'Progressing');
  if (
    !cond ||
    cond.reason === Reason.newReplicaSetAvailable ||
    cond.reason === Reason.progressDeadlineExceeded
  ) {
    return undefined;
  }
  const from = Date.parse(cond.lastUpdateTime);
  if (Number.isNaN(from)) return undefined;
  return from + 1000 + (deploymentSpec(d).progressDeadlineSeconds ?? 600) * 1000;
}

/** True when the rollout recorded in `status` has made no progress for `progressDeadlineSeconds`. */
export function deploymentTimedOut(d: KubeObject, status: DeploymentStatus, now: number): boolean {
  if (!hasProgressDeadline(d)) return false;
  if (getCondition(status, 'Progressing')?.reason === Reason.progressDeadlineExceeded) return true;
  const deadline = progressDeadline(d, status);
  return deadline !== undefined && now >= deadline;
}
