import { z } from 'zod';
import type { Runbook } from '../core/runbook';
import { RUN_MODES } from '../core/step';
import type { RunDetail } from '../engine/engine';
import { FIXTURE_FORMAT } from '../replay/fixture';
import {
  type ApprovalRecord,
  type AuditRow,
  RUN_STATUSES,
  type RunRecord,
  STEP_KINDS,
  STEP_STATUSES,
  type StepRecord,
} from '../store/records';

// Response shapes, as zod schemas so that the OpenAPI document describes them and responses are checked
// against them. Dates are ISO strings; stored JSON (inputs, results, plans) is passed through as is.

const isoDate = z.iso.datetime();
const iso = (d: Date) => d.toISOString();
const isoOrNull = (d: Date | null) => (d ? d.toISOString() : null);

/** A stored error: stable code, message, class name, details. */
export const ErrorInfoView = z.object({
  code: z.string(),
  message: z.string(),
  name: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
});

/** The body of every error response. */
export const ErrorView = z.object({
  error: z.object({
    code: z.string().describe('Stable machine-readable code, e.g. INVALID_REQUEST, NOT_FOUND, FORBIDDEN'),
    message: z.string().describe('What was wrong and what to do'),
    details: z
      .union([
        z.array(z.object({ path: z.string(), message: z.string() })),
        z.record(z.string(), z.unknown()),
        z.null(),
      ])
      .describe('Field issues (dotted paths) for validation errors; structured details otherwise'),
  }),
});

/**
 * Error responses every /api/v1 route may give, for the OpenAPI document. 429 is `RATE_LIMITED` (the
 * per-identity rate limit; `Retry-After` says when to try again).
 */
export const errorResponses = {
  400: ErrorView,
  401: ErrorView,
  403: ErrorView,
  404: ErrorView,
  409: ErrorView,
  413: ErrorView,
  429: ErrorView.describe(
    'RATE_LIMITED: too many requests from this identity; retry after Retry-After seconds',
  ),
} as const;

/** A runbook in the catalog; `input` is the JSON Schema (draft 2020-12) of its input. */
export const RunbookView = z.object({
  id: z.string(),
  title: z.string(),
  severity: z.enum(['P0', 'P1', 'P2', 'P3']),
  description: z.string().optional(),
  tags: z.array(z.string()).optional(),
  triggers: z.array(z.object({ kind: z.literal('alert'), match: z.record(z.string(), z.string()) })),
  input: z.record(z.string(), z.unknown()).describe('JSON Schema (draft 2020-12) of the runbook input'),
});
export type RunbookView = z.infer<typeof RunbookView>;

const inputSchemas = new WeakMap<Runbook, Record<string, unknown>>();

/** The JSON Schema of a runbook's input (as the caller sends it), computed once per runbook. */
export function inputJsonSchema(runbook: Runbook): Record<string, unknown> {
  let schema = inputSchemas.get(runbook);
  if (!schema) {
    // `unrepresentable: 'any'`: a transform or custom check must not take the whole catalog down.
    schema = z.toJSONSchema(runbook.input, {
      target: 'draft-2020-12',
      io: 'input',
      unrepresentable: 'any',
    }) as Record<string, unknown>;
    inputSchemas.set(runbook, schema);
  }
  return schema;
}

/** The catalog view of a runbook. */
export function runbookView(runbook: Runbook): RunbookView {
  return {
    id: runbook.id,
    title: runbook.title,
    severity: runbook.severity,
    ...(runbook.description ? { description: runbook.description } : {}),
    ...(runbook.tags ? { tags: runbook.tags } : {}),
    triggers: runbook.triggers ?? [],
    input: inputJsonSchema(runbook),
  };
}

/** A run. Lease internals (which process holds it) are left out. */
export const RunView = z.object({
  id: z.string(),
  runbookId: z.string(),
  mode: z.enum(RUN_MODES),
  input: z.unknown(),
  status: z.enum(RUN_STATUSES),
  requestedBy: z.string(),
  createdAt: isoDate,
  updatedAt: isoDate,
  startedAt: isoDate.nullable(),
  endedAt: isoDate.nullable(),
  outcome: z.unknown(),
  error: ErrorInfoView.nullable(),
  cancelRequested: z.string().nullable(),
  attempts: z.number().int(),
  context: z
    .record(z.string(), z.unknown())
    .nullable()
    .describe('Where the run came from (dashboard, panel, alert, time range), redacted; null when not given'),
  idempotencyKey: z.string().nullable().describe("The requester's idempotency key, when it sent one"),
  approval: z
    .enum(['policy', 'always'])
    .describe("always: every plan waits for a second person's approval; policy: the approval policy decides"),
});
export type RunView = z.infer<typeof RunView>;

