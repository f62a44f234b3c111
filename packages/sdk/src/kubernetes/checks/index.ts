/** Kubernetes checks: read-only diagnoses over a {@link KubernetesCluster}, one per `kubectl` look an operator takes. */
export {
  type ClusterHealthData,
  ClusterHealthParams,
  type ClusterHealthParamsInput,
  clusterHealth,
} from './cluster-health';
export {
  type DeploymentStatusData,
  DeploymentStatusParams,
  type DeploymentStatusParamsInput,
  deploymentStatus,
  type WorkloadCondition,
} from './deployment-status';
export { type EventsData, EventsParams, type EventsParamsInput, type EventView, events } from './events';
export {
  type NodeStatusData,
  NodeStatusParams,
  type NodeStatusParamsInput,
  type NodeView,
  nodeStatus,
} from './node-status';
export { type PodLog, type PodLogsData, PodLogsParams, type PodLogsParamsInput, podLogs } from './pod-logs';
export {
  type PodProblem,
  type PodStatusData,
  PodStatusParams,
  type PodStatusParamsInput,
  podStatus,
} from './pod-status';
export type { ContainerView, PodView } from './pod-view';
export { formatCpu, formatMemory, parseQuantity } from './quantity';
export {
  type ContainerUsage,
  type ResourceUsageData,
  ResourceUsageParams,
  type ResourceUsageParamsInput,
  resourceUsage,
  type UsageAlarm,
} from './resource-usage';
export {
  type RevisionView,
  type RolloutHistoryData,
  RolloutHistoryParams,
  type RolloutHistoryParamsInput,
  rolloutHistory,
} from './rollout-history';
