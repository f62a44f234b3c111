import { existsSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { InvalidStateError } from '../../core/errors';
import { parseFixture, type RunFixture, recordRun } from '../../replay/fixture';
import { type ReplayReport, replayRun } from '../../replay/replay';
import { ExitCode, UsageError } from '../exit-codes';
import { inputJsonSchema, readRunInput } from '../inputs';
import { writeJson, writeLines } from '../io';
import {
  addInputOptions,
  addJsonOption,
  addRunbooksOption,
  addStoreOptions,
  type CommandContext,
  type CommonFlags,
} from '../options';
import { columns } from '../render';
import { withStore } from '../session';
import { findRunbook, loadCatalog } from './catalog';

interface RecordFlags extends CommonFlags {
  out?: string;
  force?: boolean;
}

interface ReplayFlags extends CommonFlags {
  input: string[];
  inputFile?: string;
  strict?: boolean;
}

export function registerReplayCommands(program: Command, ctx: CommandContext): void {
  const record = program
    .command('record')
    .description(
      "write a run's fixture for replays: its input, every step's result (with the observations of replayable checks) and its outcome, redacted",
    )
    .argument('<runId>', 'run id (see `runbook runs`)')
    .option('-o, --out <file>', 'write the fixture to this file, readable by you only (default: stdout)')
    .option('--force', 'replace the --out file when it exists');
  addStoreOptions(addJsonOption(record)).action(async (runId: string, flags: RecordFlags) => {
    const fixture = await withStore(flags, ctx.io, (store) => recordRun(store, runId), { existing: true });
    if (flags.out) {
      const path = resolve(ctx.io.cwd, flags.out);
      await writeFixture(path, fixture, flags.out, flags.force === true);
      if (flags.json) {
        writeJson(ctx.io.stdout, {
          runId,
          runbook: fixture.runbook,
          file: path,
          steps: fixture.steps.length,
        });
      } else {
        writeLines(
          ctx.io.stdout,
          `Recorded run ${runId} of ${fixture.runbook} (${fixture.steps.length} steps) to ${flags.out}.`,
        );
      }
    } else {
      writeJson(ctx.io.stdout, fixture);
    }
    ctx.exit(ExitCode.Ok);
  });

  const replay = program
    .command('replay')
    .description(
      'replay a recorded run against the runbook as it is now (every step answered from the recording: no step reads or changes anything) and show where its decisions differ (exit 1 when they do)',
    )
    .argument('<fixture>', 'a fixture file written by `runbook record`')
    .option(
      '--strict',
      'also exit 1 when a check could not be judged again (not replayable, or its observation was not kept)',
    );
  addInputOptions(addRunbooksOption(addJsonOption(replay))).action(
    async (file: string, flags: ReplayFlags) => {
      const fixture = parseFixture(await readJsonFile(resolve(ctx.io.cwd, file), file), file);
      const runbook = findRunbook(await loadCatalog(flags, ctx), fixture.runbook);
      const changes =
        flags.input.length > 0 || flags.inputFile
          ? await readRunInput({
              pairs: flags.input,
              file: flags.inputFile,
              cwd: ctx.io.cwd,
              schema: inputJsonSchema(runbook),
            })
          : undefined;
      const report = await replayRun(runbook, fixture, changes ? { input: changes } : {});
      if (flags.json) writeJson(ctx.io.stdout, report);
      else writeLines(ctx.io.stdout, renderReplay(report, fixture.recordedAt));
      // A backtest gate that must not pass on recorded findings alone asks for --strict.
      const unproven = flags.strict === true && report.notRejudged.length > 0;
      if (unproven && !flags.json) {
        writeLines(
          ctx.io.stdout,
          `--strict: ${report.notRejudged.length} check(s) not re-judged, so exit 1.`,
        );
      }
      ctx.exit(report.same && !unproven ? ExitCode.Ok : ExitCode.Failed);
    },
  );
}

/**
 * Writes the fixture whole or not at all, mode 600 (it holds a real incident's data): to a temporary file
 * beside it, renamed into place. An existing file (a committed fixture) is kept unless `force`.
 */
async function writeFixture(path: string, fixture: RunFixture, given: string, force: boolean): Promise<void> {
  if (!force && existsSync(path)) {
    throw new InvalidStateError(`${given} exists; pass --force to replace it, or choose another --out file.`);
  }
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(temporary, `${JSON.stringify(fixture, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    await rename(temporary, path);
  } catch (e) {
    await rm(temporary, { force: true });
    throw e;
  }
}

async function readJsonFile(path: string, given: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new UsageError(`${given}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)}).`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${given}: not JSON (${(e as Error).message}); write it with \`runbook record\`.`);
  }
}

/** The replay as a table: each step's recorded and replayed decision, differences marked, then the outcome. */
export function renderReplay(report: ReplayReport, recordedAt: string): string[] {
  const rows = report.steps.map((s) => [
    s.same ? ' ' : '≠',
    s.recordedSeq === null ? '-' : String(s.recordedSeq),
    s.name,
    s.kind,
    s.recorded ?? '—',
    s.replayed ?? '—',
    s.note,
  ]);
  const { recorded, replayed } = report.outcome;
  const first = report.firstDifference;
  const unjudged = report.notRejudged;
  const caveat =
    unjudged.length === 0
      ? ''
      : ` (${unjudged.length === 1 ? '1 check was' : `${unjudged.length} checks were`} not re-judged, their findings are the recorded ones: ${unjudged.join(', ')})`;
  return [
    `Replay of run ${report.recordedRunId} of ${report.runbook} (${report.mode}, recorded ${recordedAt}) with the runbook as loaded now.`,
    '',
    ...columns([[' ', '#', 'STEP', 'KIND', 'RECORDED', 'NOW', 'NOTE'], ...rows]),
    '',
    `${report.outcome.same ? ' ' : '≠'} outcome  recorded: ${outcomeText(recorded)}`,
    `           now:      ${outcomeText(replayed)}`,
    '',
    report.same
      ? `Same decisions at every step and the same outcome${caveat}.`
      : first
        ? `Decisions differ: first at step "${first.name}" (${first.recorded ?? 'not recorded'} → ${first.replayed ?? 'not reached'})${caveat}.`
        : `The outcome differs: ${outcomeText(recorded)} → ${outcomeText(replayed)}${caveat}.`,
  ];
}

function outcomeText(outcome: ReplayReport['outcome']['recorded']): string {
  const where = [outcome.to ? `to ${outcome.to}` : '', outcome.severity ?? ''].filter(Boolean).join(', ');
  return `${outcome.status}${where ? ` ${where}` : ''} (${outcome.summary})`;
}
