import type { z } from 'zod';
import { type Duration, toMillis } from '../core/duration';
import {
  DuplicateStepError,
  fromErrorInfo,
  InputValidationError,
  isCancelledError,
  TimeoutError,
} from '../core/errors';
import type { Finding } from '../core/finding';
import { canonicalJson, type Json } from '../core/json';
import { issuePath } from '../core/parse-options';
import { createRedactor } from '../core/redact';
import type { ActResult, ApproveResult, Outcome, Runbook, Severity, StepTools } from '../core/runbook';
import { type Check, isReplayableCheck } from '../core/step';
import { EscalateSignal, giveUp } from '../engine/signals';
import type { RunStatus, StepKind } from '../store/records';
import type { FixtureStep, RunFixture } from './fixture';

/** Options of {@link replayRun}. */
export interface ReplayOptions {
  /**
   * Input fields to change for the replay, merged (deeply, for nested objects) over the recorded input and
   * validated by the runbook's schema: backtest a new threshold against a past incident without editing it.
   */
  input?: Record<string, unknown>;
  /** Time limit for the runbook's function (it should do no I/O of its own in a replay). @default "30s" */
  timeout?: Duration;
  /**
   * The exact secret values the recording engine redacted (its `secrets` option), so that names and
   * summaries are compared as they were stored. @default []
   */
  secrets?: readonly string[];
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
  /** The decision of the runbook as it is now; `new` for a step the recording does not have. */
  replayed: string | null;
  same: boolean;
  /** How the step was replayed, or why it differs. */
  note: string;
  /** For a check step: the finding the runbook got in the replay. */
  finding?: Finding<Json>;
}

/**
 * How a run ended, in a replay report. `incomplete`: the replay stopped at a step it cannot answer from the
 * recording (a new check or action, a new approval in execute mode, another action than recorded).
 */
export interface ReplayOutcome {
  status: RunStatus | 'incomplete';
  summary: string;
  /** Where an escalation goes (`step.escalate(reason, { to })`). */
  to?: string;
  severity?: Severity;
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
  /**
   * `same` compares the status and, for an escalation, where it goes (`to`) and its severity; a changed
   * summary alone is shown (`summaryChanged`) but is not a different decision.
   */
  outcome: { recorded: ReplayOutcome; replayed: ReplayOutcome; same: boolean; summaryChanged: boolean };
  /** The first step (in the replay's order) whose decision differs; `undefined` when none does. */
  firstDifference: ReplayedStep | undefined;
  /** True when every step and the outcome are decided as recorded. */
  same: boolean;
  /**
   * Check steps answered with their recorded finding instead of being judged again (the check is not
   * replayable, or the recording has no observation of it): a replay cannot tell whether they would differ.
   */
  notRejudged: string[];
  /** The runbook's log lines during the replay, redacted. */
  logs: string[];
}

/** Ends the replay where the recording cannot answer, or where the recorded run ended. */
class StopReplay extends Error {
  constructor(
    readonly status: ReplayOutcome['status'],
    reason: string,
  ) {
    super(reason);
  }
}

/** A stored check result: the finding, plus what a replayable check recorded for replays. */
type StoredCheck = Finding<Json> & { observation?: Json; check?: string; observationDropped?: string };

/** Failed runs whose recording ends because the run was stopped from outside, not by its own code. */
const STOPPED_FROM_OUTSIDE = new Set(['TIMEOUT', 'LEASE_LOST', 'CANCELLED']);

