import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { InputValidationError } from '../../core/errors';
import { type BackupInfo, backupEndTime, lsnBefore, parseBackupLabel, parseManifest } from './backup';
import { isPitrError, PitrError } from './errors';
import { OsUserName, type ProgramRunner, runProgram, SafePath, unreadableBy } from './programs';

/** What a driver call gets: the step's signal, its log, and a bound for long work. */
export interface DriverContext {
  signal: AbortSignal;
  /** Progress for people (the step's `ctx.log`). */
  log(message: string, data?: Record<string, unknown>): void;
  /** A bound on this call; a driver stops its programs when it passes. */
  timeoutMs?: number;
}

/**
 * Where a point-in-time restore gets its base backup and its WAL. {@link pitrRestore} owns everything
 * PostgreSQL-side (the data directory's ownership and mode, the recovery settings, starting and promoting the
 * server, verification); a driver only knows its backup tool. {@link basebackupDriver} ships with the SDK; a
 * pgBackRest or WAL-G driver implements the same five calls with `pgbackrest info/verify/restore/archive-get`
 * or `wal-g backup-list/backup-fetch/wal-fetch`.
 *
 * Contract:
 * - `describeBackup` and `checkAccess` only read; they run at plan time, also in dry runs.
 * - `verifyBackup` throws a {@link PitrError} `PITR_BACKUP_INVALID` quoting the tool's complaint.
 * - `prepareDataDirectory` gets an existing directory owned by `osUser` with mode 0700 that holds nothing but
 *   the restore's marker file `pitr_restore.json` (which it must leave alone), and fills it with the backup's
 *   files. It must not write recovery settings: the restore writes them afterwards (and removes any
 *   `restore_command`/`recovery_target*` lines the driver wrote).
 * - `restoreCommand` is put verbatim into `restore_command`, which PostgreSQL runs through `/bin/sh` with `%f`
 *   (the WAL file wanted) and `%p` (where to put it) substituted; it must exit non-zero when the file is absent.
 */
export interface RestoreDriver extends ProgramRunner {
  /** Short name for plans and logs, e.g. `pg_basebackup`, `pgbackrest`. */
  readonly name: string;
  /** Where the backup and the WAL come from, for plans and messages (never a secret). */
  readonly source: string;
  /** Reads the backup's identity and extent: label, start/stop LSN, end time, timeline, size. */
  describeBackup(ctx: DriverContext): Promise<BackupInfo>;
  /** Problems that would stop the restore (the server's OS user cannot read the backup or the WAL archive), as sentences; empty when none. */
  checkAccess(ctx: DriverContext): Promise<string[]>;
  /** Checks the backup's integrity (checksums, and the WAL it needs to become consistent). */
  verifyBackup(ctx: DriverContext): Promise<void>;
  /** Fills the (empty) new data directory with the backup's files. */
  prepareDataDirectory(dataDir: string, ctx: DriverContext): Promise<void>;
  /**
   * The `restore_command` that fetches one archived WAL file. It is shown in the plan and logged, so it must
   * hold no credentials: a driver for object storage reads them from the environment or a file the server's
   * user can read (as pgBackRest's and WAL-G's own `restore_command`s do).
   */
  restoreCommand(): string;
}

/** Options of {@link basebackupDriver}. */
export const BasebackupDriverOptions = z.object({
  /** A plain-format `pg_basebackup` backup directory, with its `backup_label` and `backup_manifest`. */
  backupDir: SafePath,
  /** The WAL archive the original server's `archive_command` copies into (one file per segment, uncompressed). */
  archiveDir: SafePath,
  /** PostgreSQL server programs of the backup's major version. @default "/usr/lib/postgresql/15/bin" */
  binDir: SafePath.default('/usr/lib/postgresql/15/bin'),
  /** The OS user the restored server runs as; programs run as it (through `runuser` when we are root). @default "postgres" */
  osUser: OsUserName.default('postgres'),
  /** Interval of progress lines while copying. @default "5s" */
  progressInterval: Duration.default('5s'),
});
export type BasebackupDriverOptions = z.output<typeof BasebackupDriverOptions>;
export type BasebackupDriverOptionsInput = z.input<typeof BasebackupDriverOptions>;

