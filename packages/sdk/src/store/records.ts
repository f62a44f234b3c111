import type { ErrorInfo } from '../core/errors';
import type { Json } from '../core/json';
import type { RunMode } from '../core/step';

/** Where a run is in its life. `waiting_approval` runs resume when approved; the last four are final. */
export type RunStatus =
  | 'queued'
  | 'running'
  | 'waiting_approval'
  | 'succeeded'
  | 'failed'
  | 'escalated'
  | 'cancelled';

/** Every run status, in a run's life order. */
export const RUN_STATUSES = [
  'queued',
  'running',
  'waiting_approval',
  'succeeded',
  'failed',
  'escalated',
  'cancelled',
] as const satisfies readonly RunStatus[];

/** Statuses after which a run never changes again. */
export const FINAL_RUN_STATUSES: readonly RunStatus[] = ['succeeded', 'failed', 'escalated', 'cancelled'];

/** A run as stored. */
export interface RunRecord {
  id: string;
  runbookId: string;
  mode: RunMode;
  /** The validated input, redacted. */
  input: Json;
  status: RunStatus;
  requestedBy: string;
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  endedAt: Date | null;
  outcome: Json | null;
  error: ErrorInfo | null;
  /** The engine process executing it, while `running`. */
  leaseOwner: string | null;
  leaseExpiresAt: Date | null;
  /** Set when someone asked to cancel a running run: `"actor: reason"`. */
  cancelRequested: string | null;
  /** How many times an engine process claimed it. */
  attempts: number;
  /** Where the run came from (dashboard, panel, alert, time range), redacted; null when not given. */
  context: Json | null;
  /** The requester's idempotency key, when the run was started with one. */
  idempotencyKey: string | null;
  /** `always`: every plan waits for a second person's approval; `policy`: the engine's approval policy decides. */
  approval: RunApproval;
}

/** Whether a run's plans need approval by policy or always. */
export type RunApproval = 'policy' | 'always';

/** Every kind of step. */
export const STEP_KINDS = ['check', 'act', 'approve', 'notify', 'sleep'] as const;
/** What kind of step a record is. */
export type StepKind = (typeof STEP_KINDS)[number];

/** Step statuses. `applying`, `waiting_approval` and `sleeping` are in-flight markers a resumed run acts on. */
export type StepStatus = (typeof STEP_STATUSES)[number];
/** Every step status. */
export const STEP_STATUSES = [
  'succeeded',
  'failed',
  'skipped',
  'applying',
  'waiting_approval',
  'sleeping',
] as const;

/** A step as stored: its result is what a resumed run replays. */
export interface StepRecord {
  runId: string;
  name: string;
  /** Order of first appearance in the run (1-based). */
  seq: number;
  kind: StepKind;
  status: StepStatus;
  result: Json | null;
  error: ErrorInfo | null;
  attempts: number;
  startedAt: Date;
  endedAt: Date | null;
}

/** A step write (the store fills in nothing the engine did not decide). */
export type StepWrite = Omit<StepRecord, 'runId'>;

/** An approval request and its decision. */
export interface ApprovalRecord {
  id: string;
  runId: string;
  step: string;
  planHash: string;
  plan: Json;
  status: 'pending' | 'approved' | 'rejected' | 'void';
  requestedBy: string;
  requestedAt: Date;
  expiresAt: Date;
  decidedBy: string | null;
  decidedAt: Date | null;
  reason: string | null;
  breakGlass: boolean;
}

/** A lease lock on a resource. */
export interface LockRecord {
  resource: string;
  runId: string;
  step: string;
  owner: string;
  expiresAt: Date;
}

/** An applied action due to be reverted by the engine. */
export interface ExpiringActionRecord {
  runId: string;
  step: string;
  resource: string;
  action: string;
  revertAt: Date;
  status: 'pending' | 'reverted' | 'failed';
}

/** What an audit entry says; `ts` is an ISO timestamp. */
export interface AuditEntry {
  ts: string;
  actor: string;
  /** `run.created`, `step.check`, `plan.recorded`, `approval.granted`, `action.applied`, `action.reverted`, … */
  kind: string;
  runId?: string;
  step?: string;
  data?: Json;
}

/** An audit row as stored: `entry` is the exact text that was hashed. */
export interface AuditRow {
  seq: number;
  entry: string;
  prevHash: string;
  hash: string;
}

/** Proof that the caller still holds the run's lease; every write during execution is fenced by it. */
export interface Fence {
  runId: string;
  owner: string;
  now: Date;
  /** The lease is extended to this time by the write. */
  leaseUntil: Date;
}

/** Result of taking a resource's lock and budget before an apply. */
export type BeginActionResult =
  | { ok: true }
  | { ok: false; reason: 'lease-lost' }
  | { ok: false; reason: 'locked'; holder: LockRecord }
  | { ok: false; reason: 'budget'; used: number };
