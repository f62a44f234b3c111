import { formatMillis, toMillis } from '../core/duration';
import {
  BudgetExhaustedError,
  CancelledError,
  DuplicateStepError,
  type ErrorInfo,
  fromErrorInfo,
  isCancelledError,
  isVerificationFailedError,
  LeaseLostError,
  ResourceLockedError,
  RunbookError,
  toErrorInfo,
  VerificationFailedError,
} from '../core/errors';
import type { TypedEvent } from '../core/events';
import { type Finding, finding } from '../core/finding';
import { canonicalJson, type Json, sha256 } from '../core/json';
import type { RetryOptions, StepOptions } from '../core/options';
import { type Plan, type PlanDraft, shortHash } from '../core/plan';
import type { Redactor } from '../core/redact';
import type {
  ActOptions,
  ActResult,
  ApprovalRequest,
  ApproveResult,
  Notification,
  Outcome,
  Runbook,
  StepTools,
} from '../core/runbook';
import { sleep } from '../core/sleep';
import {
  type Action,
  type Applied,
  asObservation,
  type Check,
  isReplayableCheck,
  type StepContext,
} from '../core/step';
import type {
  AuditEntry,
  Fence,
  RunRecord,
  RunStatus,
  StepKind,
  StepRecord,
  StepWrite,
} from '../store/records';
import type { RunStore } from '../store/run-store';
import { type ApprovalPolicy, needsApproval } from './approval-policy';
import type {
  ApprovalRequestedEvent,
  LogEvent,
  Notifier,
  RetryEvent,
  RunEndEvent,
  StepEndEvent,
  StepStartEvent,
} from './events';
import { newId } from './ids';
import { nextRetry, retryPolicy, untilSettled, withDeadline } from './retry';
import { sealRedacted } from './seal';
import {
  EscalateSignal,
  giveUp,
  HandOverSignal,
  isControlSignal,
  StopReplay,
  SuspendSignal,
} from './signals';
import { assertFinding, planAudit, summarize } from './step-results';

/** Asks the operator to confirm a plan that policy lets them apply alone (the CLI's "Apply? [y/N]"). */
export type ConfirmPlan = (plan: Plan<Json>, step: { runId: string; step: string }) => Promise<boolean>;

/** The engine's typed events. */
export interface EngineEvents {
  stepStart: TypedEvent<StepStartEvent>;
  stepEnd: TypedEvent<StepEndEvent>;
  retry: TypedEvent<RetryEvent>;
  approvalRequested: TypedEvent<ApprovalRequestedEvent>;
  runEnd: TypedEvent<RunEndEvent>;
  log: TypedEvent<LogEvent>;
}

/** What a run execution needs from its engine. */
export interface ExecutionEnv {
  store: RunStore;
  leaseTtlMs: number;
  approvals: ApprovalPolicy;
  budgetFor(action: Action<unknown, unknown>): { max: number; perMs: number } | null;
  notifier: Notifier;
  redactor: Redactor;
  events: EngineEvents;
  confirm: ConfirmPlan | undefined;
  random: () => number;
}

/** How an execution of a run ended. */
export interface RunResult {
  runId: string;
  runbookId: string;
  status: RunStatus;
  outcome: Outcome | null;
  error: ErrorInfo | null;
  /** Set when the run waits for approval. */
  pendingApproval?: { step: string; approvalId: string; plan: Plan<Json> };
  /** Set when the run was not started but found by its idempotency key (see `StartOptions`). */
  replayed?: boolean;
  /**
   * Set when this engine stopped executing the run without ending it ({@link Engine.handOver}): the run is
   * `queued` again for any engine to resume.
   */
  handedOver?: boolean;
}

/** Runs an apply-phase call (apply, verify, revert) with the step's context, to its end. */
type Settle = <T>(what: string, work: (ctx: StepContext) => Promise<T>) => Promise<T>;

/**
 * Whether an interrupted apply of `interrupted` had taken effect, judged from a fresh plan: every field it
 * was to change now holds the value it was to set (the fresh plan either leaves that field alone or starts
 * from that value). This also recognises actions that never converge to "no changes", like a restart whose
 * plan always moves `restartedAt` forward.
 */
function tookEffect(interrupted: Plan<unknown>, fresh: Plan<unknown>): boolean {
  return interrupted.changes.every((change) => {
    const now = fresh.changes.find((c) => c.target === change.target && c.field === change.field);
    return now === undefined || canonicalJson(now.before) === canonicalJson(change.after);
  });
}

/**
 * Whether `fresh` was planned from the same world as `earlier`: the same action and target, the same fields
 * to change, and each field still holding the `before` value `earlier` saw. The `after` values may differ
 * (a timestamp chosen at plan time); `earlier` is then still the plan to apply.
 */
function sameStartingPoint(earlier: Plan<unknown>, fresh: Plan<unknown>): boolean {
  if (earlier.action !== fresh.action || earlier.target !== fresh.target) return false;
  if (earlier.changes.length !== fresh.changes.length) return false;
  const seen = new Map(earlier.changes.map((c) => [`${c.target}\u0000${c.field}`, canonicalJson(c.before)]));
  return fresh.changes.every((c) => seen.get(`${c.target}\u0000${c.field}`) === canonicalJson(c.before));
}

/** In revert mode the execution only replays, until the target act step hands over its action. */
export interface RevertTarget {
  step: string;
  onAction(action: Action<unknown, unknown>, record: StepRecord): void;
}

const FINAL_STEP = new Set(['succeeded', 'failed', 'skipped']);
/** How long a stopping run waits for its function to reach a step when no apply is in flight. */
const DRAIN_GRACE_MS = 5_000;

/**
 * One execution of a run's function: the step tools, durable replay, retries, approvals, locks, budgets,
 * verify and revert. A fresh instance is used for every (re)execution of a run.
 */
