import { Command } from 'commander';
import packageJson from '../../package.json' with { type: 'json' };
import { registerAuditCommands } from './commands/audit';
import { registerCatalogCommands } from './commands/catalog';
import { registerDecisionCommands } from './commands/decisions';
import { registerInitCommand } from './commands/init';
import { registerReplayCommands } from './commands/replay';
import { registerRunCommands } from './commands/runs';
import { registerServeCommand } from './commands/serve';
import { registerStartCommands } from './commands/start';
import { exitCodeHelp } from './exit-codes';
import type { CommandContext } from './options';

const ENVIRONMENT_HELP = `Environment:
  RUNBOOK_MODULES        comma-separated runbook modules (instead of --runbooks)
  RUNBOOK_ACTOR          who you act as (instead of --as; default: the OS user)
  RUNBOOK_DATABASE_URL   PostgreSQL store (instead of --store-url)
  RUNBOOK_DATA_DIR       embedded store directory (instead of --data-dir; default .runbook/store)
  RUNBOOK_STORE_SCHEMA   schema of the store tables (instead of --store-schema; default runbook)
  RUNBOOK_TOKENS_FILE    the service's hashed bearer tokens (serve; instead of --tokens-file)
  RUNBOOK_SERVICE_CONFIG the service config (serve; instead of --config)`;

/** Builds the `runbook` command. Output goes through `ctx.io`; commander's own exits become exceptions. */
export function buildProgram(ctx: CommandContext): Command {
  const program = new Command('runbook')
    .description(
      'Diagnose and recover with runbooks as code: durable runs, approvals by a second person, an audit log.',
    )
    .version(packageJson.version, '-V, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.io.stdout.write(s),
      writeErr: (s) => ctx.io.stderr.write(s),
    })
    .showHelpAfterError('(add --help for usage)')
    .allowExcessArguments(false);

  registerInitCommand(program, ctx);
  registerCatalogCommands(program, ctx);
  registerStartCommands(program, ctx);
  registerRunCommands(program, ctx);
  registerDecisionCommands(program, ctx);
  registerAuditCommands(program, ctx);
  registerReplayCommands(program, ctx);
  registerServeCommand(program, ctx);

  program.addHelpText('after', `\n${ENVIRONMENT_HELP}\n\n${exitCodeHelp()}`);
  for (const command of allCommands(program)) {
    if (command !== program) command.addHelpText('after', `\n${exitCodeHelp()}`);
  }
  return program;
}

function allCommands(command: Command): Command[] {
  return [command, ...command.commands.flatMap(allCommands)];
}
