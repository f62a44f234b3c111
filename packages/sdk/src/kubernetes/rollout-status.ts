import type { V1Deployment, V1StatefulSet } from '@kubernetes/client-node';
import type { WorkloadKind } from './cluster';

/** Where a rollout stands, as `kubectl rollout status` judges it. */
export type RolloutState = 'done' | 'progressing' | 'failed';

/** The judgement of {@link rolloutStatus} with the counts it was made from. */
export interface RolloutStatus {
  /** `done` when kubectl would print "successfully rolled out" (or "… complete"), `failed` when it would exit with an error. */
  state: RolloutState;
  /** kubectl's own words, without the trailing newline. */
  message: string;
  /** `metadata.generation`. */
  generation: number;
  /** `status.observedGeneration` (0 when the controller has not reported yet). */
  observedGeneration: number;
  /** Desired replicas: `spec.replicas` (the API server's default, 1, when absent). */
  replicas: number;
  /** `status.replicas`: pods that exist, old and new. */
  currentReplicas: number;
  /** `status.updatedReplicas`: pods of the newest template. */
  updatedReplicas: number;
  /** `status.readyReplicas`. */
  readyReplicas: number;
  /** `status.availableReplicas` (for a StatefulSet, what its status reports). */
  availableReplicas: number;
}

/** The reason the Deployment controller puts on the `Progressing` condition when `progressDeadlineSeconds` passes. */
export const PROGRESS_DEADLINE_EXCEEDED = 'ProgressDeadlineExceeded';

/**
 * Judges a Deployment's or StatefulSet's rollout exactly as `kubectl rollout status` does (its
 * DeploymentStatusViewer and StatefulSetStatusViewer), from the object alone: no request is made.
 *
 * Deployment: not observed yet (`generation > observedGeneration`) → progressing; a `Progressing`
 * condition with reason `ProgressDeadlineExceeded` → failed; fewer updated replicas than desired, old
 * replicas still present, or fewer available than updated → progressing; otherwise done.
 *
 * StatefulSet: only the `RollingUpdate` strategy has a rollout status (`OnDelete` → failed, as kubectl
 * errors); then observed generation, ready replicas, the partition, and current vs update revision.
 */
export function rolloutStatus(workload: V1Deployment | V1StatefulSet, kind: WorkloadKind): RolloutStatus {
  return kind === 'Deployment'
    ? deploymentStatus(workload as V1Deployment)
    : statefulSetStatus(workload as V1StatefulSet);
}

function counts(workload: V1Deployment | V1StatefulSet): Omit<RolloutStatus, 'state' | 'message'> {
  const status = workload.status;
  return {
    generation: workload.metadata?.generation ?? 0,
    observedGeneration: status?.observedGeneration ?? 0,
    replicas: workload.spec?.replicas ?? 1,
    currentReplicas: status?.replicas ?? 0,
    updatedReplicas: status?.updatedReplicas ?? 0,
    readyReplicas: status?.readyReplicas ?? 0,
    availableReplicas: status?.availableReplicas ?? 0,
  };
}

function deploymentStatus(deployment: V1Deployment): RolloutStatus {
  const c = counts(deployment);
  const name = deployment.metadata?.name ?? '';
  const judged = (state: RolloutState, message: string): RolloutStatus => ({ state, message, ...c });
  if (c.generation > c.observedGeneration) {
    return judged('progressing', 'Waiting for deployment spec update to be observed...');
  }
  const progressing = deployment.status?.conditions?.find((cond) => cond.type === 'Progressing');
  if (progressing?.reason === PROGRESS_DEADLINE_EXCEEDED) {
    return judged('failed', `deployment "${name}" exceeded its progress deadline`);
  }
  // kubectl compares against spec.replicas only when it is set; the API server always sets it.
  const desired = deployment.spec?.replicas;
  if (desired !== undefined && c.updatedReplicas < desired) {
    return judged(
      'progressing',
      `Waiting for deployment "${name}" rollout to finish: ${c.updatedReplicas} out of ${desired} new replicas have been updated...`,
    );
  }
  if (c.currentReplicas > c.updatedReplicas) {
    return judged(
      'progressing',
      `Waiting for deployment "${name}" rollout to finish: ${c.currentReplicas - c.updatedReplicas} old replicas are pending termination...`,
    );
  }
  if (c.availableReplicas < c.updatedReplicas) {
    return judged(
      'progressing',
      `Waiting for deployment "${name}" rollout to finish: ${c.availableReplicas} of ${c.updatedReplicas} updated replicas are available...`,
    );
  }
  return judged('done', `deployment "${name}" successfully rolled out`);
}

function statefulSetStatus(sts: V1StatefulSet): RolloutStatus {
  const c = counts(sts);
  const judged = (state: RolloutState, message: string): RolloutStatus => ({ state, message, ...c });
  const strategy = sts.spec?.updateStrategy;
  // The API server defaults the strategy to RollingUpdate; an object read from it always carries one.
  if ((strategy?.type ?? 'RollingUpdate') !== 'RollingUpdate') {
    return judged('failed', 'rollout status is only available for RollingUpdate strategy type');
  }
  if (c.observedGeneration === 0 || c.generation > c.observedGeneration) {
    return judged('progressing', 'Waiting for statefulset spec update to be observed...');
  }
  const desired = sts.spec?.replicas;
  if (desired !== undefined && c.readyReplicas < desired) {
    return judged('progressing', `Waiting for ${desired - c.readyReplicas} pods to be ready...`);
  }
  if (strategy?.rollingUpdate) {
    const partition = strategy.rollingUpdate.partition;
    if (desired !== undefined && partition !== undefined && c.updatedReplicas < desired - partition) {
      return judged(
        'progressing',
        `Waiting for partitioned roll out to finish: ${c.updatedReplicas} out of ${desired - partition} new pods have been updated...`,
      );
    }
    return judged(
      'done',
      `partitioned roll out complete: ${c.updatedReplicas} new pods have been updated...`,
    );
  }
  const updateRevision = sts.status?.updateRevision ?? '';
  const currentRevision = sts.status?.currentRevision ?? '';
  if (updateRevision !== currentRevision) {
    return judged(
      'progressing',
      `waiting for statefulset rolling update to complete ${c.updatedReplicas} pods at revision ${updateRevision}...`,
    );
  }
  return judged(
    'done',
    `statefulset rolling update complete ${sts.status?.currentReplicas ?? 0} pods at revision ${currentRevision}...`,
  );
}
