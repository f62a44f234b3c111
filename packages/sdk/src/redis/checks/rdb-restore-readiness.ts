import { constants } from 'node:fs';
import { access, stat, statfs } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { type Evidence, type FindingStatus, finding, worstStatus } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { type Check, defineCheck } from '../../core/step';
import type { RedisInstance } from '../connection';
import { configGet, num, readInfo } from '../info';
import { type CheckRdbResult, runCheckRdb } from '../rdb/check-rdb';
import { inspectRdbFile, MIN_RDB_SIZE, type RdbFileInfo } from '../rdb/rdb-file';
import { maxRdbVersion } from '../rdb/versions';
import { formatBytes } from '../wording';

/** Options of {@link rdbRestoreReadiness}. */
export const RdbRestoreReadinessOptions = z.object({
  /** The RDB file to restore, on the machine the check runs on. */
  path: z.string().min(1),
  /**
   * The `redis-check-rdb` program to run on the file (a name on `PATH`, or a path); `false` to skip it.
   * A missing program is reported, not a failure. @default "redis-check-rdb"
   */
  checkRdb: z.union([z.string().min(1), z.literal(false)]).default('redis-check-rdb'),
  /** Bound on `redis-check-rdb` (it decodes the whole file). @default "5m" */
  checkRdbTimeout: Duration.default('5m'),
  /**
   * Where the server's `dir` is on this machine (a mounted volume), to compare its free space with the file.
   * @default the server's `dir` itself when the server is on this machine (a loopback address); else not checked
   */
  localDir: z.string().min(1).optional(),
});
export type RdbRestoreReadinessOptions = z.output<typeof RdbRestoreReadinessOptions>;
export type RdbRestoreReadinessOptionsInput = z.input<typeof RdbRestoreReadinessOptions>;

/** One thing {@link rdbRestoreReadiness} looked at. */
export type RestoreCheck = {
  /** `file`, `format`, `version`, `checksum`, `redis-check-rdb`, `target`, `disk`, `aof`, `shutdown`, `memory`. */
  check: string;
  status: FindingStatus;
  detail: string;
};

/** What {@link rdbRestoreReadiness} found. */
export type RdbRestoreReadinessData = {
  path: string;
  /** What the file's header and checksum say; `null` when it could not be read. */
  file: RdbFileInfo | null;
  /** `redis_version` of the server. */
  serverVersion: string | null;
  /** The newest RDB version it loads. */
  serverMaxRdb: number | null;
  /** True when the server is newer than the versions this SDK knows (it loads at least `serverMaxRdb`). */
  serverMaxRdbAssumed: boolean;
  checkRdb: CheckRdbResult | null;
  /** `CONFIG GET dir` and `dbfilename`: where the file must go. `null` when `CONFIG` is refused. */
  targetDir: string | null;
  targetFile: string | null;
  /** Free bytes where the file must go, when that place is on this machine. */
  freeBytes: number | null;
  aofEnabled: boolean;
  /** `CONFIG GET save`. */
  savePoints: string | null;
  maxmemoryBytes: number | null;
  checks: RestoreCheck[];
};

const KIND = 'redis.rdb-restore-readiness';
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/i;

/**
 * Whether an RDB file can be restored into this server, before anyone stops it (the manual's disaster
 * recovery: copy the snapshot to `/data/dump.rdb`, restart Redis). Read-only: it reads the file and asks
 * the server; it changes nothing.
 *
 * - `fail` when the file is missing, unreadable, too short, not an RDB file (`REDIS` signature), of a newer
 *   format than the server loads (RDB 10 for Redis 7.0, 11 for 7.2, 12 for 7.4 and 8.0–8.4, 13 for 8.6),
 *   when its CRC-64 does not match or the EOF marker is missing (truncated, corrupted), when `redis-check-rdb`
 *   rejects it, when there is less free space where it must go than the file's size, or when AOF is on
 *   (the server would load the AOF at startup and ignore the RDB).
 * - `warn` when the file was written without a checksum (`rdbchecksum no`), when save points are configured
 *   (a plain `SHUTDOWN`, as the manual has it, saves the running data set over the restored file: use
 *   `SHUTDOWN NOSAVE`), or when the data set used more memory when saved than this server's `maxmemory`.
 * - `ok` otherwise. Things it could not look at (`CONFIG` refused, a server on another machine, no
 *   `redis-check-rdb`) are said in the evidence and do not change the status.
 *
 * Nothing from the file's data reaches data or evidence: only its header's version fields, and
 * `redis-check-rdb`'s report without key names.
 */
