import { randomBytes } from 'node:crypto';
import { copyFile, rename, rm, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { Duration, durationBetween, formatMillis, toMillis } from '../../core/duration';
import { RunbookError } from '../../core/errors';
import { finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { sleep } from '../../core/sleep';
import { type Action, defineAction, type StepContext } from '../../core/step';
import type { RedisInstance } from '../connection';
import { configGet, type Info, num, parseInfo, readInfo } from '../info';
import { inspectRdbFile, MIN_RDB_SIZE, type RdbFileInfo } from '../rdb/rdb-file';
import { maxRdbVersion } from '../rdb/versions';
import { formatBytes, plural } from '../wording';

/** Starts the server again after its `SHUTDOWN` (deleting its pod, `systemctl start redis`, …). */
export type RestartRedis = (ctx: StepContext) => Promise<void>;

/** Options of {@link restoreRdb}. */
export const RestoreRdbOptions = z.object({
  /** The RDB snapshot to restore: an absolute path on the machine the runbook runs on. */
  snapshot: z.string().refine(isAbsolute, 'expected an absolute path of an RDB file'),
  /**
   * Where the server's `dir` is on this machine (a mounted volume).
   * @default the server's own `CONFIG GET dir` (a server on this machine)
   */
  localDir: z.string().refine(isAbsolute, 'expected an absolute directory path').optional(),
  /**
   * Starts the server after the `SHUTDOWN NOSAVE`. Without it a supervisor is expected to (the kubelet
   * restarting the container, systemd's `Restart=always`), and the action only waits for the server.
   */
  restart: z
    .custom<RestartRedis>((v) => typeof v === 'function', { message: 'expected a function' })
    .optional(),
  /** How long the server may take to come back and load the snapshot. @default "2m" */
  timeout: Duration.default('2m'),
  /** How often it is polled meanwhile (10 ms to 1 min). @default "250ms" */
  pollInterval: durationBetween(10, 60_000, 'expected a duration from 10ms to 1m').default('250ms'),
});
export type RestoreRdbOptions = z.output<typeof RestoreRdbOptions>;
export type RestoreRdbOptionsInput = z.input<typeof RestoreRdbOptions>;

/** What a restore plan fixes. */
export type RestoreRdbParams = {
  snapshot: string;
  /** The snapshot as plan read it: apply refuses a file that changed since. */
  sizeBytes: number;
  checksum: string | null;
  createdAt: string | null;
  /** Where the snapshot is copied: `<dir>/<dbfilename>` as seen from this machine. */
  targetPath: string;
  /** `DBSIZE` when planned: the keys the restore replaces. */
  keysAtPlan: number;
  /** `run_id` when planned: verify knows the server restarted when it changed. */
  runIdAtPlan: string | null;
  restart: boolean;
  timeoutMs: number;
  pollMs: number;
};

/** What apply saw once the server was back. */
export type RestoreRdbApplied = {
  /** Where the file the snapshot replaced was moved (`null` when there was none). */
  previousFile: string | null;
  runIdBefore: string | null;
  runIdAfter: string | null;
  /** `rdb_last_load_keys_loaded` after the start (Redis 7.0+; `null` before). */
  keysLoaded: number | null;
  dbsizeAfter: number;
  downtimeMs: number;
};

const KIND = 'redis.restore-rdb';

/**
 * Restores a Redis server from an RDB snapshot, the manual's disaster recovery (`kubectl cp snapshot.rdb
 * redis:/data/dump.rdb`, `redis-cli SHUTDOWN`, the pod restarts and loads it):
 *
 * - **plan** (reads only) inspects the snapshot (the `REDIS` signature, the format version against what the
 *   server loads, the EOF marker and CRC-64) and the server (`dir`, `dbfilename`, AOF off — with AOF on the
 *   server would load the AOF and ignore the file), and reads `DBSIZE`: `restore dump.rdb (2.1 KB, written
 *   2026-…) into redis 127.0.0.1:6380: 3 keys now are replaced`.
 * - **apply** waits for a background save that is running (it would overwrite the file), moves the current
 *   file aside (`<dbfilename>.before-restore-<id>`), copies the snapshot to a temporary name in the same
 *   directory and renames it into place (a crash never leaves half a file), sends `SHUTDOWN NOSAVE` (a
 *   save on shutdown would overwrite it again), calls `restart` when given, and waits until the server
 *   answers with a new `run_id` and has finished loading.
 * - **verify**: `ok` when the server restarted and loaded keys (`rdb_last_load_keys_loaded`), `fail` when
 *   it came back empty from a non-empty snapshot, or loading failed.
 * - **revert**: none: the replaced dataset is only on disk (the moved-aside file) for a person to restore.
 *
 * Risk `high`, **destructive**: the keys written since the snapshot are lost, and every client is cut off
 * while the server restarts.
 */
export function restoreRdb(
  redis: RedisInstance,
  options: RestoreRdbOptionsInput,
): Action<RestoreRdbParams, RestoreRdbApplied> {
  const o = parseOptions(KIND, RestoreRdbOptions, options);
  const target = redis.ref('data');

  return defineAction<RestoreRdbParams, RestoreRdbApplied>({
    kind: KIND,
    target,
    risk: 'high',
    destructive: true,
    description: `Restore ${redis.display} from the RDB snapshot ${o.snapshot}`,

    async plan(ctx) {
      const file = await inspectRdbFile(o.snapshot, ctx.signal).catch((e: NodeJS.ErrnoException) => {
        throw new RunbookError(
          'REDIS_RESTORE_SNAPSHOT',
          `The snapshot ${o.snapshot} cannot be read (${e.code ?? e.message}). Nothing was changed.`,
        );
      });
      const info = await readInfo(redis, ['server', 'persistence'], ctx.signal);
      const problems = snapshotProblems(file, info.redis_version);
      const [dir, dbfilename, appendonly] = await Promise.all([
        configGet(redis, 'dir', ctx.signal),
        configGet(redis, 'dbfilename', ctx.signal),
        configGet(redis, 'appendonly', ctx.signal),
      ]);
      if (dir === null || dbfilename === null) {
        problems.push('the server refuses CONFIG GET dir/dbfilename: where the file must go is unknown');
      }
      if (appendonly === 'yes') {
        problems.push('AOF is on: the server would load its AOF at start and ignore the snapshot');
      }
      if (problems.length > 0) {
        throw new RunbookError(
          'REDIS_RESTORE_REFUSED',
          `Restoring ${redis.display} from ${o.snapshot} is refused: ${problems.join('; ')}. Nothing was changed.`,
        );
      }
      const targetPath = join(o.localDir ?? (dir as string), dbfilename as string);
      const keysAtPlan = Number(await redis.run('DBSIZE', (c) => c.dbsize(), ctx.signal));
      const written = file.aux.createdAt ? `, written ${file.aux.createdAt}` : '';
      return {
        summary: `restore ${o.snapshot} (${formatBytes(file.sizeBytes)}${written}) into ${redis.display}: the ${plural(keysAtPlan, 'key')} there now are replaced, and the server restarts`,
        changes: [
          {
            target,
            field: 'dataset',
            before: plural(keysAtPlan, 'key'),
            after: `the snapshot's keys (${formatBytes(file.sizeBytes)}${written})`,
          },
          { target, field: targetPath, before: 'current file', after: `copy of ${o.snapshot}` },
          {
            target: redis.ref('server'),
            field: 'process',
            before: `running (run_id ${info.run_id ?? '?'})`,
            after: `SHUTDOWN NOSAVE, then ${o.restart ? 'started again' : 'restarted by its supervisor'}`,
          },
        ],
        params: {
          snapshot: o.snapshot,
          sizeBytes: file.sizeBytes,
          checksum: file.storedChecksum,
          createdAt: file.aux.createdAt,
          targetPath,
          keysAtPlan,
          runIdAtPlan: info.run_id ?? null,
          restart: o.restart !== undefined,
          timeoutMs: toMillis(o.timeout),
          pollMs: toMillis(o.pollInterval),
        },
      };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      const now = await inspectRdbFile(p.snapshot, ctx.signal);
      if (now.sizeBytes !== p.sizeBytes || now.storedChecksum !== p.checksum) {
        throw new RunbookError(
          'REDIS_RESTORE_SNAPSHOT',
          `The snapshot ${p.snapshot} changed since the plan (${formatBytes(p.sizeBytes)} → ${formatBytes(now.sizeBytes)}): plan again. Nothing was changed.`,
        );
      }
      const deadline = Date.now() + p.timeoutMs;
      // A save finishing after our copy would rename its own file over it.
      for (;;) {
        const info = await readInfo(redis, ['persistence'], ctx.signal);
        if (info.rdb_bgsave_in_progress !== '1') break;
        if (Date.now() > deadline) {
          throw new RunbookError(
            'REDIS_BGSAVE_BUSY',
            `A background save on ${redis.display} was still running after ${formatMillis(p.timeoutMs)}; nothing was changed.`,
          );
        }
        await sleep(p.pollMs, ctx.signal);
      }
      const runIdBefore = (await readInfo(redis, ['server'], ctx.signal)).run_id ?? null;
      const id = randomBytes(4).toString('hex');
      const previousFile = `${p.targetPath}.before-restore-${id}`;
      const hadFile = await stat(p.targetPath).then(
        () => true,
        () => false,
      );
      if (hadFile) await rename(p.targetPath, previousFile);
      const temporary = `${p.targetPath}.restore-${id}.tmp`;
      try {
        await copyFile(p.snapshot, temporary);
        await rename(temporary, p.targetPath);
      } catch (e) {
        await rm(temporary, { force: true });
        if (hadFile) await rename(previousFile, p.targetPath).catch(() => {});
        throw new RunbookError(
          'REDIS_RESTORE_COPY',
          `Copying ${p.snapshot} to ${p.targetPath} failed (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); the server was not stopped.`,
        );
      }
      ctx.log(
        `copied ${p.snapshot} to ${p.targetPath}${hadFile ? ` (the old file is ${previousFile})` : ''}`,
      );
      const stopped = Date.now();
      await shutdownNoSave(redis, ctx.signal);
      ctx.log(`SHUTDOWN NOSAVE sent to ${redis.display}`);
      if (o.restart) await o.restart(ctx);
      const back = await untilLoaded(redis, runIdBefore, deadline, p.pollMs, ctx.signal);
      const applied: RestoreRdbApplied = {
        previousFile: hadFile ? previousFile : null,
        runIdBefore,
        runIdAfter: back.run_id ?? null,
        keysLoaded: num(back, 'rdb_last_load_keys_loaded'),
        dbsizeAfter: Number(await redis.run('DBSIZE', (c) => c.dbsize(), ctx.signal)),
        downtimeMs: Date.now() - stopped,
      };
      ctx.log(
        `${redis.display} is back after ${formatMillis(applied.downtimeMs)}: ${plural(applied.dbsizeAfter, 'key')}`,
      );
      return applied;
    },

    async verify(ctx, applied) {
      const info = await readInfo(redis, ['server', 'persistence'], ctx.signal);
      const dbsize = Number(await redis.run('DBSIZE', (c) => c.dbsize(), ctx.signal));
      // After a crash of the runbook mid-apply, what apply saw is lost: the plan's run_id and the server's
      // own load counter stand in.
      const runIdBefore = applied.data?.runIdBefore ?? applied.plan.params.runIdAtPlan;
      const keysLoaded = applied.data?.keysLoaded ?? num(info, 'rdb_last_load_keys_loaded');
      const data = {
        runId: info.run_id ?? null,
        keysLoaded,
        dbsize,
        loading: info.loading === '1',
      };
      if (info.loading === '1') {
        return finding('fail', `${redis.display} is still loading the snapshot`, data);
      }
      if (runIdBefore !== null && info.run_id === runIdBefore) {
        return finding(
          'fail',
          `${redis.display} did not restart (same run_id): it did not load the snapshot`,
          data,
        );
      }
      if (keysLoaded === 0 && applied.plan.params.sizeBytes > MIN_RDB_SIZE + 64) {
        return finding('fail', `${redis.display} restarted but loaded no key from the snapshot`, data);
      }
      const loaded = keysLoaded === null ? '' : `${plural(keysLoaded, 'key')} loaded, `;
      return finding(
        'ok',
        `${redis.display} restored from ${applied.plan.params.snapshot}: ${loaded}${plural(dbsize, 'key')} now`,
        data,
      );
    },
  });
}

/** Why the snapshot cannot be loaded by a server of `serverVersion`. */
function snapshotProblems(file: RdbFileInfo, serverVersion: string | undefined): string[] {
  const problems: string[] = [];
  if (file.magic !== 'REDIS' || file.version === null) {
    problems.push(`the file is not an RDB snapshot (signature "${file.magic}")`);
    return problems;
  }
  const support = maxRdbVersion(serverVersion);
  if (support.rdb !== null && !support.assumed && file.version > support.rdb) {
    problems.push(
      `the snapshot is RDB version ${file.version}; Redis ${serverVersion ?? '?'} loads up to ${support.rdb}`,
    );
  }
  if (!file.endsWithEof) problems.push('the snapshot has no EOF marker (cut short)');
  if (file.storedChecksum !== null && file.computedChecksum !== null) {
    if (file.storedChecksum !== file.computedChecksum && !/^0+$/.test(file.storedChecksum)) {
      problems.push(
        `its CRC-64 does not match (stored ${file.storedChecksum}, computed ${file.computedChecksum})`,
      );
    }
  }
  return problems;
}

/** `SHUTDOWN NOSAVE`: the server closes the connection instead of answering, which is its success. */
async function shutdownNoSave(redis: RedisInstance, signal: AbortSignal): Promise<void> {
  const { client } = redis.open({ connectTimeoutMs: 5_000 });
  try {
    await client.connect();
    await client.call('SHUTDOWN', 'NOSAVE');
  } catch (e) {
    signal.throwIfAborted();
    const message = (e as Error).message ?? '';
    if (!/Connection is closed|ECONNRESET|ended|closed/i.test(message))
      throw redis.toError(e, 'SHUTDOWN NOSAVE');
  } finally {
    client.disconnect();
  }
}

/** Polls on new connections until a server with another run_id answers and is not loading. */
async function untilLoaded(
  redis: RedisInstance,
  runIdBefore: string | null,
  deadline: number,
  pollMs: number,
  signal: AbortSignal,
): Promise<Info> {
  let last = 'no answer';
  for (;;) {
    const { client } = redis.open({ connectTimeoutMs: 1_000, readyCheck: false });
    try {
      await client.connect();
      const info = parseInfo(String(await client.call('INFO', 'server', 'persistence')));
      if (info.run_id !== runIdBefore && info.loading === '0') return info;
      last = info.loading === '1' ? 'still loading' : 'not restarted yet';
    } catch (e) {
      last = (e as Error).message;
    } finally {
      client.disconnect();
    }
    signal.throwIfAborted();
    if (Date.now() > deadline) {
      throw new RunbookError(
        'REDIS_RESTORE_TIMEOUT',
        `${redis.display} did not come back with the snapshot loaded in time (${last}). The snapshot is in place: start the server (or its pod) and check it loaded.`,
      );
    }
    await sleep(pollMs, signal);
  }
}
