import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../src/cli/run-cli';

/** The fixture runbook module, as `--runbooks` / RUNBOOK_MODULES take it. */
export const FIXTURE_MODULE = fileURLToPath(new URL('./fixtures/runbooks.ts', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as the one JSON document `--json` prints. */
  // biome-ignore lint/suspicious/noExplicitAny: tests read the JSON documents loosely
  json<T = any>(): T;
}

export interface CliOptions {
  tty?: boolean;
  /** What the operator types (e.g. `"y\n"`). */
  stdin?: string;
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Passed as the CLI's interrupt signal (Ctrl-C in a terminal). */
  signal?: AbortSignal;
  /** Sees each chunk written to stdout as it is written. */
  onStdout?: (chunk: string) => void;
}

/** A temporary directory removed by `dispose()`. */
export function tempDir(prefix: string): { path: string; dispose(): void } {
  const path = mkdtempSync(join(tmpdir(), `runbook-cli-${prefix}-`));
  return { path, dispose: () => rmSync(path, { recursive: true, force: true }) };
}

/** Runs the CLI in-process with captured output. */
export async function cli(argv: string[], options: CliOptions = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    stdout: {
      write: (s: string) => {
        stdout += s;
        options.onStdout?.(s);
      },
    },
    stderr: { write: (s: string) => (stderr += s) },
    stdin: Readable.from(options.stdin === undefined ? [] : [options.stdin]),
    env: { RUNBOOK_ACTOR: 'alice', ...options.env },
    cwd: options.cwd ?? process.cwd(),
    isTTY: options.tty ?? false,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return {
    code,
    stdout,
    stderr,
    json() {
      try {
        return JSON.parse(stdout);
      } catch {
        throw new Error(`stdout is not one JSON document:\n${stdout}\nstderr:\n${stderr}`);
      }
    },
  };
}

/** A CLI bound to one embedded store and the fixture runbooks (through the environment, as users set it). */
export function cliWithStore(dataDir: string) {
  return (argv: string[], options: CliOptions = {}) =>
    cli(argv, {
      ...options,
      env: { RUNBOOK_MODULES: FIXTURE_MODULE, RUNBOOK_DATA_DIR: dataDir, ...options.env },
    });
}
