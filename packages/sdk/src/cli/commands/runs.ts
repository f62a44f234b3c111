import { existsSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { incidentReport } from '../../notify/incident-report';
import { incidentTimeline } from '../../notify/timeline';
import { RUN_STATUSES, type RunStatus } from '../../store/records';
import type { RunStore } from '../../store/run-store';
import { ExitCode } from '../exit-codes';
import { writeJson, writeLines } from '../io';
import {
  addJsonOption,
  addStoreOptions,
  type CommandContext,
  type CommonFlags,
  positiveInt,
} from '../options';
import { renderRunDetail, renderRunList } from '../render';
import { createEngine, storeLocation, withStore } from '../session';

interface RunsFlags extends CommonFlags {
  status?: RunStatus;
  runbook?: string;
  limit: number;
}

export function registerRunCommands(program: Command, ctx: CommandContext): void {
  const runs = program
    .command('runs')
    .description('list recent runs, newest first')
    .addOption(new Option('--status <status>', 'only runs in this status').choices(RUN_STATUSES))
    .option('--runbook <id>', 'only runs of this runbook')
    .option('--limit <n>', 'at most this many runs', positiveInt, 20);
  addStoreOptions(addJsonOption(runs)).action(async (flags: RunsFlags) => {
    const location = storeLocation(flags, ctx.io);
    // No embedded store here yet means no runs here, not a new empty store.
    const list =
      !location.url && !existsSync(location.dataDir)
        ? []
        : await withStore(flags, ctx.io, (store) =>
            store.listRuns({
              limit: flags.limit,
              ...(flags.status ? { status: flags.status } : {}),
              ...(flags.runbook ? { runbookId: flags.runbook } : {}),
            }),
          );
    if (flags.json) writeJson(ctx.io.stdout, { runs: list });
    else writeLines(ctx.io.stdout, renderRunList(list));
    ctx.exit(ExitCode.Ok);
  });

  const show = program
    .command('show')
    .description(
      'show a run: its steps with status and summary, the evidence of findings, plans and approvals',
    )
    .argument('<runId>', 'run id (see `runbook runs`)');
  addStoreOptions(addJsonOption(show)).action(async (runId: string, flags: CommonFlags) => {
    const detail = await withStore(
      flags,
      ctx.io,
      (store) => createEngine(store, [], { flags, io: ctx.io }).getRun(runId),
      { existing: true },
    );
    if (flags.json) writeJson(ctx.io.stdout, detail);
    else writeLines(ctx.io.stdout, renderRunDetail(detail));
    ctx.exit(ExitCode.Ok);
  });

  const report = program
    .command('report')
    .description(
      "write a run's incident report for the postmortem (Markdown: summary, severity, timeline, actions, approvals, follow-ups), from the run and its audit entries",
    )
    .argument('<runId>', 'run id (see `runbook runs`)')
    .option('--title <text>', 'the report\'s title (default: "Incident: <runbook id>")')
    .option('--impact <text>', 'who and what was affected, in a sentence');
  addStoreOptions(addJsonOption(report)).action(
    async (runId: string, flags: CommonFlags & { title?: string; impact?: string }) => {
      const { run, audit } = await withStore(
        flags,
        ctx.io,
        async (store) => {
          const detail = await createEngine(store, [], { flags, io: ctx.io }).getRun(runId);
          return { run: detail.run, audit: await readWholeRunAudit(store, runId) };
        },
        { existing: true },
      );
      const input = {
        run,
        audit,
        ...(flags.title ? { title: flags.title } : {}),
        ...(flags.impact ? { impact: flags.impact } : {}),
      };
      const markdown = incidentReport(input);
      if (flags.json) writeJson(ctx.io.stdout, { runId, timeline: incidentTimeline(input), markdown });
      else ctx.io.stdout.write(markdown.endsWith('\n') ? markdown : `${markdown}\n`);
      ctx.exit(ExitCode.Ok);
    },
  );
}

/** Every audit entry of a run, in pages (a long incident has more than one page's worth). */
async function readWholeRunAudit(store: RunStore, runId: string) {
  const all = [];
  for (let after = 0; ; ) {
    const page = await store.readRunAudit(runId, after, 1_000);
    all.push(...page);
    const last = page.at(-1);
    if (page.length < 1_000 || !last) return all;
    after = last.seq;
  }
}
