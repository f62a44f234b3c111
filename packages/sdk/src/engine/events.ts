import type { ErrorInfo } from '../core/errors';
import type { Json } from '../core/json';
import type { Plan } from '../core/plan';
import type { Notification } from '../core/runbook';
import type { RunMode } from '../core/step';
import type { RunStatus, StepKind, StepStatus } from '../store/records';

/** A step began an attempt (not emitted for replayed steps). */
export interface StepStartEvent {
  runId: string;
  runbookId: string;
  step: string;
  kind: StepKind;
  attempt: number;
}

/** A step ended, or was replayed from the store on resume. */
export interface StepEndEvent {
  runId: string;
  runbookId: string;
  step: string;
  kind: StepKind;
  status: StepStatus;
  /** True when the result came from the store, not from running the step. */
  replayed: boolean;
  durationMs: number;
  /** One line for people: a finding's summary, a plan's summary, why it failed. */
  summary: string;
  result: Json | null;
  error: ErrorInfo | null;
}

/** A step attempt failed and will be retried. */
export interface RetryEvent {
  runId: string;
  step: string;
  /** The attempt that failed (1-based). */
  attempt: number;
  delayMs: number;
  error: ErrorInfo;
}

/** A plan or a manual gate waits for a second person. */
export interface ApprovalRequestedEvent {
  runId: string;
  runbookId: string;
  step: string;
  approvalId: string;
  plan: Plan<Json>;
  requestedBy: string;
  expiresAt: Date;
  /** The hash of the plan an earlier request was for, when the plan changed and the approval was voided. */
  previousPlanHash: string | null;
}

/** A run stopped: finished, or suspended waiting for approval. */
export interface RunEndEvent {
  runId: string;
  runbookId: string;
  mode: RunMode;
  status: RunStatus;
  outcome: Json | null;
  error: ErrorInfo | null;
}

/** A line a step or runbook logged (already redacted). */
export interface LogEvent {
  runId: string;
  step: string | null;
  message: string;
  data?: Record<string, unknown>;
}

/** Delivers notifications and escalations (chat, status page, pager). */
export interface Notifier {
  notify(
    notification: Notification & { runId: string; runbookId: string; kind: 'notify' | 'escalate' },
  ): Promise<void>;
}
