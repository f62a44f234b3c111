import type { Command } from 'commander';
import { ApprovalError } from '../../core/errors';
import type { Json } from '../../core/json';
import { type Plan, shortHash } from '../../core/plan';
import type { Runbook } from '../../core/runbook';
import type { ApprovalRecord } from '../../store/records';
import { askYesNo } from '../confirm-prompt';
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
import { renderPlan } from '../render';
import { actorOf, createEngine, withStore } from '../session';
import { loadCatalog } from './catalog';

interface DecisionFlags extends CommonFlags {
  reason?: string;
  breakGlass?: boolean;
  step?: string;
  yes?: boolean;
  resume?: boolean;
  plan?: string;
}

/**
 * How the resumed run's further plans are confirmed: on a terminal by asking, with --yes by confirming them;
 * without either, `undefined`: this process must not continue the run (as `run` refuses without them).
 */
function confirmationFor(flags: DecisionFlags, io: CliIo): Confirmation | undefined {
  if (flags.yes) return 'yes';
  return io.isTTY ? 'prompt' : undefined;
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
    .option(
      '--plan <hash>',
      'approve only if the waiting plan has this hash (or hash prefix) — the one you reviewed',
    )
    .option('-y, --yes', "approve without the [y/N] question, and confirm the resumed run's further plans")
    .option('--no-resume', 'only record the approval; the run stays queued for `runbook resume` or a worker');
  addStoreOptions(addActorOption(addRunbooksOption(addJsonOption(approve)))).action(
    async (runId: string, flags: DecisionFlags) => {
      if (flags.breakGlass && !flags.reason?.trim()) {
        throw new UsageError(
          '--break-glass needs --reason "<why>": the override and its reason are recorded in the audit log.',
        );
      }
      const actor = actorOf(flags.as, io.env);
      const confirmation = confirmationFor(flags, io);
      const resume = flags.resume !== false && confirmation !== undefined;
      const runbooks: Runbook[] = resume ? await loadCatalog(flags, ctx) : [];
      const code = await withStore(
        flags,
        io,
        async (store) => {
          const engine = createEngine(store, runbooks, { flags, io });
          const { run, approvals } = await engine.getRun(runId);
          // Refuse before deciding when this process could not continue the run.
          if (resume) engine.runbook(run.runbookId);
          const pending = approvals
            .filter((a) => a.status === 'pending' && (!flags.step || a.step === flags.step))
            .at(-1);
          if (pending) {
            const out = flags.json ? io.stderr : io.stdout;
            writeLines(out, [
              `Step "${pending.step}" of run ${runId} (requested by ${pending.requestedBy}) waits for approval of:`,
              ...renderPlan(pending.plan as unknown as Plan<Json>),
            ]);
            if (flags.plan && !pending.planHash.startsWith(flags.plan.trim().toLowerCase())) {
              throw new ApprovalError(
                'PLAN_MISMATCH',
                `The plan waiting for approval is ${shortHash(pending.planHash)}, not ${flags.plan}: it changed since you reviewed it. Review it again (\`runbook show ${runId}\`).`,
              );
            }
            if (!flags.yes && io.isTTY && !(await askYesNo(io, out, 'Approve this plan? [y/N] '))) {
              writeLines(out, '  not approved');
              return ExitCode.Cancelled;
            }
          }
          const approval = await engine.approve(runId, {
            actor,
            ...(flags.reason ? { reason: flags.reason } : {}),
            ...(flags.breakGlass ? { breakGlass: true } : {}),
            ...(flags.step ? { step: flags.step } : {}),
          });
          if (!resume || confirmation === undefined) {
            if (flags.json)
              writeJson(io.stdout, {
                approval,
                run: (await engine.getRun(runId)).run,
                exitCode: ExitCode.Ok,
              });
            else
              writeLines(io.stdout, [
                describeDecision(approval),
                `The run is queued: continue it with \`runbook resume ${runId}\`${flags.resume === false ? '' : ' (--yes without a terminal)'}, or let a worker pick it up.`,
              ]);
            return ExitCode.Ok;
          }
          if (!flags.json) writeLines(io.stdout, [describeDecision(approval), `Resuming run ${runId}…`]);
          return executeRun(
            store,
            { io, json: flags.json === true, flags, runbooks, confirmation, extra: { approval } },
            (e, signal) => e.resume(runId, signal ? { signal } : {}),
          );
        },
        { existing: true },
      );
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
      const approval = await withStore(
        flags,
        io,
        (store) =>
          createEngine(store, [], { flags, io }).reject(runId, {
            actor,
            ...(flags.reason ? { reason: flags.reason } : {}),
            ...(flags.step ? { step: flags.step } : {}),
          }),
        { existing: true },
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
      const confirmation = confirmationFor(flags, io);
      if (!confirmation) {
        throw new UsageError(
          'Not resuming: there is no terminal to confirm plans on. Pass --yes to apply the plans policy lets you apply alone, or leave the run to a worker.',
        );
      }
      const runbooks = await loadCatalog(flags, ctx);
      const code = await withStore(
        flags,
        io,
        (store) =>
          executeRun(
            store,
            { io, json: flags.json === true, flags, runbooks, confirmation },
            (engine, signal) => engine.resume(runId, signal ? { signal } : {}),
          ),
        { existing: true },
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
      const result = await withStore(
        flags,
        io,
        (store) =>
          createEngine(store, [], { flags, io }).cancel(runId, {
            actor,
            ...(flags.reason ? { reason: flags.reason } : {}),
          }),
        { existing: true },
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
