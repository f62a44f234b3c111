import type { Command } from 'commander';
import { ExitCode } from '../exit-codes';
import { writeJson, writeLines } from '../io';
import { addJsonOption, addStoreOptions, type CommandContext, type CommonFlags } from '../options';
import { renderAudit } from '../render';
import { createEngine, withStore } from '../session';

export function registerAuditCommands(program: Command, ctx: CommandContext): void {
  const audit = program.command('audit').description('the append-only, hash-chained audit log');
  const verify = audit
    .command('verify')
    .description(
      'recompute the audit hash chain: entries, head hash, and any edited, missing or reordered entry (exit 1 when there are problems)',
    );
  addStoreOptions(addJsonOption(verify)).action(async (flags: CommonFlags) => {
    const result = await withStore(
      flags,
      ctx.io,
      (store) => createEngine(store, [], { flags, io: ctx.io }).verifyAudit(),
      { existing: true },
    );
    if (flags.json) writeJson(ctx.io.stdout, result);
    else writeLines(ctx.io.stdout, renderAudit(result));
    ctx.exit(result.ok ? ExitCode.Ok : ExitCode.Failed);
  });
}