/**
 * Runs `runbook` against a recorded run, deterministically: every step is answered from the recording,
 * nothing is read or changed by the steps. A replayable check ({@link ReplayableCheck}) judges its recorded
 * observation again with the check as the runbook builds it now (so a new threshold gives a new verdict);
 * any other check gets its recorded finding (and is listed in `notRejudged`). Actions, approvals,
 * notifications and sleeps get their recorded results. At a step the recording cannot answer (a new
 * check or action, a new approval in execute mode, another action than recorded) the replay stops,
 * `incomplete`, rather than guess; a new notification or sleep is reported and the runbook goes on.
 * Recorded steps the runbook no longer reaches are reported too.
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
  const redactor = createRedactor(options.secrets ?? []);
  const inputChanged = options.input !== undefined;
  const mode = fixture.run.mode;
  const recorded = new Map(fixture.steps.map((s) => [s.name, s]));
  const lined: ReplayedStep[] = [];
  const notRejudged: string[] = [];
  const logs: string[] = [];
  const seen = new Set<string>();
  // Like a suspension in the engine: a stop the runbook catches still ends the run at its next step.
  let raised: Error | undefined;
  // Once a finding differs, recorded actions after it are answered as recorded but were not re-planned.
  let findingChanged = false;

  const line = (entry: Omit<ReplayedStep, 'replayedSeq'>): void => {
    lined.push({ ...entry, replayedSeq: lined.length + 1 });
  };
  const stop = (status: ReplayOutcome['status'], reason: string): never => {
    raised = new StopReplay(status, reason);
    throw raised;
  };
  /** Claims a step name and returns its record; stops where the recording cannot go on. */
  const enter = (name: string, kind: StepKind): FixtureStep | undefined => {
    if (raised) throw raised;
    if (seen.has(name)) throw new DuplicateStepError(runbook.id, name);
    seen.add(name);
    const rec = recorded.get(name);
    if (rec && rec.kind !== kind) {
      line({
        name,
        kind,
        recordedSeq: rec.seq,
        recorded: `${rec.kind} step`,
        replayed: `${kind} step`,
        same: false,
        note: `recorded as a ${rec.kind} step, now a ${kind} step`,
      });
      stop('incomplete', `step "${name}" is a ${kind} step now, a ${rec.kind} step in the recording`);
    }
    if (!rec && recordingEnded()) stop(fixture.run.status, 'the recording ends here');
    if (rec && isInFlight(rec)) {
      line({
        name,
        kind,
        recordedSeq: rec.seq,
        recorded: rec.status,
        replayed: rec.status,
        same: true,
        note: 'the recorded run stopped here',
      });
      stop(fixture.run.status, 'the recorded run stopped at this step');
    }
    return rec;
  };
  /** All recorded steps were reached, and the recorded run did not end by its own code: nothing follows. */
  const recordingEnded = (): boolean => {
    const reached = lined.filter((s) => s.recordedSeq !== null).length;
    if (reached < fixture.steps.length) return false;
    const { status, error } = fixture.run;
    if (status === 'succeeded' || status === 'escalated') return false;
    return status !== 'failed' || STOPPED_FROM_OUTSIDE.has(error?.code ?? '');
  };
  const newStep = (name: string, kind: StepKind, replayed: string, what: string): void =>
    line({ name, kind, recordedSeq: null, recorded: null, replayed, same: false, note: `new step: ${what}` });

  const step: StepTools = {
    async check<T>(name: string, check: Check<T>): Promise<Finding<T>> {
      const rec = enter(name, 'check');
      if (!rec) {
        newStep(
          name,
          'check',
          'new',
          `would run check ${check.kind}; not in the recording, so the replay stops here`,
        );
        return stop('incomplete', `check step "${name}" is not in the recording`);
      }
      if (rec.status === 'failed') {
        line({
          name,
          kind: 'check',
          recordedSeq: rec.seq,
          recorded: errorDecision(rec),
          replayed: errorDecision(rec),
          same: true,
          note: 'recorded error',
        });
        throw recordedError(rec);
      }
      const stored = (rec.result ?? {
        status: 'unknown',
        summary: 'no result recorded',
        evidence: [],
        data: null,
      }) as unknown as StoredCheck;
      const { observation, check: recordedKind, observationDropped, ...recordedFinding } = stored;
      const kind = redactor.redactText(check.kind);
      let now: Finding<Json> = recordedFinding;
      let note: string;
      let rejudged = false;
      let kindChanged = false;
      if (observation === undefined || !isReplayableCheck(check)) {
        notRejudged.push(name);
        note = !isReplayableCheck(check)
          ? 'recorded finding (the check is not replayable)'
          : observationDropped
            ? `recorded finding (its observation was not kept: ${observationDropped})`
            : 'recorded finding (the recording has no observation)';
      } else if (recordedKind !== undefined && recordedKind !== kind) {
        notRejudged.push(name);
        kindChanged = true;
        note = `recorded check ${recordedKind}, now ${kind}: recorded finding, not re-judged`;
      } else {
        try {
          // A copy: a judge that changes its argument must not change the fixture for the next replay.
          now = redactor.redact(check.judge(structuredClone(observation)) as Finding<Json>);
        } catch (e) {
          const message = redactor.redactText((e as Error)?.message ?? String(e));
          line({
            name,
            kind: 'check',
            recordedSeq: rec.seq,
            recorded: recordedFinding.status,
            replayed: 'error',
            same: false,
            note: `judge threw: ${message}`,
          });
          // As a failed check in the engine: the runbook may catch it and go on.
          throw e;
        }
        rejudged = true;
        note = 're-judged from the recorded observation';
      }
      let same = !kindChanged && now.status === recordedFinding.status;
      if (now.status !== recordedFinding.status) {
        note = `${recordedFinding.status} → ${now.status}: ${now.summary}`;
      } else if (
        rejudged &&
        (now.summary !== recordedFinding.summary ||
          canonicalJson(now.data) !== canonicalJson(recordedFinding.data))
      ) {
        same = false;
        note = `still ${now.status}, but the finding changed: ${now.summary}`;
      }
      if (!same) findingChanged = true;
      line({
        name,
        kind: 'check',
        recordedSeq: rec.seq,
        recorded: recordedFinding.status,
        replayed: now.status,
        same,
        note,
        finding: now,
      });
      return now as Finding<T>;
    },

    async act(name, action, actOptions = {}) {
      const rec = enter(name, 'act');
      // As stored: the engine redacted the plan it kept, so the comparison redacts this side too.
      const identity = redactor.redactText(`${action.kind} on ${action.target}`);
      if (!rec) {
        if (mode === 'diagnose') {
          newStep(name, 'act', 'skipped', `${identity} (skipped in diagnose mode)`);
          return { status: 'skipped' };
        }
        newStep(name, 'act', 'new', `would plan ${identity}; a replay cannot plan, so it stops here`);
        return stop('incomplete', `act step "${name}" is not in the recording`);
      }
      const result = rec.result as (ActResult<Json, Json> & { action?: string; target?: string }) | null;
      const plan = result && 'plan' in result ? result.plan : undefined;
      const recordedIdentity = plan
        ? `${plan.action} on ${plan.target}`
        : result?.action
          ? `${result.action} on ${result.target}`
          : identity;
      const decision = rec.status === 'failed' ? errorDecision(rec) : (result?.status ?? 'none');
      if (recordedIdentity !== identity) {
        line({
          name,
          kind: 'act',
          recordedSeq: rec.seq,
          recorded: decision,
          replayed: 'new',
          same: false,
          note: `recorded ${recordedIdentity}, now ${identity}: a replay cannot plan it, so it stops here`,
        });
        return stop('incomplete', `act step "${name}" changes something else than recorded`);
      }
      line({
        name,
        kind: 'act',
        recordedSeq: rec.seq,
        recorded: decision,
        replayed: decision,
        same: true,
        note:
          findingChanged || inputChanged
            ? `recorded result of ${identity} (not re-planned, though ${findingChanged ? 'an earlier finding' : 'the input'} changed)`
            : `recorded result: ${identity}`,
      });
      if (rec.status === 'failed') {
        const error = recordedError(rec);
        // As in the engine: only an execute-mode failure of the step's own gives up (escalates when asked to);
        // a declined plan, a plan-mode failure and a run stopped from outside end the run with the error.
        const own =
          mode === 'execute' && !isCancelledError(error) && !STOPPED_FROM_OUTSIDE.has(rec.error?.code ?? '');
        throw own ? giveUp(error, actOptions.onGiveUp) : error;
      }
      return result as never;
    },

    async approve(name) {
      const rec = enter(name, 'approve');
      if (!rec) {
        if (mode === 'execute') {
          newStep(
            name,
            'approve',
            'new',
            'would wait for a second person’s approval, so the replay stops here',
          );
          return stop('incomplete', `approval step "${name}" is not in the recording`);
        }
        newStep(name, 'approve', 'skipped', `an approval (skipped in ${mode} mode)`);
        return { status: 'skipped' };
      }
      const result = rec.result as ApproveResult | null;
      const decision = rec.status === 'failed' ? errorDecision(rec) : (result?.status ?? 'none');
      line({
        name,
        kind: 'approve',
        recordedSeq: rec.seq,
        recorded: decision,
        replayed: decision,
        same: true,
        note: 'recorded decision',
      });
      if (rec.status === 'failed') throw recordedError(rec);
      return result ?? { status: 'skipped' };
    },

    async notify(name, notification) {
      const rec = enter(name, 'notify');
      if (!rec) {
        newStep(
          name,
          'notify',
          mode === 'execute' ? 'sent' : 'skipped',
          `would notify ${notification.channel ?? 'default'}`,
        );
        return;
      }
      const decision = decisionOf(rec);
      // Where it goes is a decision too: compare it with what was recorded (the message may vary).
      const sent = (rec.result ?? {}) as { channel?: string; severity?: string };
      const channel = notification.channel ?? 'default';
      const sameRoute =
        rec.status === 'failed' ||
        (sent.channel === channel && (sent.severity ?? null) === (notification.severity ?? null));
      line({
        name,
        kind: 'notify',
        recordedSeq: rec.seq,
        recorded: decision,
        replayed: decision,
        same: sameRoute,
        note: sameRoute
          ? 'recorded result'
          : `recorded to ${sent.channel ?? '?'}${sent.severity ? ` (${sent.severity})` : ''}, now to ${channel}${notification.severity ? ` (${notification.severity})` : ''}`,
      });
      if (rec.status === 'failed') throw recordedError(rec);
    },

    async sleep(name) {
      const rec = enter(name, 'sleep');
      if (!rec) {
        newStep(
          name,
          'sleep',
          mode === 'execute' ? 'slept' : 'skipped',
          'would wait (not waited in a replay)',
        );
        return;
      }
      const decision = decisionOf(rec);
      line({
        name,
        kind: 'sleep',
        recordedSeq: rec.seq,
        recorded: decision,
        replayed: decision,
        same: true,
        note: 'not waited in a replay',
      });
    },

    escalate: (reason, escalateOptions = {}) => ({ kind: 'escalate', reason, ...escalateOptions }),
    done: (summary) => ({ kind: 'done', summary }),
  };

  let replayed = await runToOutcome(
    runbook,
    {
      input,
      step,
      mode,
      runId: `replay-of-${fixture.run.id}`,
      actor: 'replay',
      log: (message: string) => logs.push(redactor.redactText(message)),
      timeoutMs: toMillis(options.timeout ?? '30s'),
    },
    () => raised,
  );
  replayed.summary = redactor.redactText(replayed.summary);
  // The recorded run was stopped from outside after its last step, in its own code: the replay got further.
  if ((replayed.status === 'succeeded' || replayed.status === 'escalated') && recordingEnded()) {
    replayed = { status: fixture.run.status, summary: 'the recording ends here' };
  }

  for (const rec of fixture.steps) {
    if (!seen.has(rec.name)) {
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
  const outcomeSame =
    recordedOutcome.status === replayed.status &&
    recordedOutcome.to === replayed.to &&
    recordedOutcome.severity === replayed.severity;
  const firstDifference = lined.find((s) => !s.same);
  return {
    runbook: runbook.id,
    recordedRunId: fixture.run.id,
    mode,
    input: input as Json,
    steps: lined,
    outcome: {
      recorded: recordedOutcome,
      replayed,
      same: outcomeSame,
      summaryChanged: recordedOutcome.summary !== replayed.summary,
    },
    firstDifference,
    same: firstDifference === undefined && outcomeSame,
    notRejudged,
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
  const parsed = runbook.input.safeParse(changes ? mergeDeep(recordedInput, changes) : recordedInput);
  if (!parsed.success) {
    throw new InputValidationError(
      `input of runbook ${runbook.id}`,
      parsed.error.issues.map((issue) => ({ path: issuePath(issue.path), message: issue.message })),
    );
  }
  return parsed.data;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `changes` over `base`, object by object: `--input limits.max=10` keeps the other recorded limits. */
function mergeDeep(base: unknown, changes: Record<string, unknown>): Record<string, unknown> {
  const merged: Record<string, unknown> = isPlainObject(base) ? { ...base } : {};
  for (const [key, value] of Object.entries(changes)) {
    merged[key] = isPlainObject(value) && isPlainObject(merged[key]) ? mergeDeep(merged[key], value) : value;
  }
  return merged;
}

/** A recorded step that never finished: the recorded run stopped there. */
function isInFlight(rec: FixtureStep): boolean {
  return rec.status === 'waiting_approval' || rec.status === 'applying' || rec.status === 'sleeping';
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
  if (outcome?.kind === 'escalate') return escalated(outcome);
  if (outcome?.kind === 'done') return { status: fixture.run.status, summary: outcome.summary };
  return { status: fixture.run.status, summary: fixture.run.error?.message ?? '' };
}

function escalated(outcome: Extract<Outcome, { kind: 'escalate' }>): ReplayOutcome {
  return {
    status: 'escalated',
    summary: outcome.reason,
    ...(outcome.to !== undefined ? { to: outcome.to } : {}),
    ...(outcome.severity !== undefined ? { severity: outcome.severity } : {}),
  };
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
  raised: () => Error | undefined,
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
  let ending: unknown;
  try {
    const returned = await Promise.race([
      runbook.run({ ...context, input: context.input as never, signal: controller.signal }),
      deadline,
    ]);
    // A stop the runbook caught and swallowed still ends the run, as a suspension does in the engine.
    const swallowed = raised();
    if (!swallowed) {
      const outcome: Outcome = returned ?? { kind: 'done', summary: 'completed' };
      return outcome.kind === 'escalate'
        ? escalated(outcome)
        : { status: 'succeeded', summary: outcome.summary };
    }
    ending = swallowed;
  } catch (e) {
    ending = raised() ?? e;
  } finally {
    clearTimeout(timer);
  }
  if (ending instanceof StopReplay) return { status: ending.status, summary: ending.message };
  if (ending instanceof EscalateSignal) return escalated(ending.escalation);
  if (isCancelledError(ending)) return { status: 'cancelled', summary: ending.message };
  return { status: 'failed', summary: (ending as Error)?.message ?? String(ending) };
}