export class RunExecution {
  readonly #env: ExecutionEnv;
  readonly #run: RunRecord;
  readonly #runbook: Runbook;
  readonly #recorded: Map<string, StepRecord>;
  readonly #seen = new Set<string>();
  readonly #controller = new AbortController();
  /**
   * Aborts apply, verify and revert calls: on cancel, timeout or lost lease, not on a hand-over, which lets
   * a change in flight complete (the next owner finds it made) rather than interrupting it half-way.
   */
  readonly #applyController = new AbortController();
  readonly #revert: RevertTarget | undefined;
  /** The control signal raised, kept in case the runbook catches it. */
  #raised: SuspendSignal | EscalateSignal | undefined;
  #pendingApproval: RunResult['pendingApproval'];
  #confirmed = new Set<string>();
  /** True from the apply marker until the step's outcome is recorded. */
  #applying = false;
  readonly #seqs: Map<string, number>;
  #lastSeq: number;

  constructor(
    env: ExecutionEnv,
    run: RunRecord,
    runbook: Runbook,
    steps: StepRecord[],
    options: { revert?: RevertTarget } = {},
  ) {
    this.#env = env;
    this.#run = run;
    this.#runbook = runbook;
    this.#recorded = new Map(steps.map((s) => [s.name, s]));
    this.#seqs = new Map(steps.map((s) => [s.name, s.seq]));
    this.#lastSeq = Math.max(0, ...steps.map((s) => s.seq));
    this.#revert = options.revert;
  }

