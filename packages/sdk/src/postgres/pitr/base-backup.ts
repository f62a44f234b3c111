import { chmod, chown, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { InputValidationError } from '../../core/errors';
import { PitrError } from './errors';
import { OsUserName, osUserIds, runningAsRoot, runProgram, SafePath } from './programs';

/** Options of {@link takeBaseBackup}. */
export const BaseBackupOptions = z.object({
  /** Host of the server to back up. @default "127.0.0.1" */
  host: z.string().min(1).default('127.0.0.1'),
  /** @default 5432 */
  port: z.number().int().min(1).max(65535).default(5432),
  /** A role with the REPLICATION attribute. @default "postgres" */
  user: z.string().min(1).default('postgres'),
  /** Its password, passed in the environment (`PGPASSWORD`), never on the command line. */
  password: z.string().optional(),
  /** Where the plain-format backup goes; must not exist or be empty. */
  backupDir: SafePath,
  /**
   * `fetch`: the WAL written during the backup is put into it (self-contained); `none`: it is not, and a restore
   * takes it from the archive. @default "fetch"
   */
  wal: z.enum(['fetch', 'none']).default('fetch'),
  /** `fast` starts at once with an immediate checkpoint; `spread` waits for a spread one. @default "fast" */
  checkpoint: z.enum(['fast', 'spread']).default('fast'),
  /** @default "pg_basebackup base backup" */
  label: z.string().min(1).max(100).default('pg_basebackup base backup'),
  /** PostgreSQL programs. @default "/usr/lib/postgresql/15/bin" */
  binDir: SafePath.default('/usr/lib/postgresql/15/bin'),
  /** The OS user pg_basebackup runs as (and who owns the backup). @default "postgres" */
  osUser: OsUserName.default('postgres'),
  /** @default "2h" */
  timeout: Duration.default('2h'),
});
export type BaseBackupOptionsInput = z.input<typeof BaseBackupOptions>;

/** What {@link takeBaseBackup} made. */
export interface BaseBackup {
  backupDir: string;
  label: string;
  durationMs: number;
}

/**
 * Takes a plain-format base backup with its manifest: `pg_basebackup -D <backupDir> -X fetch|none -c fast
 * --manifest-checksums=CRC32C`, as the PostgreSQL OS user (the directory is created for it, mode 0700).
 * For tests, the lab and runbooks that take a fresh backup before a risky change.
 */
export async function takeBaseBackup(
  options: BaseBackupOptionsInput,
  context: { signal?: AbortSignal; log?: (message: string) => void } = {},
): Promise<BaseBackup> {
  const parsed = BaseBackupOptions.safeParse(options);
  if (!parsed.success) {
    throw new InputValidationError(
      'options of takeBaseBackup',
      parsed.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
    );
  }
  const o = parsed.data;
  const existing = await readdir(o.backupDir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });
  if (existing && existing.length > 0) {
    throw new PitrError(
      'PITR_DATA_DIR_NOT_EMPTY',
      `The backup directory ${o.backupDir} is not empty; pg_basebackup writes into a new or empty directory. Choose another one.`,
    );
  }
  if (!existing) await mkdir(o.backupDir, { mode: 0o700 });
  if (runningAsRoot()) {
    const ids = await osUserIds(o.osUser);
    await chown(o.backupDir, ids.uid, ids.gid);
  }
  await chmod(o.backupDir, 0o700);
  const started = Date.now();
  context.log?.(`pg_basebackup of ${o.host}:${o.port} into ${o.backupDir} (WAL: ${o.wal})`);
  await runProgram(
    join(o.binDir, 'pg_basebackup'),
    [
      '-h',
      o.host,
      '-p',
      String(o.port),
      '-U',
      o.user,
      '-w',
      '-D',
      o.backupDir,
      '-F',
      'plain',
      '-X',
      o.wal,
      '-c',
      o.checkpoint,
      '-l',
      o.label,
      '--manifest-checksums=CRC32C',
    ],
    {
      osUser: o.osUser,
      ...(context.signal ? { signal: context.signal } : {}),
      timeoutMs: toMillis(o.timeout),
      what: `pg_basebackup of ${o.host}:${o.port}`,
      ...(o.password !== undefined ? { env: { PGPASSWORD: o.password } } : {}),
    },
  );
  const durationMs = Date.now() - started;
  context.log?.(`base backup done in ${formatMillis(durationMs)}`);
  return { backupDir: o.backupDir, label: o.label, durationMs };
}
