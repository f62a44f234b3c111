import {
  isApprovalError,
  isInputValidationError,
  isInvalidStateError,
  isNotFoundError,
} from '../core/errors';
import type { RunStatus } from '../store/records';

/**
 * The `runbook` command's exit codes. They are part of its interface: scripts branch on them, so a code
 * never changes meaning. Documented in `--help` and CLI.md.
 */
export const ExitCode = {
  /** The run succeeded, or the command did what it was asked. */
  Ok: 0,
  /** The run failed; `audit verify` found problems; `replay` found different decisions; an unexpected error. */
  Failed: 1,
  /** Bad usage, options or input; nothing was run. */
  Usage: 2,
  /** The run waits for another person's approval (`runbook approve <runId>`). */
  WaitingApproval: 3,
  /** The run ended escalated to a human. */
  Escalated: 4,
  /** The run was cancelled (declined, rejected, cancelled or interrupted). */
  Cancelled: 5,
  /** A run or runbook was not found, the run's state does not allow the request, or an approval was refused. */
  Refused: 6,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** One line per code, for `--help` and the docs. */
export const EXIT_CODE_TABLE: readonly { code: ExitCode; meaning: string }[] = [
  { code: ExitCode.Ok, meaning: 'succeeded' },
  {
    code: ExitCode.Failed,
    meaning: 'run failed, audit verify found problems, replay found other decisions, or an unexpected error',
  },
  { code: ExitCode.Usage, meaning: 'bad usage, options or input (nothing was run)' },
  { code: ExitCode.WaitingApproval, meaning: 'waiting for approval by another person' },
  { code: ExitCode.Escalated, meaning: 'run escalated to a human' },
  { code: ExitCode.Cancelled, meaning: 'run cancelled (declined, rejected, cancelled, interrupted)' },
  { code: ExitCode.Refused, meaning: 'not found, invalid state, or approval refused (e.g. four eyes)' },
];

/** The `--help` epilog listing the codes. */
export function exitCodeHelp(): string {
  return ['Exit codes:', ...EXIT_CODE_TABLE.map((e) => `  ${e.code}  ${e.meaning}`)].join('\n');
}

/** The exit code for how a run stands after this process stopped executing it. */
export function exitCodeForStatus(status: RunStatus): ExitCode {
  switch (status) {
    case 'succeeded':
      return ExitCode.Ok;
    case 'waiting_approval':
      return ExitCode.WaitingApproval;
    case 'escalated':
      return ExitCode.Escalated;
    case 'cancelled':
      return ExitCode.Cancelled;
    default:
      // failed; or queued/running when another process took the run over (lost lease)
      return ExitCode.Failed;
  }
}

/** A mistake in how the command was called; nothing was run. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The exit code for an error a command threw. */
export function exitCodeForError(e: unknown): ExitCode {
  if (e instanceof UsageError || isInputValidationError(e)) return ExitCode.Usage;
  if (isNotFoundError(e) || isApprovalError(e)) return ExitCode.Refused;
  if (isInvalidStateError(e)) return ExitCode.Refused;
  return ExitCode.Failed;
}
