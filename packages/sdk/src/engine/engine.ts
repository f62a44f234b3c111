import { hostname } from 'node:os';
import { z } from 'zod';
import { Duration, toMillis } from '../core/duration';
import {
  ApprovalError,
  CancelledError,
  IdempotencyKeyReusedError,
  InputValidationError,
  InvalidStateError,
  isTimeoutError,
  NotFoundError,
  toErrorInfo,
} from '../core/errors';
import { type Disposable, TypedEvent } from '../core/events';
import { canonicalJson, type Json } from '../core/json';
import { createRedactor, type Redactor } from '../core/redact';
import type { Runbook } from '../core/runbook';
import { sleep } from '../core/sleep';
import type { Action, Applied, RunMode } from '../core/step';
import {
  type ApprovalRecord,
  type AuditEntry,
  FINAL_RUN_STATUSES,
  type RunApproval,
  type RunRecord,
  type StepRecord,
} from '../store/records';
import type { RunStore } from '../store/run-store';
import { ApprovalPolicy } from './approval-policy';
import { type AuditVerification, verifyAuditChain } from './audit-chain';
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
import { withDeadline } from './retry';
import { HandOverSignal } from './signals';

/** A signal that never aborts, for work bounded only by its own deadline. */
const NEVER = new AbortController().signal;

import {
  type ConfirmPlan,
  type EngineEvents,
  type ExecutionEnv,
  RunExecution,
  type RunResult,
} from './run-execution';

/** A remediation budget rule: at most `max` applies of `action` per resource in any window of `per`. */
export const BudgetRule = z.object({
  /** Action kind, e.g. `k8s.rollout-restart`. */
  action: z.string().min(1),
  /** Only resources starting with this prefix (e.g. `k8s:aiwebtest/`). @default every resource */
  resourcePrefix: z.string().optional(),
  /** Applies allowed per window. */
  max: z.number().int().min(0),
  /** The sliding window. */
  per: Duration,
});
/** A remediation budget rule. */
export type BudgetRule = z.input<typeof BudgetRule>;
/** A budget rule as the engine applies it: validated, its window in milliseconds. */
export interface ActiveBudgetRule {
  readonly action: string;
  /** `undefined`: every resource. */
  readonly resourcePrefix: string | undefined;
  readonly max: number;
  readonly perMs: number;
}

/** Data settings of an {@link Engine}; validated with zod, defaults documented per field. */
export const EngineSettings = z.object({
  /** Which plans need a second person. @default { minRisk: "high", destructive: true, ttl: "1h" } */
  approvals: ApprovalPolicy.default({ minRisk: 'high', destructive: true, ttl: '1h' }),
  /** Budgets shared by every runbook; the first matching rule wins over an action's own default. @default [] */
  budgets: z.array(BudgetRule).default([]),
  /** How long a run's lease (and its resource locks) lasts without a heartbeat. @default "30s" */
  leaseTtl: Duration.default('30s'),
  /** This process's identity in leases. @default "<hostname>:<pid>:<random>" */
  owner: z.string().min(1).optional(),
  /** How long the engine gives an expired action's revert before it gives up and pages. @default "2m" */
  revertTimeout: Duration.default('2m'),
  /** Exact secret values to scrub from everything stored or shown. @default [] */
  secrets: z.array(z.string()).default([]),
});
/** Data settings of an {@link Engine}. */
export type EngineSettings = z.input<typeof EngineSettings>;

/** Everything an {@link Engine} is made of. */
export interface EngineOptions extends EngineSettings {
  store: RunStore;
  runbooks: readonly Runbook[];
  /** Delivers `step.notify` messages and escalations. @default records them in the audit log only */
  notifier?: Notifier;
  /** Interactive confirmation of plans that need no second person (the CLI asks on a TTY). */
  confirm?: ConfirmPlan;
  /** Source of jitter; tests pass a fixed one. @default Math.random */
  random?: () => number;
}