  /** The run's signal; aborts on cancellation, timeout or lost lease. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /**
   * Stops the execution with `reason`: a `CancelledError`, `TimeoutError` or `LeaseLostError` ends it; a
   * {@link HandOverSignal} stops it at the next safe point and releases the run, which stays unfinished.
   */
  abort(reason: RunbookError | HandOverSignal): void {
    // A cancel after a hand-over must still reach an apply in flight.
    if (!(reason instanceof HandOverSignal) && !this.#applyController.signal.aborted) {
      this.#applyController.abort(reason);
    }
    if (!this.#controller.signal.aborted) this.#controller.abort(reason);
  }

  /** Replays the run's function up to the revert target (no writes). */
  async replayForRevert(): Promise<void> {
    try {
      await this.#runbook.run(this.#context());
    } catch (e) {
      if (!(e instanceof StopReplay)) throw e;
    }
  }

  /** Runs the function to its end (or suspension) and records how the run ended. */
  async execute(externalSignal?: AbortSignal): Promise<RunResult> {
    const run = this.#run;
    const runTimeoutMs = toMillis(this.#runbook.timeout ?? '30m');
    // Someone asked to cancel while the run was parked or between owners: honour it before anything runs.
    if (run.cancelRequested) this.abort(new CancelledError(run.cancelRequested));
    const onExternal = () => this.abort(new CancelledError('the caller aborted'));
    externalSignal?.addEventListener('abort', onExternal, { once: true });
    if (externalSignal?.aborted) onExternal();
    const heartbeat = setInterval(
      () => void this.#beat(),
      Math.max(50, Math.floor(this.#env.leaseTtlMs / 3)),
    );
    heartbeat.unref?.();
    // Measured from this execution's start: time spent waiting for an approval does not count.
    const deadline = setTimeout(
      () =>
        this.abort(
          new RunbookError(
            'TIMEOUT',
            `Run ${run.id} exceeded its ${formatMillis(runTimeoutMs)} timeout. Raise the runbook's \`timeout\` if it legitimately needs longer.`,
            { retriable: false },
          ),
        ),
      runTimeoutMs,
    );
    deadline.unref?.();

    try {
      let outcome: Outcome | null = null;
      let failure: unknown;
      const running = this.#runbook.run(this.#context());
      try {
        const returned = await withDeadline(`Run ${run.id}`, undefined, this.signal, () => running);
        outcome = returned ?? { kind: 'done', summary: 'completed' };
      } catch (e) {
        failure = e;
        if (this.signal.aborted) await this.#drain(running);
      }
      // A suspension or escalation the runbook caught and swallowed still takes effect.
      if (this.#raised && !(failure instanceof LeaseLostError)) failure = this.#raised;
      return await this.#finish(outcome, failure);
    } finally {
      clearInterval(heartbeat);
      clearTimeout(deadline);
      externalSignal?.removeEventListener('abort', onExternal);
    }
  }

  /**
   * After a cancel or timeout: lets the run function reach its next step, where it stops. While an apply
   * is in flight that means waiting for the apply to settle and be recorded, so the run never ends (and
   * frees its locks) with a change half made; otherwise the wait is short.
   */
  async #drain(running: Promise<unknown>): Promise<void> {
    const settled = running.then(
      () => {},
      () => {},
    );
    if (this.#applying) return settled;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([settled, new Promise<void>((r) => (timer = setTimeout(r, DRAIN_GRACE_MS)))]);
    clearTimeout(timer);
  }

  async #finish(outcome: Outcome | null, failure: unknown): Promise<RunResult> {
    const run = this.#run;
    const base = { runId: run.id, runbookId: run.runbookId };
    if (failure instanceof LeaseLostError || this.signal.reason instanceof LeaseLostError) {
      // Another process owns the run now; it will record the ending.
      return { ...base, status: 'running', outcome: null, error: toErrorInfo(new LeaseLostError(run.id)) };
    }
    const handOver = this.signal.reason;
    if (
      handOver instanceof HandOverSignal &&
      failure !== undefined &&
      !(failure instanceof SuspendSignal || failure instanceof EscalateSignal)
    ) {
      // Stopped by the hand-over (not by a failure of its own): the run is not over, so nothing is ended.
      return this.#release(handOver);
    }
    if (failure instanceof SuspendSignal) {
      const ok = await this.#env.store.suspendRun(
        this.#fence(),
        this.#audit('run.suspended', failure.step, { approvalId: failure.approvalId }),
      );
      if (!ok)
        return { ...base, status: 'running', outcome: null, error: toErrorInfo(new LeaseLostError(run.id)) };
      this.#emitRunEnd('waiting_approval', null, null);
      return {
        ...base,
        status: 'waiting_approval',
        outcome: null,
        error: null,
        ...(this.#pendingApproval ? { pendingApproval: this.#pendingApproval } : {}),
      };
    }

    let status: Extract<RunStatus, 'succeeded' | 'failed' | 'escalated' | 'cancelled'>;
    let error: ErrorInfo | null = null;
    if (failure instanceof EscalateSignal) {
      outcome = failure.escalation;
      status = 'escalated';
      if (failure.cause !== undefined) error = this.#env.redactor.redact(toErrorInfo(failure.cause));
    } else if (failure !== undefined) {
      const reason = this.signal.aborted ? this.signal.reason : failure;
      status = isCancelledError(reason) ? 'cancelled' : 'failed';
      error = this.#env.redactor.redact(toErrorInfo(reason));
      outcome = null;
    } else {
      status = outcome?.kind === 'escalate' ? 'escalated' : 'succeeded';
    }

    if (status === 'escalated' && outcome?.kind === 'escalate' && run.mode === 'execute') {
      await this.#env.notifier
        .notify({
          kind: 'escalate',
          runId: run.id,
          runbookId: run.runbookId,
          channel: outcome.to ?? 'pager',
          message: this.#env.redactor.redactText(outcome.reason),
          severity: outcome.severity ?? this.#runbook.severity,
        })
        .catch(() => {
          // The escalation is recorded in the run and the audit log even when delivery fails.
        });
    }
    const storedOutcome = outcome ? (this.#env.redactor.redact(outcome) as unknown as Json) : null;
    const ok = await this.#env.store.finishRun(
      this.#fence(),
      status,
      storedOutcome,
      error,
      this.#audit(`run.${status}`, undefined, { outcome: storedOutcome, error: error as Json | null }),
    );
    if (!ok)
      return { ...base, status: 'running', outcome: null, error: toErrorInfo(new LeaseLostError(run.id)) };
    this.#emitRunEnd(status, storedOutcome, error);
    return { ...base, status, outcome, error };
  }

  /**
   * Puts the run back in the queue (fenced by this execution's lease) so that any engine claims it at once
   * instead of waiting for the lease to expire. Steps stay as recorded: an apply interrupted at its
   * `applying` marker is judged by the next owner's fresh plan, checks in flight simply run again.
   */
  async #release(handOver: HandOverSignal): Promise<RunResult> {
    const run = this.#run;
    const base = { runId: run.id, runbookId: run.runbookId };
    const fence = this.#fence();
    let released: boolean;
    try {
      released = await this.#env.store.releaseRun(
        fence,
        this.#audit('run.handed-over', undefined, { reason: handOver.reason, from: fence.owner }),
      );
    } catch (e) {
      // Neither the release nor its audit entry was written (one statement). The run stays `running` under
      // this lease, so another engine resumes it once the lease expires; the missing entry must be heard.
      const error = this.#env.redactor.redact(toErrorInfo(e));
      this.#log(
        null,
        `hand-over failed: run ${run.id} was not released and no run.handed-over audit entry was written (${error.message}); another engine resumes it when its lease expires`,
        { runId: run.id, error: error.message },
      );
      return { ...base, status: 'running', outcome: null, error };
    }
    if (!released) {
      return { ...base, status: 'running', outcome: null, error: toErrorInfo(new LeaseLostError(run.id)) };
    }
    return { ...base, status: 'queued', outcome: null, error: null, handedOver: true };
  }

  async #beat(): Promise<void> {
    try {
      const beat = await this.#env.store.heartbeat(this.#fence());
      if (!beat.held) this.abort(new LeaseLostError(this.#run.id));
      else if (beat.cancelRequested) this.abort(new CancelledError(beat.cancelRequested));
    } catch {
      // A failed heartbeat (database blip) is retried at the next tick; the lease outlives a few misses.
    }
  }

  #emitRunEnd(status: RunStatus, outcome: Json | null, error: ErrorInfo | null): void {
    const run = this.#run;
    this.#env.events.runEnd.emit({
      runId: run.id,
      runbookId: run.runbookId,
      mode: run.mode,
      status,
      outcome,
      error,
    });
  }

  // ---- context and step tools ----

  #context() {
    const run = this.#run;
    const step: StepTools = {
      check: (name, check, options) => this.#check(name, check, options),
      act: (name, action, options) => this.#act(name, action as Action<unknown, unknown>, options) as never,
      approve: (name, request) => this.#approve(name, request),
      notify: (name, notification) => this.#notify(name, notification),
      sleep: (name, duration) => this.#sleep(name, toMillis(duration)),
      escalate: (reason, options = {}) => ({ kind: 'escalate', reason, ...options }),
      done: (summary) => ({ kind: 'done', summary }),
    };
    return {
      input: run.input as never,
      step,
      mode: run.mode,
      runId: run.id,
      actor: run.requestedBy,
      signal: this.signal,
      log: (message: string, data?: Record<string, unknown>) => this.#log(null, message, data),
    };
  }

  #log(step: string | null, message: string, data?: Record<string, unknown>): void {
    const redactor = this.#env.redactor;
    this.#env.events.log.emit({
      runId: this.#run.id,
      step,
      message: redactor.redactText(message),
      ...(data ? { data: redactor.redact(data) } : {}),
    });
  }

  #stepContext(step: string, attempt: number, signal: AbortSignal): StepContext {
    return {
      runId: this.#run.id,
      runbookId: this.#run.runbookId,
      step,
      mode: this.#run.mode,
      attempt,
      actor: this.#run.requestedBy,
      signal,
      log: (message, data) => this.#log(step, message, data),
    };
  }

  /** Every write of this execution carries its claim's token: a run claimed by anyone else refuses them. */
  #fence(): Fence {
    const now = new Date();
    return {
      runId: this.#run.id,
      owner: this.#run.leaseOwner ?? '',
      now,
      leaseUntil: new Date(now.getTime() + this.#env.leaseTtlMs),
    };
  }

  #audit(kind: string, step?: string, data?: Json): AuditEntry {
    return {
      ts: new Date().toISOString(),
      actor: this.#run.requestedBy,
      kind,
      runId: this.#run.id,
      ...(step === undefined ? {} : { step }),
      ...(data === undefined ? {} : { data: this.#env.redactor.redact(data) }),
    };
  }

  /** A step's position in the run: kept from its first record, else next after every step seen so far. */
  #seqOf(name: string): number {
    let seq = this.#seqs.get(name);
    if (seq === undefined) {
      seq = ++this.#lastSeq;
      this.#seqs.set(name, seq);
    }
    return seq;
  }

  /** Claims a step name for this execution and returns its stored record, if any. */
  #enter(name: string): StepRecord | undefined {
    // A suspension or escalation the runbook caught does not let it go on acting.
    if (this.#raised) throw this.#raised;
    if (this.#seen.has(name)) throw new DuplicateStepError(this.#runbook.id, name);
    this.#seen.add(name);
    const recorded = this.#recorded.get(name);
    if (this.#revert && (!recorded || !FINAL_STEP.has(recorded.status))) throw new StopReplay();
    return recorded;
  }

  /** Returns a final step's stored result (or throws its stored error), as on the first execution. */
  #replay<R>(record: StepRecord): R {
    this.#env.events.stepEnd.emit({
      runId: this.#run.id,
      runbookId: this.#run.runbookId,
      step: record.name,
      kind: record.kind,
      status: record.status,
      replayed: true,
      durationMs: 0,
      summary: summarize(record.result, record.error),
      result: kept(record.kind, record.result),
      error: record.error,
    });
    if (record.status === 'failed' && record.error) throw fromErrorInfo(record.error);
    return record.result as R;
  }

  /** Writes a step; a lost lease stops the execution. */
  async #record(
    kind: StepKind,
    name: string,
    write: Omit<StepWrite, 'name' | 'kind' | 'seq'>,
    audit: AuditEntry,
  ) {
    const step: StepWrite = {
      ...write,
      name,
      seq: this.#seqOf(name),
      kind,
      result: this.#env.redactor.redact(write.result),
      error: write.error ? this.#env.redactor.redact(write.error) : null,
    };
    if (!(await this.#env.store.recordStep(this.#fence(), step, audit)))
      throw new LeaseLostError(this.#run.id);
    this.#recorded.set(name, { ...step, runId: this.#run.id });
    return step;
  }

  /** Records a step that has ended (from `started` until now) and reports its end. */
  async #complete(
    kind: StepKind,
    name: string,
    started: number,
    outcome: Pick<StepWrite, 'status' | 'result' | 'error' | 'attempts'>,
    audit: AuditEntry,
  ): Promise<StepWrite> {
    const step = await this.#record(
      kind,
      name,
      { ...outcome, startedAt: new Date(started), endedAt: new Date() },
      audit,
    );
    this.#emitEnd(kind, name, started, step);
    return step;
  }

  #emitEnd(
    kind: StepKind,
    name: string,
    started: number,
    step: Pick<StepWrite, 'status' | 'result' | 'error'>,
  ) {
    this.#env.events.stepEnd.emit({
      runId: this.#run.id,
      runbookId: this.#run.runbookId,
      step: name,
      kind,
      status: step.status,
      replayed: false,
      durationMs: Date.now() - started,
      summary: summarize(step.result, step.error),
      result: kept(kind, step.result),
      error: step.error,
    });
  }

  /**
   * Runs `work` with the step's retry policy and timeout. Each attempt gets a signal that aborts on the
   * step timeout or the run's end. Control signals and run aborts pass straight through.
   */
  async #attempts<T>(
    name: string,
    kind: StepKind,
    options: StepOptions | undefined,
    work: (ctx: StepContext) => Promise<T>,
  ): Promise<T> {
    const policy = retryPolicy(options?.retry);
    const timeoutMs = options?.timeout === undefined ? undefined : toMillis(options.timeout);
    for (let attempt = 1; ; attempt++) {
      this.#env.events.stepStart.emit({
        runId: this.#run.id,
        runbookId: this.#run.runbookId,
        step: name,
        kind,
        attempt,
      });
      try {
        return await withDeadline(`Step "${name}"`, timeoutMs, this.signal, (signal) =>
          work(this.#stepContext(name, attempt, signal)),
        );
      } catch (e) {
        if (isControlSignal(e) || this.signal.aborted) throw this.signal.aborted ? this.signal.reason : e;
        if (!(await this.#retryAfter(name, attempt, policy, e))) throw e;
      }
    }
  }

  /** After failed attempt `attempt`: when the policy allows another, reports it, waits the backoff, and says so. */
  async #retryAfter(name: string, attempt: number, policy: RetryOptions, e: unknown): Promise<boolean> {
    const next = nextRetry(e, attempt, policy, this.#env.random);
    if (!next.retry) return false;
    this.#env.events.retry.emit({
      runId: this.#run.id,
      step: name,
      attempt,
      delayMs: next.delayMs,
      error: this.#env.redactor.redact(toErrorInfo(e)),
    });
    await sleep(next.delayMs, this.signal);
    return true;
  }

  // ---- check ----

  async #check<T>(name: string, check: Check<T>, options?: StepOptions): Promise<Finding<T>> {
    const recorded = this.#enter(name);
    if (recorded && FINAL_STEP.has(recorded.status)) return withoutObservation(this.#replay(recorded));
    const started = Date.now();
    try {
      const redactor = this.#env.redactor;
      const judged = await this.#attempts(name, 'check', options, (ctx) => observeAndJudge(check, ctx));
      // The runbook gets the finding exactly as stored, so a resumed run sees the same values.
      const result = redactor.redact(assertFinding(name, judged.finding));
      const stored = forReplays(check, result, judged.observation, redactor);
      await this.#complete(
        'check',
        name,
        started,
        { status: 'succeeded', result: stored, error: null, attempts: 1 },
        this.#audit('step.check', name, {
          check: check.kind,
          status: result.status,
          summary: result.summary,
        }),
      );
      return result;
    } catch (e) {
      throw await this.#recordFailure('check', name, started, e);
    }
  }

  /** Records a step's failure (unless the run itself is stopping) and returns the error to throw. */
  async #recordFailure(kind: StepKind, name: string, started: number, e: unknown): Promise<unknown> {
    if (isControlSignal(e) || e instanceof LeaseLostError || this.signal.aborted) return e;
    const error = toErrorInfo(e);
    await this.#complete(
      kind,
      name,
      started,
      {
        status: 'failed',
        result: null,
        error,
        attempts: 1,
      },
      this.#audit(`step.${kind}.failed`, name, { error: error as unknown as Json }),
    );
    return e;
  }

  // ---- act ----

  async #act(
    name: string,
    action: Action<unknown, unknown>,
    options: ActOptions = {},
  ): Promise<ActResult<unknown, unknown>> {
    const recorded = this.#enter(name);
    if (this.#revert?.step === name && recorded) {
      this.#revert.onAction(action, recorded);
      throw new StopReplay();
    }
    if (recorded && FINAL_STEP.has(recorded.status)) return this.#replay(recorded);
    const started = Date.now();
    const mode = this.#run.mode;

    if (mode === 'diagnose') {
      const result = { status: 'skipped' } as const;
      await this.#complete(
        'act',
        name,
        started,
        {
          status: 'skipped',
          result: { ...result, action: action.kind, target: action.target },
          error: null,
          attempts: 0,
        },
        this.#audit('step.act.skipped', name, { action: action.kind, target: action.target }),
      );
      return result;
    }

    if (mode === 'plan') {
      try {
        const plan = await this.#attempts(name, 'act', options, async (ctx) =>
          this.#seal(action, await action.plan(ctx)),
        );
        const result = { status: 'planned', plan } as const;
        await this.#complete(
          'act',
          name,
          started,
          { status: 'succeeded', result: result as unknown as Json, error: null, attempts: 1 },
          this.#audit('plan.recorded', name, planAudit(plan)),
        );
        return result;
      } catch (e) {
        throw await this.#recordFailure('act', name, started, e);
      }
    }

    return this.#execute(name, action, options, recorded, started);
  }

  /**
   * Execute mode. Each attempt re-plans from the world as it is, so a retried or resumed apply never acts on
   * a stale plan. If an earlier attempt was interrupted mid-apply (`applying` in the store), the new plan
   * tells what happened: no changes left means the apply took effect (it is recorded as recovered and
   * verified, not applied again); the same plan means it did not (apply it); a different plan is a new plan
   * and goes through approval again.
   */
  async #execute(
    name: string,
    action: Action<unknown, unknown>,
    options: ActOptions,
    recorded: StepRecord | undefined,
    started: number,
  ): Promise<ActResult<unknown, unknown>> {
    const policy = retryPolicy(options.retry);
    const timeoutMs = options.timeout === undefined ? undefined : toMillis(options.timeout);
    let interrupted =
      recorded?.status === 'applying'
        ? (recorded.result as { plan?: Plan<unknown> } | null)?.plan
        : undefined;
    let lastPlan: Plan<unknown> | undefined;
    let holdsLock = false;

    for (let attempt = 1; ; attempt++) {
      this.#env.events.stepStart.emit({
        runId: this.#run.id,
        runbookId: this.#run.runbookId,
        step: name,
        kind: 'act',
        attempt,
      });
      const stepContext = (signal: AbortSignal) => this.#stepContext(name, attempt, signal);
      const planNow = () =>
        withDeadline(`Step "${name}" (plan)`, timeoutMs, this.signal, async (signal) =>
          this.#seal(action, await action.plan(stepContext(signal))),
        );
      // Once the apply has begun, apply, verify and revert are seen through to the end (see untilSettled).
      const settled: Settle = (what, work) =>
        untilSettled(`Step "${name}" (${what})`, timeoutMs, this.#applyController.signal, (signal) =>
          work(stepContext(signal)),
        );
      try {
        let plan = await planNow();
        lastPlan = plan;

        if (plan.changes.length === 0 && !interrupted) {
          const result = { status: 'noop', plan } as const;
          await this.#complete(
            'act',
            name,
            started,
            { status: 'succeeded', result: result as unknown as Json, error: null, attempts: attempt },
            this.#audit('action.noop', name, planAudit(plan)),
          );
          return result;
        }

        let applied: Applied<unknown, unknown>;
        if (interrupted && tookEffect(interrupted, plan)) {
          // The interrupted apply took effect: re-take the lock (no budget spent twice) and verify it.
          await this.#begin(name, action, interrupted, attempt, started, false);
          holdsLock = true;
          applied = { plan: interrupted, data: null, appliedAt: new Date().toISOString(), recovered: true };
          this.#log(
            name,
            `apply of plan ${shortHash(interrupted.hash)} had taken effect before the interruption; not applying it again`,
          );
        } else {
          if (this.#run.approval === 'always' || needsApproval(this.#env.approvals, plan)) {
            plan = (await this.#ensureApproved(name, plan as Plan<Json>, started)).plan as Plan<unknown>;
          } else if (await this.#confirm(name, plan as Plan<Json>)) {
            // The operator took their time: apply what they confirmed only if the world still starts there.
            const fresh = await planNow();
            if (!sameStartingPoint(plan, fresh)) {
              this.#log(
                name,
                `the world changed while plan ${shortHash(plan.hash)} waited for confirmation; asking again`,
              );
              continue;
            }
          }
          await this.#begin(name, action, plan, attempt, started, true);
          holdsLock = true;
          interrupted = plan;
          const current = plan;
          const data = await settled('apply', (ctx) => action.apply(ctx, current));
          applied = {
            plan,
            data: this.#env.redactor.redact(data ?? null),
            appliedAt: new Date().toISOString(),
            recovered: false,
          };
        }
        return await this.#verifyAndFinish(name, action, options, applied, attempt, started, settled);
      } catch (e) {
        if (isControlSignal(e) || e instanceof LeaseLostError) throw e;
        // Handed over: the step stays as stored (`applying` if the apply began) for the next owner to judge.
        if (this.signal.reason instanceof HandOverSignal) throw this.signal.reason;
        if (this.signal.aborted) {
          // The apply (if any) has settled: record how it ended and free the lock before the run stops.
          if (holdsLock) await this.#failAction(name, action, lastPlan, attempt, started, e, holdsLock);
          throw this.signal.reason;
        }
        if (isCancelledError(e)) {
          // The operator declined the plan: the run is cancelled, not escalated.
          await this.#failAction(name, action, lastPlan, attempt, started, e, holdsLock);
          throw e;
        }
        if (!isVerificationFailedError(e) && (await this.#retryAfter(name, attempt, policy, e))) continue;
        if (!isVerificationFailedError(e)) {
          await this.#failAction(name, action, lastPlan, attempt, started, e, holdsLock);
        }
        throw giveUp(e, options.onGiveUp);
      }
    }
  }

  /**
   * Seals a plan from what the store will keep: secrets in it are redacted (by name, by shape, and the
   * `before`/`after` of a change to a secret-named field), so the hash, the approval, the apply and a
   * replay all see the same plan. Actions read the secrets they need at apply time, not from the plan.
   */
  #seal(action: Action<unknown, unknown>, draft: PlanDraft<unknown>): Plan<unknown> {
    return sealRedacted(action, draft, this.#env.redactor);
  }

  /** Lock, budget and the `applying` marker, in one write. */
  async #begin(
    name: string,
    action: Action<unknown, unknown>,
    plan: Plan<unknown>,
    attempt: number,
    started: number,
    spendBudget: boolean,
  ): Promise<void> {
    const fence = this.#fence();
    const budget = spendBudget ? this.#env.budgetFor(action) : null;
    const begin = await this.#env.store.beginAction(
      fence,
      {
        name,
        seq: this.#seqOf(name),
        kind: 'act',
        status: 'applying',
        result: this.#env.redactor.redact({ plan } as unknown as Json),
        error: null,
        attempts: attempt,
        startedAt: new Date(started),
        endedAt: null,
      },
      { resource: action.target, until: fence.leaseUntil },
      budget
        ? { action: action.kind, max: budget.max, windowStart: new Date(fence.now.getTime() - budget.perMs) }
        : null,
      this.#audit('action.applying', name, planAudit(plan)),
    );
    if (begin.ok) {
      this.#applying = true;
      // Cancelled while the marker was being written: stop before the apply starts.
      if (this.signal.aborted) throw this.signal.reason;
      return;
    }
    if (begin.reason === 'lease-lost') throw new LeaseLostError(this.#run.id);
    if (begin.reason === 'locked') {
      throw new ResourceLockedError(
        action.target,
        begin.holder.runId,
        begin.holder.step,
        begin.holder.expiresAt,
      );
    }
    const budgetRule = budget as { max: number; perMs: number };
    throw new BudgetExhaustedError(
      action.target,
      action.kind,
      budgetRule.max,
      formatMillis(budgetRule.perMs),
    );
  }

  async #verifyAndFinish(
    name: string,
    action: Action<unknown, unknown>,
    options: ActOptions,
    applied: Applied<unknown, unknown>,
    attempt: number,
    started: number,
    settled: Settle,
  ): Promise<ActResult<unknown, unknown>> {
    // The apply has settled and the step is still `applying`: the next owner re-plans, sees the change made,
    // and verifies it itself (an unverified "applied" record would skip that).
    if (this.signal.reason instanceof HandOverSignal) throw this.signal.reason;
    const verify = action.verify;
    let verification: Finding<Json> | undefined;
    if (verify && this.signal.aborted) {
      verification = finding('unknown', 'not verified: the run was stopped right after the apply', null);
    } else if (verify) {
      verification = await settled('verify', async (ctx) =>
        this.#env.redactor.redact(assertFinding(name, await verify.call(action, ctx, applied))),
      ).catch(
        (e): Finding<Json> =>
          finding(
            'unknown',
            `verification could not run: ${e instanceof Error ? e.message : String(e)}`,
            null,
          ),
      );
    }
    const base = { startedAt: new Date(started), endedAt: new Date(), attempts: attempt };
    const redact = this.#env.redactor.redact;

    // A change whose effect cannot be confirmed is handed to a human; only a verified failure is reverted.
    const undetermined = verification?.status === 'unknown' && !this.signal.aborted;
    if (verification?.status === 'fail' || undetermined) {
      let reverted = false;
      let revertError: unknown;
      if (action.revert && !undetermined) {
        const revert = action.revert;
        try {
          await settled('revert', (ctx) => revert.call(action, ctx, applied));
          reverted = true;
        } catch (e) {
          revertError = e;
        }
      }
      const failure = new VerificationFailedError(name, verification?.summary ?? '', reverted);
      const step: StepWrite = {
        ...base,
        name,
        seq: this.#seqOf(name),
        kind: 'act',
        status: 'failed',
        result: redact({
          status: reverted ? 'reverted' : 'verification-failed',
          plan: applied.plan,
          verification,
        } as unknown as Json),
        error: redact(toErrorInfo(revertError ?? failure)),
      };
      await this.#finishAction(
        step,
        action.target,
        null,
        reverted ? 'action.reverted' : 'action.verify-failed',
        {
          ...planAudit(applied.plan),
          verification: verification?.summary ?? null,
          ...(revertError ? { revertError: toErrorInfo(revertError).message } : {}),
        },
      );
      this.#emitEnd('act', name, started, step);
      throw giveUp(failure, options.onGiveUp);
    }

    const result = {
      status: 'applied',
      plan: applied.plan,
      applied,
      ...(verification ? { verification } : {}),
    } as const;
    const expiresMs = action.expiresAfter === undefined ? undefined : toMillis(action.expiresAfter);
    const step: StepWrite = {
      ...base,
      name,
      seq: this.#seqOf(name),
      kind: 'act',
      status: 'succeeded',
      result: redact(result as unknown as Json),
      error: null,
    };
    await this.#finishAction(
      step,
      action.target,
      expiresMs === undefined ? null : { action: action.kind, revertAt: new Date(Date.now() + expiresMs) },
      applied.recovered ? 'action.recovered' : 'action.applied',
      { ...planAudit(applied.plan), ...(verification ? { verification: verification.status } : {}) },
    );
    this.#emitEnd('act', name, started, step);
    return result as ActResult<unknown, unknown>;
  }

  async #finishAction(
    step: StepWrite,
    resource: string,
    expiring: { action: string; revertAt: Date } | null,
    auditKind: string,
    auditData: Json,
  ): Promise<void> {
    try {
      const ok = await this.#env.store.finishAction(
        this.#fence(),
        step,
        resource,
        expiring,
        this.#audit(auditKind, step.name, auditData),
      );
      if (!ok) throw new LeaseLostError(this.#run.id);
      this.#recorded.set(step.name, { ...step, runId: this.#run.id });
    } finally {
      this.#applying = false;
    }
  }

  /** Records an act step that gave up, releasing the lock it may hold. */
  async #failAction(
    name: string,
    action: Action<unknown, unknown>,
    plan: Plan<unknown> | undefined,
    attempt: number,
    started: number,
    e: unknown,
    holdsLock: boolean,
  ): Promise<void> {
    const step: StepWrite = {
      name,
      seq: this.#seqOf(name),
      kind: 'act',
      status: 'failed',
      result: plan ? this.#env.redactor.redact({ status: 'failed', plan } as unknown as Json) : null,
      error: this.#env.redactor.redact(toErrorInfo(e)),
      attempts: attempt,
      startedAt: new Date(started),
      endedAt: new Date(),
    };
    const data = {
      ...(plan ? planAudit(plan) : { action: action.kind, target: action.target }),
      error: toErrorInfo(e).message,
    };
    if (holdsLock) await this.#finishAction(step, action.target, null, 'action.failed', data);
    else if (
      !(await this.#env.store.recordStep(this.#fence(), step, this.#audit('action.failed', name, data)))
    ) {
      throw new LeaseLostError(this.#run.id);
    }
    this.#emitEnd('act', name, started, step);
  }

  /** The CLI's interactive confirmation of a plan policy lets the requester apply alone. */
  /** Returns whether the operator was asked just now (and so time may have passed since the plan was made). */
  async #confirm(name: string, plan: Plan<Json>): Promise<boolean> {
    const confirm = this.#env.confirm;
    if (!confirm || this.#confirmed.has(plan.hash)) return false;
    if (!(await confirm(plan, { runId: this.#run.id, step: name }))) {
      throw new CancelledError(`the operator declined plan ${shortHash(plan.hash)} of step "${name}"`);
    }
    this.#confirmed.add(plan.hash);
    await this.#env.store.appendAudit(this.#audit('plan.confirmed', name, planAudit(plan)));
    return true;
  }

  /**
   * Proceeds only with a valid approval of exactly this plan hash. Otherwise asks for one (voiding an
   * approval of a different plan: the world changed) and suspends the run.
   */
  async #ensureApproved(
    name: string,
    plan: Plan<Json>,
    started: number,
  ): Promise<{ plan: Plan<Json>; by: string; breakGlass: boolean }> {
    const now = Date.now();
    const ttlMs = toMillis(this.#env.approvals.ttl);
    const latest = await this.#env.store.latestApproval(this.#run.id, name);
    // The approved plan is the one applied, as long as the world still starts where it did when it was
    // made. Its `after` values (a restart's timestamp, say) were fixed at plan time and are what was signed.
    const requested = latest?.plan as Plan<Json> | undefined;
    const stillHolds = !!requested && (latest?.planHash === plan.hash || sameStartingPoint(requested, plan));
    if (latest && requested && stillHolds) {
      if (latest.status === 'approved' && latest.decidedAt && latest.decidedAt.getTime() + ttlMs > now) {
        return { plan: requested, by: latest.decidedBy ?? 'unknown', breakGlass: latest.breakGlass };
      }
      if (latest.status === 'pending' && latest.expiresAt.getTime() > now) {
        this.#pendingApproval = { step: name, approvalId: latest.id, plan: requested };
        throw this.#raise(new SuspendSignal(name, latest.id));
      }
    }
    const previousPlanHash = latest && !stillHolds ? latest.planHash : null;
    const approval = await this.#env.store.requestApproval(
      this.#fence(),
      {
        id: newId('apr'),
        runId: this.#run.id,
        step: name,
        planHash: plan.hash,
        plan: this.#env.redactor.redact(plan as unknown as Json),
        requestedBy: this.#run.requestedBy,
        requestedAt: new Date(now),
        expiresAt: new Date(now + ttlMs),
      },
      {
        name,
        seq: this.#seqOf(name),
        kind: plan.action === 'manual-approval' ? 'approve' : 'act',
        status: 'waiting_approval',
        result: this.#env.redactor.redact({ plan } as unknown as Json),
        error: null,
        attempts: 1,
        startedAt: new Date(started),
        endedAt: null,
      },
      this.#audit(previousPlanHash ? 'approval.re-requested' : 'approval.requested', name, {
        ...planAudit(plan),
        ...(previousPlanHash ? { previousPlanHash } : {}),
      }),
    );
    this.#env.events.approvalRequested.emit({
      runId: this.#run.id,
      runbookId: this.#run.runbookId,
      step: name,
      approvalId: approval.id,
      plan,
      requestedBy: approval.requestedBy,
      expiresAt: approval.expiresAt,
      previousPlanHash,
    });
    this.#pendingApproval = { step: name, approvalId: approval.id, plan };
    throw this.#raise(new SuspendSignal(name, approval.id));
  }

  #raise<S extends SuspendSignal | EscalateSignal>(signal: S): S {
    this.#raised = signal;
    return signal;
  }

  // ---- approve, notify, sleep ----

  async #approve(name: string, request: ApprovalRequest): Promise<ApproveResult> {
    const recorded = this.#enter(name);
    if (recorded && FINAL_STEP.has(recorded.status)) return this.#replay(recorded);
    const started = Date.now();
    if (this.#run.mode !== 'execute') {
      await this.#complete(
        'approve',
        name,
        started,
        {
          status: 'skipped',
          result: { status: 'skipped', summary: request.summary },
          error: null,
          attempts: 0,
        },
        this.#audit('step.approve.skipped', name, { summary: request.summary }),
      );
      return { status: 'skipped' };
    }
    // A manual gate is approved like a plan: the request's text is what the approver sees and signs.
    const gate: Plan<Json> = {
      action: 'manual-approval',
      target: `runbook:${this.#run.runbookId}/${name}`,
      risk: 'high',
      destructive: false,
      summary: request.summary,
      changes: [],
      params: request.details ?? null,
      hash: sha256(canonicalJson({ gate: name, summary: request.summary, details: request.details ?? null })),
    };
    const approval = await this.#ensureApproved(name, gate, started);
    const result = { status: 'approved', by: approval.by, breakGlass: approval.breakGlass } as const;
    await this.#complete(
      'approve',
      name,
      started,
      { status: 'succeeded', result, error: null, attempts: 1 },
      this.#audit('step.approve', name, result),
    );
    return result;
  }

  async #notify(name: string, notification: Notification): Promise<void> {
    const recorded = this.#enter(name);
    if (recorded && FINAL_STEP.has(recorded.status)) return this.#replay(recorded);
    const started = Date.now();
    const message = this.#env.redactor.redactText(notification.message);
    const sent = {
      channel: notification.channel ?? 'default',
      message,
      ...(notification.severity ? { severity: notification.severity } : {}),
    };
    if (this.#run.mode === 'execute') {
      try {
        await this.#attempts(name, 'notify', { retry: { maxAttempts: 3 } }, () =>
          this.#env.notifier.notify({
            ...sent,
            kind: 'notify',
            runId: this.#run.id,
            runbookId: this.#run.runbookId,
          }),
        );
      } catch (e) {
        throw await this.#recordFailure('notify', name, started, e);
      }
    }
    const status = this.#run.mode === 'execute' ? 'succeeded' : 'skipped';
    await this.#complete(
      'notify',
      name,
      started,
      { status, result: sent, error: null, attempts: 1 },
      this.#audit(`step.notify${status === 'skipped' ? '.skipped' : ''}`, name, sent),
    );
  }

  async #sleep(name: string, ms: number): Promise<void> {
    const recorded = this.#enter(name);
    if (recorded && FINAL_STEP.has(recorded.status)) return this.#replay(recorded);
    const started = Date.now();
    if (this.#run.mode !== 'execute') {
      await this.#complete(
        'sleep',
        name,
        started,
        { status: 'skipped', result: { ms }, error: null, attempts: 0 },
        this.#audit('step.sleep.skipped', name, { ms }),
      );
      return;
    }
    // A resumed run sleeps only for what is left of the recorded wake time.
    const recordedWake =
      recorded?.status === 'sleeping' ? (recorded.result as { wakeAt?: string } | null)?.wakeAt : undefined;
    const wakeAt = recordedWake ?? new Date(started + ms).toISOString();
    if (!recordedWake) {
      await this.#record(
        'sleep',
        name,
        {
          status: 'sleeping',
          result: { ms, wakeAt },
          error: null,
          attempts: 1,
          startedAt: new Date(started),
          endedAt: null,
        },
        this.#audit('step.sleep.started', name, { ms, wakeAt }),
      );
    }
    this.#env.events.stepStart.emit({
      runId: this.#run.id,
      runbookId: this.#run.runbookId,
      step: name,
      kind: 'sleep',
      attempt: 1,
    });
    await sleep(Math.max(0, Date.parse(wakeAt) - Date.now()), this.signal);
    await this.#complete(
      'sleep',
      name,
      started,
      {
        status: 'succeeded',
        result: { ms, wakeAt },
        error: null,
        attempts: 1,
      },
      this.#audit('step.sleep', name, { ms, wakeAt }),
    );
  }
}

