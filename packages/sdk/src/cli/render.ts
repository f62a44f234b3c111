/** Human-readable output of the `runbook` command. Everything here returns lines; callers write them. */
import { formatMillis } from '../core/duration';
import type { ErrorInfo } from '../core/errors';
import type { Evidence, FindingStatus } from '../core/finding';
import type { Json } from '../core/json';
import { type Plan, shortHash } from '../core/plan';
import type { Runbook } from '../core/runbook';
import type { AuditVerification } from '../engine/audit-chain';
import type { RunDetail } from '../engine/engine';
import type { StepEndEvent } from '../engine/events';
import type { ApprovalRecord, RunRecord, StepRecord, StepStatus } from '../store/records';

type JsonObject = { [key: string]: Json };
type JsonSchema = Record<string, unknown>;

const MAX_VALUE = 120;

/** A JSON value on one line, shortened when long. */
export function formatValue(value: unknown): string {
  const text = value === undefined ? 'undefined' : JSON.stringify(value);
  return text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE - 1)}…` : text;
}

/** Rows as left-aligned columns separated by two spaces. */
export function columns(rows: readonly (readonly string[])[], indent = ''): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length);
  }
  return rows.map((row) =>
    `${indent}${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ')}`.trimEnd(),
  );
}

// ---- catalog ----

function triggerText(runbook: Runbook): string {
  return (runbook.triggers ?? [])
    .map(
      (t) =>
        `alert ${Object.entries(t.match)
          .map(([k, v]) => `${k}=${v}`)
          .join(',')}`,
    )
    .join('; ');
}

export function renderRunbookList(runbooks: readonly Runbook[]): string[] {
  return columns([
    ['ID', 'SEVERITY', 'TITLE', 'TRIGGERS'],
    ...runbooks.map((r) => [r.id, r.severity, r.title, triggerText(r) || '-']),
  ]);
}

export function renderRunbook(runbook: Runbook, schema: JsonSchema | undefined): string[] {
  const lines = [`${runbook.id}  (${runbook.severity})  ${runbook.title}`];
  if (runbook.description) lines.push('', ...runbook.description.split('\n').map((l) => `  ${l}`));
  lines.push('', `Triggers: ${triggerText(runbook) || 'none (started by hand)'}`);
  lines.push(`Tags: ${runbook.tags?.length ? runbook.tags.join(', ') : 'none'}`);
  lines.push('', 'Input:');
  const fields = schema ? inputFields(schema) : [];
  if (fields.length === 0) {
    lines.push(schema ? `  ${formatValue(schema)}` : '  (the schema cannot be shown as JSON Schema)');
  } else {
    lines.push(...columns(fields, '  '));
  }
  lines.push(
    '',
    `Start it: runbook diagnose ${runbook.id} --input key=value …   (see --json for the full JSON Schema)`,
  );
  return lines;
}

/** One row per input field (nested objects as dotted names, as `--input a.b=1` takes them). */
function inputFields(schema: JsonSchema, prefix = ''): string[][] {
  const properties = schema.properties as Record<string, JsonSchema> | undefined;
  if (!properties) return [];
  const required = new Set((schema.required as string[] | undefined) ?? []);
  return Object.entries(properties).flatMap(([name, p]) => {
    const isRequired = required.has(name); // within its parent object
    const row = [
      `${prefix}${name}`,
      schemaType(p),
      isRequired ? 'required' : 'optional',
      [p.description, p.default !== undefined ? `default ${formatValue(p.default)}` : '']
        .filter(Boolean)
        .join('; '),
    ];
    return [row, ...inputFields(p, `${prefix}${name}.`)];
  });
}

function schemaType(s: JsonSchema): string {
  if (Array.isArray(s.enum)) return s.enum.map((v) => formatValue(v)).join('|');
  if (s.const !== undefined) return formatValue(s.const);
  const alternatives = (s.anyOf ?? s.oneOf) as JsonSchema[] | undefined;
  if (alternatives) return alternatives.map(schemaType).join('|');
  if (s.type === 'array' && s.items) return `${schemaType(s.items as JsonSchema)}[]`;
  let type = Array.isArray(s.type) ? s.type.join('|') : String(s.type ?? 'any');
  const bounds = [
    s.minimum !== undefined ? `≥${s.minimum}` : '',
    s.maximum !== undefined ? `≤${s.maximum}` : '',
  ].filter(Boolean);
  if (s.type === 'integer' || s.type === 'number') type += bounds.length ? ` (${bounds.join(', ')})` : '';
  return type;
}

