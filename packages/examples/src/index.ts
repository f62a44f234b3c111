/**
 * @aiwebtest/runbook-examples — the AI-Web-Test runbook pack and the local lab it runs against.
 *
 * `runbooks` is what the `runbook` CLI and service load (`--runbooks @aiwebtest/runbook-examples`). Each
 * runbook finds the platform when a run starts: from the variables of {@link ENVIRONMENT_VARIABLES}, or from
 * the running lab's `lab.json` (`$AIWEBTEST_LAB_DIR`, else `.runbook/lab`). Each also has a factory taking
 * `{ connect }`, for tests and for other platforms.
 */
import type { Runbook } from '@aiwebtest/runbooks';
import { agentFailure } from './aiwebtest/agent-failure';
import { apiHighLatency } from './aiwebtest/api-high-latency';
import { dataDriftRunbook } from './aiwebtest/data-drift';
import { databasePerformance } from './aiwebtest/database-performance';
import { executionAgentFailure } from './aiwebtest/execution-agent-failure';
import { generationAgentFailure } from './aiwebtest/generation-agent-failure';
import { modelAccuracyDrop } from './aiwebtest/model-accuracy-drop';
import { openRouterOutage } from './aiwebtest/openrouter-outage';
import { openRouterRateLimit } from './aiwebtest/openrouter-rate-limit';
import { postgresConnectionLoss } from './aiwebtest/postgres-connection-loss';
import { securityBreach } from './aiwebtest/security-breach';
import { systemFailure } from './aiwebtest/system-failure';
import { testExecutionHighLatency } from './aiwebtest/test-execution-high-latency';

export { AgentFailureInput, agentFailure, createAgentFailureRunbook } from './aiwebtest/agent-failure';
export { apiHighLatency, createApiHighLatencyRunbook } from './aiwebtest/api-high-latency';
export { createDataDriftRunbook, DataDriftInput, dataDriftRunbook } from './aiwebtest/data-drift';
export { createDatabasePerformanceRunbook, databasePerformance } from './aiwebtest/database-performance';
export {
  type AiWebTest,
  AiWebTestEnvironment,
  type AiWebTestEnvironmentInput,
  type ConnectAiWebTest,
  connectAiWebTest,
  connectFromEnvironment,
  DEFAULT_LAB_DIR,
  ENVIRONMENT_VARIABLES,
  EnvironmentError,
  LAB_DIR_VARIABLE,
  LAB_ENVIRONMENT_FILE,
  type PackRunbookOptions,
  readEnvironment,
} from './aiwebtest/environment';
export {
  createExecutionAgentFailureRunbook,
  executionAgentFailure,
} from './aiwebtest/execution-agent-failure';
export {
  createGenerationAgentFailureRunbook,
  generationAgentFailure,
} from './aiwebtest/generation-agent-failure';
export {
  createModelAccuracyDropRunbook,
  ModelAccuracyDropInput,
  modelAccuracyDrop,
} from './aiwebtest/model-accuracy-drop';
export {
  AIWEBTEST_ON_CALL_POLICY,
  AIWEBTEST_SEVERITIES,
  compressedOnCallPolicy,
  ON_CALL_CHANNELS,
  ON_CALL_TEAMS,
} from './aiwebtest/on-call';
export { createOpenRouterOutageRunbook, openRouterOutage } from './aiwebtest/openrouter-outage';
export { createOpenRouterRateLimitRunbook, openRouterRateLimit } from './aiwebtest/openrouter-rate-limit';
export { backendHealth, sampleRequest, seleniumGridStatus } from './aiwebtest/platform-checks';
export {
  createPostgresConnectionLossRunbook,
  postgresConnectionLoss,
} from './aiwebtest/postgres-connection-loss';
export { prometheusQuery } from './aiwebtest/prometheus-query';
export {
  createSecurityBreachRunbook,
  SECURITY_PAGER_CHANNEL,
  SecurityBreachInput,
  securityBreach,
} from './aiwebtest/security-breach';
export {
  createSystemFailureRunbook,
  pointPgBouncer,
  preIncidentRecord,
  SystemFailureInput,
  systemFailure,
  tableCounts,
} from './aiwebtest/system-failure';
export {
  createTestExecutionHighLatencyRunbook,
  testExecutionHighLatency,
} from './aiwebtest/test-execution-high-latency';
export { type CommandIo, runLabCommand } from './lab/command';
export { type DrillResult, IncidentDrill } from './lab/incident-drill';
export { type LabUp, LabUpOptions, labUp } from './lab/lab-up';
export { SCENARIO_CATALOG, SCENARIOS, type ScenarioName } from './lab/scenarios';
export { LabOptions, type RunningLab, startLab } from './lab/start-lab';

/** Every runbook of the pack, in the manual's order (runbooks 1–13). */
export const runbooks: readonly Runbook[] = [
  agentFailure,
  generationAgentFailure,
  executionAgentFailure,
  postgresConnectionLoss,
  databasePerformance,
  openRouterOutage,
  openRouterRateLimit,
  apiHighLatency,
  testExecutionHighLatency,
  modelAccuracyDrop,
  dataDriftRunbook,
  securityBreach,
  systemFailure,
];
