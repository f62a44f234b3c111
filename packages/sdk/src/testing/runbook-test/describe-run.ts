import type { ErrorInfo } from '../../core/errors';
import type { RunRecord, StepRecord } from '../../store/records';

// The text assertion messages end with: what the run did, step by step, so that a failing test says why
// without a second run under a debugger.

const MAX_TEXT = 200;

/** `text` cut to one readable line. */
export function oneLine(text: string, max = MAX_TEXT): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** `CODE: message` of a stored error. */
export function describeError(error: ErrorInfo): string {
  return oneLine(`${error.code}: ${error.message}`);
}

type Result = Record<string, unknown> | null;

const asResult = (step: StepRecord): Result =>
  typeof step.result === 'object' && step.result !== null && !Array.isArray(step.result)
    ? (step.result as Record<string, unknown>)
    : null;

const summaryOf = (value: unknown): string | undefined =>
  typeof value === 'object' && value !== null && typeof (value as { summary?: unknown }).summary === 'string'
    ? (value as { summary: string }).summary
    : undefined;

/** What an act step's record says happened: `applied`, `planned`, `skipped`, `waiting_approval`, … */
export function actState(step: StepRecord): string {
  if (step.status === 'waiting_approval' || step.status === 'applying') return step.status;
  const status = asResult(step)?.status;
  return typeof status === 'string' ? status : step.status;
}

/** One step as a line: `restart (act): applied — Restart Deployment aiwebtest/agent …`. */
export function describeStep(step: StepRecord): string {
  const result = asResult(step);
  let what: string;
  switch (step.kind) {
    case 'check':
      what =
        step.status === 'succeeded' && typeof result?.status === 'string'
          ? `finding ${result.status}${summaryOf(result) ? ` — ${summaryOf(result)}` : ''}`
          : step.status;
      break;
    case 'act': {
      const plan = summaryOf(result?.plan);
      what = `${actState(step)}${plan ? ` — ${plan}` : ''}`;
      break;
    }
    case 'approve': {
      const by = typeof result?.by === 'string' ? ` by ${result.by}` : '';
      what = `${typeof result?.status === 'string' ? result.status : step.status}${by}`;
      break;
    }
    case 'notify':
      what =
        step.status === 'succeeded' && typeof result?.channel === 'string'
          ? `sent to ${result.channel}`
          : step.status;
      break;
    default:
      what = step.status;
  }
  const error = step.error ? ` (${describeError(step.error)})` : '';
  return `${step.name} (${step.kind}): ${oneLine(what)}${error}`;
}

/** The run and its steps, as the tail of an assertion message. */
export function describeRun(run: RunRecord, steps: readonly StepRecord[]): string {
  const lines = [
    `Run ${run.id} of runbook "${run.runbookId}" (${run.mode}, by ${run.requestedBy}): ${run.status}`,
  ];
  const outcome = run.outcome as { kind?: unknown; summary?: unknown; reason?: unknown } | null;
  if (outcome && typeof outcome.kind === 'string') {
    const text = typeof outcome.summary === 'string' ? outcome.summary : outcome.reason;
    lines[0] += ` (${outcome.kind}${typeof text === 'string' ? `: ${oneLine(text)}` : ''})`;
  }
  if (run.error) lines[0] += ` — ${describeError(run.error)}`;
  if (steps.length === 0) lines.push('  no steps');
  for (const step of steps) lines.push(`  ${step.seq}. ${describeStep(step)}`);
  return lines.join('\n');
}

/** `"a", "b"` or `none`. */
export function listNames(names: readonly string[]): string {
  return names.length === 0 ? 'none' : names.map((n) => `"${n}"`).join(', ');
}
