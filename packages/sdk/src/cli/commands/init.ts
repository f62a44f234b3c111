import { lstatSync, mkdirSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Command } from 'commander';
import { InvalidStateError } from '../../core/errors';
import { ExitCode, UsageError } from '../exit-codes';
import { writeJson, writeLines } from '../io';
import { addJsonOption, type CommandContext } from '../options';
import { installCommands, missingPackages } from '../scaffold/dependencies';
import { scaffoldNames } from '../scaffold/names';
import { commandLines, type NextStep, nextSteps } from '../scaffold/next-steps';
import { runbookModuleSource } from '../scaffold/runbook-module';
import { runbookTestSource } from '../scaffold/runbook-test';
import { writeAllOrNothing } from '../scaffold/write-files';

interface InitFlags {
  dir: string;
  force?: boolean;
  json?: boolean;
}

interface ScaffoldFile {
  path: string;
  /** The path as the user would type it: relative below the working directory, else absolute. */
  shown: string;
  what: string;
  source: string;
}

/** `runbook init <id>`: writes a runbook module and its test, then says how to run them. */
export function registerInitCommand(program: Command, ctx: CommandContext): void {
  const init = program
    .command('init')
    .description(
      'scaffold a runbook module <dir>/<id>.ts and its vitest test <dir>/<id>.test.ts, ready to run',
    )
    .argument('<id>', 'the new runbook id: lowercase words joined by dashes, e.g. checkout-latency')
    .option('--dir <dir>', 'directory for the two files, relative to the working directory', 'runbooks')
    .option('--force', 'overwrite the files when they exist (without it, existing files are never touched)');
  addJsonOption(init).action((id: string, flags: InitFlags) => {
    const names = scaffoldNames(id);
    const dir = resolve(ctx.io.cwd, flags.dir);
    // Paths as the user would type them: relative below the working directory, absolute elsewhere.
    const shown = (path: string) => {
      const rel = relative(ctx.io.cwd, path);
      return rel === '' ? '.' : rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel) ? path : rel;
    };
    const files: ScaffoldFile[] = [
      {
        path: join(dir, `${id}.ts`),
        what: 'the runbook: checks a Deployment and its pods, restarts it when they fail',
        source: runbookModuleSource(names),
      },
      {
        path: join(dir, `${id}.test.ts`),
        what: 'its tests, against an in-process Kubernetes simulator',
        source: runbookTestSource(names),
      },
    ].map((f) => ({ ...f, shown: shown(f.path) }));

    const existing = refuseConflicts(files, dir, flags);
    mkdirSync(dir, { recursive: true });
    writeAllOrNothing(files, { force: flags.force === true });

    const missing = missingPackages(dir);
    const [module, test] = files as [ScaffoldFile, ScaffoldFile];
    const next = nextSteps({
      id,
      modulePath: module.shown,
      testPath: test.shown,
      missing,
      install: installCommands(missing, dir, ctx.io.cwd),
    });
    if (flags.json) {
      writeJson(ctx.io.stdout, {
        id,
        files: files.map((f) => f.path),
        missing,
        next: next.map((step) => ({ what: step.what, commands: commandLines(step) })),
      });
    } else {
      const overwritten = new Set(existing.map((f) => f.path));
      writeLines(ctx.io.stdout, renderInit(id, files, overwritten, next));
    }
    ctx.exit(ExitCode.Ok);
  });
}

/**
 * Throws, before anything is written, when `dir` is not a directory (exit 2) or a file to write exists and
 * `--force` was not given (exit 6: the call was right, the directory's state refuses it). Returns the files
 * that exist, which `--force` overwrites.
 */
function refuseConflicts(files: readonly ScaffoldFile[], dir: string, flags: InitFlags): ScaffoldFile[] {
  if (!['none', 'directory'].includes(kindOf(dir))) {
    throw new UsageError(`--dir ${flags.dir}: it exists and is not a directory. Nothing was written.`);
  }
  const existing = files.filter((f) => kindOf(f.path) !== 'none');
  const notFiles = existing.filter((f) => kindOf(f.path) !== 'file');
  if (notFiles.length > 0) {
    throw new InvalidStateError(
      `${notFiles.map((f) => f.shown).join(' and ')} exists and is not a file. Nothing was written.`,
    );
  }
  if (existing.length > 0 && !flags.force) {
    const list = existing.map((f) => f.shown).join(' and ');
    throw new InvalidStateError(
      `${list} already ${existing.length > 1 ? 'exist' : 'exists'}. Nothing was written: pass --force to overwrite, or choose another id or --dir.`,
    );
  }
  return existing;
}

/** What is at `path`, following symbolic links; a dangling link is something in the way (`other`). */
function kindOf(path: string): 'none' | 'file' | 'directory' | 'other' {
  try {
    const stat = statSync(path, { throwIfNoEntry: false });
    if (!stat) return lstatSync(path, { throwIfNoEntry: false }) ? 'other' : 'none';
    return stat.isFile() ? 'file' : stat.isDirectory() ? 'directory' : 'other';
  } catch {
    return 'other'; // e.g. ENOTDIR: a file where a directory of the path should be
  }
}

function renderInit(
  id: string,
  files: readonly ScaffoldFile[],
  overwritten: ReadonlySet<string>,
  next: readonly NextStep[],
): string[] {
  const width = Math.max(...files.map((f) => f.shown.length));
  return [
    `Created the runbook "${id}":`,
    ...files.map(
      (f) => `  ${f.shown.padEnd(width)}  ${f.what}${overwritten.has(f.path) ? ' (overwritten)' : ''}`,
    ),
    '',
    'Next steps:',
    ...next.flatMap((step, i) => [
      `  ${i + 1}. ${step.what}:`,
      ...step.commands.flatMap((parts) =>
        parts.map((part, j) => `${j === 0 ? '     ' : '       '}${part}${j < parts.length - 1 ? ' \\' : ''}`),
      ),
    ]),
    '',
    'Then make it yours: AUTHORING.md in @aiwebtest/runbooks is the guide to writing runbooks.',
  ];
}