/**
 * A {@link RestoreDriver} for a plain-format `pg_basebackup` directory and a directory WAL archive (what
 * `archive_command = 'cp %p /archive/%f'` builds).
 *
 * - `describeBackup` reads `backup_label` (start LSN, timeline), `backup_manifest` (end LSN, size) and the
 *   backup history file `<segment>.<offset>.backup` the server archived when the backup ended (stop time);
 *   without it, the manifest's modification time stands in for the end time.
 * - `verifyBackup` runs `pg_verifybackup` (checksums of every file, and a parse of the WAL from start to end
 *   LSN, read from the backup's `pg_wal` when it holds that WAL, else from the archive).
 * - `prepareDataDirectory` copies with `cp -a` as the OS user (so every file is the server's), logging progress.
 * - `restoreCommand` is `test -f '<archive>/%f' && cp '<archive>/%f' '%p'`: a missing file is a quiet
 *   "not found", so the server's log only shows real failures.
 */
export function basebackupDriver(options: BasebackupDriverOptionsInput): RestoreDriver {
  const parsed = BasebackupDriverOptions.safeParse(options);
  if (!parsed.success) {
    throw new InputValidationError(
      'options of basebackupDriver',
      parsed.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
    );
  }
  const o = parsed.data;
  const progressMs = toMillis(o.progressInterval);
  let described: { info: BackupInfo; key: string } | undefined;

  const readBackupFile = async (name: string): Promise<string> => {
    const path = join(o.backupDir, name);
    try {
      return await readFile(path, 'utf8');
    } catch (e) {
      throw fileError(e, path, `the backup directory ${o.backupDir}`);
    }
  };

  const walInBackup = async (startWalFile: string): Promise<boolean> => {
    const entries = await readdir(join(o.backupDir, 'pg_wal')).catch(() => [] as string[]);
    return entries.includes(startWalFile);
  };

  const describeBackup = async (): Promise<BackupInfo> => {
    const labelText = await readBackupFile('backup_label');
    const manifestText = await readBackupFile('backup_manifest');
    const manifestStat = await stat(join(o.backupDir, 'backup_manifest'));
    const key = `${labelText}\u0000${manifestStat.mtimeMs}\u0000${manifestStat.size}`;
    if (described?.key === key) return described.info;

    const label = parseBackupLabel(labelText, `${o.backupDir}/backup_label`);
    const manifest = parseManifest(manifestText, `${o.backupDir}/backup_manifest`);
    const history = await readHistoryFile(o.archiveDir, label.startWalFile, label.startLsn);
    const stopLsn = history?.stopLsn ?? manifest.endLsn;
    if (lsnBefore(stopLsn, label.startLsn)) {
      throw new PitrError(
        'PITR_BACKUP_INVALID',
        `The backup in ${o.backupDir} ends (${stopLsn}) before it starts (${label.startLsn}): its manifest and label do not belong together. Take a new backup.`,
      );
    }
    const end = backupEndTime(history?.stopTime ?? null, manifestStat.mtimeMs);
    const pgVersion = (await readBackupFile('PG_VERSION')).trim();
    const tablespaces = await readdir(join(o.backupDir, 'pg_tblspc')).catch(() => [] as string[]);
    const info: BackupInfo = {
      label: label.label,
      startLsn: label.startLsn,
      stopLsn,
      startWalFile: label.startWalFile,
      startTime: label.startTime,
      endTime: end.endTime,
      endTimeSource: end.source,
      timeline: label.timeline,
      pgVersion,
      sizeBytes: manifest.sizeBytes,
      files: manifest.files,
      walIncluded: await walInBackup(label.startWalFile),
      tablespaces: tablespaces.length,
    };
    described = { info, key };
    return info;
  };

  return {
    name: 'pg_basebackup',
    source: `${o.backupDir} (WAL archive ${o.archiveDir})`,
    binDir: o.binDir,
    osUser: o.osUser,

    describeBackup,

    async checkAccess(ctx) {
      const problems: string[] = [];
      const [backup, archive] = await Promise.all([
        unreadableBy(o.osUser, o.backupDir, { signal: ctx.signal }),
        unreadableBy(o.osUser, o.archiveDir, { maxDepth: 1, signal: ctx.signal }),
      ]);
      if (backup.length > 0) {
        problems.push(
          `the OS user ${o.osUser} cannot read the backup in ${o.backupDir} (${backup.join('; ')}): give it to that user (chown -R ${o.osUser} ${o.backupDir}) or make it readable`,
        );
      }
      if (archive.length > 0) {
        problems.push(
          `the OS user ${o.osUser} cannot read the WAL archive ${o.archiveDir} (${archive.join('; ')}): restore_command runs as that user, so the directory must be readable and enterable by it and every file readable`,
        );
      }
      return problems;
    },

    async verifyBackup(ctx) {
      const info = await describeBackup();
      const args = info.walIncluded ? [o.backupDir] : ['-w', o.archiveDir, o.backupDir];
      ctx.log(`verifying backup ${o.backupDir} with pg_verifybackup`, {
        wal: info.walIncluded ? 'in the backup' : o.archiveDir,
      });
      const started = Date.now();
      try {
        await runProgram(join(o.binDir, 'pg_verifybackup'), args, {
          osUser: o.osUser,
          signal: ctx.signal,
          ...(ctx.timeoutMs !== undefined ? { timeoutMs: ctx.timeoutMs } : {}),
          what: `pg_verifybackup of ${o.backupDir}`,
        });
      } catch (e) {
        if (!isPitrError(e, 'PITR_COMMAND_FAILED')) throw e;
        const output = (e.details as { output?: string } | undefined)?.output ?? e.message;
        throw new PitrError(
          'PITR_BACKUP_INVALID',
          `pg_verifybackup found the backup in ${o.backupDir} unusable: ${output}. Nothing was restored; use another backup${info.walIncluded ? '' : ` or bring back the missing WAL into ${o.archiveDir}`}.`,
          { cause: e, details: { output } },
        );
      }
      ctx.log(`backup verified in ${formatMillis(Date.now() - started)}`);
    },

    async prepareDataDirectory(dataDir, ctx) {
      const info = await describeBackup();
      const total = info.sizeBytes;
      const started = Date.now();
      ctx.log(`copying ${formatBytes(total)} from ${o.backupDir} to ${dataDir}`);
      let measuring = false;
      const timer = setInterval(() => {
        if (measuring) return;
        measuring = true;
        void directorySize(dataDir).then((copied) => {
          measuring = false;
          ctx.log(
            `copied ${formatBytes(copied)} of ${formatBytes(total)} (${total > 0 ? Math.min(100, Math.round((copied / total) * 100)) : 100}%)`,
          );
        });
      }, progressMs);
      try {
        // -T: copy the backup's contents onto the existing directory; -a keeps modes and times.
        await runProgram('cp', ['-a', '-T', '--', o.backupDir, dataDir], {
          osUser: o.osUser,
          signal: ctx.signal,
          ...(ctx.timeoutMs !== undefined ? { timeoutMs: ctx.timeoutMs } : {}),
          what: `copying the backup ${o.backupDir} into ${dataDir}`,
        });
      } finally {
        clearInterval(timer);
      }
      ctx.log(`copied ${formatBytes(total)} in ${formatMillis(Date.now() - started)}`);
    },

    restoreCommand() {
      const file = `'${o.archiveDir}/%f'`;
      return `test -f ${file} && cp ${file} '%p'`;
    },
  };
}

