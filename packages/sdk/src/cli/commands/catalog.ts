import type { Command } from 'commander';
import { NotFoundError } from '../../core/errors';
import type { Runbook } from '../../core/runbook';
import { ExitCode } from '../exit-codes';
import { inputJsonSchema } from '../inputs';
import { writeJson, writeLines } from '../io';
import { loadRunbooks, runbookSpecs } from '../load-runbooks';
import { addJsonOption, addRunbooksOption, type CommandContext, type CommonFlags } from '../options';
import { renderRunbook, renderRunbookList } from '../render';

/** Loads the runbooks named by `--runbooks` / `RUNBOOK_MODULES`, sorted by id. */
export async function loadCatalog(flags: CommonFlags, ctx: CommandContext): Promise<Runbook[]> {
  const runbooks = await loadRunbooks(runbookSpecs(flags.runbooks, ctx.io.env), ctx.io.cwd);
  return runbooks.sort((a, b) => a.id.localeCompare(b.id));
}

/** The runbook with `id`, or a NotFoundError listing the loaded ids. */
export function findRunbook(runbooks: readonly Runbook[], id: string): Runbook {
  const runbook = runbooks.find((r) => r.id === id);
  if (!runbook) {
    throw new NotFoundError(
      `Runbook "${id}"`,
      `Loaded runbooks: ${runbooks.map((r) => r.id).join(', ')}. See \`runbook list\`.`,
    );
  }
  return runbook;
}

export function registerCatalogCommands(program: Command, ctx: CommandContext): void {
  const list = program.command('list').description('list the runbooks: id, severity, title, triggers');
  addRunbooksOption(addJsonOption(list)).action(async (flags: CommonFlags) => {
    const runbooks = await loadCatalog(flags, ctx);
    if (flags.json) {
      writeJson(ctx.io.stdout, {
        runbooks: runbooks.map((r) => ({
          id: r.id,
          severity: r.severity,
          title: r.title,
          triggers: r.triggers ?? [],
          tags: r.tags ?? [],
        })),
      });
    } else {
      writeLines(ctx.io.stdout, renderRunbookList(runbooks));
    }
    ctx.exit(ExitCode.Ok);
  });

  const describe = program
    .command('describe')
    .description('show a runbook: description, severity, triggers, tags and its input schema (JSON Schema)')
    .argument('<id>', 'runbook id');
  addRunbooksOption(addJsonOption(describe)).action(async (id: string, flags: CommonFlags) => {
    const runbook = findRunbook(await loadCatalog(flags, ctx), id);
    const schema = inputJsonSchema(runbook);
    if (flags.json) {
      writeJson(ctx.io.stdout, {
        id: runbook.id,
        title: runbook.title,
        description: runbook.description ?? null,
        severity: runbook.severity,
        triggers: runbook.triggers ?? [],
        tags: runbook.tags ?? [],
        timeout: runbook.timeout ?? null,
        inputSchema: schema ?? null,
      });
    } else {
      writeLines(ctx.io.stdout, renderRunbook(runbook, schema));
    }
    ctx.exit(ExitCode.Ok);
  });
}
