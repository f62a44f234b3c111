/**
 * `@aiwebtest/runbooks/kubernetes` — checks and actions over `@kubernetes/client-node`, with kubectl's
 * semantics (rollout restart, undo, status, set env, scale) and guard rails: an expected context and a
 * namespace allowlist that every action passes before any request.
 *
 * ```ts
 * const k8s = kubernetes({ expectedContext: 'prod', namespaces: ['aiwebtest'] });
 * await step.check('pods', k8s.podStatus({ namespace: 'aiwebtest', selector: 'app=requirements-agent' }));
 * await step.act('restart', k8s.rolloutRestart({ namespace: 'aiwebtest', name: 'requirements-agent' }));
 * ```
 *
 * @module \@aiwebtest/runbooks/kubernetes
 */

import { type ApplyManifestsOptionsInput, applyManifests } from './actions/apply-manifests';
import { type RolloutRestartOptionsInput, rolloutRestart } from './actions/rollout-restart';
import { type RolloutUndoOptionsInput, rolloutUndo } from './actions/rollout-undo';
import { type ScaleOptionsInput, scale } from './actions/scale';
import { type SetEnvOptionsInput, setEnv } from './actions/set-env';
import { type WaitForRolloutOptionsInput, waitForRollout } from './actions/wait-for-rollout';
import {
  type ClusterHealthOptionsInput,
  clusterHealth,
  type DeploymentStatusOptionsInput,
  deploymentStatus,
  type EventsOptionsInput,
  events,
  type NodeStatusOptionsInput,
  nodeStatus,
  type PodLogsOptionsInput,
  type PodStatusOptionsInput,
  podLogs,
  podStatus,
  type ResourceUsageOptionsInput,
  type RolloutHistoryOptionsInput,
  resourceUsage,
  rolloutHistory,
} from './checks';
import { connectKubernetes, KubernetesCluster, type KubernetesOptionsInput } from './cluster';

/**
 * Every Kubernetes check and action bound to one cluster: `k8s.podStatus({...})` instead of
 * `podStatus(cluster, {...})`. Pass options (validated; a bad field is named) or a connected cluster.
 */
export function kubernetes(options: KubernetesOptionsInput | KubernetesCluster) {
  const cluster = options instanceof KubernetesCluster ? options : connectKubernetes(options);
  return {
    cluster,
    // checks
    podStatus: (o: PodStatusOptionsInput) => podStatus(cluster, o),
    podLogs: (o: PodLogsOptionsInput) => podLogs(cluster, o),
    events: (o: EventsOptionsInput) => events(cluster, o),
    deploymentStatus: (o: DeploymentStatusOptionsInput) => deploymentStatus(cluster, o),
    rolloutHistory: (o: RolloutHistoryOptionsInput) => rolloutHistory(cluster, o),
    resourceUsage: (o: ResourceUsageOptionsInput) => resourceUsage(cluster, o),
    nodeStatus: (o: NodeStatusOptionsInput = {}) => nodeStatus(cluster, o),
    clusterHealth: (o: ClusterHealthOptionsInput = {}) => clusterHealth(cluster, o),
    // actions
    rolloutRestart: (o: RolloutRestartOptionsInput) => rolloutRestart(cluster, o),
    waitForRollout: (o: WaitForRolloutOptionsInput) => waitForRollout(cluster, o),
    scale: (o: ScaleOptionsInput) => scale(cluster, o),
    setEnv: (o: SetEnvOptionsInput) => setEnv(cluster, o),
    rolloutUndo: (o: RolloutUndoOptionsInput) => rolloutUndo(cluster, o),
    applyManifests: (o: ApplyManifestsOptionsInput) => applyManifests(cluster, o),
  };
}
/** What {@link kubernetes} returns. */
export type Kubernetes = ReturnType<typeof kubernetes>;

export {
  type ApplyManifestsApplied,
  ApplyManifestsOptions,
  type ApplyManifestsOptionsInput,
  type ApplyManifestsParams,
  applyManifests,
  type PlannedObject,
} from './actions/apply-manifests';
export {
  RESTARTED_AT_ANNOTATION,
  type RolloutRestartApplied,
  RolloutRestartOptions,
  type RolloutRestartOptionsInput,
  type RolloutRestartParams,
  rolloutRestart,
} from './actions/rollout-restart';
export {
  RolloutUndoOptions,
  type RolloutUndoOptionsInput,
  type RolloutUndoParams,
  rolloutUndo,
} from './actions/rollout-undo';
export {
  type ScaleApplied,
  ScaleOptions,
  type ScaleOptionsInput,
  type ScaleParams,
  scale,
} from './actions/scale';
export {
  type ContainerList,
  type EnvEdit,
  SetEnvOptions,
  type SetEnvOptionsInput,
  type SetEnvParams,
  setEnv,
} from './actions/set-env';
export {
  WaitForRolloutOptions,
  type WaitForRolloutOptionsInput,
  type WaitForRolloutParams,
  waitForRollout,
} from './actions/wait-for-rollout';
export type { FailingContainer, RolloutWaitData } from './actions/workload';
export * from './checks';
export {
  connectKubernetes,
  KubernetesCluster,
  KubernetesOptions,
  type KubernetesOptionsInput,
  k8sRef,
  type RequestOptions,
  type WorkloadKind,
} from './cluster';
export {
  isKubernetesApiError,
  isKubernetesGuardError,
  KubernetesApiError,
  KubernetesGuardError,
} from './errors';
export { REVISION_ANNOTATION, type Revision } from './revisions';
export { type RolloutState, type RolloutStatus, rolloutStatus } from './rollout-status';
