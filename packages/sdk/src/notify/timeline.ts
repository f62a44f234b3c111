import { z } from 'zod';
import { parseOptions } from '../core/parse-options';

const When = z.coerce.date();

/** The fields of a run the timeline reads: a store `RunRecord`, or the service's `GET /runs/:id` JSON. */
export const TimelineRun = z.object({
  id: z.string(),
  runbookId: z.string(),
  mode: z.string(),
  status: z.string(),
  requestedBy: z.string(),
  createdAt: When,
  startedAt: When.nullable().default(null),
  endedAt: When.nullable().default(null),
  input: z.unknown(),
  outcome: z.unknown().nullable().default(null),
  error: z.object({ code: z.string(), message: z.string() }).nullable().default(null),
  context: z.unknown().nullable().default(null),
});
export type TimelineRun = z.infer<typeof TimelineRun>;

/** An audit entry: `ts`, `actor`, `kind`, optional `step` and `data`. */
const AuditEntryShape = z.object({
  ts: When,
  actor: z.string(),
  kind: z.string(),
  runId: z.string().optional(),
  step: z.string().optional(),
  data: z.unknown().optional(),
});

/**
 * An audit record in any of its forms: a store `AuditEntry`, a store `AuditRow` (its `entry` is the hashed JSON
 * text), or the service's `GET /audit` row (`entry` parsed) or `GET /runs/:id/events` event.
 */
export const TimelineAuditRecord = z.union([
  z.object({ seq: z.number(), entry: z.string() }).transform((row, ctx) => {
    try {
      return AuditEntryShape.parse(JSON.parse(row.entry));
    } catch {
      ctx.addIssue({ code: 'custom', message: 'entry is not an audit entry (JSON with ts, actor, kind)' });
      return z.NEVER;
    }
  }),
  z.object({ entry: AuditEntryShape }).transform((row) => row.entry),
  AuditEntryShape,
]);

/** What {@link incidentTimeline} reads: the run and its audit records. */
export const TimelineInput = z.object({
  run: TimelineRun,
  audit: z.array(TimelineAuditRecord),
});
export type TimelineInput = z.input<typeof TimelineInput>;

/** Kinds of timeline entries. */
export type TimelineKind =
  | 'alert'
  | 'run'
  | 'check'
  | 'plan'
  | 'approval'
  | 'action'
  | 'notification'
  | 'escalation'
  | 'end'
  | 'other';

/** One line of an incident timeline. */
export interface TimelineEntry {
  at: Date;
  kind: TimelineKind;
  actor: string;
  step?: string;
  /** One line for people. */
  text: string;
  /** The audit kind it came from (`action.applied`), or `alert` / `run` for what the run itself says. */
  source: string;
}

/**
 * The incident's timeline from a run and its audit records, oldest first: the alert that started it (from the
 * run's context), the run's start, every check, plan, approval, action (applied, verified, reverted), notification
 * and escalation, and its end. Entries at the same instant keep the audit log's order.
 */
export function incidentTimeline(input: TimelineInput): TimelineEntry[] {
  const { run, audit } = parseOptions('incidentTimeline', TimelineInput, input);
  const entries: TimelineEntry[] = [];
  const alert = alertOf(run.context);
  if (alert) {
    entries.push({
      at: alert.startsAt ?? run.createdAt,
      kind: 'alert',
      actor: 'alertmanager',
      text: `Alert ${alert.name} ${alert.status ?? 'firing'}${alert.summary ? `: ${alert.summary}` : ''}`,
      source: 'alert',
    });
  }
  let sawEnd = false;
  for (const record of audit) {
    if (record.runId !== undefined && record.runId !== run.id) continue;
    const entry = describe(record, run);
    if (entry.kind === 'end') sawEnd = true;
    entries.push(entry);
  }
  if (!sawEnd && run.endedAt) {
    entries.push({
      at: run.endedAt,
      kind: 'end',
      actor: 'engine',
      text: `Run ${run.status}`,
      source: 'run',
    });
  }
  // A stable sort: the audit log's order breaks ties.
  return entries
    .map((e, i) => ({ e, i }))
    .sort((a, b) => a.e.at.getTime() - b.e.at.getTime() || a.i - b.i)
    .map(({ e }) => e);
}

type Audit = z.output<typeof AuditEntryShape>;

