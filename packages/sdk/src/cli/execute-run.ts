import type { Runbook } from '../core/runbook';
import type { Engine } from '../engine/engine';
import type { ConfirmPlan, RunResult } from '../engine/run-execution';
import type { RunStore } from '../store/run-store';
import { ConfirmPrompt } from './confirm-prompt';
import { exitCodeForStatus } from './exit-codes';
import { type CliIo, writeJson, writeLines } from './io';
import { showProgress } from './progress';
import { renderRunSummary, renderWaiting } from './render';
import { createEngine, type StoreFlags, storeLocation } from './session';

/**
 * How plans that need no second person are confirmed: `prompt` asks on the terminal, `yes` confirms each
 * (recorded in the audit log as confirmed), `none` applies what policy allows, as a worker does.
 */
export type Confirmation = 'prompt' | 'yes' | 'none';

export interface ExecuteRunOptions {
  io: CliIo;
  json: boolean;
  flags: StoreFlags;
  runbooks: readonly Runbook[];
  confirmation: Confirmation;
  /** Extra fields of the `--json` document (e.g. the approval that was just recorded). */
  extra?: Record<string, unknown>;
}

/**
 * Executes a run in this process (`go` starts or resumes it) with live progress on a terminal, then prints
 * the outcome — or, when it waits for approval, exactly what another person must run. Returns the exit code.
 */
export async function executeRun(
  store: RunStore,
  options: ExecuteRunOptions,
  go: (engine: Engine, signal: AbortSignal | undefined) => Promise<RunResult>,
): Promise<number> {
  const { io, json } = options;
  // On a terminal, progress and prompts go to stdout, or to stderr when stdout carries the JSON document.
  const live = io.isTTY ? (json ? io.stderr : io.stdout) : undefined;
  const prompt = options.confirmation === 'prompt' && live ? new ConfirmPrompt(io, live) : undefined;
  const confirm: ConfirmPlan | undefined =
    prompt?.confirm ?? (options.confirmation === 'yes' ? async () => true : undefined);
  const engine = createEngine(store, options.runbooks, {
    flags: options.flags,
    io,
    ...(confirm ? { confirm } : {}),
  });
  const stopProgress = live ? showProgress(engine, live) : () => {};
  let result: RunResult;
  try {
    result = await go(engine, io.signal);
  } finally {
    stopProgress();
    prompt?.close();
  }
  const detail = await engine.getRun(result.runId);
  const exitCode = exitCodeForStatus(result.status);
  const approveCommand = result.pendingApproval ? `runbook approve ${result.runId}` : undefined;
  if (json) {
    writeJson(io.stdout, {
      ...options.extra,
      ...detail,
      pendingApproval: result.pendingApproval ?? null,
      ...(approveCommand ? { approveCommand } : {}),
      exitCode,
    });
  } else {
    writeLines(io.stdout, renderRunSummary(detail));
    if (result.pendingApproval) {
      const where = storeLocation(options.flags, io);
      writeLines(
        io.stdout,
        renderWaiting(
          result.runId,
          result.pendingApproval,
          where.url
            ? {
                storeArgs: '',
                note: `(with the same PostgreSQL store: --store-url or RUNBOOK_DATABASE_URL${where.schema ? `, schema ${where.schema}` : ''})`,
              }
            : { storeArgs: ` --data-dir ${where.dataDir}` },
        ),
      );
    }
  }
  return exitCode;
}