// ---- plans and evidence ----

export function renderPlan(plan: Plan<Json>, indent = '  '): string[] {
  const flags = [`risk ${plan.risk}`, ...(plan.destructive ? ['DESTRUCTIVE'] : [])].join(', ');
  const lines = [
    `${indent}${plan.summary}`,
    `${indent}  ${plan.action} on ${plan.target}  (${flags}; plan ${shortHash(plan.hash)})`,
  ];
  if (plan.changes.length === 0) lines.push(`${indent}  no changes: nothing to do`);
  for (const c of plan.changes) {
    lines.push(`${indent}  ${c.target} ${c.field}: ${formatValue(c.before)} → ${formatValue(c.after)}`);
  }
  return lines;
}

export function renderEvidence(evidence: readonly Evidence[], indent = '    '): string[] {
  const lines: string[] = [];
  for (const e of evidence) {
    switch (e.kind) {
      case 'table':
        lines.push(`${indent}${e.title}:`);
        lines.push(
          ...columns(
            [e.columns, ...e.rows.map((row) => row.map((cell) => (cell === null ? '-' : String(cell))))],
            `${indent}  `,
          ),
        );
        break;
      case 'log':
        lines.push(`${indent}${e.title}:`, ...e.lines.map((l) => `${indent}  ${l}`));
        break;
      case 'text':
        if (e.text.includes('\n'))
          lines.push(`${indent}${e.title}:`, ...e.text.split('\n').map((l) => `${indent}  ${l}`));
        else lines.push(`${indent}${e.title}: ${e.text}`);
        break;
      case 'link':
        lines.push(`${indent}${e.title}: ${e.url}`);
        break;
      case 'series': {
        const values = e.points.map((p) => p[1]);
        const unit = e.unit ? ` ${e.unit}` : '';
        lines.push(
          values.length === 0
            ? `${indent}${e.title}: no data`
            : `${indent}${e.title}: ${values.length} points, last ${values.at(-1)}${unit}, min ${Math.min(...values)}${unit}, max ${Math.max(...values)}${unit}`,
        );
        break;
      }
    }
  }
  return lines;
}

// ---- steps and runs ----

const STEP_MARK: Record<StepStatus, string> = {
  succeeded: '✔',
  failed: '✖',
  skipped: '–',
  applying: '…',
  waiting_approval: '⏸',
  sleeping: '…',
};
const FINDING_MARK: Record<FindingStatus, string> = { ok: '✔', warn: '!', fail: '✖', unknown: '?' };

function asObject(value: Json | null | undefined): JsonObject | undefined {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as JsonObject) : undefined;
}

/** A check's finding, when the step holds one. */
export function findingOf(
  step: Pick<StepRecord, 'kind' | 'status' | 'result'>,
): { status: FindingStatus; summary: string; evidence: Evidence[] } | undefined {
  const r = asObject(step.result);
  if (step.kind !== 'check' || step.status !== 'succeeded' || !r || typeof r.summary !== 'string')
    return undefined;
  return r as unknown as { status: FindingStatus; summary: string; evidence: Evidence[] };
}

/** An act step's plan, when it has one. */
export function planOf(step: Pick<StepRecord, 'result'>): Plan<Json> | undefined {
  const plan = asObject(asObject(step.result)?.plan);
  return plan && typeof plan.hash === 'string' ? (plan as unknown as Plan<Json>) : undefined;
}

/** The mark at the start of a step line: the finding's judgement for checks, else the step status. */
export function stepMark(step: Pick<StepRecord, 'kind' | 'status' | 'result'>): string {
  const f = findingOf(step);
  return f ? (FINDING_MARK[f.status] ?? '?') : STEP_MARK[step.status];
}

