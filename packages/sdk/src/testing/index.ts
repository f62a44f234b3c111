/**
 * `@aiwebtest/runbooks/testing` — test doubles for what the runbooks talk to.
 *
 * {@link startKubernetesSimulator} runs a simulated Kubernetes cluster in-process: an HTTP API server
 * that the unmodified `@kubernetes/client-node` (and kubectl) can use, backed by an in-memory store and
 * controllers that roll out deployments, run and crash pods, and report metrics. Faults (crash loops,
 * OOM kills, API errors and latency) can be injected to rehearse incidents.
 *
 * @module \@aiwebtest/runbooks/testing
 */

export { ApiFault, ApiFaults, type FaultEffect, type InjectedApiFault } from './kubernetes/api-faults';
export { type ApiServer, ApiServerOptions, startApiServer } from './kubernetes/api-server';
export { ClusterControllers } from './kubernetes/controllers/cluster';
export { ClusterOptions, type ClusterOptionsInput } from './kubernetes/controllers/controller';
export type { LogLine } from './kubernetes/controllers/logs';
export type { Usage } from './kubernetes/controllers/metrics';
export {
  type ActivePodFault,
  type InjectedFault,
  type PodFault,
  type PodFaultKind,
  PodFaults,
} from './kubernetes/controllers/pod-faults';
export type { ContainerFile, PodFiles } from './kubernetes/exec-filesystem';
export type { UpgradeHandler } from './kubernetes/exec-server';
export {
  type KubeObject,
  type KubeObjectInput,
  type ObjectMeta,
  ObjectStore,
  type OwnerReference,
  type UpdateOptions,
  type WatchEvent,
  type WatchEventType,
  type WriteOptions,
} from './kubernetes/object-store';
export type { PodLogLine, PodLogSource } from './kubernetes/pod-log';
export {
  apiVersionOf,
  CONFIGMAPS,
  CONTROLLERREVISIONS,
  DEPLOYMENTS,
  EVENTS,
  NAMESPACES,
  NODE_METRICS,
  NODES,
  POD_METRICS,
  PODS,
  REPLICASETS,
  RESOURCE_TYPES,
  type ResourceType,
  SECRETS,
  SERVICES,
  STATEFULSETS,
  typeForKind,
} from './kubernetes/resources';
export {
  type KubernetesSimulator,
  KubernetesSimulatorOptions,
  type SimulatorFault,
  startKubernetesSimulator,
} from './kubernetes/simulator';
export { StatusError } from './kubernetes/status-error';
// LLM provider doubles (OpenRouter, Ollama) with injectable outages, latency, 429s and 5xx.
export type { DoubleAnswer, LoggedRequest } from './llm/double-server';
export {
  type InjectedLlmFault,
  LatencyFault,
  LlmFault,
  type LlmFaultEffect,
  LlmFaults,
  OutageFault,
  RateLimitFault,
  ServerErrorFault,
} from './llm/llm-faults';
export { type OllamaDouble, OllamaDoubleOptions, startOllamaDouble } from './llm/ollama-double';
export {
  type OpenRouterDouble,
  OpenRouterDoubleOptions,
  startOpenRouterDouble,
} from './llm/openrouter-double';

// Model registry and pipeline doubles (MLflow, Airflow): see ./ml
export {
  type AirflowDouble,
  AirflowDoubleOptions,
  type AirflowDoubleRun,
  startAirflowDouble,
} from './ml/airflow-double';
export { MlDoubleFault, MlDoubleFaults, type MlLoggedRequest } from './ml/ml-double-server';
export {
  type MlflowDouble,
  type MlflowDoubleModelVersion,
  MlflowDoubleOptions,
  MlflowDoubleVersion,
  startMlflowDouble,
} from './ml/mlflow-double';
// Security doubles (Vault): at the end (export order), from ./vault.
// Notification doubles (PagerDuty, Slack, status page): see ./notify
export {
  InjectedFailure,
  type InjectedFailureInput,
  type PagerDutyDouble,
  type PagerDutyDoubleIncident,
  PagerDutyDoubleOptions,
  type PagerDutyDoubleOptionsInput,
  type PagerDutyLoggedEvent,
  type SlackDouble,
  SlackDoubleOptions,
  type SlackDoubleOptionsInput,
  type SlackLoggedMessage,
  type StatusPageDouble,
  type StatusPageDoubleIncident,
  StatusPageDoubleOptions,
  type StatusPageDoubleOptionsInput,
  type StatusPageDoubleUpdate,
  type StatusPageLoggedRequest,
  secretFingerprint,
  startPagerDutyDouble,
  startSlackDouble,
  startStatusPageDouble,
} from './notify';
// A runbook run in a test (in-memory store, approvals answered), with assertions on findings, plans,
// approvals, actions applied and the audit trail.
export {
  ApprovalAnswer,
  type RunRunbookOptions,
  runRunbook,
  TEST_APPROVER,
} from './runbook-test';
export {
  type RunbookTestApproval,
  type RunbookTestNotification,
  type RunbookTestRecord,
  RunbookTestRun,
} from './runbook-test/test-run';
// Security doubles (Vault): a KV v2 secrets engine with check-and-set. Pod files for pods/exec: simulator.files().
export {
  startVaultDouble,
  type VaultDouble,
  VaultDoubleOptions,
  type VaultDoubleOptionsInput,
  type VaultLoggedRequest,
  type VaultSecretVersion,
} from './vault/vault-double';
