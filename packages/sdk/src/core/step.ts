import type { Duration } from './duration';
import type { Finding } from './finding';
import type { Json } from './json';
import type { Plan, PlanDraft, RiskLevel } from './plan';
import type { ResourceRef } from './resource';

/** Every run mode, from reading only to changing things. */
export const RUN_MODES = ['diagnose', 'plan', 'execute'] as const;
/** What a runbook run is allowed to do. */
export type RunMode = (typeof RUN_MODES)[number];

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
  /**
   * Replayable checks only (see {@link ReplayableCheck}): reads the world and returns what it saw, without
   * judging it. The engine stores the observation with the finding, so a replay can judge it again.
   */
  read?(ctx: StepContext): Promise<unknown>;
  /** Replayable checks only: judges an observation of `read`. Pure: no I/O, no clock, no randomness. */
  judge?(observation: never): Finding<T>;
}

/**
 * A check split in two: `read` collects an observation (JSON), `judge` turns it into a finding. The engine
 * runs `judge(read())` and stores the observation with the finding; a replay of the run (`replayRun`,
 * `runbook replay`) judges the recorded observation with the check as it is now, so a changed threshold
 * shows up as a changed decision. Make a check replayable whenever its verdict depends on a threshold.
 */
export interface ReplayableCheck<T = Json, O = Json> extends Check<T> {
  read(ctx: StepContext): Promise<O>;
  judge(observation: O): Finding<T>;
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

/** What `defineCheck` takes for a check that reads and judges in one go. */
export interface CheckDefinition<T> {
  /** What kind of check this is, e.g. `k8s.pod-status`. */
  kind: string;
  /** One line for people: what it looks at. */
  description?: string;
  run(ctx: StepContext): Promise<Finding<T>>;
}

/** What `defineCheck` takes for a {@link ReplayableCheck}: `read` and `judge` instead of `run`. */
export interface ReplayableCheckDefinition<T, O> {
  /** What kind of check this is, e.g. `disk.usage`. */
  kind: string;
  /** One line for people: what it looks at. */
  description?: string;
  /** Reads the world; returns plain JSON data (it is stored, and given to `judge` as stored). */
  read(ctx: StepContext): Promise<O>;
  /** Judges an observation. Pure, so that judging a recorded observation again gives today's verdict. */
  judge(observation: O): Finding<T>;
}

/**
 * Declares a check. With `run`, the identity function (for inference and a single place to document).
 * With `read` and `judge`, a {@link ReplayableCheck} whose `run` is `judge(read())`, the observation passed
 * through JSON first (and a copy given to `judge`). The engine stores the observation redacted, up to
 * 256 KiB, when judging that redacted copy gives the same finding; a replay judges it again.
 */
export function defineCheck<T, O>(check: ReplayableCheckDefinition<T, O>): ReplayableCheck<T, O>;
export function defineCheck<T>(check: CheckDefinition<T>): Check<T>;
export function defineCheck<T, O>(
  check: CheckDefinition<T> | ReplayableCheckDefinition<T, O>,
): Check<T> | ReplayableCheck<T, O> {
  if (!('read' in check)) return check;
  if ('run' in check) {
    throw new TypeError(`Check ${check.kind}: give either run() or read() and judge(), not both.`);
  }
  const { read, judge } = check;
  return {
    ...check,
    read,
    judge,
    run: async (ctx) => judge(asObservation(check.kind, await read(ctx))),
  };
}

/** True for a check made with `read` and `judge` (its observations can be recorded and judged again). */
export function isReplayableCheck<T>(check: Check<T>): check is ReplayableCheck<T, Json> {
  return typeof check.read === 'function' && typeof check.judge === 'function';
}

/**
 * An observation as it will be stored: passed through JSON (dates become strings, `undefined` fields go).
 * Throws a TypeError naming the check when it cannot be (a cycle, a BigInt).
 */
export function asObservation<O>(kind: string, observation: O): O {
  try {
    const text = JSON.stringify(observation);
    return (text === undefined ? null : JSON.parse(text)) as O;
  } catch (e) {
    throw new TypeError(`Check ${kind}: read() must return JSON data: ${(e as Error).message}`);
  }
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
