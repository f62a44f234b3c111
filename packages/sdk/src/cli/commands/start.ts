import type { Command } from 'commander';
import type { RunMode } from '../../core/step';
import { type Confirmation, executeRun } from '../execute-run';
import { UsageError } from '../exit-codes';
import { inputJsonSchema, readRunInput } from '../inputs';
import {
  addActorOption,
  addInputOptions,
  addJsonOption,
  addRunbooksOption,
  addStoreOptions,
  type CommandContext,
  type CommonFlags,
} from '../options';
import { actorOf, withStore } from '../session';
import { findRunbook, loadCatalog } from './catalog';

interface StartFlags extends CommonFlags {
  input: string[];
  inputFile?: string;
  yes?: boolean;
}

const COMMANDS: { name: string; mode: RunMode; description: string }[] = [
  {
    name: 'diagnose',
    mode: 'diagnose',
    description: "run a runbook's checks and show the findings; nothing is planned or applied",
  },
  {
    name: 'plan',
    mode: 'plan',
    description: 'run the checks and plan every action (the dry run); nothing is applied',
  },
  {
    name: 'run',
    mode: 'execute',
    description:
      'execute a runbook: checks, plans and applies. Each plan is shown and confirmed (Apply? [y/N]) on a terminal, or by --yes; plans that policy reserves for a second person wait for `runbook approve`',
  },
];

export function registerStartCommands(program: Command, ctx: CommandContext): void {
  for (const spec of COMMANDS) {
    const command = program.command(spec.name).description(spec.description).argument('<id>', 'runbook id');
    addStoreOptions(addActorOption(addRunbooksOption(addJsonOption(addInputOptions(command)))));
    if (spec.mode === 'execute') {
      command.option(
        '-y, --yes',
        'confirm every plan that policy lets you apply alone (needed without a terminal)',
      );
    }
    command.action(async (id: string, flags: StartFlags) => ctx.exit(await start(spec.mode, id, flags, ctx)));
  }
}

async function start(mode: RunMode, id: string, flags: StartFlags, ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  if (mode === 'execute' && !flags.yes && !io.isTTY) {
    throw new UsageError(
      'Not applying anything: there is no terminal to confirm plans on. Pass --yes to apply the plans policy lets you apply alone (plans that need a second person still wait for `runbook approve`), or see them first with `runbook plan`.',
    );
  }
  const runbooks = await loadCatalog(flags, ctx);
  const runbook = findRunbook(runbooks, id);
  const input = await readRunInput({
    pairs: flags.input,
    file: flags.inputFile,
    cwd: io.cwd,
    schema: inputJsonSchema(runbook),
  });
  const actor = actorOf(flags.as, io.env);
  const confirmation: Confirmation = flags.yes ? 'yes' : 'prompt';
  return withStore(flags, io, (store) =>
    executeRun(store, { io, json: flags.json === true, flags, runbooks, confirmation }, (engine, signal) =>
      engine.start(id, input, { mode, actor, ...(signal ? { signal } : {}) }),
    ),
  );
}