/** Options of starting a run. */
export interface StartOptions {
  /** @default "diagnose" */
  mode?: RunMode;
  /** Who asks; approvals must come from someone else. */
  actor: string;
  /** Aborting it cancels the run. */
  signal?: AbortSignal;
  /** Where the run came from (dashboard, panel, alert, time range); stored redacted and shown with the run. */
  context?: Json;
  /**
   * The caller's key for this request (up to 200 characters): starting again with the same key and actor
   * starts nothing and answers with the first run. Reusing a key for another runbook, mode or input is an
   * error.
   */
  idempotencyKey?: string;
  /**
   * `always`: every plan of this run waits for a second person's approval, whatever its risk ("plan and
   * ask", for runs started by alerts). @default "policy" (the engine's approval policy decides)
   */
  approval?: RunApproval;
}

/** A queued run, and whether this call created it or found it by its idempotency key. */
export interface Submitted {
  runId: string;
  created: boolean;
}

/** A run with its steps and approvals, for `show`. */
export interface RunDetail {
  run: RunRecord;
  steps: StepRecord[];
  approvals: ApprovalRecord[];
}

/** Options of a decision on a pending approval. */
export interface DecisionOptions {
  /** Who decides. */
  actor: string;
  /** Why; required for break-glass. */
  reason?: string;
  /** Override the four-eyes rule in an emergency (recorded, with the reason). */
  breakGlass?: boolean;
  /** The step to decide on, when several wait. @default the only pending one */
  step?: string;
}

const NOOP_NOTIFIER: Notifier = { notify: async () => {} };

/**
 * The runbook engine: starts and resumes runs with durable steps, enforces approvals, locks and budgets,
 * reverts expired actions, and keeps the audit log. Any number of engines may share one PostgreSQL store.
 */
