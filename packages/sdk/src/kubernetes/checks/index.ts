/** Kubernetes checks: read-only diagnoses over a {@link KubernetesCluster}, one per `kubectl` look an operator takes. */

export { formatCpu, formatMemory, parseQuantity } from '../quantity';
export {
  type ClusterHealthData,
  type ClusterHealthObservation,
  ClusterHealthOptions,
  type ClusterHealthOptionsInput,
  clusterHealth,
} from './cluster-health';
export {
  type DeploymentStatusData,
  DeploymentStatusOptions,
  type DeploymentStatusOptionsInput,
  deploymentStatus,
  type WorkloadCondition,
} from './deployment-status';
export {
  type EventsData,
  type EventsObservation,
  EventsOptions,
  type EventsOptionsInput,
  type EventView,
  events,
} from './events';
export {
  type NodeStatusData,
  NodeStatusOptions,
  type NodeStatusOptionsInput,
  type NodeView,
  nodeStatus,
} from './node-status';
export {
  type PodLog,
  type PodLogRead,
  type PodLogsData,
  type PodLogsObservation,
  PodLogsOptions,
  type PodLogsOptionsInput,
  podLogs,
} from './pod-logs';
export {
  type PodProblem,
  type PodStatusData,
  type PodStatusObservation,
  PodStatusOptions,
  type PodStatusOptionsInput,
  podStatus,
} from './pod-status';
export type { ContainerView, PodView } from './pod-view';
export {
  type ContainerUsage,
  type ResourceUsageData,
  type ResourceUsageObservation,
  ResourceUsageOptions,
  type ResourceUsageOptionsInput,
  resourceUsage,
  type UsageAlarm,
} from './resource-usage';
export {
  type RevisionView,
  type RolloutHistoryData,
  RolloutHistoryOptions,
  type RolloutHistoryOptionsInput,
  rolloutHistory,
} from './rollout-history';
