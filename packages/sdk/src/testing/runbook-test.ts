import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../core/duration';
import { RunbookError } from '../core/errors';
import { parseOptions } from '../core/parse-options';
import type { Runbook } from '../core/runbook';
import { RUN_MODES, type RunMode } from '../core/step';
import { Engine, type EngineOptions } from '../engine/engine';
import type { LogEvent } from '../engine/events';
import type { RunResult } from '../engine/run-execution';
import type { AuditRow } from '../store/records';
import type { RunStore } from '../store/run-store';
import { describeRun, listNames } from './runbook-test/describe-run';
import { openMemoryStore } from './runbook-test/memory-store';
import { RunbookTestRun } from './runbook-test/test-run';

/** Who answers the approvals a test run asks for: someone other than the run's actor (four eyes). */
export const TEST_APPROVER = 'test-approver';

/**
 * How {@link runRunbook} answers an approval request: `approve` it, `reject` it (the run ends cancelled), or
 * `leave` it pending (the run stays `waiting_approval`).
 */
export const ApprovalAnswer = z.enum(['approve', 'reject', 'leave']);
/** How {@link runRunbook} answers an approval request. */
export type ApprovalAnswer = z.infer<typeof ApprovalAnswer>;

/** Options of {@link runRunbook}. `S` is the runbook's input schema, so `input` is typed. */
export interface RunRunbookOptions<S extends z.ZodType = z.ZodType> {
  /** The run's input, validated by the runbook's schema (a bad one throws an `InputValidationError` naming the field). */
  input?: z.input<S>;
  /** @default "execute" */
  mode?: RunMode;
  /** Who starts the run; must not be {@link TEST_APPROVER}, who answers its approvals. @default "test" */
  actor?: string;
  /**
   * How the approvals the run asks for are answered, by {@link TEST_APPROVER}: one answer for all, or one per
   * step name (steps not named are approved). A request asked again (the plan changed) is answered again.
   * Every step named must have asked for approval by the end of the run, else `runRunbook` rejects with an
   * `UNKNOWN_APPROVAL_STEP` error listing the steps that did: a misspelt name must not approve by default.
   * @default "approve"
   */
  approvals?: ApprovalAnswer | Record<string, ApprovalAnswer>;
  /** Engine settings (approval policy, budgets, secrets, notifier …): the engine's options but its store and runbooks. */
  engine?: Omit<EngineOptions, 'store' | 'runbooks'>;
  /** A store to keep the run in, left open. @default a fresh in-memory embedded (PGlite) store, closed after the run */
  store?: RunStore;
  /** Time limit of the whole test run: start, approvals and resumes. @default "60s" */
  timeout?: Duration;
}

// The options that are data, validated so that a typo in a test is named rather than ignored.
const RunRunbookSettings = z.object({
  mode: z.enum(RUN_MODES).default('execute'),
  actor: z
    .string()
    .trim()
    .min(1)
    .refine((a) => a.toLowerCase() !== TEST_APPROVER, {
      message: `must not be "${TEST_APPROVER}": that is who answers the run's approvals, and an approver must be someone else`,
    })
    .default('test'),
  approvals: z.union([ApprovalAnswer, z.record(z.string().min(1), ApprovalAnswer)]).default('approve'),
  timeout: Duration.default('60s'),
});

// Each approval resumes the run, which re-plans; a plan whose starting point changes every time is asked
// for again every time, for ever.
const MAX_ASKS_PER_STEP = 5;
const AUDIT_PAGE = 1_000;

/**
 * Runs a runbook in a test: a fresh in-memory store and an {@link Engine} with just this runbook, the run
 * started in `execute` mode by `test`, its approvals answered by {@link TEST_APPROVER} (approved unless
 * told otherwise) and the run resumed, until it ends or an approval is left pending. Resolves with a
 * {@link RunbookTestRun}: the run, its steps, approvals, audit trail and logs as stored, with assertions.
 *
 * ```ts
 * const run = await runRunbook(agentFailure(k8s), { input: { agent: 'requirements-agent' } });
 * run.expectStatus('succeeded');
 * run.expectFinding('pods', 'fail');
 * run.expectApplied('restart');
 * ```
 *
 * Rejects with an `InputValidationError` naming the field for a bad input or option (nothing is run), with a
 * `TIMEOUT` error listing the steps so far when the run outlives `timeout` (it is cancelled), and with an
 * `UNKNOWN_APPROVAL_STEP` error when per-step `approvals` name a step that never asked for approval.
 */
