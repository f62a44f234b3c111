/**
 * `@aiwebtest/runbooks` — typed diagnose/recover primitives and a durable runbook engine.
 *
 * Core model: {@link defineRunbook}, {@link Check}, {@link Action}, {@link Finding}, {@link Plan}.
 * Engine: {@link Engine} (approvals, lease locks, budgets, verify/revert, audit log).
 * Store: {@link openStore} (PostgreSQL or embedded PGlite).
 *
 * @module \@aiwebtest/runbooks
 */

export { Duration, formatMillis, toMillis } from './core/duration';
export {
  ApprovalError,
  BudgetExhaustedError,
  CancelledError,
  DuplicateStepError,
  type ErrorInfo,
  IdempotencyKeyReusedError,
  InputValidationError,
  InvalidStateError,
  isApprovalError,
  isBudgetExhaustedError,
  isCancelledError,
  isIdempotencyKeyReusedError,
  isInputValidationError,
  isInvalidStateError,
  isNonRetriableError,
  isNotFoundError,
  isResourceLockedError,
  isRetryAfterError,
  isRunbookError,
  isTimeoutError,
  isVerificationFailedError,
  LeaseLostError,
  NonRetriableError,
  NotFoundError,
  ResourceLockedError,
  RetryAfterError,
  RunbookError,
  TimeoutError,
  toErrorInfo,
  VerificationFailedError,
} from './core/errors';
export { type Disposable, TypedEvent } from './core/events';
export {
  type Cell,
  type Evidence,
  type Finding,
  type FindingStatus,
  finding,
  worstStatus,
} from './core/finding';
export { canonicalJson, type Json } from './core/json';
export { RetryOptions, type RetryOptionsInput, StepOptions } from './core/options';
export { parseOptions } from './core/parse-options';
export { type Change, type Plan, type PlanDraft, type RiskLevel, sealPlan, shortHash } from './core/plan';
export { createRedactor, REDACTED, REDACTED_NEW_VALUE, type Redactor } from './core/redact';
export { type ResourceRef, ResourceRefSchema, resourceRef } from './core/resource';
export {
  type ActOptions,
  type ActResult,
  type ApprovalRequest,
  type ApproveResult,
  defineRunbook,
  type Escalation,
  isRunbook,
  isRunbookId,
  type Notification,
  type Outcome,
  onAlert,
  type Runbook,
  type RunbookDefinition,
  type RunContext,
  type Severity,
  type StepTools,
  type Trigger,
} from './core/runbook';
export {
  type Action,
  type Applied,
  type Budget,
  type Check,
  type CheckDefinition,
  defineAction,
  defineCheck,
  isReplayableCheck,
  type ReplayableCheck,
  type ReplayableCheckDefinition,
  RUN_MODES,
  type RunMode,
  type StepContext,
} from './core/step';
export { ApprovalPolicy, needsApproval } from './engine/approval-policy';
export {
  type AuditProblem,
  type AuditVerification,
  auditLinkHash,
  verifyAuditChain,
} from './engine/audit-chain';
export {
  type ActiveBudgetRule,
  BudgetRule,
  type DecisionOptions,
  Engine,
  type EngineOptions,
  EngineSettings,
  type RunDetail,
  type StartOptions,
  type Submitted,
} from './engine/engine';
export type {
  ApprovalRequestedEvent,
  LogEvent,
  Notifier,
  RetryEvent,
  RunEndEvent,
  StepEndEvent,
  StepStartEvent,
} from './engine/events';
export { backoffDelay } from './engine/retry';
export type { ConfirmPlan, RunResult } from './engine/run-execution';
// Record and replay: backtest a runbook change against recorded runs (past incidents).
export {
  FIXTURE_FORMAT,
  type FixtureStep,
  fixtureFromRun,
  parseFixture,
  type RecordOptions,
  type RunFixture,
  RunFixtureSchema,
  recordRun,
} from './replay/fixture';
export {
  type ReplayedStep,
  type ReplayOptions,
  type ReplayOutcome,
  type ReplayReport,
  replayRun,
} from './replay/replay';
export type { Queryable, SqlDriver } from './store/driver';
export { openStore, StoreOptions } from './store/open-store';
export {
  type ApprovalRecord,
  type AuditEntry,
  type AuditRow,
  type BeginActionResult,
  type ExpiringActionRecord,
  type Fence,
  FINAL_RUN_STATUSES,
  type LockRecord,
  RUN_STATUSES,
  type RunApproval,
  type RunRecord,
  type RunStatus,
  STEP_KINDS,
  STEP_STATUSES,
  type StepKind,
  type StepRecord,
  type StepStatus,
  type StepWrite,
} from './store/records';
export { type NewRun, type RunCursor, type RunFilter, RunStore } from './store/run-store';
