import { type Command, InvalidArgumentError } from 'commander';
import type { CliIo } from './io';
import type { StoreFlags } from './session';

/** What a command's action needs besides its arguments. */
export interface CommandContext {
  io: CliIo;
  /** Records the exit code of the command that ran. */
  exit(code: number): void;
}

/** Options every command may get; each command adds the groups it uses. */
export interface CommonFlags extends StoreFlags {
  json?: boolean;
  as?: string;
  runbooks?: string[];
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function addJsonOption(command: Command): Command {
  return command.option('--json', 'print one JSON document on stdout (no progress on stdout)');
}

export function addRunbooksOption(command: Command): Command {
  return command.option(
    '--runbooks <module>',
    'runbook module: a file (./runbooks.ts) or a package name; repeatable (env RUNBOOK_MODULES, comma-separated)',
    collect,
    [],
  );
}

export function addStoreOptions(command: Command): Command {
  return command
    .option('--store-url <url>', 'PostgreSQL store, postgres://… (env RUNBOOK_DATABASE_URL)')
    .option(
      '--data-dir <dir>',
      'embedded store directory when no URL is given (env RUNBOOK_DATA_DIR; default .runbook/store)',
    )
    .option(
      '--store-schema <name>',
      'schema holding the store tables (env RUNBOOK_STORE_SCHEMA; default runbook)',
    );
}

export function addActorOption(command: Command): Command {
  return command.option('--as <name>', 'act as this person (env RUNBOOK_ACTOR; default: the OS user)');
}

export function addInputOptions(command: Command): Command {
  return command
    .option(
      '--input <key=value>',
      'an input field; the value is parsed as JSON when it parses (3, true, ["a"]), dotted keys nest (a.b=1); repeatable',
      collect,
      [],
    )
    .option('--input-file <path>', 'a JSON file with the input object; --input values override it');
}

/** Parses `--limit`-style options: a whole number ≥ 1. */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number ≥ 1.');
  return n;
}
