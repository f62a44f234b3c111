import { planOf } from '../../cli/render';
import type { ErrorInfo } from '../../core/errors';
import type { Finding, FindingStatus } from '../../core/finding';
import type { Json } from '../../core/json';
import type { Plan } from '../../core/plan';
import type { Outcome, Severity } from '../../core/runbook';
import type { LogEvent } from '../../engine/events';
import { fixtureFromRun, type RecordOptions, type RunFixture } from '../../replay/fixture';
import type {
  ApprovalRecord,
  AuditEntry,
  AuditRow,
  RunRecord,
  RunStatus,
  StepRecord,
} from '../../store/records';
import { actState, describeError, describeRun, describeStep, listNames, oneLine } from './describe-run';

/** Everything a {@link RunbookTestRun} is made of, as read from the run store after the run. */
export interface RunbookTestRecord {
  /** The run, exactly as the store has it. */
  run: RunRecord;
  /** Its steps in order (`seq`), exactly as the store has them. */
  steps: StepRecord[];
  /** Every approval request of the run, oldest first, with its decision. */
  approvals: ApprovalRecord[];
  /** The run's audit trail, oldest first. */
  audit: AuditRow[];
  /** The lines the runbook and its steps logged (already redacted). */
  logs: LogEvent[];
}

/** An approval the run asked for, and what became of it. */
export interface RunbookTestApproval {
  /** The step that asked: an act step (a plan to approve) or a `step.approve` gate. */
  step: string;
  /** What the approver was shown: the plan's summary, or the gate's text. */
  summary: string;
  /** The hash of the plan the approval is bound to; absent for a `step.approve` gate, which has no plan. */
  planHash?: string;
  /**
   * `void`: the request was replaced by a new one because the world changed and the plan with it; the run
   * asked again (a second entry for the same step).
   */
  decision: 'approved' | 'rejected' | 'pending' | 'void';
  /** Who decided; `null` while pending or void. */
  decidedBy: string | null;
}

/** A message a `step.notify` sent (in `execute` mode; in other modes notify steps are skipped and not listed). */
export interface RunbookTestNotification {
  step: string;
  channel: string;
  message: string;
  severity?: Severity;
}

type ResultObject = Record<string, unknown>;

function resultObject(step: StepRecord): ResultObject | undefined {
  const r = step.result;
  return typeof r === 'object' && r !== null && !Array.isArray(r) ? (r as ResultObject) : undefined;
}

/** The finding in a check step's result, without what the engine stores beside it (an observation). */
function findingOf(step: StepRecord): Finding<Json> | undefined {
  const r = resultObject(step);
  if (step.kind !== 'check' || step.status !== 'succeeded' || !r || typeof r.status !== 'string') {
    return undefined;
  }
  return {
    status: r.status as FindingStatus,
    summary: String(r.summary ?? ''),
    evidence: (r.evidence ?? []) as Finding['evidence'],
    data: (r.data ?? null) as Json,
  };
}

/** The step an audit entry is about: its `step`, or for a decision on an approval, `data.step`. */
function stepOf(entry: AuditEntry): string | undefined {
  if (entry.step !== undefined) return entry.step;
  const data = entry.data as { step?: unknown } | null | undefined;
  return typeof data?.step === 'string' ? data.step : undefined;
}

/** `a check step`, `an approve step`. */
const kindOf = (step: StepRecord): string => `${/^[aeiou]/.test(step.kind) ? 'an' : 'a'} ${step.kind} step`;

function actPlanOf(step: StepRecord): Plan<Json> | undefined {
  return step.kind === 'act' ? planOf(step) : undefined;
}

/**
 * What {@link runRunbook} returns: a snapshot of a run read from the store once the run was over (or left
 * waiting for an approval), with accessors and assertions for tests.
 *
 * The assertions (`expect…`) throw a plain `Error` whose message says what was expected, what happened, and
 * what the run did step by step, so they read well in vitest, node:test or any other runner.
 */
