import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatMillis } from '../../core/duration';
import { sleep } from '../../core/sleep';
import { connectPostgres, isPostgresError, type PostgresDatabase } from '../database';
import { PitrError } from './errors';
import { type ProgramRunner, runProgram } from './programs';

/** What `postmaster.pid` says about a running (or crashed) server. */
export interface PostmasterStatus {
  pid: number;
  port: number | null;
  /** `starting`, `standby` (consistent, in recovery), `ready` (accepting writes) or `stopping`. */
  status: string;
  /** Whether the process still exists. */
  alive: boolean;
}

/** Reads `<dataDir>/postmaster.pid`; `null` when there is none (the server is not running). */
export async function postmasterStatus(dataDir: string): Promise<PostmasterStatus | null> {
  const text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => null);
  if (text === null) return null;
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const port = Number(lines[3]);
  return {
    pid,
    port: Number.isInteger(port) && port > 0 ? port : null,
    status: (lines[7] ?? '').trim() || 'starting',
    alive: processAlive(pid),
  };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Starts the server with `pg_ctl start` without waiting (the restore watches recovery itself). */
export async function startServer(
  runner: ProgramRunner,
  dataDir: string,
  logFile: string,
  signal: AbortSignal,
): Promise<void> {
  await runProgram(join(runner.binDir, 'pg_ctl'), ['start', '-W', '-D', dataDir, '-l', logFile], {
    osUser: runner.osUser,
    signal,
    timeoutMs: 60_000,
    what: `pg_ctl start of ${dataDir}`,
  });
}

/**
 * Stops the server of `dataDir` if one runs: `pg_ctl stop -m fast`, then `-m immediate` when that does not
 * finish in time. Resolves when no server runs there.
 */
export async function stopServer(
  runner: ProgramRunner,
  dataDir: string,
  options: { timeoutMs?: number } = {},
): Promise<boolean> {
  const status = await postmasterStatus(dataDir);
  if (!status?.alive) return false;
  const seconds = String(Math.max(1, Math.ceil((options.timeoutMs ?? 60_000) / 1_000)));
  const pgCtl = join(runner.binDir, 'pg_ctl');
  try {
    await runProgram(pgCtl, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', seconds], {
      osUser: runner.osUser,
      timeoutMs: (Number(seconds) + 10) * 1_000,
      what: `pg_ctl stop of ${dataDir}`,
    });
  } catch {
    await runProgram(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '30'], {
      osUser: runner.osUser,
      timeoutMs: 40_000,
      what: `pg_ctl stop -m immediate of ${dataDir}`,
    }).catch(() => {});
  }
  return true;
}

// FATAL lines a server logs for clients it turned away while starting or stopping: not why it stopped.
const CLIENT_NOISE =
  /the database system is (starting up|not yet accepting connections|not accepting connections|shutting down|in recovery mode)|terminating connection due to/;

/** The server's log as the restore reads it: new lines on each poll, and what they say about recovery. */
export class ServerLog {
  readonly path: string;
  #offset = 0;
  #partial = '';
  /** The last lines, for error details. */
  readonly tail: string[] = [];
  /** WAL segments restored from the archive so far, and the last of them. */
  restored = 0;
  lastRestored: string | null = null;
  /** The server said it reached a consistent state. */
  consistent = false;
  /** The postmaster said it is shutting down or shut down. */
  exited = false;
  /** FATAL and PANIC lines that are not about turned-away clients, `FATAL: …` without the prefix. */
  readonly fatal: string[] = [];
  /** `cp` complaints from `restore_command` (permission denied, …). */
  readonly restoreErrors: string[] = [];

  constructor(path: string) {
    this.path = path;
  }

