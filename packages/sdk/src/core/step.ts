import type { Duration } from './duration';
import type { Finding } from './finding';
import type { Json } from './json';
import type { Plan, PlanDraft, RiskLevel } from './plan';
import type { ResourceRef } from './resource';

/** What a runbook run is allowed to do. */
export type RunMode = 'diagnose' | 'plan' | 'execute';

/** Passed to every check and action call: who, where, and a signal to stop. */
export interface StepContext {
  runId: string;
  runbookId: string;
  /** The step's durable name. */
  step: string;
  mode: RunMode;
  /** 1 for the first try. */
  attempt: number;
  /** The person or service the run acts for. */
  actor: string;
  /** Aborted on cancellation, step or run timeout, or loss of the run's lease. Pass it to every I/O call. */
  signal: AbortSignal;
  /** Adds a line to the run's log (redacted before it is stored or shown). */
  log(message: string, data?: Record<string, unknown>): void;
}

/** A check reads and judges. It never changes anything, so the engine may run it again at will. */
export interface Check<T = Json> {
  /** What kind of check this is, e.g. `k8s.pod-status`. */
  kind: string;
  /** One line for people: what it looks at. */
  description?: string;
  run(ctx: StepContext): Promise<Finding<T>>;
}

/** What an action's apply produced, as the engine keeps it for verify and revert. */
export interface Applied<P = Json, A = Json> {
  plan: Plan<P>;
  /** What `apply()` returned; `null` when the apply was recovered after a crash and its return value was lost. */
  data: A | null;
  appliedAt: string;
  /** True when the engine found the change already made (after a crash) instead of applying it itself. */
  recovered: boolean;
}

/** A limit on how often one kind of action may change one resource, shared by every runbook. */
export interface Budget {
  /** Most applies allowed in the window. */
  max: number;
  /** The sliding window, e.g. `"1h"`. */
  per: Duration;
}

/**
 * An action changes the world, and says beforehand exactly what it will change. The engine plans,
 * asks for approval where policy wants it, takes the resource's lock and budget, applies, verifies,
 * and reverts when verification fails.
 */
export interface Action<P = Json, A = Json> {
  /** What kind of action this is, e.g. `k8s.rollout-restart`; budgets are per kind and resource. */
  kind: string;
  /** The resource changed; its lease lock is held across apply and verify. */
  target: ResourceRef;
  risk: RiskLevel;
  /** True when the change loses data or cannot be undone (kill a query, delete keys). Needs approval by default. */
  destructive: boolean;
  description?: string;
  /** Revert automatically this long after a successful apply (an IP block for `"1h"`). Requires `revert`. */
  expiresAfter?: Duration;
  /** Default remediation budget for this kind on this target; the engine's configured budgets take precedence. */
  budget?: Budget;
  /** Reads the world and says what `apply()` would change. Must not change anything. */
  plan(ctx: StepContext): Promise<PlanDraft<P>>;
  /** Makes exactly the planned changes, using `plan.params`. */
  apply(ctx: StepContext, plan: Plan<P>): Promise<A>;
  /** Closed loop: did the change have the intended effect? A `fail` finding triggers revert. */
  verify?(ctx: StepContext, applied: Applied<P, A>): Promise<Finding<Json>>;
  /** The inverse of `apply`, where one exists. Should rely on `applied.plan.params`, not only on `applied.data`. */
  revert?(ctx: StepContext, applied: Applied<P, A>): Promise<void>;
}

/** Options of a `defineCheck` call. */
export type CheckDefinition<T> = Check<T>;
/** Declares a check; the identity function, for inference and a single place to document. */
export function defineCheck<T>(check: CheckDefinition<T>): Check<T> {
  return check;
}
/** Declares an action; validates that an expiring action can be reverted. */
export function defineAction<P, A>(action: Action<P, A>): Action<P, A> {
  if (action.expiresAfter !== undefined && !action.revert) {
    throw new TypeError(
      `Action ${action.kind} on ${action.target} has expiresAfter but no revert(): give it a revert.`,
    );
  }
  return action;
}