export class RunbookTestRun {
  /** The run's id. */
  readonly runId: string;
  /** How the run stands: final (`succeeded`, `failed`, `escalated`, `cancelled`) or `waiting_approval`. */
  readonly status: RunStatus;
  /** How the run ended when its function returned (or escalated); `null` otherwise. */
  readonly outcome: Outcome | null;
  /** Why the run failed or was cancelled; `null` otherwise. */
  readonly error: ErrorInfo | null;
  /** The run, exactly as the store has it. */
  readonly run: RunRecord;
  /** Its steps in order, exactly as the store has them. */
  readonly steps: readonly StepRecord[];
  /** Every approval request, oldest first, as stored. {@link RunbookTestRun.approvalsAsked} is the short form. */
  readonly approvals: readonly ApprovalRecord[];
  /** The run's audit trail as stored (each row's `entry` is the hashed JSON text). */
  readonly audit: readonly AuditRow[];
  /** The audit trail's entries, parsed, oldest first. */
  readonly auditEntries: readonly AuditEntry[];
  /** The lines the runbook and its steps logged, in order (redacted as stored). */
  readonly logs: readonly LogEvent[];
  /** The finding of every check step that produced one, by step name. */
  readonly findings: Readonly<Record<string, Finding<Json>>>;
  /** The plan of every act step that recorded one, by step name (see {@link RunbookTestRun.plan}). */
  readonly plans: Readonly<Record<string, Plan<Json>>>;
  /** Names of the act steps whose action was applied (verified, if the action verifies), in order. */
  readonly applied: readonly string[];
  /** The approvals the run asked for, oldest first. */
  readonly approvalsAsked: readonly RunbookTestApproval[];
  /** The notifications `step.notify` sent, in order. */
  readonly notifications: readonly RunbookTestNotification[];

  /** Builds the snapshot from what the store holds (also from a recording of it). */
  constructor(record: RunbookTestRecord) {
    this.run = record.run;
    this.runId = record.run.id;
    this.status = record.run.status;
    this.outcome = record.run.outcome as Outcome | null;
    this.error = record.run.error;
    this.steps = record.steps;
    this.approvals = record.approvals;
    this.audit = record.audit;
    this.auditEntries = record.audit.map((row) => JSON.parse(row.entry) as AuditEntry);
    this.logs = record.logs;

    const findings: Record<string, Finding<Json>> = {};
    const plans: Record<string, Plan<Json>> = {};
    const applied: string[] = [];
    const notifications: RunbookTestNotification[] = [];
    for (const step of record.steps) {
      const f = findingOf(step);
      if (f) findings[step.name] = f;
      const p = actPlanOf(step);
      if (p) plans[step.name] = p;
      if (step.kind === 'act' && step.status === 'succeeded' && actState(step) === 'applied') {
        applied.push(step.name);
      }
      const r = resultObject(step);
      if (step.kind === 'notify' && step.status === 'succeeded' && r) {
        notifications.push({
          step: step.name,
          channel: String(r.channel),
          message: String(r.message),
          ...(typeof r.severity === 'string' ? { severity: r.severity as Severity } : {}),
        });
      }
    }
    this.findings = findings;
    this.plans = plans;
    this.applied = applied;
    this.notifications = notifications;
    this.approvalsAsked = record.approvals.map((a) => {
      const plan = a.plan as Partial<Plan<Json>> | null;
      const gate = plan?.action === 'manual-approval';
      return {
        step: a.step,
        summary: typeof plan?.summary === 'string' ? plan.summary : '',
        ...(gate ? {} : { planHash: a.planHash }),
        decision: a.status,
        decidedBy: a.decidedBy,
      };
    });
  }

  // ---- accessors ----

