import type { Command } from 'commander';
import { shortHash } from '../../core/plan';
import type { Runbook } from '../../core/runbook';
import type { ApprovalRecord } from '../../store/records';
import { type Confirmation, executeRun } from '../execute-run';
import { ExitCode, UsageError } from '../exit-codes';
import { type CliIo, writeJson, writeLines } from '../io';
import {
  addActorOption,
  addJsonOption,
  addRunbooksOption,
  addStoreOptions,
  type CommandContext,
  type CommonFlags,
} from '../options';
import { actorOf, createEngine, withStore } from '../session';
import { loadCatalog } from './catalog';

interface DecisionFlags extends CommonFlags {
  reason?: string;
  breakGlass?: boolean;
  step?: string;
  yes?: boolean;
  resume?: boolean;
}

/** On a terminal plans are confirmed interactively; elsewhere the resumed run applies what policy allows. */
function confirmationFor(flags: DecisionFlags, io: CliIo): Confirmation {
  if (flags.yes) return 'yes';
  return io.isTTY ? 'prompt' : 'none';
}

function describeDecision(a: ApprovalRecord): string {
  const verb = a.status === 'approved' ? 'Approved' : 'Rejected';
  return `${verb} step "${a.step}" of run ${a.runId} as ${a.decidedBy} (plan ${shortHash(a.planHash)}, requested by ${a.requestedBy})${a.breakGlass ? ' — BREAK-GLASS, recorded in the audit log' : ''}.`;
}

export function registerDecisionCommands(program: Command, ctx: CommandContext): void {
  const { io } = ctx;

  const approve = program
    .command('approve')
    .description(
      'approve the plan a run waits for (you must not be the requester), then resume the run here and show its progress',
    )
    .argument('<runId>', 'the waiting run')
    .option('--reason <text>', 'why (recorded; required with --break-glass)')
    .option(
      '--break-glass',
      'emergency override of the four-eyes rule; needs --reason and is recorded as such',
    )
    .option('--step <name>', 'the step to approve when several wait')
    .option('-y, --yes', 'confirm any further plan of the resumed run without asking')
    .option('--no-resume', 'only record the approval; the run stays queued for `runbook resume` or a worker');
  addStoreOptions(addActorOption(addRunbooksOption(addJsonOption(approve)))).action(
    async (runId: string, flags: DecisionFlags) => {
      if (flags.breakGlass && !flags.reason?.trim()) {
        throw new UsageError(
          '--break-glass needs --reason "<why>": the override and its reason are recorded in the audit log.',
        );
      }
      const actor = actorOf(flags.as, io.env);
      const runbooks: Runbook[] = flags.resume === false ? [] : await loadCatalog(flags, ctx);
      const code = await withStore(flags, io, async (store) => {
        const engine = createEngine(store, runbooks, { flags, io });
        // Refuse before deciding when this process could not continue the run.
        if (flags.resume !== false) engine.runbook((await engine.getRun(runId)).run.runbookId);
        const approval = await engine.approve(runId, {
          actor,
          ...(flags.reason ? { reason: flags.reason } : {}),
          ...(flags.breakGlass ? { breakGlass: true } : {}),
          ...(flags.step ? { step: flags.step } : {}),
        });
        if (flags.resume === false) {
          if (flags.json)
            writeJson(io.stdout, { approval, run: (await engine.getRun(runId)).run, exitCode: ExitCode.Ok });
          else
            writeLines(io.stdout, [
              describeDecision(approval),
              `The run is queued: continue it with \`runbook resume ${runId}\`.`,
            ]);
          return ExitCode.Ok;
        }
        if (!flags.json) writeLines(io.stdout, [describeDecision(approval), `Resuming run ${runId}…`]);
        return executeRun(
          store,
          {
            io,
            json: flags.json === true,
            flags,
            runbooks,
            confirmation: confirmationFor(flags, io),
            extra: { approval },
          },
          (e, signal) => e.resume(runId, signal ? { signal } : {}),
        );
      });
      ctx.exit(code);
    },
  );

  const reject = program
    .command('reject')
    .description('reject the plan a run waits for; the run ends cancelled')
    .argument('<runId>', 'the waiting run')
    .option('--reason <text>', 'why (recorded)')
    .option('--step <name>', 'the step to reject when several wait');
  addStoreOptions(addActorOption(addJsonOption(reject))).action(
    async (runId: string, flags: DecisionFlags) => {
      const actor = actorOf(flags.as, io.env);
      const approval = await withStore(flags, io, (store) =>
        createEngine(store, [], { flags, io }).reject(runId, {
          actor,
          ...(flags.reason ? { reason: flags.reason } : {}),
          ...(flags.step ? { step: flags.step } : {}),
        }),
      );
      if (flags.json) writeJson(io.stdout, { approval, exitCode: ExitCode.Ok });
      else writeLines(io.stdout, [describeDecision(approval), `Run ${runId} is cancelled.`]);
      ctx.exit(ExitCode.Ok);
    },
  );

  const resume = program
    .command('resume')
    .description(
      'continue a run here: a queued (approved) run, or one whose process died; completed steps are replayed, not repeated',
    )
    .argument('<runId>', 'the run')
    .option('-y, --yes', 'confirm every plan policy lets you apply alone without asking');
  addStoreOptions(addRunbooksOption(addJsonOption(resume))).action(
    async (runId: string, flags: DecisionFlags) => {
      const runbooks = await loadCatalog(flags, ctx);
      const code = await withStore(flags, io, (store) =>
        executeRun(
          store,
          { io, json: flags.json === true, flags, runbooks, confirmation: confirmationFor(flags, io) },
          (engine, signal) => engine.resume(runId, signal ? { signal } : {}),
        ),
      );
      ctx.exit(code);
    },
  );

  const cancel = program
    .command('cancel')
    .description('cancel a run: a queued or waiting one at once, a running one at its next heartbeat')
    .argument('<runId>', 'the run')
    .option('--reason <text>', 'why (recorded)');
  addStoreOptions(addActorOption(addJsonOption(cancel))).action(
    async (runId: string, flags: DecisionFlags) => {
      const actor = actorOf(flags.as, io.env);
      const result = await withStore(flags, io, (store) =>
        createEngine(store, [], { flags, io }).cancel(runId, {
          actor,
          ...(flags.reason ? { reason: flags.reason } : {}),
        }),
      );
      if (flags.json) writeJson(io.stdout, { runId, result, exitCode: ExitCode.Ok });
      else
        writeLines(
          io.stdout,
          result === 'cancelled'
            ? `Run ${runId} is cancelled.`
            : `Cancellation of run ${runId} requested: the process executing it stops at its next heartbeat.`,
        );
      ctx.exit(ExitCode.Ok);
    },
  );
}