/** A run's step with its stored result. */
export const StepView = z.object({
  name: z.string(),
  seq: z.number().int(),
  kind: z.enum(STEP_KINDS),
  status: z.enum(STEP_STATUSES),
  result: z.unknown(),
  error: ErrorInfoView.nullable(),
  attempts: z.number().int(),
  startedAt: isoDate,
  endedAt: isoDate.nullable(),
});

/** An approval request and its decision. */
export const ApprovalView = z.object({
  id: z.string(),
  step: z.string(),
  planHash: z.string(),
  plan: z.unknown(),
  status: z.enum(['pending', 'approved', 'rejected', 'void']),
  requestedBy: z.string(),
  requestedAt: isoDate,
  expiresAt: isoDate,
  decidedBy: z.string().nullable(),
  decidedAt: isoDate.nullable(),
  reason: z.string().nullable(),
  breakGlass: z.boolean(),
});

/** The finding of a check step. */
export const FindingView = z.object({
  step: z.string(),
  status: z.enum(['ok', 'warn', 'fail', 'unknown']),
  summary: z.string(),
  evidence: z.array(z.unknown()),
  data: z.unknown(),
});

/** The plan of an act step: what it will change, or changed, and how risky that is. */
export const PlanView = z.object({
  step: z.string(),
  status: z
    .string()
    .describe(
      'planned, noop, applied, failed, reverted, verification-failed; or applying / waiting_approval while in flight',
    ),
  action: z.string(),
  target: z.string(),
  risk: z.string().describe('low, medium or high'),
  destructive: z.boolean(),
  summary: z.string(),
  changes: z.array(
    z.object({ target: z.string(), field: z.string(), before: z.unknown(), after: z.unknown() }),
  ),
  hash: z.string().describe('What an approval is bound to'),
});
export type PlanView = z.infer<typeof PlanView>;

/** A run with its steps, approvals, the findings of its checks and the plans of its actions. */
export const RunDetailView = z.object({
  run: RunView,
  steps: z.array(StepView),
  approvals: z.array(ApprovalView),
  findings: z.array(FindingView),
  plans: z.array(PlanView),
});
export type RunDetailView = z.infer<typeof RunDetailView>;

/** A run's replay fixture (`runbook-fixture/v1`, see `runbook record`); JSON values are not described further. */
export const FixtureView = z.object({
  format: z.literal(FIXTURE_FORMAT),
  runbook: z.string(),
  recordedAt: z.string(),
  run: z.object({
    id: z.string(),
    mode: z.enum(RUN_MODES),
    input: z.unknown(),
    status: z.enum(RUN_STATUSES),
    outcome: z.unknown(),
    error: ErrorInfoView.nullable(),
    startedAt: z.string().nullable(),
    endedAt: z.string().nullable(),
  }),
  steps: z.array(
    z.object({
      seq: z.number().int(),
      name: z.string(),
      kind: z.enum(STEP_KINDS),
      status: z.enum(STEP_STATUSES),
      result: z.unknown(),
      error: ErrorInfoView.nullable(),
    }),
  ),
});