function describe(record: Audit, run: TimelineRun): TimelineEntry {
  const data = (record.data ?? {}) as Record<string, unknown>;
  const str = (key: string): string | undefined =>
    typeof data[key] === 'string' ? (data[key] as string) : undefined;
  const base = {
    at: record.ts,
    actor: record.actor,
    source: record.kind,
    ...(record.step ? { step: record.step } : {}),
  };
  const step = record.step ? ` ${record.step}` : '';
  const kind = record.kind;
  if (kind === 'run.created') {
    return {
      ...base,
      kind: 'run',
      text: `Run of ${run.runbookId} (${str('mode') ?? run.mode}) requested by ${record.actor}`,
    };
  }
  if (kind === 'run.suspended') return { ...base, kind: 'run', text: 'Run waits for approval' };
  if (kind === 'run.handed-over')
    return { ...base, kind: 'run', text: `Run handed over: ${str('reason') ?? ''}` };
  if (kind === 'run.cancel')
    return { ...base, kind: 'run', text: `Cancel requested: ${str('reason') ?? ''}` };
  if (kind.startsWith('run.')) {
    const status = kind.slice('run.'.length);
    const outcome = data.outcome as { reason?: unknown; summary?: unknown } | null | undefined;
    const why =
      typeof outcome?.reason === 'string'
        ? outcome.reason
        : typeof outcome?.summary === 'string'
          ? outcome.summary
          : ((data.error as { message?: string } | null | undefined)?.message ?? '');
    return { ...base, kind: 'end', text: `Run ${status}${why ? `: ${why}` : ''}` };
  }
  if (kind === 'step.check') {
    return { ...base, kind: 'check', text: `Check${step}: ${str('status') ?? '?'}: ${str('summary') ?? ''}` };
  }
  if (kind === 'plan.recorded' || kind === 'plan.confirmed') {
    return {
      ...base,
      kind: 'plan',
      text: `Plan${step} ${kind === 'plan.confirmed' ? 'confirmed' : 'recorded'}: ${str('summary') ?? ''} (${str('target') ?? ''}, risk ${str('risk') ?? '?'})`,
    };
  }
  if (kind.startsWith('approval.')) {
    const what = kind.slice('approval.'.length);
    const reason = str('reason');
    return {
      ...base,
      kind: 'approval',
      step: record.step ?? str('step') ?? '',
      text:
        what === 'requested' || what === 're-requested'
          ? `Approval ${what} for${step}: ${str('summary') ?? ''}`
          : `Approval ${what} by ${record.actor}${reason ? `: ${reason}` : ''}`,
    };
  }
  if (kind === 'step.approve') return { ...base, kind: 'approval', text: `Gate${step} passed` };
  if (kind.startsWith('action.')) {
    const what = kind.slice('action.'.length);
    const verification = str('verification');
    return {
      ...base,
      kind: 'action',
      text: `Action${step} ${what}: ${str('summary') ?? str('action') ?? ''}${verification ? ` (verification: ${verification})` : ''}`,
    };
  }
  if (kind === 'step.notify' || kind === 'step.notify.skipped') {
    return {
      ...base,
      kind: 'notification',
      text: `Notified ${str('channel') ?? 'default'}${kind.endsWith('skipped') ? ' (skipped: not executing)' : ''}: ${str('message') ?? ''}`,
    };
  }
  if (kind === 'escalation.acknowledged' || kind === 'escalation.resolved') {
    // Written by the service's /incidents routes: the on-call engineer took or closed the incident.
    const paged = Object.keys((data.paged ?? {}) as Record<string, unknown>);
    return {
      ...base,
      kind: 'escalation',
      text: `On-call incident ${kind.slice('escalation.'.length)} by ${record.actor}${paged.length ? ` (paged: ${paged.join(', ')})` : ''}`,
    };
  }
  if (kind.startsWith('escalation.')) {
    return { ...base, kind: 'escalation', text: `${kind}: ${str('summary') ?? str('level') ?? ''}` };
  }
  if (kind.endsWith('.failed')) {
    const error = data.error as { message?: string } | undefined;
    return { ...base, kind: 'other', text: `Step${step} failed: ${error?.message ?? ''}` };
  }
  return { ...base, kind: 'other', text: kind };
}

interface AlertInfo {
  name: string;
  status?: string;
  summary?: string;
  startsAt?: Date;
}

function alertOf(context: unknown): AlertInfo | undefined {
  const alert = (context as { alert?: unknown } | null)?.alert as
    | {
        labels?: Record<string, string>;
        annotations?: Record<string, string>;
        status?: string;
        startsAt?: string;
      }
    | undefined;
  if (!alert || typeof alert !== 'object') return undefined;
  const startsAt = alert.startsAt ? new Date(alert.startsAt) : undefined;
  return {
    name: alert.labels?.alertname ?? 'alert',
    ...(alert.status ? { status: alert.status } : {}),
    ...(alert.annotations?.summary ? { summary: alert.annotations.summary } : {}),
    ...(startsAt && !Number.isNaN(startsAt.getTime()) ? { startsAt } : {}),
  };
}