export class Engine {
  readonly store: RunStore;
  readonly owner: string;
  readonly #runbooks: Map<string, Runbook>;
  readonly #settings: z.output<typeof EngineSettings>;
  readonly #env: ExecutionEnv;
  readonly #events: EngineEvents = {
    stepStart: new TypedEvent(),
    stepEnd: new TypedEvent(),
    retry: new TypedEvent(),
    approvalRequested: new TypedEvent(),
    runEnd: new TypedEvent(),
    log: new TypedEvent(),
  };
  readonly #redactor: Redactor;
  readonly #active = new Map<string, { execution: RunExecution; done: Promise<RunResult> }>();
  readonly #revertTimeoutMs: number;

  constructor(options: EngineOptions) {
    const parsed = EngineSettings.safeParse(options);
    if (!parsed.success) {
      throw new InputValidationError(
        'engine options',
        parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      );
    }
    this.#settings = parsed.data;
    this.store = options.store;
    this.owner = parsed.data.owner ?? `${hostname()}:${process.pid}:${newId('wrk').slice(-6)}`;
    this.#runbooks = new Map();
    for (const runbook of options.runbooks) {
      if (this.#runbooks.has(runbook.id)) {
        throw new TypeError(`Two runbooks share the id "${runbook.id}": ids must be unique in one engine.`);
      }
      this.#runbooks.set(runbook.id, runbook);
    }
    this.#redactor = createRedactor(parsed.data.secrets);
    this.#revertTimeoutMs = toMillis(parsed.data.revertTimeout);
    this.#env = {
      store: this.store,
      leaseTtlMs: toMillis(parsed.data.leaseTtl),
      approvals: parsed.data.approvals,
      budgetFor: (action) => this.#budgetFor(action),
      notifier: options.notifier ?? NOOP_NOTIFIER,
      redactor: this.#redactor,
      events: this.#events,
      confirm: options.confirm,
      random: options.random ?? Math.random,
    };
  }

  // ---- events ----

  /** A step began an attempt. */
  onStepStart(listener: (e: StepStartEvent) => void): Disposable {
    return this.#events.stepStart.on(listener);
  }
  /** A step ended or was replayed. */
  onStepEnd(listener: (e: StepEndEvent) => void): Disposable {
    return this.#events.stepEnd.on(listener);
  }
  /** A step attempt failed and will be retried after a delay. */
  onRetry(listener: (e: RetryEvent) => void): Disposable {
    return this.#events.retry.on(listener);
  }
  /** A plan or gate waits for a second person. */
  onApprovalRequested(listener: (e: ApprovalRequestedEvent) => void): Disposable {
    return this.#events.approvalRequested.on(listener);
  }
  /** A run finished or was suspended. */
  onRunEnd(listener: (e: RunEndEvent) => void): Disposable {
    return this.#events.runEnd.on(listener);
  }
  /** A runbook or step logged a line. */
  onLog(listener: (e: LogEvent) => void): Disposable {
    return this.#events.log.on(listener);
  }

  // ---- catalog ----

  /** The registered runbooks, by id. */
  runbooks(): Runbook[] {
    return [...this.#runbooks.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  /** A registered runbook; throws a {@link NotFoundError} listing the known ids. */
  runbook(id: string): Runbook {
    const runbook = this.#runbooks.get(id);
    if (!runbook) {
      const known = [...this.#runbooks.keys()].sort().join(', ') || 'none';
      throw new NotFoundError(`Runbook "${id}"`, `Known runbooks: ${known}.`);
    }
    return runbook;
  }

  /** Validates input against a runbook's schema; throws an {@link InputValidationError} naming each bad field. */
  validateInput(runbookId: string, input: unknown): Json {
    const runbook = this.runbook(runbookId);
    const unknown = unknownFields(runbook.input, input);
    if (unknown.length > 0) {
      // An object schema would silently drop them; a misspelt `namespace` must not become the default one.
      const known = Object.keys((runbook.input as z.ZodObject).shape).join(', ');
      throw new InputValidationError(
        `input for runbook "${runbookId}"`,
        unknown.map((key) => ({ path: key, message: `unknown field; this runbook takes: ${known}` })),
      );
    }
    const parsed = runbook.input.safeParse(input);
    if (!parsed.success) {
      throw new InputValidationError(
        `input for runbook "${runbookId}"`,
        parsed.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })),
      );
    }
    return parsed.data as Json;
  }

  // ---- runs ----

  /**
   * Creates a run and executes it in this process until it ends or waits for approval. With an
   * idempotency key already used by the actor, executes nothing and answers with that run as it is now
   * (`replayed: true`).
   */
  async start(runbookId: string, input: unknown, options: StartOptions): Promise<RunResult> {
    const { run, created } = await this.#create(runbookId, input, options, true);
    if (!created) {
      return {
        runId: run.id,
        runbookId: run.runbookId,
        status: run.status,
        outcome: run.outcome as RunResult['outcome'],
        error: run.error,
        replayed: true,
      };
    }
    return this.#executeClaimed(run, options.signal);
  }

  /** Creates a queued run for any engine's worker to execute. Returns its id. */
  async enqueue(runbookId: string, input: unknown, options: Omit<StartOptions, 'signal'>): Promise<string> {
    return (await this.submit(runbookId, input, options)).runId;
  }

  /**
   * Like {@link enqueue}, and says whether the run is new or was found by its idempotency key (the same
   * alert delivered to two replicas, a client retrying after a timeout).
   */
  async submit(runbookId: string, input: unknown, options: Omit<StartOptions, 'signal'>): Promise<Submitted> {
    const { run, created } = await this.#create(runbookId, input, options, false);
    return { runId: run.id, created };
  }

  async #create(
    runbookId: string,
    input: unknown,
    options: Omit<StartOptions, 'signal'>,
    claim: boolean,
  ): Promise<{ run: RunRecord; created: boolean }> {
    const validInput = this.validateInput(runbookId, input);
    const mode = options.mode ?? 'diagnose';
    const key = options.idempotencyKey;
    if (key !== undefined && (key.length === 0 || key.length > 200)) {
      throw new InputValidationError('idempotencyKey', [
        { path: 'idempotencyKey', message: 'must be 1 to 200 characters' },
      ]);
    }
    const id = newId('run');
    const now = new Date();
    const storedInput = this.#redactor.redact(validInput);
    const context = options.context === undefined ? undefined : this.#redactor.redact(options.context);
    const result = await this.store.createRun(
      {
        id,
        runbookId,
        mode,
        input: storedInput,
        requestedBy: options.actor,
        now,
        ...(context !== undefined ? { context } : {}),
        ...(key !== undefined ? { idempotencyKey: key } : {}),
        ...(options.approval ? { approval: options.approval } : {}),
        ...(claim
          ? {
              claim: {
                owner: this.#leaseToken(),
                leaseUntil: new Date(now.getTime() + this.#env.leaseTtlMs),
              },
            }
          : {}),
      },
      this.#audit(options.actor, 'run.created', id, {
        runbookId,
        mode,
        input: storedInput,
        ...(context !== undefined ? { context } : {}),
        ...(options.approval === 'always' ? { approval: 'always' } : {}),
      }),
    );
    const existing = result.run;
    if (
      !result.created &&
      key !== undefined &&
      (existing.runbookId !== runbookId ||
        existing.mode !== mode ||
        existing.approval !== (options.approval ?? 'policy') ||
        canonicalJson(existing.input) !== canonicalJson(storedInput))
    ) {
      throw new IdempotencyKeyReusedError(key, options.actor, existing);
    }
    return result;
  }

  /**
   * Executes a run that is queued, waiting for approval, or whose process died (its lease expired):
   * completed steps are replayed from the store, the rest run. Throws when another live process holds it.
   */
  async resume(runId: string, options: { signal?: AbortSignal } = {}): Promise<RunResult> {
    if (this.#active.has(runId)) {
      throw new InvalidStateError(
        `Run ${runId} is already being executed by this engine; wait for it to stop.`,
      );
    }
    const existing = await this.store.getRun(runId);
    if (!existing) throw new NotFoundError(`Run ${runId}`, 'List runs with `runbook runs`.');
    this.runbook(existing.runbookId); // unknown here: refuse before claiming, so no lease is taken for nothing
    const now = new Date();
    const run = await this.store.claimRun(
      runId,
      this.#leaseToken(),
      now,
      new Date(now.getTime() + this.#env.leaseTtlMs),
    );
    if (!run) {
      if (FINAL_RUN_STATUSES.includes(existing.status)) {
        throw new InvalidStateError(
          `Run ${runId} already ended (${existing.status}); start a new run instead.`,
        );
      }
      throw new InvalidStateError(
        `Run ${runId} is being executed by ${existing.leaseOwner} (lease until ${existing.leaseExpiresAt?.toISOString()}). Wait for it, or cancel it with \`runbook cancel ${runId}\`.`,
      );
    }
    return this.#executeClaimed(run, options.signal);
  }

  /** Claims and executes the oldest runnable run (queued, or abandoned by a dead process). `undefined` when none. */
  async runNext(options: { signal?: AbortSignal } = {}): Promise<RunResult | undefined> {
    const now = new Date();
    const run = await this.store.claimNextRun(
      this.#leaseToken(),
      now,
      new Date(now.getTime() + this.#env.leaseTtlMs),
      [...this.#runbooks.keys()],
    );
    return run ? this.#executeClaimed(run, options.signal) : undefined;
  }

  /**
   * A worker loop: executes runnable runs and reverts expired actions until `signal` aborts.
   * Several workers, in one process or many, may share a PostgreSQL store.
   */
  async work(options: {
    signal: AbortSignal;
    pollInterval?: Duration;
    onError?: (e: unknown) => void;
  }): Promise<void> {
    const pollMs = toMillis(options.pollInterval ?? '1s');
    const report = options.onError ?? (() => {});
    while (!options.signal.aborted) {
      let didWork = false;
      try {
        didWork = (await this.runNext({ signal: options.signal })) !== undefined;
        didWork = (await this.revertExpired()) > 0 || didWork;
      } catch (e) {
        report(e);
      }
      if (!didWork) await sleep(pollMs, options.signal).catch(() => {});
    }
  }

  async #executeClaimed(run: RunRecord, signal?: AbortSignal): Promise<RunResult> {
    const runbook = this.#runbooks.get(run.runbookId);
    if (!runbook) {
      throw new NotFoundError(
        `Runbook "${run.runbookId}" of run ${run.id}`,
        'Load the module that defines it (`--runbooks`) in this engine process.',
      );
    }
    const steps = await this.store.getSteps(run.id);
    const execution = new RunExecution(this.#env, run, runbook, steps);
    const done = execution.execute(signal);
    this.#active.set(run.id, { execution, done });
    try {
      return await done;
    } finally {
      this.#active.delete(run.id);
    }
  }

  /**
   * Hands every run this engine is executing over to the other engines sharing the store, for a shutdown
   * that must not wait for long runs: each stops at its next safe point, is not cancelled, and goes back
   * to the queue with a `run.handed-over` audit entry, so another engine resumes it at once instead of
   * after its lease expires. Completed steps are replayed there; a check in flight runs again; an apply in
   * flight is seen through (within its step timeout) and left `applying`, and the next owner's fresh plan
   * tells whether it took effect, so it is never applied twice. Stop claiming new runs first (as `serve`
   * does), or a worker loop may claim one right after. Resolves, when those executions have stopped, with
   * how many runs were handed over (a run that ended meanwhile is not counted).
   */
  async handOver(reason: string): Promise<number> {
    const active = [...this.#active.values()];
    for (const { execution } of active) execution.abort(new HandOverSignal(reason));
    const results = await Promise.allSettled(active.map((a) => a.done));
    return results.filter((r) => r.status === 'fulfilled' && r.value.handedOver === true).length;
  }

  /** The engine's budget rules, in the order they are matched (the first matching rule wins). */
  budgetRules(): ActiveBudgetRule[] {
    return this.#settings.budgets.map((b) => ({
      action: b.action,
      resourcePrefix: b.resourcePrefix,
      max: b.max,
      perMs: toMillis(b.per),
    }));
  }

  /** A run with its steps and approvals. */
  async getRun(runId: string): Promise<RunDetail> {
    const run = await this.store.getRun(runId);
    if (!run) throw new NotFoundError(`Run ${runId}`, 'List runs with `runbook runs`.');
    const [steps, approvals] = await Promise.all([
      this.store.getSteps(runId),
      this.store.listApprovals(runId),
    ]);
    return { run, steps, approvals };
  }

  /**
   * Cancels a run: a queued or waiting run at once; a running one at its next heartbeat (in this process,
   * immediately). Cancelling a run that already ended is an error.
   */
  async cancel(
    runId: string,
    options: { actor: string; reason?: string },
  ): Promise<'cancelled' | 'requested'> {
    const reason = options.reason?.trim() || 'no reason given';
    const result = await this.store.cancelRun(
      runId,
      options.actor,
      reason,
      new Date(),
      toErrorInfo(new CancelledError(`${options.actor}: ${reason}`)),
      this.#audit(options.actor, 'run.cancel', runId, { reason }),
    );
    if (result === 'missing') throw new NotFoundError(`Run ${runId}`, 'List runs with `runbook runs`.');
    if (result === 'final')
      throw new InvalidStateError(`Run ${runId} already ended; there is nothing to cancel.`);
    this.#active.get(runId)?.execution.abort(new CancelledError(`${options.actor}: ${reason}`));
    return result;
  }

  // ---- approvals ----

  /**
   * Approves the pending request of a waiting run. The approver must not be the requester unless
   * `breakGlass` is set with a reason (recorded as such). The run is queued; resume it to continue.
   */
  async approve(runId: string, options: DecisionOptions): Promise<ApprovalRecord> {
    return this.#decide(runId, 'approved', options);
  }

  /** Rejects the pending request of a waiting run; the run ends cancelled. */
  async reject(runId: string, options: DecisionOptions): Promise<ApprovalRecord> {
    return this.#decide(runId, 'rejected', options);
  }

  async #decide(
    runId: string,
    decision: 'approved' | 'rejected',
    options: DecisionOptions,
  ): Promise<ApprovalRecord> {
    const { run, approvals } = await this.getRun(runId);
    const pending = approvals.filter(
      (a) => a.status === 'pending' && (!options.step || a.step === options.step),
    );
    const request = pending.at(-1);
    if (!request || run.status !== 'waiting_approval') {
      throw new ApprovalError(
        'NO_PENDING_APPROVAL',
        `Run ${runId} is ${run.status} and has no pending approval${options.step ? ` for step "${options.step}"` : ''}. See \`runbook show ${runId}\`.`,
      );
    }
    const now = new Date();
    if (request.expiresAt <= now) {
      throw new ApprovalError(
        'APPROVAL_EXPIRED',
        `The approval request for step "${request.step}" of run ${runId} expired at ${request.expiresAt.toISOString()}. Resume the run (\`runbook resume ${runId}\`) to re-plan and ask again.`,
      );
    }
    const reason = options.reason?.trim() || null;
    const breakGlass = options.breakGlass === true;
    if (breakGlass && !reason) {
      throw new ApprovalError(
        'BREAK_GLASS_REASON_REQUIRED',
        'Break-glass needs a reason (--reason "…"); it is recorded in the audit log.',
      );
    }
    if (decision === 'approved' && samePerson(options.actor, request.requestedBy) && !breakGlass) {
      throw new ApprovalError(
        'FOUR_EYES',
        `${options.actor} requested this run and cannot also approve it: another person must approve. In an emergency, use break-glass with a reason.`,
        { requestedBy: request.requestedBy },
      );
    }
    const decided = await this.store.decideApproval(
      request.id,
      { status: decision, by: options.actor, reason, breakGlass, now },
      decision === 'rejected'
        ? toErrorInfo(new CancelledError(`${options.actor} rejected the plan${reason ? `: ${reason}` : ''}`))
        : null,
      this.#audit(options.actor, breakGlass ? 'approval.break-glass' : `approval.${decision}`, runId, {
        step: request.step,
        planHash: request.planHash,
        requestedBy: request.requestedBy,
        ...(reason ? { reason } : {}),
      }),
    );
    if (!decided) {
      throw new ApprovalError(
        'NO_PENDING_APPROVAL',
        `The request for step "${request.step}" was decided by someone else meanwhile.`,
      );
    }
    return decided;
  }

  // ---- expiring actions ----

  /**
   * Reverts applied actions whose expiry has passed (an IP block after one hour), also those applied before
   * a restart. Each is claimed with `SKIP LOCKED`, so only one engine reverts it. Returns how many it reverted.
   */
  async revertExpired(limit = 10): Promise<number> {
    // One token per pass: the claims and locks of this pass are its own, never a live run's of this engine.
    const token = `${this.#leaseToken()}/revert`;
    const holdMs = this.#revertTimeoutMs + this.#env.leaseTtlMs;
    const now = new Date();
    const due = await this.store.claimDueExpiring(token, now, new Date(now.getTime() + holdMs), limit);
    let reverted = 0;
    for (const item of due) {
      const lock = { resource: item.resource, runId: item.runId, step: item.step, owner: token };
      if (!(await this.store.tryLock({ ...lock, expiresAt: new Date(Date.now() + holdMs) }, new Date()))) {
        continue; // someone is acting on the resource; the claim lapses and a later pass retries
      }
      let timedOut = false;
      try {
        await this.#revertOne(item.runId, item.step);
        reverted++;
        await this.store.completeExpiring(
          item.runId,
          item.step,
          token,
          'reverted',
          null,
          this.#audit('engine', 'action.expired-reverted', item.runId, {
            step: item.step,
            resource: item.resource,
            action: item.action,
          }),
        );
      } catch (e) {
        timedOut = isTimeoutError(e);
        const error = this.#redactor.redact(toErrorInfo(e));
        await this.store.completeExpiring(
          item.runId,
          item.step,
          token,
          'failed',
          error,
          this.#audit('engine', 'action.expired-revert-failed', item.runId, {
            step: item.step,
            resource: item.resource,
            error: error.message,
          }),
        );
        await this.#env.notifier
          .notify({
            kind: 'escalate',
            runId: item.runId,
            runbookId: '',
            channel: 'pager',
            message: `Could not revert expired ${item.action} on ${item.resource}: ${error.message}`,
          })
          .catch(() => {});
      } finally {
        // A revert that timed out may still be running: its lock is left to expire rather than released.
        if (!timedOut) await this.store.unlock(item.resource, token);
      }
    }
    return reverted;
  }

  /** Replays the run's function to rebuild the action of `step`, then calls its revert. */
  async #revertOne(runId: string, step: string): Promise<void> {
    const run = await this.store.getRun(runId);
    if (!run) throw new NotFoundError(`Run ${runId}`, 'Its expiring action cannot be reverted without it.');
    const runbook = this.runbook(run.runbookId);
    let found: { action: Action<unknown, unknown>; record: StepRecord } | undefined;
    const execution = new RunExecution(this.#env, run, runbook, await this.store.getSteps(runId), {
      revert: { step, onAction: (action, record) => (found = { action, record }) },
    });
    await execution.replayForRevert();
    if (!found)
      throw new InvalidStateError(
        `Replaying run ${runId} did not reach step "${step}": the runbook code changed.`,
      );
    const { action, record } = found;
    if (!action.revert) throw new InvalidStateError(`The action of step "${step}" has no revert.`);
    const revert = action.revert;
    const applied = (record.result as { applied?: Applied<unknown, unknown> } | null)?.applied;
    if (!applied)
      throw new InvalidStateError(`Step "${step}" of run ${runId} has no applied record to revert.`);
    await withDeadline(`Revert of step "${step}" of run ${runId}`, this.#revertTimeoutMs, NEVER, (signal) =>
      revert.call(
        action,
        {
          runId,
          runbookId: run.runbookId,
          step,
          mode: 'execute',
          attempt: 1,
          actor: 'engine',
          signal,
          log: (message, data) =>
            this.#events.log.emit({
              runId,
              step,
              message: this.#redactor.redactText(message),
              ...(data ? { data: this.#redactor.redact(data) } : {}),
            }),
        },
        applied,
      ),
    );
  }

  // ---- audit ----

  /** Recomputes the audit log's hash chain; see {@link verifyAuditChain}. */
  verifyAudit(): Promise<AuditVerification> {
    return verifyAuditChain(this.store);
  }

  #audit(actor: string, kind: string, runId: string, data: Json): AuditEntry {
    return { ts: new Date().toISOString(), actor, kind, runId, data: this.#redactor.redact(data) };
  }

  /** A fresh claim token: this engine's identity plus a random part, unique per execution. */
  #leaseToken(): string {
    return `${this.owner}/${newId('wrk').slice(-8)}`;
  }

  #budgetFor(action: Action<unknown, unknown>): { max: number; perMs: number } | null {
    const rule = this.#settings.budgets.find(
      (b) => b.action === action.kind && (!b.resourcePrefix || action.target.startsWith(b.resourcePrefix)),
    );
    const budget = rule ?? action.budget;
    return budget ? { max: budget.max, perMs: toMillis(budget.per) } : null;
  }
}

/** Top-level keys of `input` that an object schema without a catch-all would drop. */
function unknownFields(schema: z.ZodType, input: unknown): string[] {
  if (!(schema instanceof z.ZodObject) || schema.def.catchall !== undefined) return [];
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return [];
  return Object.keys(input).filter((key) => !(key in schema.shape));
}

/** Identities compare without case and surrounding space: `Alice` cannot approve `alice`'s run. */
function samePerson(a: string, b: string): boolean {
  return a.trim().toLowerCase() === b.trim().toLowerCase();
}

/** `["agents", 0, "name"]` → `agents[0].name`. */
function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
}

export type { ConfirmPlan, RunResult };
