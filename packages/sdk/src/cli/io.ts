/** Where the CLI reads and writes; `main.ts` passes the process's, tests pass their own. */
export interface CliIo {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
  /** Read for the `Apply? [y/N]` prompt. */
  stdin: NodeJS.ReadableStream;
  env: Record<string, string | undefined>;
  /** Relative paths (`--data-dir`, `--runbooks ./x.ts`, `--input-file`) resolve against it. */
  cwd: string;
  /** An operator at a terminal: enables live progress and the confirmation prompt. */
  isTTY: boolean;
  /** Aborting it (Ctrl-C) cancels the run being executed. */
  signal?: AbortSignal;
}

/** Writes lines to a stream. */
export function writeLines(stream: CliIo['stdout'], lines: string | readonly string[]): void {
  const text = typeof lines === 'string' ? lines : lines.join('\n');
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** Writes one JSON document. */
export function writeJson(stream: CliIo['stdout'], value: unknown): void {
  stream.write(`${JSON.stringify(value, null, 2)}\n`);
}
