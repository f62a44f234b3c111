import type { z } from 'zod';
import { type Duration, toMillis } from './duration';
import type { Finding } from './finding';
import type { Json } from './json';
import type { StepOptions } from './options';
import type { Plan } from './plan';
import type { Action, Applied, Check, RunMode } from './step';

/** Incident priority, as in the operations manual: P0 (critical) to P3 (low). */
export type Severity = 'P0' | 'P1' | 'P2' | 'P3';

/** What starts a runbook automatically. */
export type Trigger = { kind: 'alert'; match: Record<string, string> };

/** Trigger on Alertmanager alerts whose labels include all of `match` (e.g. `{ alertname: 'AgentDown' }`). */
export function onAlert(match: Record<string, string>): Trigger {
  return { kind: 'alert', match };
}

/** How a run ended when its function returned normally. */
export type Outcome =
  | { kind: 'done'; summary: string }
  | { kind: 'escalate'; reason: string; to?: string; severity?: Severity };

/** An escalation: returned from `run` to hand the incident to a human, or passed as `onGiveUp`. */
export type Escalation = Extract<Outcome, { kind: 'escalate' }>;

/** A message sent through the engine's notifier (chat, status page, pager). */
export interface Notification {
  /** Where to: `"slack:#incidents"`, `"statuspage"`, `"pager"`; the notifier interprets it. @default "default" */
  channel?: string;
  message: string;
  severity?: Severity;
}

/** Options of `step.act`. */
export interface ActOptions extends StepOptions {
  /** When the action finally fails (attempts spent, verification failed), end the run escalated instead of failed. */
  onGiveUp?: Escalation;
}

/** What `step.act` returns. In `diagnose` mode actions are `skipped`; in `plan` mode they are `planned`. */
export type ActResult<P = Json, A = Json> =
  | { status: 'skipped' }
  | { status: 'planned'; plan: Plan<P> }
  | { status: 'noop'; plan: Plan<P> }
  | { status: 'applied'; plan: Plan<P>; applied: Applied<P, A>; verification?: Finding<Json> };

/** What `step.approve` returns. */
export type ApproveResult = { status: 'skipped' } | { status: 'approved'; by: string; breakGlass: boolean };

/** A manual gate: the run waits until a second person approves (in `execute` mode). */
export interface ApprovalRequest {
  summary: string;
  details?: Json;
}

/**
 * The step tools a runbook's `run` function uses. Every call names its step; the name is the key the
 * result is stored under, so it must be unique within a run and stable across code versions.
 */
export interface StepTools {
  /** Runs a check (in every mode) and returns its finding. */
  check<T>(name: string, check: Check<T>, options?: StepOptions): Promise<Finding<T>>;
  /** Plans an action, and in `execute` mode applies it under the engine's approvals, lock, budget and verify. */
  act<P, A>(name: string, action: Action<P, A>, options?: ActOptions): Promise<ActResult<P, A>>;
  /** Waits for a second person's approval (in `execute` mode; skipped otherwise). */
  approve(name: string, request: ApprovalRequest): Promise<ApproveResult>;
  /** Sends a notification once (in `execute` mode; skipped otherwise). */
  notify(name: string, notification: Notification): Promise<void>;
  /** Waits durably: a resumed run sleeps only for what is left. Skipped outside `execute` mode. */
  sleep(name: string, duration: Duration): Promise<void>;
  /** An escalation outcome: `return step.escalate('page on-call')`, or pass it as `onGiveUp`. */
  escalate(reason: string, options?: { to?: string; severity?: Severity }): Escalation;
  /** A success outcome: `return step.done('agent healthy')`. */
  done(summary: string): Outcome;
}

/** What a runbook's `run` function receives. */
export interface RunContext<I> {
  input: I;
  step: StepTools;
  mode: RunMode;
  runId: string;
  actor: string;
  /** Aborted on cancellation or run timeout. */
  signal: AbortSignal;
  log(message: string, data?: Record<string, unknown>): void;
}

/** A runbook's definition. */
export interface RunbookDefinition<S extends z.ZodType> {
  /** Stable identifier, lowercase words joined by dashes: `agent-failure`. */
  id: string;
  title: string;
  description?: string;
  severity: Severity;
  /** zod schema of the input; bad input is refused before anything runs. */
  input: S;
  triggers?: Trigger[];
  /** Free-form labels for catalogs and Grafana (`component: agents`). */
  tags?: string[];
  /** The whole run's time limit. @default "30m" */
  timeout?: Duration;
  // biome-ignore lint/suspicious/noConfusingVoidType: lets a runbook end without `return`, the common case
  run(ctx: RunContext<z.output<S>>): Promise<Outcome | undefined | void>;
}

/** A defined runbook. */
export interface Runbook<S extends z.ZodType = z.ZodType> extends RunbookDefinition<S> {
  readonly kind: 'runbook';
}

const ID_PATTERN = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

/** True when `id` is a valid runbook id: lowercase words (a-z, 0-9) joined by dashes, e.g. `agent-failure`. */
export function isRunbookId(id: string): boolean {
  return ID_PATTERN.test(id);
}

/** Declares a runbook. Validates the id and severity at definition time so mistakes fail at load, not at 3 a.m. */
export function defineRunbook<S extends z.ZodType>(definition: RunbookDefinition<S>): Runbook<S> {
  if (!isRunbookId(definition.id)) {
    throw new TypeError(
      `Invalid runbook id "${definition.id}": use lowercase words joined by dashes, e.g. "agent-failure".`,
    );
  }
  if (definition.timeout !== undefined) toMillis(definition.timeout); // a bad timeout fails at load, naming itself
  if (!['P0', 'P1', 'P2', 'P3'].includes(definition.severity)) {
    throw new TypeError(`Runbook ${definition.id}: severity must be one of P0, P1, P2, P3.`);
  }
  return Object.freeze({ ...definition, kind: 'runbook' as const });
}

/** True when `value` is a runbook made by {@link defineRunbook} (used when loading runbook modules). */
export function isRunbook(value: unknown): value is Runbook {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'runbook';
}