export function rdbRestoreReadiness(
  redis: RedisInstance,
  options: RdbRestoreReadinessOptionsInput,
): Check<RdbRestoreReadinessData> {
  const p = parseOptions(KIND, RdbRestoreReadinessOptions, options);
  return defineCheck({
    kind: KIND,
    description: `Can ${p.path} be restored into ${redis.display}?`,
    async run(ctx) {
      const signal = ctx.signal;
      const [server, persistence, mem, dir, dbfilename, savePoints] = await Promise.all([
        readInfo(redis, ['server'], signal),
        readInfo(redis, ['persistence'], signal),
        readInfo(redis, ['memory'], signal),
        configGet(redis, 'dir', signal),
        configGet(redis, 'dbfilename', signal),
        configGet(redis, 'save', signal),
      ]);
      const support = maxRdbVersion(server.redis_version);
      const maxmemory = num(mem, 'maxmemory') ?? 0;
      const data: RdbRestoreReadinessData = {
        path: p.path,
        file: null,
        serverVersion: server.redis_version ?? null,
        serverMaxRdb: support.rdb,
        serverMaxRdbAssumed: support.assumed,
        checkRdb: null,
        targetDir: dir,
        targetFile: dir && dbfilename ? join(dir, dbfilename) : null,
        freeBytes: null,
        aofEnabled: persistence.aof_enabled === '1',
        savePoints,
        maxmemoryBytes: maxmemory > 0 ? maxmemory : null,
        checks: [],
      };
      const add = (check: string, status: FindingStatus, detail: string) =>
        data.checks.push({ check, status, detail });

      const size = await readableSize(p.path);
      if (typeof size === 'string') add('file', 'fail', size);
      else if (size < MIN_RDB_SIZE)
        add('file', 'fail', `${size} bytes: too short for an RDB file (at least ${MIN_RDB_SIZE})`);
      else {
        add('file', 'ok', `${formatBytes(size)}, readable`);
        data.file = await inspectRdbFile(p.path, signal);
        judgeFile(data.file, data, add);
        if (p.checkRdb !== false) {
          data.checkRdb = await runCheckRdb(p.checkRdb, p.path, {
            timeoutMs: toMillis(p.checkRdbTimeout),
            signal,
          });
          signal.throwIfAborted();
          judgeCheckRdb(data.checkRdb, data.file, add);
        }
      }
      await judgeServer(redis, p, data, typeof size === 'number' ? size : null, add);
      const status = worstStatus(data.checks.map((c) => c.status));
      return finding(status, summaryOf(data, status, redis), data, evidenceOf(data));
    },
  });
}

/** The file's size, or why it cannot be restored from. */
async function readableSize(path: string): Promise<number | string> {
  try {
    const s = await stat(path);
    if (!s.isFile()) return `${path} is not a regular file`;
    await access(path, constants.R_OK);
    return s.size;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT'
      ? `${path} does not exist`
      : code === 'EACCES'
        ? `${path} is not readable (permissions)`
        : `${path}: ${(e as Error).message}`;
  }
}

type Add = (check: string, status: FindingStatus, detail: string) => void;

function judgeFile(file: RdbFileInfo, data: RdbRestoreReadinessData, add: Add): void {
  if (file.version === null) {
    add(
      'format',
      'fail',
      `not a Redis RDB file: it starts with "${file.magic}", not "REDIS" and a 4-digit version`,
    );
    return;
  }
  const by = file.aux.redisVersion ? `, written by Redis ${file.aux.redisVersion}` : '';
  add(
    'format',
    'ok',
    `RDB version ${file.version}${by}${file.aux.createdAt ? ` at ${file.aux.createdAt}` : ''}`,
  );
  if (data.serverMaxRdb === null) {
    add(
      'version',
      'warn',
      `the server's version (${data.serverVersion ?? 'unknown'}) is unknown here: cannot tell whether it loads RDB ${file.version}`,
    );
  } else if (file.version > data.serverMaxRdb) {
    add(
      'version',
      data.serverMaxRdbAssumed ? 'warn' : 'fail',
      `RDB ${file.version} is newer than Redis ${data.serverVersion} loads (RDB ${data.serverMaxRdb}${data.serverMaxRdbAssumed ? ' or newer' : ''}): restore into a server at least as new as the one that wrote it`,
    );
  } else {
    add('version', 'ok', `Redis ${data.serverVersion} loads RDB ${data.serverMaxRdb} and older`);
  }
  if (file.version < 5) {
    add('checksum', 'ok', `RDB ${file.version} has no checksum (added in RDB 5)`);
  } else if (!file.endsWithEof) {
    add('checksum', 'fail', 'no EOF marker before the checksum: the file is truncated or corrupted');
  } else if (file.storedChecksum === '0000000000000000') {
    add('checksum', 'warn', 'written with rdbchecksum no: its integrity cannot be verified');
  } else if (file.storedChecksum !== file.computedChecksum) {
    add(
      'checksum',
      'fail',
      `CRC-64 mismatch: stored ${file.storedChecksum}, computed ${file.computedChecksum}: the file is corrupted`,
    );
  } else {
    add('checksum', 'ok', `CRC-64 ${file.storedChecksum} matches`);
  }
}