/** The API view of a run. */
export function runView(run: RunRecord): RunView {
  return {
    id: run.id,
    runbookId: run.runbookId,
    mode: run.mode,
    input: run.input,
    status: run.status,
    requestedBy: run.requestedBy,
    createdAt: iso(run.createdAt),
    updatedAt: iso(run.updatedAt),
    startedAt: isoOrNull(run.startedAt),
    endedAt: isoOrNull(run.endedAt),
    outcome: run.outcome,
    error: run.error,
    cancelRequested: run.cancelRequested,
    attempts: run.attempts,
    context: isRecord(run.context) ? run.context : null,
    idempotencyKey: run.idempotencyKey,
    approval: run.approval,
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stepView(step: StepRecord): z.infer<typeof StepView> {
  return {
    name: step.name,
    seq: step.seq,
    kind: step.kind,
    status: step.status,
    result: step.result,
    error: step.error,
    attempts: step.attempts,
    startedAt: iso(step.startedAt),
    endedAt: isoOrNull(step.endedAt),
  };
}

/** The API view of an approval. */
export function approvalView(a: ApprovalRecord): z.infer<typeof ApprovalView> {
  return {
    id: a.id,
    step: a.step,
    planHash: a.planHash,
    plan: a.plan,
    status: a.status,
    requestedBy: a.requestedBy,
    requestedAt: iso(a.requestedAt),
    expiresAt: iso(a.expiresAt),
    decidedBy: a.decidedBy,
    decidedAt: isoOrNull(a.decidedAt),
    reason: a.reason,
    breakGlass: a.breakGlass,
  };
}

/** The findings of a run's succeeded check steps, in step order. */
function findingsOf(steps: readonly StepRecord[]): z.infer<typeof FindingView>[] {
  const findings: z.infer<typeof FindingView>[] = [];
  for (const step of steps) {
    if (step.kind !== 'check' || step.status !== 'succeeded') continue;
    const parsed = FindingView.omit({ step: true }).safeParse(step.result);
    if (parsed.success) findings.push({ step: step.name, ...parsed.data });
  }
  return findings;
}

const StoredPlan = PlanView.omit({ step: true, status: true });

/**
 * The plans of a run's act steps, in step order. A finished step stores `{ status, plan }`; one in flight
 * (applying, waiting for approval) stores `{ plan }` and takes the step's status. Skipped steps have none.
 */
function plansOf(steps: readonly StepRecord[]): PlanView[] {
  const plans: PlanView[] = [];
  for (const step of steps) {
    if (step.kind !== 'act' || !isRecord(step.result)) continue;
    const parsed = StoredPlan.safeParse(step.result.plan);
    if (!parsed.success) continue;
    const status = typeof step.result.status === 'string' ? step.result.status : step.status;
    plans.push({ step: step.name, status, ...parsed.data });
  }
  return plans;
}

/** The API view of a run with its steps, approvals, findings and plans. */
export function runDetailView(detail: RunDetail): RunDetailView {
  const steps = [...detail.steps].sort((a, b) => a.seq - b.seq);
  return {
    run: runView(detail.run),
    steps: steps.map(stepView),
    approvals: detail.approvals.map(approvalView),
    findings: findingsOf(steps),
    plans: plansOf(steps),
  };
}

/** What an audit entry says, as stored and hashed. */
export const AuditEntryView = z.object({
  ts: z.string().describe('ISO timestamp'),
  actor: z.string(),
  kind: z.string().describe('run.created, step.check, plan.recorded, approval.granted, action.applied, …'),
  runId: z.string().optional(),
  step: z.string().optional(),
  data: z.unknown().optional(),
});
export type AuditEntryView = z.infer<typeof AuditEntryView>;

/** One link of the audit log's hash chain. */
export const AuditRowView = z.object({
  seq: z.number().int(),
  hash: z.string(),
  prevHash: z.string(),
  entry: AuditEntryView,
});
export type AuditRowView = z.infer<typeof AuditRowView>;

/** The entry of an audit row, parsed from the exact text that was hashed; unknown fields are left out. */
export function auditEntryView(row: AuditRow): AuditEntryView {
  const parsed = JSON.parse(row.entry) as Record<string, unknown>;
  return {
    ts: String(parsed.ts),
    actor: String(parsed.actor),
    kind: String(parsed.kind),
    ...(typeof parsed.runId === 'string' ? { runId: parsed.runId } : {}),
    ...(typeof parsed.step === 'string' ? { step: parsed.step } : {}),
    ...(parsed.data !== undefined ? { data: parsed.data } : {}),
  };
}

/** The API view of an audit row. */
export function auditRowView(row: AuditRow): AuditRowView {
  return { seq: row.seq, hash: row.hash, prevHash: row.prevHash, entry: auditEntryView(row) };
}

/** A run's audit entry as an event of `GET /runs/:id/events` (the SSE `data`, and the polling form). */
export const RunEventView = z.object({
  seq: z.number().int().describe('Position in the audit log; resume after it (`Last-Event-ID` or `?after=`)'),
  ts: z.string().describe('ISO timestamp'),
  actor: z.string(),
  kind: z.string(),
  step: z.string().optional(),
  data: z.unknown().optional(),
});
export type RunEventView = z.infer<typeof RunEventView>;

/** The event of a run's audit row. */
export function runEventView(row: AuditRow): RunEventView {
  const { runId: _runId, ...entry } = auditEntryView(row);
  return { seq: row.seq, ...entry };
}
