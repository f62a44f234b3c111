import type { z } from 'zod';
import { type Duration, toMillis } from '../core/duration';
import { fromErrorInfo, InputValidationError, isCancelledError, TimeoutError } from '../core/errors';
import { type Finding, finding } from '../core/finding';
import type { Json } from '../core/json';
import { issuePath } from '../core/parse-options';
import type { ActResult, ApproveResult, Outcome, Runbook, StepTools } from '../core/runbook';
import { type Check, isReplayableCheck } from '../core/step';
import { EscalateSignal, giveUp } from '../engine/signals';
import type { RunStatus, StepKind } from '../store/records';
import type { FixtureStep, RunFixture } from './fixture';

/** Options of {@link replayRun}. */
export interface ReplayOptions {
  /**
   * Input fields to change for the replay, merged over the recorded input and validated by the runbook's
   * schema: backtest a new threshold against a past incident without editing the runbook.
   */
  input?: Record<string, unknown>;
  /** Time limit for the runbook's function (it should do no I/O of its own in a replay). @default "30s" */
  timeout?: Duration;
}

/** One step of a replay, lined up with the recording: the decision then and the decision now. */
export interface ReplayedStep {
  name: string;
  kind: StepKind;
  /** Position in the recording; `null` for a step the recorded run never reached. */
  recordedSeq: number | null;
  /** Position in the replay; `null` for a recorded step the new version no longer reaches. */
  replayedSeq: number | null;
  /** The recorded decision: a check's status (`ok`, `fail` …), an action's `applied`/`planned`/…, `approved`. */
  recorded: string | null;
  /** The decision of the runbook as it is now, answered from the recording. */
  replayed: string | null;
  same: boolean;
  /** How the step was replayed, or why it differs. */
  note: string;
  /** For a check step: the finding the runbook got in the replay. */
  finding?: Finding<Json>;
}

/** How a run ended, in a replay report. */
export interface ReplayOutcome {
  status: RunStatus;
  summary: string;
}

/** What {@link replayRun} found: the steps lined up, the outcomes, and where they first differ. */
export interface ReplayReport {
  runbook: string;
  /** The recorded run's id. */
  recordedRunId: string;
  mode: RunFixture['run']['mode'];
  /** The input the replay ran with (the recorded one, with `options.input` merged in). */
  input: Json;
  /** In the replay's order; recorded steps it never reached come after, in recorded order. */
  steps: ReplayedStep[];
  outcome: { recorded: ReplayOutcome; replayed: ReplayOutcome; same: boolean };
  /** The first step (in the replay's order) whose decision differs; `undefined` when none does. */
  firstDifference: ReplayedStep | undefined;
  /** True when every step and the outcome are decided as recorded. */
  same: boolean;
  /** The runbook's log lines during the replay. */
  logs: string[];
}

/** Stops the runbook where the recorded run stopped (waiting for an approval, mid-apply, asleep). */
class StopAtRecordingEnd extends Error {
  constructor(readonly status: RunStatus) {
    super('the recorded run stopped here');
  }
}

/**
 * Runs `runbook` against a recorded run, deterministically: every step is answered from the recording,
 * nothing is read or changed. A replayable check ({@link ReplayableCheck}) judges its recorded observation
 * again, with the check as the runbook builds it now (so a new threshold gives a new verdict); any other
 * check gets its recorded finding. Actions, approvals, notifications and sleeps get their recorded results.
 * A step the recording does not have is reported as new (a check gets an `unknown` finding, an action is
 * skipped) and the runbook goes on; recorded steps it no longer reaches are reported too.
 */