/** Runs a check; a replayable one in its two halves, so that its observation can be kept for replays. */
async function observeAndJudge<T>(
  check: Check<T>,
  ctx: StepContext,
): Promise<{ finding: Finding<T>; observation?: Json }> {
  if (!isReplayableCheck(check)) return { finding: await check.run(ctx) };
  const observation = asObservation(check.kind, await check.read(ctx)) as Json;
  // A copy for judge: a judge that changes its argument must not change what is stored.
  return { finding: check.judge(structuredClone(observation)), observation };
}

/** Observations larger than this are not kept (the finding is): every run, fixture and API answer carries them. */
const MAX_OBSERVATION_BYTES = 256 * 1024;

/**
 * A check's stored result: the finding, and for a replayable check its kind and observation, redacted. The
 * observation is kept only when a replay can use it: when judging the redacted copy gives the stored finding
 * (redaction may have hidden what the verdict depended on) and it is not over {@link MAX_OBSERVATION_BYTES}.
 * Otherwise `observationDropped` says why, and a replay gets the recorded finding.
 */
function forReplays<T>(
  check: Check<T>,
  finding: Finding<T>,
  observation: Json | undefined,
  redactor: Redactor,
): Json {
  if (observation === undefined || !isReplayableCheck(check)) return finding as unknown as Json;
  const base = { ...(finding as unknown as Record<string, Json>), check: check.kind };
  const redacted = redactor.redact(observation);
  const bytes = Buffer.byteLength(JSON.stringify(redacted), 'utf8');
  if (bytes > MAX_OBSERVATION_BYTES) {
    return { ...base, observationDropped: `${bytes} bytes, over the ${MAX_OBSERVATION_BYTES} kept` };
  }
  let same = false;
  try {
    const again = redactor.redact(check.judge(structuredClone(redacted)));
    same = canonicalJson(again) === canonicalJson(finding);
  } catch {
    // judging the redacted copy failed: a replay could not use it
  }
  if (!same) return { ...base, observationDropped: 'redacting it changes the verdict' };
  return { ...base, observation: redacted };
}

/** A step result as events carry it: without what a check keeps for replays (it can be 256 KiB). */
function kept(kind: StepKind, result: Json | null): Json | null {
  return kind === 'check' && result !== null
    ? (withoutObservation(result as unknown as Finding<Json>) as unknown as Json)
    : result;
}

/** A stored check result as the runbook saw it: the finding, without what is kept for replays. */
function withoutObservation<T>(result: Finding<T>): Finding<T> {
  if (!result || typeof result !== 'object' || !('check' in result)) return result;
  const {
    observation: _observation,
    check: _check,
    observationDropped: _dropped,
    ...rest
  } = result as Finding<T> & { observation?: unknown; check?: unknown; observationDropped?: unknown };
  return rest;
}
