/**
 * @aiwebtest/runbook-examples — the AI-Web-Test runbook pack and the local lab it runs against.
 *
 * `runbooks` is what the `runbook` CLI loads (`--runbooks @aiwebtest/runbook-examples`).
 */
import type { Runbook } from '@aiwebtest/runbooks';
import { agentFailure } from './aiwebtest/agent-failure';

export {
  AgentFailureInput,
  type AgentFailureOptions,
  agentFailure,
  createAgentFailureRunbook,
} from './aiwebtest/agent-failure';
export { type CommandIo, runLabCommand } from './lab/command';
export {
  DEFAULT_LAB_DIR,
  defaultLabDir,
  isLabStateError,
  LAB_DIR_ENV,
  LAB_STATE_FILE,
  type Lab,
  LabStateError,
  openLab,
} from './lab/lab';
export {
  AGENT_NAMES,
  AgentName,
  AgentState,
  agentClass,
  FAULTS,
  Fault,
  initialLabState,
  LAB_NAMESPACE,
  LabState,
  TRANSIENT_FAULTS,
} from './lab/state';
export {
  type AgentRef,
  deploymentRef,
  isReady,
  type PodLogsData,
  type PodStatusData,
  podLogs,
  podStatus,
  RESTARTED_AT_FIELD,
  type RolloutRestartParams,
  type RolloutRestartResult,
  rolloutRestart,
} from './lab/steps';

/** Every runbook of the pack. */
export const runbooks: readonly Runbook[] = [agentFailure];