/** One line saying what a step found or did. */
export function stepSummary(step: Pick<StepRecord, 'kind' | 'status' | 'result' | 'error'>): string {
  if (step.error) return `${step.status}: ${step.error.message}`;
  const f = findingOf(step);
  if (f) return `${f.status}: ${f.summary}`;
  const r = asObject(step.result);
  const plan = planOf(step);
  if (step.kind === 'act') {
    const status =
      step.status === 'waiting_approval' ? 'waiting for approval' : String(r?.status ?? step.status);
    if (plan) return `${status}: ${plan.summary}`;
    if (r?.status === 'skipped')
      return `skipped in diagnose mode: ${String(r.action ?? '')} on ${String(r.target ?? '')}`;
    return status;
  }
  if (step.kind === 'approve') {
    if (r?.status === 'approved') return `approved by ${String(r.by)}${r.breakGlass ? ' (break-glass)' : ''}`;
    if (step.status === 'waiting_approval') return `waiting for approval: ${plan?.summary ?? ''}`;
    return `${step.status}${typeof r?.summary === 'string' ? `: ${r.summary}` : ''}`;
  }
  if (step.kind === 'notify')
    return `${step.status}: ${String(r?.channel ?? '')}: ${String(r?.message ?? '')}`;
  if (step.kind === 'sleep')
    return `${step.status}${typeof r?.ms === 'number' ? ` (${formatMillis(r.ms)})` : ''}`;
  return step.status;
}

function duration(from: Date | null, to: Date | null): string {
  return from && to ? formatMillis(to.getTime() - from.getTime()) : '';
}

function time(d: Date | null): string {
  return d
    ? d
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, 'Z')
    : '-';
}

export function renderError(error: ErrorInfo): string {
  return `${error.code}: ${error.message}`;
}

export function renderOutcome(outcome: Json | null): string | undefined {
  const o = asObject(outcome);
  if (!o) return undefined;
  if (o.kind === 'escalate') return `escalated${o.to ? ` to ${String(o.to)}` : ''}: ${String(o.reason)}`;
  return String(o.summary ?? o.kind);
}

/** The step list of a run; `evidence` adds findings' evidence and plans' changes. */
export function renderSteps(steps: readonly StepRecord[], options: { evidence: boolean }): string[] {
  if (steps.length === 0) return ['  (no steps)'];
  const lines: string[] = [];
  const width = Math.max(...steps.map((s) => s.name.length));
  for (const s of steps) {
    const took = duration(s.startedAt, s.endedAt);
    lines.push(
      `  ${stepMark(s)} ${s.name.padEnd(width)}  ${s.kind.padEnd(7)}  ${stepSummary(s)}${took ? `  (${took})` : ''}`,
    );
    if (!options.evidence) continue;
    const f = findingOf(s);
    if (f && f.evidence.length > 0) lines.push(...renderEvidence(f.evidence, '      '));
    const plan = planOf(s);
    if (plan && s.kind === 'act') lines.push(...renderPlan(plan, '      ').slice(1));
    const verification = asObject(asObject(s.result)?.verification);
    if (verification)
      lines.push(`      verified: ${String(verification.status)}: ${String(verification.summary)}`);
  }
  return lines;
}

export function renderApprovals(approvals: readonly ApprovalRecord[]): string[] {
  return approvals.map((a) => {
    const who =
      a.status === 'pending'
        ? `pending since ${time(a.requestedAt)}, expires ${time(a.expiresAt)}`
        : `${a.status}${a.decidedBy ? ` by ${a.decidedBy}` : ''} at ${time(a.decidedAt)}`;
    const extra = [a.breakGlass ? 'BREAK-GLASS' : '', a.reason ? `reason: ${a.reason}` : '']
      .filter(Boolean)
      .join(', ');
    return `  ${a.step}: ${who} (requested by ${a.requestedBy}, plan ${shortHash(a.planHash)})${extra ? `  ${extra}` : ''}`;
  });
}

function runHeader(run: RunRecord): string[] {
  const lines = [
    `Run ${run.id}  ${run.runbookId}  ${run.mode}  ${run.status}`,
    `  requested by ${run.requestedBy} at ${time(run.createdAt)}${run.endedAt ? `, ended ${time(run.endedAt)} (${duration(run.startedAt ?? run.createdAt, run.endedAt)})` : ''}`,
    `  input: ${formatValue(run.input)}`,
  ];
  const outcome = renderOutcome(run.outcome);
  if (outcome) lines.push(`  outcome: ${outcome}`);
  if (run.error) lines.push(`  error: ${renderError(run.error)}`);
  if (run.cancelRequested && run.status === 'running')
    lines.push(`  cancel requested: ${run.cancelRequested}`);
  return lines;
}