  /** Reads what was appended since the last call. */
  async read(): Promise<void> {
    const file = await open(this.path, 'r').catch(() => null);
    if (!file) return;
    try {
      const chunk = Buffer.alloc(1024 * 1024);
      for (;;) {
        const { bytesRead } = await file.read(chunk, 0, chunk.length, this.#offset);
        if (bytesRead === 0) break;
        this.#offset += bytesRead;
        const text = this.#partial + chunk.subarray(0, bytesRead).toString('utf8');
        const lines = text.split('\n');
        this.#partial = lines.pop() ?? '';
        for (const line of lines) this.#see(line);
      }
    } finally {
      await file.close();
    }
  }

  #see(line: string): void {
    if (!line.trim()) return;
    this.tail.push(line);
    if (this.tail.length > 40) this.tail.shift();
    const restored = /restored log file "([0-9A-F]{24})" from archive/.exec(line);
    if (restored) {
      this.restored++;
      this.lastRestored = restored[1] as string;
    }
    if (/consistent recovery state reached/.test(line)) this.consistent = true;
    if (/database system is shut down|aborting startup due to startup process failure/.test(line)) {
      this.exited = true;
    }
    const severe = /\b(FATAL|PANIC):\s+(.*)$/.exec(line);
    if (severe && !CLIENT_NOISE.test(line)) this.fatal.push(`${severe[1]}: ${(severe[2] as string).trim()}`);
    if (/^cp: /.test(line.trim())) this.restoreErrors.push(line.trim());
  }
}

/** What watching recovery ends with. */
export interface Promotion {
  /** The timeline the server runs on after promotion. */
  timeline: number;
  /** Milliseconds from start to promotion. */
  durationMs: number;
  segmentsRestored: number;
  lastRestored: string | null;
}

/** Options of {@link awaitPromotion}. */
export interface AwaitPromotionOptions {
  dataDir: string;
  log: ServerLog;
  /** How to reach the server (`postgres://user@127.0.0.1:port/db`). */
  url: string;
  /** Until the server is consistent (the backup's own WAL is replayed). */
  startTimeoutMs: number;
  /** From consistency until promotion (the archived WAL up to the target is replayed). */
  promoteTimeoutMs: number;
  pollMs: number;
  progressMs: number;
  signal: AbortSignal;
  progress(message: string, data?: Record<string, unknown>): void;
  /** Describes the target in messages. */
  target: string;
  /** Describes where the WAL came from in messages. */
  source: string;
}

/**
 * Watches a started server until it has promoted (`pg_is_in_recovery()` is false), reading its
 * `postmaster.pid` and log, with progress lines (segments restored, replay position). Fails with a
 * {@link PitrError} when the server stops (quoting its FATAL line), or a timeout passes.
 */
export async function awaitPromotion(o: AwaitPromotionOptions): Promise<Promotion> {
  const started = Date.now();
  let consistentAt: number | null = null;
  let seenAlive = false;
  let lastProgress = started;
  let db: PostgresDatabase | undefined;
  const connect = () => {
    db ??= connectPostgres({
      url: o.url,
      name: 'pitr-restored',
      connectTimeout: '3s',
      statementTimeout: '10s',
      poolSize: 1,
    });
    return db;
  };
  try {
    for (;;) {
      o.signal.throwIfAborted();
      await o.log.read();
      const status = await postmasterStatus(o.dataDir);
      if (status?.alive) seenAlive = true;
      if (!status?.alive && (seenAlive || o.log.exited || o.log.fatal.length > 0)) {
        // Give the log a moment to receive the postmaster's last lines.
        await sleep(200, o.signal);
        await o.log.read();
        throw recoveryFailure(o.log, o.target, o.source);
      }
      const now = Date.now();
      if (consistentAt === null && (status?.status === 'standby' || o.log.consistent)) {
        consistentAt = now;
        o.progress(
          `consistent after ${formatMillis(now - started)}; replaying archived WAL up to ${o.target}`,
          { segmentsRestored: o.log.restored },
        );
      }
      if (status?.alive && status.status === 'ready') {
        const state = await connect()
          .query<{ in_recovery: boolean; walfile: string | null }>(
            `SELECT pg_is_in_recovery() AS in_recovery,
                    CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS walfile`,
            [],
            { signal: o.signal },
          )
          .catch((e: unknown) => {
            // Wrong credentials will not fix themselves: say so now rather than at the promote timeout.
            if (isPostgresError(e) && e.sqlstate?.startsWith('28')) {
              throw new PitrError(
                'PITR_PERMISSION',
                `The restored server is up, but the restore cannot log in to it: ${e.message}. Give the user/password options a role the backup's pg_hba.conf lets in from 127.0.0.1.`,
                { cause: e },
              );
            }
            return null;
          });
        const row = state?.rows[0];
        if (row && !row.in_recovery && row.walfile) {
          const timeline = Number.parseInt(row.walfile.slice(0, 8), 16);
          const durationMs = Date.now() - started;
          o.progress(`promoted to timeline ${timeline} after ${formatMillis(durationMs)}`, {
            segmentsRestored: o.log.restored,
            lastRestored: o.log.lastRestored,
          });
          return { timeline, durationMs, segmentsRestored: o.log.restored, lastRestored: o.log.lastRestored };
        }
      }
      if (consistentAt === null && now - started > o.startTimeoutMs) {
        throw timeout(
          o.log,
          `reach a consistent state (replay the backup's own WAL)`,
          o.startTimeoutMs,
          'startTimeout',
        );
      }
      if (consistentAt !== null && now - consistentAt > o.promoteTimeoutMs) {
        throw timeout(o.log, `reach ${o.target} and promote`, o.promoteTimeoutMs, 'promoteTimeout');
      }
      if (now - lastProgress >= o.progressMs) {
        lastProgress = now;
        const replay =
          status?.status === 'standby'
            ? await connect()
                .query<{ lsn: string | null; at: Date | null }>(
                  'SELECT pg_last_wal_replay_lsn()::text AS lsn, pg_last_xact_replay_timestamp() AS at',
                  [],
                  { signal: o.signal },
                )
                .then((r) => r.rows[0] ?? null)
                .catch(() => null)
            : null;
        o.progress(
          `recovering for ${formatMillis(now - started)}: ${o.log.restored} WAL segment(s) restored${o.log.lastRestored ? `, last ${o.log.lastRestored}` : ''}${replay?.lsn ? `, replayed up to ${replay.lsn}` : ''}${replay?.at ? ` (transactions of ${replay.at.toISOString()})` : ''}`,
          { segmentsRestored: o.log.restored, phase: consistentAt === null ? 'consistency' : 'target' },
        );
      }
      await sleep(o.pollMs, o.signal);
    }
  } finally {
    await db?.close();
  }
}

