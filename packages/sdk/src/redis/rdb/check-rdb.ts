import { execFile } from 'node:child_process';

/** What `redis-check-rdb` said about a file. */
export type CheckRdbResult = {
  /** False when the program is not installed (or could not start); the other fields are then empty. */
  ran: boolean;
  /** Exit status 0 ("RDB looks OK"). */
  ok: boolean | null;
  exitCode: number | null;
  /** Its report, without any line that could carry data from the file (key names, other metadata). */
  lines: string[];
  /** Why it did not run, or did not finish (a timeout). */
  error: string | null;
};

// Lines worth showing; everything else is dropped ("[additional info] Reading key '…'" names a key). Each
// pattern says whether the line is shown as it is (its whole text is known) or blanked from its first quote
// (AUX lines of other fields may carry data: old dumps keep Lua sources in one).
const SHOWN: [RegExp, 'as-is' | 'blank-quotes'][] = [
  [/^\[offset \d+\] AUX FIELD (redis-ver|redis-bits|ctime|used-mem|aof-base) = '[\w.+-]*'$/, 'as-is'],
  [/^\[offset \d+\] Can't handle RDB format version \d+$/, 'as-is'],
  [/^\[offset \d+\] /, 'blank-quotes'],
  [/^--- RDB ERROR DETECTED ---$/, 'as-is'],
  [/^\[additional info\] While doing: [\w-]+$/, 'as-is'],
  [/^\[additional info\] Reading type \d+ \([\w-]+\)$/, 'as-is'],
  [/^\[info\] \d+ (keys read|expires|already expired)$/, 'as-is'],
];

/**
 * Runs `redis-check-rdb <path>` (the program that ships with Redis: it decodes the whole file the way the
 * server would load it). Output lines are filtered (see {@link CheckRdbResult.lines}). Never throws: a
 * program that is missing is reported as not run.
 */
export function runCheckRdb(
  program: string,
  path: string,
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<CheckRdbResult> {
  return new Promise((resolve) => {
    execFile(
      program,
      [path],
      {
        timeout: options.timeoutMs,
        maxBuffer: 4 * 1024 * 1024,
        ...(options.signal ? { signal: options.signal } : {}),
      },
      (error, stdout, stderr) => {
        const e = error as (Error & { code?: number | string; killed?: boolean }) | null;
        if (e && (e.code === 'ENOENT' || e.code === 'EACCES')) {
          const why = e.code === 'ENOENT' ? 'not installed' : 'not executable';
          resolve({ ran: false, ok: null, exitCode: null, lines: [], error: `${program}: ${why}` });
          return;
        }
        const lines = filterLines(`${stdout}\n${stderr}`);
        if (e?.killed || e?.name === 'AbortError') {
          const why = e.name === 'AbortError' ? 'cancelled' : `no result within ${options.timeoutMs}ms`;
          resolve({ ran: true, ok: null, exitCode: null, lines, error: why });
          return;
        }
        const exitCode = e ? (typeof e.code === 'number' ? e.code : 1) : 0;
        resolve({ ran: true, ok: exitCode === 0, exitCode, lines, error: null });
      },
    );
  });
}

/** The lines of a `redis-check-rdb` report that are safe to show (see the patterns above). */
export function filterLines(output: string): string[] {
  const out: string[] = [];
  for (const raw of output.split('\n')) {
    const line = raw.trimEnd();
    const shown = SHOWN.find(([pattern]) => pattern.test(line));
    if (!shown) continue;
    // From the first quote on, a line may hold text from the file (a quote inside it would end a quoted span).
    out.push(shown[1] === 'as-is' ? line : line.replace(/'.*$/, "'…'"));
  }
  return out;
}
