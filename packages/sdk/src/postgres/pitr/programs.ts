import { execFile } from 'node:child_process';
import { userInfo } from 'node:os';
import { isAbsolute, normalize } from 'node:path';
import { z } from 'zod';
import { formatMillis } from '../../core/duration';
import { PitrError } from './errors';

/**
 * An absolute, normalized path PostgreSQL can be handed safely. Programs get paths as separate arguments
 * (never through a shell), but PostgreSQL itself puts some of them into shell commands (`restore_command`,
 * `pg_ctl`'s start command) and quoted configuration values, so quote, `%`, `$`, backslash and control
 * characters are refused rather than escaped.
 */
export const SafePath = z
  .string()
  .min(2)
  .max(1024)
  .refine((p) => isAbsolute(p), 'expected an absolute path')
  .refine((p) => normalize(p) === p && !p.endsWith('/'), 'expected a normalized path without a trailing "/"')
  .refine(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
    (p) => !/['"`$%\\\u0000-\u001f\u007f]/.test(p),
    'must not contain quotes, "$", "%", "`", backslashes or control characters',
  );

/** An operating-system user name, as `runuser -u` takes it. */
export const OsUserName = z
  .string()
  .regex(/^[a-z_][a-z0-9_.-]{0,31}$/i, 'expected an operating-system user name such as "postgres"');

/** How PostgreSQL programs are run: which binaries, as which OS user. */
export interface ProgramRunner {
  /** Directory with the server programs (`pg_ctl`, `pg_verifybackup`, …). */
  binDir: string;
  /** The OS user that owns data directories and runs the server. */
  osUser: string;
}

/** True when this process runs as root, and so runs programs through `runuser -u <osUser> --`. */
export function runningAsRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Options of one program run. */
export interface RunOptions {
  /** Run as this OS user (through `runuser` when we are root; as ourselves otherwise). */
  osUser?: string;
  signal?: AbortSignal;
  /** Kill the program after this long. */
  timeoutMs?: number;
  /** For messages: what the program was doing, e.g. `pg_verifybackup of /backups/base`. */
  what: string;
  env?: NodeJS.ProcessEnv;
}

/** What a finished program printed. */
export interface ProgramOutput {
  stdout: string;
  stderr: string;
}

/**
 * Runs a program with `execFile` (arguments are never parsed by a shell), as `osUser` when we are root.
 * Fails with a {@link PitrError} `PITR_COMMAND_FAILED` quoting the program's last lines of output, or
 * `PITR_TIMEOUT`; an abort of `signal` kills the program and rejects with the signal's reason.
 */
export function runProgram(program: string, args: string[], options: RunOptions): Promise<ProgramOutput> {
  options.signal?.throwIfAborted();
  const [file, argv] =
    options.osUser !== undefined && runningAsRoot()
      ? ['runuser', ['-u', options.osUser, '--', program, ...args]]
      : [program, args];
  const signals = [options.signal, options.timeoutMs ? AbortSignal.timeout(options.timeoutMs) : undefined];
  const signal = AbortSignal.any(signals.filter((s): s is AbortSignal => s !== undefined));
  return new Promise((resolve, reject) => {
    execFile(
      file,
      argv,
      {
        signal,
        maxBuffer: 64 * 1024 * 1024,
        env: options.env ? { ...process.env, ...options.env } : process.env,
      },
      (error, stdout, stderr) => {
        if (!error) return resolve({ stdout, stderr });
        if (options.signal?.aborted) return reject(options.signal.reason);
        if (signal.aborted) {
          return reject(
            new PitrError(
              'PITR_TIMEOUT',
              `${options.what} did not finish within ${formatMillis(options.timeoutMs ?? 0)}; it was stopped. Raise the timeout if it legitimately needs longer.`,
            ),
          );
        }
        const code = (error as { code?: unknown }).code;
        const output = lastLines(`${stderr}\n${stdout}`, 8);
        reject(
          new PitrError(
            'PITR_COMMAND_FAILED',
            code === 'ENOENT'
              ? `${options.what} failed: ${file} was not found. Install it or fix the binDir option.`
              : `${options.what} failed (exit ${String(code ?? error.message)}): ${output || error.message}`,
            { cause: error, details: { program, exitCode: typeof code === 'number' ? code : null, output } },
          ),
        );
      },
    );
  });
}

/** The last `n` non-empty lines of `text`, joined by " | " for one-line messages. */
export function lastLines(text: string, n: number): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-n)
    .join(' | ');
}

/** The numeric uid and gid of an OS user (`id -u`, `id -g`). */
export async function osUserIds(osUser: string): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([
    runProgram('id', ['-u', osUser], { what: `id -u ${osUser}` }),
    runProgram('id', ['-g', osUser], { what: `id -g ${osUser}` }),
  ]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** True when `osUser` is the user this process runs as. */
export function isCurrentUser(osUser: string): boolean {
  return userInfo().username === osUser;
}

/**
 * Paths under `dir` that `osUser` cannot read (or, for directories, enter), found with GNU `find` run as that
 * user; `find`'s own "Permission denied" lines are included. `depth` 0 looks at `dir` alone, 1 at its entries.
 * Empty when everything is readable. Reads only.
 */
export async function unreadableBy(
  osUser: string,
  dir: string,
  options: { maxDepth?: number; signal?: AbortSignal; limit?: number } = {},
): Promise<string[]> {
  const depth = options.maxDepth === undefined ? [] : ['-maxdepth', String(options.maxDepth)];
  const args = [dir, ...depth, '(', '!', '-readable', '-o', '-type', 'd', '!', '-executable', ')', '-print'];
  const limit = options.limit ?? 5;
  try {
    const { stdout } = await runProgram('find', args, {
      osUser,
      ...(options.signal ? { signal: options.signal } : {}),
      timeoutMs: 120_000,
      what: `find (as ${osUser}) in ${dir}`,
    });
    return stdout.split('\n').filter(Boolean).slice(0, limit);
  } catch (e) {
    const details = (e as PitrError).details as { output?: string } | undefined;
    if ((e as PitrError).code !== 'PITR_COMMAND_FAILED' || details?.output === undefined) throw e;
    // find exits 1 when it met directories it could not read: its complaints ("'<dir>': Permission denied")
    // and the paths it printed are the answer; a path it complained about is named once.
    const lines = details.output
      .split(' | ')
      .map((line) => line.replace(/^find: /, '').replace(/[‘’']/g, ''));
    const complaints = lines.filter((line) => line.includes(': '));
    return lines
      .filter((line) => line.includes(': ') || !complaints.some((c) => c.startsWith(`${line}: `)))
      .slice(0, limit);
  }
}

/** True when `osUser` can enter `dir` (and so reach what is inside: every directory above must allow it too). */
export async function canEnter(osUser: string, dir: string, signal?: AbortSignal): Promise<boolean> {
  try {
    await runProgram('test', ['-d', dir, '-a', '-x', dir], {
      osUser,
      ...(signal ? { signal } : {}),
      timeoutMs: 30_000,
      what: `test -x ${dir}`,
    });
    return true;
  } catch (e) {
    if ((e as PitrError).code === 'PITR_COMMAND_FAILED') return false;
    throw e;
  }
}