/** The backup history file the server archived at the end of the backup that started at `startLsn`. */
async function readHistoryFile(
  archiveDir: string,
  startWalFile: string,
  startLsn: string,
): Promise<{ stopLsn: string | null; stopTime: string | null } | null> {
  let entries: string[];
  try {
    entries = await readdir(archiveDir);
  } catch (e) {
    throw fileError(e, archiveDir, 'the WAL archive');
  }
  for (const name of entries) {
    if (!name.startsWith(`${startWalFile}.`) || !name.endsWith('.backup')) continue;
    const text = await readFile(join(archiveDir, name), 'utf8').catch(() => '');
    try {
      const history = parseBackupLabel(text, name);
      if (history.startLsn === startLsn) return { stopLsn: history.stopLsn, stopTime: history.stopTime };
    } catch {
      // Not this backup's history file (or a damaged one): keep looking.
    }
  }
  return null;
}

function fileError(e: unknown, path: string, what: string): PitrError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') {
    return new PitrError(
      'PITR_PERMISSION',
      `Cannot read ${path}: permission denied. Make ${what} readable by this process and by the PostgreSQL OS user.`,
      { cause: e },
    );
  }
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new PitrError(
      'PITR_BACKUP_INVALID',
      `${path} does not exist: ${what} is not where the driver was told, or it is not a complete pg_basebackup backup (plain format, with a manifest).`,
      { cause: e },
    );
  }
  return new PitrError('PITR_BACKUP_INVALID', `Cannot read ${path}: ${(e as Error).message}.`, { cause: e });
}

/** Bytes of the regular files under `dir` (for progress; errors count as nothing). */
export async function directorySize(dir: string): Promise<number> {
  let total = 0;
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  await Promise.all(
    entries
      .filter((e) => e.isFile())
      .map(async (e) => {
        const s = await stat(join(e.parentPath, e.name)).catch(() => null);
        total += s?.size ?? 0;
      }),
  );
  return total;
}

/** `1536` → `"1.5 KB"`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