/** Why the server stopped, from its log: the FATAL line, classified. */
export function recoveryFailure(log: ServerLog, target: string, source: string): PitrError {
  const fatal = log.fatal[0] ?? null;
  const details = {
    serverLog: log.tail.slice(-20),
    fatal,
    lastRestored: log.lastRestored,
    logFile: log.path,
  };
  const quoted = fatal ? `"${fatal}"` : `no FATAL line (see ${log.path})`;
  const copyErrors =
    log.restoreErrors.length > 0
      ? ` restore_command failed: ${log.restoreErrors.slice(-2).join(' | ')}.`
      : '';
  const after = log.lastRestored
    ? `The last WAL segment restored from the archive was ${log.lastRestored}; the next one is missing from ${source}`
    : `No WAL segment could be restored from ${source}`;
  if (fatal && /recovery ended before configured recovery target was reached/.test(fatal)) {
    return new PitrError(
      'PITR_WAL_MISSING',
      `Recovery ran out of WAL before reaching ${target}: the server stopped with ${quoted}. ${after} (or the target lies after the newest archived WAL).${copyErrors} Put the missing WAL back into the archive, or choose an earlier target.`,
      { details },
    );
  }
  if (
    fatal &&
    /WAL ends before (end of online backup|consistent recovery point)|could not locate required checkpoint record|could not find redo location/.test(
      fatal,
    )
  ) {
    return new PitrError(
      'PITR_WAL_MISSING',
      `The backup could not be made consistent: the server stopped with ${quoted}. ${after}; the WAL written during the backup is needed.${copyErrors} Bring it back into the archive or use another backup.`,
      { details },
    );
  }
  if (fatal && /requested recovery stop point is before consistent recovery point/.test(fatal)) {
    return new PitrError(
      'PITR_TARGET_BEFORE_BACKUP_END',
      `${target} lies before the end of the backup: the server stopped with ${quoted}. Choose a later target or an older backup.`,
      { details },
    );
  }
  return new PitrError(
    'PITR_RECOVERY_FAILED',
    `The restored server stopped during recovery with ${quoted}.${copyErrors} See ${log.path} for the whole log.`,
    { details },
  );
}

function timeout(log: ServerLog, what: string, ms: number, option: string): PitrError {
  return new PitrError(
    'PITR_TIMEOUT',
    `The restored server did not ${what} within ${formatMillis(ms)} (${log.restored} WAL segment(s) restored${log.lastRestored ? `, last ${log.lastRestored}` : ''}). Raise ${option} if recovery legitimately needs longer, or look at ${log.path}.`,
    { details: { serverLog: log.tail.slice(-20), lastRestored: log.lastRestored, logFile: log.path } },
  );
}
