import { type ErrorInfo, RunbookError } from '../core/errors';
import type { Finding } from '../core/finding';
import type { Json } from '../core/json';
import type { Plan } from '../core/plan';

// How step results are checked, summarized and described in the audit log.

/** What the audit log keeps of a plan: enough to identify and judge it, not its parameters. */
export function planAudit(plan: Plan<unknown>): Record<string, Json> {
  return {
    action: plan.action,
    target: plan.target,
    planHash: plan.hash,
    summary: plan.summary,
    changes: plan.changes.length,
    risk: plan.risk,
    destructive: plan.destructive,
  };
}

const FINDING_STATUSES = new Set(['ok', 'warn', 'fail', 'unknown']);

/** Catches checks that return something other than a Finding, with a message that names the step. */
export function assertFinding<T>(step: string, value: Finding<T>): Finding<T> {
  if (
    !value ||
    typeof value !== 'object' ||
    !FINDING_STATUSES.has(value.status) ||
    typeof value.summary !== 'string' ||
    !Array.isArray(value.evidence)
  ) {
    throw new RunbookError(
      'INVALID_FINDING',
      `Check of step "${step}" returned something that is not a Finding: it must return { status: 'ok' | 'warn' | 'fail' | 'unknown', summary, evidence: [], data }.`,
      { retriable: false },
    );
  }
  return value;
}

/** One line describing a step's result or error. */
export function summarize(result: Json | null, error: ErrorInfo | null): string {
  if (error) return error.message;
  if (result && typeof result === 'object' && !Array.isArray(result)) {
    const r = result as Record<string, Json | undefined>;
    if (typeof r.summary === 'string') return r.summary;
    const plan = r.plan as Record<string, Json> | undefined;
    if (plan && typeof plan.summary === 'string')
      return `${String(r.status ?? '')}: ${plan.summary}`.replace(/^: /, '');
    if (typeof r.status === 'string') return r.status;
  }
  return '';
}