  /**
   * The finding of check step `step`. Throws an `Error` naming the step and listing the run's check steps
   * when there is none (no such step, not a check, or the check failed to run).
   */
  finding<T = Json>(step: string): Finding<T> {
    // Own keys only: a step named `constructor` must not find Object.prototype's.
    const found = Object.hasOwn(this.findings, step) ? this.findings[step] : undefined;
    if (found) return found as Finding<T>;
    const checks = this.steps.filter((s) => s.kind === 'check').map((s) => s.name);
    const record = this.#step(step);
    const why = !record
      ? 'the run has no step of that name'
      : record.kind !== 'check'
        ? `it is ${kindOf(record)}, not a check`
        : `the check did not produce one: ${describeStep(record)}`;
    throw this.#fail(`No finding for step "${step}": ${why}. The run's check steps: ${listNames(checks)}.`);
  }

  /**
   * The plan of act step `step`: planned (plan mode), noop, applied, or waiting for approval, failed or
   * reverted after it was made. Throws an `Error` naming the step when it has none (skipped in diagnose
   * mode, not an act step, never reached).
   */
  plan<P = Json>(step: string): Plan<P> {
    const found = Object.hasOwn(this.plans, step) ? this.plans[step] : undefined;
    if (found) return found as unknown as Plan<P>;
    const acts = this.steps.filter((s) => s.kind === 'act').map((s) => s.name);
    const record = this.#step(step);
    const why = !record
      ? 'the run has no step of that name'
      : record.kind !== 'act'
        ? `it is ${kindOf(record)}, not an act step`
        : `it recorded no plan: ${describeStep(record)}`;
    throw this.#fail(`No plan for step "${step}": ${why}. The run's act steps: ${listNames(acts)}.`);
  }

  // ---- assertions ----

  /** Asserts the run's status. */
  expectStatus(status: RunStatus): void {
    if (this.status !== status) {
      throw this.#fail(`Expected the run to be ${status}, but it is ${this.status}.`);
    }
  }