export async function replayRun<S extends z.ZodType>(
  runbook: Runbook<S>,
  fixture: RunFixture,
  options: ReplayOptions = {},
): Promise<ReplayReport> {
  if (fixture.runbook !== runbook.id) {
    throw new InputValidationError('replay', [
      { path: 'runbook', message: `the fixture records runbook "${fixture.runbook}", not "${runbook.id}"` },
    ]);
  }
  const input = replayInput(runbook, fixture, options.input);
  const recorded = new Map(fixture.steps.map((s) => [s.name, s]));
  const lined: ReplayedStep[] = [];
  const logs: string[] = [];
  const take = (name: string, kind: StepKind): FixtureStep | undefined => {
    if (lined.some((s) => s.name === name)) {
      throw new TypeError(`Step "${name}" is used twice in one run; step names must be unique.`);
    }
    const step = recorded.get(name);
    return step && step.kind === kind ? step : undefined;
  };
  const line = (entry: Omit<ReplayedStep, 'replayedSeq' | 'same'> & { same?: boolean }): void => {
    const same = entry.same ?? entry.recorded === entry.replayed;
    lined.push({ ...entry, replayedSeq: lined.length + 1, same });
  };
  const missing = (name: string, kind: StepKind, replayed: string): string => {
    const other = recorded.get(name);
    return other
      ? `recorded as a ${other.kind} step, now a ${kind} step`
      : `new step: not in the recording (${replayed})`;
  };

  const step: StepTools = {
    async check<T>(name: string, check: Check<T>): Promise<Finding<T>> {
      const rec = take(name, 'check');
      if (!rec) {
        const unknown = finding('unknown', 'not in the recording', null) as Finding<Json>;
        line({
          name,
          kind: 'check',
          recordedSeq: null,
          recorded: null,
          replayed: 'unknown',
          note: missing(name, 'check', 'unknown'),
          finding: unknown,
        });
        return unknown as Finding<T>;
      }
      stopIfInFlight(rec);
      if (rec.status === 'failed') {
        line({
          name,
          kind: 'check',
          recordedSeq: rec.seq,
          recorded: errorDecision(rec),
          replayed: errorDecision(rec),
          note: 'recorded error',
        });
        throw recordedError(rec);
      }
      const stored = rec.result as (Finding<Json> & { observation?: Json }) | null;
      const was = stored?.status ?? null;
      let now: Finding<Json>;
      let note: string;
      if (stored && stored.observation !== undefined && isReplayableCheck(check)) {
        now = check.judge(stored.observation) as Finding<Json>;
        note = 're-judged from the recorded observation';
      } else {
        const { observation: _o, ...found } = stored ?? { ...finding('unknown', 'no result recorded', null) };
        now = found as Finding<Json>;
        note = isReplayableCheck(check)
          ? 'recorded finding (the recording has no observation)'
          : 'recorded finding (the check is not replayable)';
      }
      if (was !== now.status) note = `${was} → ${now.status}: ${now.summary}`;
      line({
        name,
        kind: 'check',
        recordedSeq: rec.seq,
        recorded: was,
        replayed: now.status,
        note,
        finding: now,
      });
      return now as Finding<T>;
    },

    async act(name, action, actOptions = {}) {
      const rec = take(name, 'act');
      const identity = `${action.kind} on ${action.target}`;
      if (!rec) {
        line({
          name,
          kind: 'act',
          recordedSeq: null,
          recorded: null,
          replayed: 'skipped',
          note: missing(name, 'act', `would plan ${identity}`),
        });
        return { status: 'skipped' } as never;
      }
      stopIfInFlight(rec);
      const result = rec.result as (ActResult<Json, Json> & { action?: string; target?: string }) | null;
      const plan = result && 'plan' in result ? result.plan : undefined;
      const recordedIdentity = plan
        ? `${plan.action} on ${plan.target}`
        : result?.action
          ? `${result.action} on ${result.target}`
          : identity;
      const decision = rec.status === 'failed' ? errorDecision(rec) : (result?.status ?? 'none');
      const sameAction = recordedIdentity === identity;
      line({
        name,
        kind: 'act',
        recordedSeq: rec.seq,
        recorded: `${decision}`,
        replayed: sameAction ? decision : `${decision} (other action)`,
        note: sameAction ? `recorded result: ${identity}` : `recorded ${recordedIdentity}, now ${identity}`,
      });
      if (rec.status === 'failed') {
        throw giveUp(recordedError(rec), actOptions.onGiveUp);
      }
      return result as never;
    },

    async approve(name) {
      const rec = take(name, 'approve');
      if (!rec) {
        line({
          name,
          kind: 'approve',
          recordedSeq: null,
          recorded: null,
          replayed: 'skipped',
          note: missing(name, 'approve', 'would ask for approval'),
        });
        return { status: 'skipped' };
      }
      stopIfInFlight(rec);
      const result = rec.result as ApproveResult | null;
      const decision = rec.status === 'failed' ? errorDecision(rec) : (result?.status ?? 'none');
      line({
        name,
        kind: 'approve',
        recordedSeq: rec.seq,
        recorded: decision,
        replayed: decision,
        note: 'recorded decision',
      });
      if (rec.status === 'failed') throw recordedError(rec);
      return result ?? { status: 'skipped' };
    },

    async notify(name, notification) {
      const rec = take(name, 'notify');
      const replayed = fixture.run.mode === 'execute' ? 'sent' : 'skipped';
      if (!rec) {
        line({
          name,
          kind: 'notify',
          recordedSeq: null,
          recorded: null,
          replayed,
          note: missing(name, 'notify', `would notify ${notification.channel ?? 'default'}`),
        });
        return;
      }
      const decision =
        rec.status === 'succeeded' ? 'sent' : rec.status === 'failed' ? errorDecision(rec) : rec.status;
      line({
        name,
        kind: 'notify',
        recordedSeq: rec.seq,
        recorded: decision,
        replayed: decision,
        note: 'recorded result',
      });
      if (rec.status === 'failed') throw recordedError(rec);
    },

    async sleep(name) {
      const rec = take(name, 'sleep');
      if (!rec) {
        line({
          name,
          kind: 'sleep',
          recordedSeq: null,
          recorded: null,
          replayed: 'slept',
          note: missing(name, 'sleep', 'would wait'),
        });
        return;
      }
      stopIfInFlight(rec);
      const decision = rec.status === 'succeeded' ? 'slept' : rec.status;
      line({
        name,
        kind: 'sleep',
        recordedSeq: rec.seq,
        recorded: decision,
        replayed: decision,
        note: 'not waited in a replay',
      });
    },

    escalate: (reason, escalateOptions = {}) => ({ kind: 'escalate', reason, ...escalateOptions }),
    done: (summary) => ({ kind: 'done', summary }),
  };

  const replayed = await runToOutcome(runbook, {
    input,
    step,
    mode: fixture.run.mode,
    runId: `replay-of-${fixture.run.id}`,
    actor: 'replay',
    log: (message: string) => logs.push(message),
    timeoutMs: toMillis(options.timeout ?? '30s'),
  });

  for (const rec of fixture.steps) {
    if (!lined.some((s) => s.name === rec.name)) {
      lined.push({
        name: rec.name,
        kind: rec.kind,
        recordedSeq: rec.seq,
        replayedSeq: null,
        recorded: rec.status === 'failed' ? errorDecision(rec) : decisionOf(rec),
        replayed: null,
        same: false,
        note: 'not reached by the runbook as it is now',
      });
    }
  }
  const recordedOutcome = outcomeOfFixture(fixture);
  const outcomeSame = recordedOutcome.status === replayed.status;
  const firstDifference = lined.find((s) => !s.same);
  return {
    runbook: runbook.id,
    recordedRunId: fixture.run.id,
    mode: fixture.run.mode,
    input: input as Json,
    steps: lined,
    outcome: { recorded: recordedOutcome, replayed, same: outcomeSame },
    firstDifference,
    same: firstDifference === undefined && outcomeSame,
    logs,
  };
}