/** `runbook show`: the run, every step with evidence and plans, and the approvals. */
export function renderRunDetail(detail: RunDetail): string[] {
  const lines = [...runHeader(detail.run), '', 'Steps:', ...renderSteps(detail.steps, { evidence: true })];
  if (detail.approvals.length > 0) lines.push('', 'Approvals:', ...renderApprovals(detail.approvals));
  if (detail.run.status === 'waiting_approval') {
    lines.push(
      '',
      `Waiting for another person: runbook approve ${detail.run.id}   (or: runbook reject ${detail.run.id})`,
    );
  } else if (detail.run.status === 'queued') {
    lines.push('', `Queued: continue it with runbook resume ${detail.run.id}`);
  }
  return lines;
}

/** The summary after `diagnose`/`plan`/`run`/`approve`/`resume` executed a run. */
export function renderRunSummary(detail: RunDetail): string[] {
  const { run, steps } = detail;
  const lines = ['', `${run.runbookId} (${run.mode}): ${run.status}`];
  const outcome = renderOutcome(run.outcome);
  if (outcome) lines.push(`  outcome: ${outcome}`);
  if (run.error) lines.push(`  error: ${renderError(run.error)}`);
  const checks = steps.filter((s) => s.kind === 'check');
  if (run.mode === 'diagnose' && checks.length > 0) {
    lines.push('', 'Findings:', ...renderSteps(checks, { evidence: true }));
    const skipped = steps.filter((s) => s.kind === 'act');
    if (skipped.length > 0)
      lines.push('', 'Not applied (diagnose mode):', ...renderSteps(skipped, { evidence: false }));
  } else {
    lines.push('', 'Steps:', ...renderSteps(steps, { evidence: run.mode === 'plan' }));
  }
  lines.push('', `Details: runbook show ${run.id}`);
  return lines;
}

/** What another person must do for a run that waits for approval. */
/**
 * What another person must run to approve a waiting run. `storeArgs` names the store it is in (`--data-dir
 * …`), or `note` says how to reach it (a PostgreSQL URL is never printed: it may carry a password).
 */
export function renderWaiting(
  runId: string,
  pending: { step: string; plan: Plan<Json> },
  where: { storeArgs: string; note?: string } = { storeArgs: '' },
): string[] {
  return [
    '',
    `Run ${runId} waits for approval of step "${pending.step}":`,
    ...renderPlan(pending.plan),
    '',
    'Another person must approve it:',
    `  runbook approve ${runId}${where.storeArgs}`,
    `(or reject it: runbook reject ${runId}${where.storeArgs} --reason "…")`,
    ...(where.note ? [where.note] : []),
  ];
}

export function renderRunList(runs: readonly RunRecord[]): string[] {
  if (runs.length === 0) return ['No runs.'];
  return columns([
    ['RUN', 'RUNBOOK', 'MODE', 'STATUS', 'BY', 'CREATED', 'TOOK'],
    ...runs.map((r) => [
      r.id,
      r.runbookId,
      r.mode,
      r.status,
      r.requestedBy,
      time(r.createdAt),
      duration(r.startedAt ?? r.createdAt, r.endedAt) || '-',
    ]),
  ]);
}

export function renderAudit(v: AuditVerification): string[] {
  const lines = [`Audit log: ${v.entries} entries, head ${v.headHash}`];
  if (v.ok) lines.push('OK: the hash chain is intact.');
  else
    lines.push(
      `PROBLEMS (${v.problems.length}):`,
      ...v.problems.map((p) => `  #${p.seq} ${p.problem}: ${p.message}`),
    );
  return lines;
}

// ---- live progress ----

/** One progress line for a step that ended. */
export function renderStepEnd(e: StepEndEvent): string {
  const step = { kind: e.kind, status: e.status, result: e.result, error: e.error };
  const took = e.replayed ? 'replayed' : formatMillis(e.durationMs);
  return `${stepMark(step)} ${e.step}  ${stepSummary(step)}  (${took})`;
}
