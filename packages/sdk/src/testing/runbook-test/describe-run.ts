import { renderError, renderOutcome, stepMark, stepSummary } from '../../cli/render';
import type { ErrorInfo } from '../../core/errors';
import type { RunRecord, StepRecord } from '../../store/records';

// The text assertion messages end with: what the run did, step by step, so that a failing test says why
// without a second run under a debugger. Steps read as the CLI shows them (`runbook show`): render.ts needs
// nothing but the core, so the kit stays free of the CLI's dependencies.

const MAX_TEXT = 200;

/** `text` cut to one readable line. */
export function oneLine(text: string, max = MAX_TEXT): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** `CODE: message` of a stored error. */
export function describeError(error: ErrorInfo): string {
  return oneLine(renderError(error));
}

/** What an act step's record says happened: `applied`, `planned`, `skipped`, `waiting_approval`, … */
export function actState(step: StepRecord): string {
  if (step.status === 'waiting_approval' || step.status === 'applying') return step.status;
  const result = step.result;
  const status =
    typeof result === 'object' && result !== null && !Array.isArray(result) ? result.status : undefined;
  return typeof status === 'string' ? status : step.status;
}

/**
 * One step as a line: `restart (act): applied: Restart Deployment aiwebtest/agent …`. The CLI's summary of a
 * failed step is its error's message alone; here the plan stays and the error's code is added.
 */
export function describeStep(step: StepRecord): string {
  const what = stepSummary({ ...step, error: null });
  const error = step.error ? ` (${describeError(step.error)})` : '';
  return `${step.name} (${step.kind}): ${oneLine(what)}${error}`;
}

/** The run and its steps, as the tail of an assertion message. */
export function describeRun(run: RunRecord, steps: readonly StepRecord[]): string {
  let head = `Run ${run.id} of runbook "${run.runbookId}" (${run.mode}, by ${run.requestedBy}): ${run.status}`;
  const outcome = renderOutcome(run.outcome);
  if (outcome) head += ` (${oneLine(outcome)})`;
  if (run.error) head += ` — ${describeError(run.error)}`;
  const lines = [head];
  if (steps.length === 0) lines.push('  no steps');
  for (const step of steps) lines.push(`  ${step.seq}. ${stepMark(step)} ${describeStep(step)}`);
  return lines.join('\n');
}

/** `"a", "b"` or `none`. */
export function listNames(names: readonly string[]): string {
  return names.length === 0 ? 'none' : names.map((n) => `"${n}"`).join(', ');
}
