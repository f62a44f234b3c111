import { CommanderError } from 'commander';
import { isInputValidationError, isRunbookError } from '../core/errors';
import { ExitCode, exitCodeForError, UsageError } from './exit-codes';
import { type CliIo, writeJson, writeLines } from './io';
import { buildProgram } from './program';

export { EXIT_CODE_TABLE, ExitCode } from './exit-codes';
export type { CliIo } from './io';

/**
 * Runs the `runbook` command with `argv` (the arguments after the program name) and returns its exit code.
 * Never throws: errors are printed (`error: <message>`, no stack trace for the SDK's own errors).
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode: number = ExitCode.Ok;
  const program = buildProgram({ io, exit: (code) => (exitCode = code) });
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander already printed the help, version or usage error (on stderr).
      if (e.exitCode === 0) return ExitCode.Ok;
      if (argv.includes('--json')) {
        writeJson(io.stdout, {
          error: { code: 'USAGE', message: e.message.replace(/^error: /, '') },
          exitCode: ExitCode.Usage,
        });
      }
      return ExitCode.Usage;
    }
    const code = exitCodeForError(e);
    reportError(e, io, argv.includes('--json'), code);
    return code;
  }
}

function reportError(e: unknown, io: CliIo, json: boolean, exitCode: number): void {
  const message = e instanceof Error ? e.message : String(e);
  if (json) {
    const code = isRunbookError(e) ? e.code : e instanceof UsageError ? 'USAGE' : 'ERROR';
    writeJson(io.stdout, {
      error: { code, message, ...(isInputValidationError(e) ? { issues: e.issues } : {}) },
      exitCode,
    });
  }
  if (isInputValidationError(e)) {
    // "Invalid input for runbook "x": a: …; b: …. Fix …" → one line per field.
    const subject = message.slice(0, message.indexOf(':'));
    const hint = subject.startsWith('Invalid input for runbook')
      ? ' (see `runbook describe <id>` for the schema)'
      : '';
    writeLines(io.stderr, [
      `error: ${subject}:`,
      ...e.issues.map((i) => `  ${i.path || '(input)'}: ${i.message}`),
      `Nothing was run. Fix the named fields${hint} and try again.`,
    ]);
    return;
  }
  writeLines(io.stderr, `error: ${message}`);
}