/** The recorded input with `changes` merged in, validated by the runbook's schema as the engine would. */
function replayInput(
  runbook: Runbook,
  fixture: RunFixture,
  changes: Record<string, unknown> | undefined,
): unknown {
  const recordedInput = fixture.run.input;
  const base =
    recordedInput && typeof recordedInput === 'object' && !Array.isArray(recordedInput) ? recordedInput : {};
  const parsed = runbook.input.safeParse(changes ? { ...base, ...changes } : recordedInput);
  if (!parsed.success) {
    throw new InputValidationError(
      `input of runbook ${runbook.id}`,
      parsed.error.issues.map((issue) => ({ path: issuePath(issue.path), message: issue.message })),
    );
  }
  return parsed.data;
}

/** A recorded step that never finished: the recorded run stopped there, and so does the replay. */
function stopIfInFlight(rec: FixtureStep): void {
  if (rec.status === 'waiting_approval') throw new StopAtRecordingEnd('waiting_approval');
  if (rec.status === 'applying' || rec.status === 'sleeping') throw new StopAtRecordingEnd('running');
}

/** The error a failed step recorded, to throw again. */
function recordedError(rec: FixtureStep): Error {
  return fromErrorInfo(rec.error ?? { name: 'Error', code: 'UNKNOWN', message: `step ${rec.name} failed` });
}

function errorDecision(rec: FixtureStep): string {
  return `error ${rec.error?.code ?? 'UNKNOWN'}`;
}

function decisionOf(rec: FixtureStep): string {
  const result = rec.result as { status?: unknown } | null;
  if (rec.kind === 'notify') return rec.status === 'succeeded' ? 'sent' : rec.status;
  if (rec.kind === 'sleep') return rec.status === 'succeeded' ? 'slept' : rec.status;
  return typeof result?.status === 'string' ? result.status : rec.status;
}

function outcomeOfFixture(fixture: RunFixture): ReplayOutcome {
  const outcome = fixture.run.outcome as Outcome | null;
  const summary =
    outcome?.kind === 'done'
      ? outcome.summary
      : outcome?.kind === 'escalate'
        ? outcome.reason
        : (fixture.run.error?.message ?? '');
  return { status: fixture.run.status, summary };
}

/** Runs the runbook's function to its outcome, mapping returns and throws to run statuses as the engine does. */
async function runToOutcome(
  runbook: Runbook,
  context: {
    input: unknown;
    step: StepTools;
    mode: RunFixture['run']['mode'];
    runId: string;
    actor: string;
    log: (message: string) => void;
    timeoutMs: number;
  },
): Promise<ReplayOutcome> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new TimeoutError(`Replay of ${runbook.id}`, context.timeoutMs);
      controller.abort(error);
      reject(error);
    }, context.timeoutMs);
  });
  try {
    const returned = await Promise.race([
      runbook.run({ ...context, input: context.input as never, signal: controller.signal }),
      deadline,
    ]);
    const outcome: Outcome = returned ?? { kind: 'done', summary: 'completed' };
    return outcome.kind === 'escalate'
      ? { status: 'escalated', summary: outcome.reason }
      : { status: 'succeeded', summary: outcome.summary };
  } catch (e) {
    if (e instanceof StopAtRecordingEnd) return { status: e.status, summary: e.message };
    if (e instanceof EscalateSignal) return { status: 'escalated', summary: e.escalation.reason };
    if (isCancelledError(e)) return { status: 'cancelled', summary: e.message };
    return { status: 'failed', summary: (e as Error)?.message ?? String(e) };
  } finally {
    clearTimeout(timer);
  }
}