  /** Asserts the finding of check step `step` has `status`; returns the finding. */
  expectFinding<T = Json>(step: string, status: FindingStatus): Finding<T> {
    const found = this.finding<T>(step);
    if (found.status !== status) {
      throw this.#fail(
        `Expected the finding of check "${step}" to be ${status}, but it is ${found.status}: ${oneLine(found.summary, Number.POSITIVE_INFINITY)}`,
      );
    }
    return found;
  }

  /** Asserts that each of the act steps named was applied. */
  expectApplied(...steps: string[]): void {
    if (steps.length === 0) throw new TypeError('expectApplied: name at least one act step.');
    const missing = steps.filter((s) => !this.applied.includes(s));
    if (missing.length === 0) return;
    const what = missing.map((name) => {
      const record = this.#step(name);
      if (!record) return `"${name}" was never reached (no such step)`;
      if (record.kind !== 'act') return `"${name}" is ${kindOf(record)}, not an act step`;
      return `"${name}" is ${actState(record)}${record.error ? ` (${describeError(record.error)})` : ''}`;
    });
    throw this.#fail(
      `Expected ${listNames(steps)} to be applied, but ${what.join('; ')}. Applied: ${listNames(this.applied)}.`,
    );
  }

  /**
   * Asserts that each of the act steps named ran but was not applied: it was skipped (diagnose mode), only
   * planned (plan mode), a noop, failed, reverted, rejected, or is waiting for approval.
   *
   * A name that no step of the run has fails, as does a step of another kind: a misspelt name must not
   * pass. For a step the run is expected never to reach, say so with {@link RunbookTestRun.expectNotReached}.
   */
  expectNotApplied(...steps: string[]): void {
    if (steps.length === 0) throw new TypeError('expectNotApplied: name at least one act step.');
    const unreached = steps.filter((name) => !this.#step(name));
    const wrongKind = steps
      .map((name) => this.#step(name))
      .filter((s): s is StepRecord => s !== undefined && s.kind !== 'act');
    if (unreached.length > 0 || wrongKind.length > 0) {
      const problems = wrongKind.map((s) => `"${s.name}" is ${kindOf(s)}, not an act step`);
      if (unreached.length > 0) {
        const names = unreached.map((n) => `'${n}'`).join(', ');
        problems.unshift(
          `${unreached.length === 1 ? 'step' : 'steps'} ${listNames(unreached)} never ran; if that is what you expect, use expectNotReached(${names})`,
        );
      }
      const acts = this.steps.filter((s) => s.kind === 'act').map((s) => s.name);
      throw this.#fail(`expectNotApplied: ${problems.join('; ')}. The run's act steps: ${listNames(acts)}.`);
    }
    const applied = steps.filter((s) => this.applied.includes(s));
    if (applied.length === 0) return;
    const what = applied.map((name) => `"${name}" (${oneLine(this.plans[name]?.summary ?? '')})`);
    throw this.#fail(`Expected ${listNames(steps)} not to be applied, but ${what.join(', ')} was applied.`);
  }

  /**
   * Asserts that the run never reached any of the steps named (of any kind): it ended, or stopped to wait
   * for an approval, before them. Whether the runbook has such a step cannot be known from its run, so a
   * misspelt name passes too: pair this with an assertion on where the run stopped (`expectStatus`,
   * `expectFinding`, `outcome`).
   */
  expectNotReached(...steps: string[]): void {
    if (steps.length === 0) throw new TypeError('expectNotReached: name at least one step.');
    const reached = steps.map((name) => this.#step(name)).filter((s): s is StepRecord => s !== undefined);
    if (reached.length === 0) return;
    throw this.#fail(
      `Expected ${listNames(steps)} never to be reached, but the run reached ${reached.map((s) => describeStep(s)).join('; ')}.`,
    );
  }

  /**
   * Asserts that the run asked for an approval at `step` (and, given `decision`, that one such request was
   * decided so); returns the latest matching request.
   */
  expectApprovalAsked(step: string, decision?: RunbookTestApproval['decision']): RunbookTestApproval {
    const asked = this.approvalsAsked.filter(
      (a) => a.step === step && (decision === undefined || a.decision === decision),
    );
    const latest = asked.at(-1);
    if (latest) return latest;
    const seen = this.approvalsAsked.map(
      (a) => `"${a.step}" (${a.decision}${a.decidedBy ? ` by ${a.decidedBy}` : ''})`,
    );
    throw this.#fail(
      `Expected an approval to be asked for step "${step}"${decision ? ` and ${decision}` : ''}, but the run asked for: ${seen.length ? seen.join(', ') : 'none'}.`,
    );
  }

  /**
   * Asserts that the run's audit trail has an entry of `kind` (`action.applied`, `approval.requested`,
   * `step.act.skipped`, `run.succeeded`, …), about `step` when given (the entry's step; for a decision on an
   * approval, the step decided on); returns the first such entry.
   */
  expectAudit(kind: string, step?: string): AuditEntry {
    const found = this.auditEntries.find(
      (e) => e.kind === kind && (step === undefined || stepOf(e) === step),
    );
    if (found) return found;
    const trail = this.auditEntries.map((e) => (stepOf(e) ? `${e.kind} (${stepOf(e)})` : e.kind));
    throw this.#fail(
      `Expected an audit entry "${kind}"${step === undefined ? '' : ` for step "${step}"`}, but there is none. The run's audit trail: ${trail.join(', ') || 'empty'}.`,
    );
  }

  /**
   * The run as a replay fixture (what `runbook record` writes for a stored run), redacted: replay a changed
   * runbook against it with `replayRun` to see where its decisions differ.
   */
  fixture(options: RecordOptions = {}): RunFixture {
    return fixtureFromRun(this.run, this.steps, options);
  }

  /** The run and its steps, one line each: what the assertion messages end with. */
  toString(): string {
    return describeRun(this.run, this.steps);
  }

  #step(name: string): StepRecord | undefined {
    return this.steps.find((s) => s.name === name);
  }

  #fail(message: string): Error {
    return new Error(`${message}\n${this.toString()}`);
  }
}