function judgeCheckRdb(result: CheckRdbResult, file: RdbFileInfo, add: Add): void {
  if (!result.ran) {
    add('redis-check-rdb', 'ok', `not run: ${result.error}`);
    return;
  }
  if (result.ok) {
    add('redis-check-rdb', 'ok', 'RDB looks OK');
    return;
  }
  const problem =
    result.error ??
    result.lines.find((l) => /^\[offset \d+\] (?!Checking|AUX|Selecting|Checksum)/.test(l)) ??
    `exit code ${result.exitCode}`;
  // The program on this machine may be older than the server: its "can't handle version" is about itself.
  const tooOld = /Can't handle RDB format version/.test(problem);
  add(
    'redis-check-rdb',
    tooOld || result.error ? 'warn' : 'fail',
    tooOld
      ? `${problem.replace(/^\[offset \d+\] /, '')} (the redis-check-rdb here is older than RDB ${file.version})`
      : problem.replace(/^\[offset \d+\] /, ''),
  );
}

async function judgeServer(
  redis: RedisInstance,
  p: RdbRestoreReadinessOptions,
  data: RdbRestoreReadinessData,
  size: number | null,
  add: Add,
): Promise<void> {
  if (data.targetFile === null) {
    add('target', 'ok', 'CONFIG GET dir/dbfilename refused: the file name and directory are unknown');
  } else {
    add('target', 'ok', `copy it to ${data.targetFile} (CONFIG GET dir, dbfilename)`);
  }
  const local = p.localDir ?? (data.targetDir && LOOPBACK.test(redis.host) ? data.targetDir : null);
  if (local === null) {
    add(
      'disk',
      'ok',
      'free space not checked: the server is not on this machine (give localDir where its dir is mounted)',
    );
  } else if (size !== null) {
    try {
      const fs = await statfs(local);
      data.freeBytes = fs.bavail * fs.bsize;
      add(
        'disk',
        data.freeBytes >= size ? 'ok' : 'fail',
        `${formatBytes(data.freeBytes)} free in ${local} for ${formatBytes(size)}`,
      );
    } catch (e) {
      add(
        'disk',
        'ok',
        `free space not checked: ${local}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
  }
  if (data.aofEnabled) {
    add(
      'aof',
      'fail',
      'appendonly is on: at startup Redis loads the AOF and ignores the RDB file. Turn AOF off for the restore (and back on after)',
    );
  }
  if (data.savePoints) {
    add(
      'shutdown',
      'warn',
      `save points are configured ("${data.savePoints}"): a plain SHUTDOWN saves the running data set over ${data.targetFile ? basename(data.targetFile) : 'the dump file'}; stop the server with SHUTDOWN NOSAVE`,
    );
  }
  const usedMem = data.file?.aux.usedMemBytes ?? null;
  if (usedMem !== null && data.maxmemoryBytes !== null && usedMem > data.maxmemoryBytes) {
    add(
      'memory',
      'warn',
      `the data set used ${formatBytes(usedMem)} when saved; maxmemory here is ${formatBytes(data.maxmemoryBytes)}: after loading, keys are evicted or writes refused`,
    );
  }
}

function summaryOf(data: RdbRestoreReadinessData, status: FindingStatus, redis: RedisInstance): string {
  const file = data.file?.version
    ? `${basename(data.path)} (RDB ${data.file.version}, ${formatBytes(data.file.sizeBytes)})`
    : basename(data.path);
  const into = `${data.serverVersion ? `Redis ${data.serverVersion}` : 'Redis'} at ${redis.display}`;
  const reasons = (s: FindingStatus) =>
    data.checks.filter((c) => c.status === s).map((c) => `${c.check}: ${c.detail}`);
  if (status === 'fail') return `${file} cannot be restored into ${into}: ${reasons('fail').join('; ')}`;
  const where = data.targetFile ? `: copy it to ${data.targetFile}` : '';
  if (status === 'warn')
    return `${file} can be restored into ${into}${where}, but ${reasons('warn').join('; ')}`;
  return `${file} can be restored into ${into}${where}`;
}

function evidenceOf(data: RdbRestoreReadinessData): Evidence[] {
  const evidence: Evidence[] = [
    {
      kind: 'table',
      title: 'Restore readiness',
      columns: ['CHECK', 'STATUS', 'DETAIL'],
      rows: data.checks.map((c) => [c.check, c.status, c.detail]),
    },
  ];
  if (data.checkRdb?.ran)
    evidence.push({ kind: 'log', title: 'redis-check-rdb', lines: data.checkRdb.lines });
  return evidence;
}