export async function runRunbook<S extends z.ZodType>(
  runbook: Runbook<S>,
  options: RunRunbookOptions<S> = {},
): Promise<RunbookTestRun> {
  const settings = parseOptions('runRunbook', RunRunbookSettings, {
    mode: options.mode,
    actor: options.actor,
    approvals: options.approvals,
    timeout: options.timeout,
  });
  const timeoutMs = toMillis(settings.timeout);
  const store = options.store ?? (await openMemoryStore());
  try {
    const engine = new Engine({ ...options.engine, store, runbooks: [runbook] });
    const logs: LogEvent[] = [];
    const listening = engine.onLog((e) => logs.push(e));
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), timeoutMs);
    try {
      const result = await drive(engine, runbook.id, options.input, settings, deadline.signal);
      if (deadline.signal.aborted) {
        const { run, steps } = await engine.getRun(result.runId);
        throw new RunbookError(
          'TIMEOUT',
          `runRunbook: the run of "${runbook.id}" did not end within its test timeout of ${formatMillis(timeoutMs)} and was cancelled. Raise \`timeout\` if it legitimately needs longer.\n${describeRun(run, steps)}`,
          { retriable: false },
        );
      }
      const run = await snapshot(engine, result.runId, logs);
      checkApprovalSteps(runbook.id, settings.approvals, run);
      return run;
    } finally {
      clearTimeout(timer);
      listening.dispose();
    }
  } finally {
    if (!options.store) await store.close();
  }
}

type Settings = z.output<typeof RunRunbookSettings>;

/** Starts the run and answers its approvals until it ends, an approval is left, or the time is up. */
async function drive(
  engine: Engine,
  runbookId: string,
  input: unknown,
  settings: Settings,
  signal: AbortSignal,
): Promise<RunResult> {
  let result = await engine.start(runbookId, input ?? {}, {
    mode: settings.mode,
    actor: settings.actor,
    signal,
  });
  const asked = new Map<string, number>();
  while (result.status === 'waiting_approval' && !signal.aborted) {
    const pending = (await engine.store.listApprovals(result.runId)).filter((a) => a.status === 'pending');
    const request = pending.at(-1);
    if (!request) break;
    const answer = answerFor(settings.approvals, request.step);
    if (answer === 'leave') break;
    const times = (asked.get(request.step) ?? 0) + 1;
    asked.set(request.step, times);
    if (times > MAX_ASKS_PER_STEP) {
      throw new RunbookError(
        'TOO_MANY_APPROVALS',
        `runRunbook: the run of "${runbookId}" asked for approval of step "${request.step}" ${times} times: every approval was followed by a new plan that starts from a different state. Make plan() read only the world, and make sure nothing else keeps changing what it reads.`,
        { retriable: false },
      );
    }
    const decision = { actor: TEST_APPROVER, step: request.step };
    if (answer === 'reject') {
      // The store ends the run cancelled with the rejection; there is nothing to resume.
      await engine.reject(result.runId, { ...decision, reason: 'rejected by the test' });
      break;
    }
    await engine.approve(result.runId, decision);
    result = await engine.resume(result.runId, { signal });
  }
  return result;
}

/**
 * Fails a run whose per-step `approvals` name a step that never asked: a misspelt name would otherwise let
 * the step it meant be approved by default, and the test pass for the wrong reason.
 */
function checkApprovalSteps(runbookId: string, approvals: Settings['approvals'], run: RunbookTestRun): void {
  if (typeof approvals === 'string') return;
  const asked = [...new Set(run.approvals.map((a) => a.step))];
  const unknown = Object.keys(approvals).filter((step) => !asked.includes(step));
  if (unknown.length === 0) return;
  throw new RunbookError(
    'UNKNOWN_APPROVAL_STEP',
    `runRunbook: \`approvals\` answers ${listNames(unknown)}, but no such step of the run of "${runbookId}" asked for approval. The steps that asked: ${listNames(asked)}. Fix a misspelt name; a step the run did not reach, or that the approval policy let through without asking, needs no answer.\n${run.toString()}`,
    { retriable: false },
  );
}

function answerFor(approvals: Settings['approvals'], step: string): ApprovalAnswer {
  return typeof approvals === 'string' ? approvals : (approvals[step] ?? 'approve');
}

/** Reads everything about the run from the store (before the store is closed). */
async function snapshot(engine: Engine, runId: string, logs: LogEvent[]): Promise<RunbookTestRun> {
  const { run, steps, approvals } = await engine.getRun(runId);
  const audit: AuditRow[] = [];
  for (;;) {
    const page = await engine.store.readRunAudit(runId, audit.at(-1)?.seq ?? 0, AUDIT_PAGE);
    audit.push(...page);
    if (page.length < AUDIT_PAGE) break;
  }
  return new RunbookTestRun({ run, steps, approvals, audit, logs: logs.filter((l) => l.runId === runId) });
}
