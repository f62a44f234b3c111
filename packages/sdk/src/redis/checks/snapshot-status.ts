import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { type FindingStatus, finding, worstStatus } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import type { RedisInstance } from '../connection';
import { configGet, num, readInfo, serverTimeMs } from '../info';
import { warnNotAfterFail } from '../options';
import { plural } from '../wording';

/** Options of {@link snapshotStatus}. */
export const SnapshotStatusOptions = z
  .object({
    /** `warn` when the last successful RDB save is this old and changes were made since. @default "1h" */
    warnAfter: Duration.default('1h'),
    /** `fail` when it is this old and changes were made since. @default "24h" */
    failAfter: Duration.default('24h'),
    /** `warn` when neither RDB save points nor AOF are configured: a restart loses every key. @default true */
    requirePersistence: z.boolean().default(true),
  })
  .refine(warnNotAfterFail, {
    message: 'warnAfter must not exceed failAfter',
    path: ['warnAfter'],
  });
export type SnapshotStatusOptions = z.output<typeof SnapshotStatusOptions>;
export type SnapshotStatusOptionsInput = z.input<typeof SnapshotStatusOptions>;

/** What {@link snapshotStatus} found (`INFO persistence`, `CONFIG GET save`). */
export type SnapshotStatusData = {
  /** `rdb_last_save_time`: the last successful save (RFC 3339). */
  lastSaveAt: string | null;
  /** Its age on the server's clock. */
  lastSaveAgeMs: number | null;
  /** `rdb_changes_since_last_save`: writes a crash now would lose (without AOF). */
  changesSinceLastSave: number;
  /** `rdb_last_bgsave_status`. */
  lastBgsaveStatus: string | null;
  /** `rdb_last_bgsave_time_sec`: how long the last save took; `null` when none ran. */
  lastBgsaveSeconds: number | null;
  bgsaveInProgress: boolean;
  /** `rdb_current_bgsave_time_sec` while one runs. */
  currentBgsaveSeconds: number | null;
  /** `rdb_saves` (Redis 7+): saves since start. */
  saves: number | null;
  /** `CONFIG GET save`, e.g. `"3600 1 300 100"`; `""` when RDB snapshots are off; `null` when `CONFIG` is refused. */
  savePoints: string | null;
  aofEnabled: boolean;
  aofRewriteInProgress: boolean;
  /** `aof_last_bgrewrite_status`. */
  aofLastRewriteStatus: string | null;
  /** `aof_last_write_status`: `err` means Redis refuses writes until an AOF write succeeds. */
  aofLastWriteStatus: string | null;
  /** The server is still loading its data set. */
  loading: boolean;
  /** Each reason behind the status, in words. */
  reasons: string[];
};

/**
 * What {@link snapshotStatus} read: the figures of {@link SnapshotStatusData} without the reasons, the
 * last save's age measured on the server's clock. Replaying it with other `warnAfter` / `failAfter` /
 * `requirePersistence` judges the same figures again.
 */
export type SnapshotStatusObservation = Omit<SnapshotStatusData, 'reasons'>;

const KIND = 'redis.snapshot-status';

/**
 * Persistence health from `INFO persistence`: the last RDB save (status, age on the server's clock, changes
 * since), a background save in progress, AOF status, and whether any persistence is configured
 * (`CONFIG GET save`; skipped when `CONFIG` is refused).
 *
 * - `fail` when the last background save failed (`rdb_last_bgsave_status:err` — usually a full disk or a
 *   directory Redis cannot write), when the last AOF write failed (Redis then refuses writes), or when the
 *   last save is `failAfter` (24 h) old with changes since and AOF off.
 * - `warn` when it is `warnAfter` (1 h) old with changes since and AOF off, when the last AOF rewrite failed,
 *   when the server is still loading, or when nothing is persisted at all (`requirePersistence`).
 * - `ok` otherwise. With no changes since the last save, its age does not matter: there is nothing to lose.
 *
 * Replayable: `read` asks the server ({@link SnapshotStatusObservation}), `judge` applies the thresholds.
 */
export function snapshotStatus(
  redis: RedisInstance,
  options: SnapshotStatusOptionsInput = {},
): ReplayableCheck<SnapshotStatusData, SnapshotStatusObservation> {
  const p = parseOptions(KIND, SnapshotStatusOptions, options);
  const warnMs = toMillis(p.warnAfter);
  const failMs = toMillis(p.failAfter);
  return defineCheck({
    kind: KIND,
    description: `RDB and AOF status of ${redis.display}`,
    async read(ctx): Promise<SnapshotStatusObservation> {
      const [info, now, savePoints] = await Promise.all([
        readInfo(redis, ['persistence'], ctx.signal),
        serverTimeMs(redis, ctx.signal),
        configGet(redis, 'save', ctx.signal),
      ]);
      const lastSave = num(info, 'rdb_last_save_time');
      const lastBgsaveSeconds = num(info, 'rdb_last_bgsave_time_sec');
      const currentBgsaveSeconds = num(info, 'rdb_current_bgsave_time_sec');
      return {
        lastSaveAt: lastSave === null ? null : new Date(lastSave * 1_000).toISOString(),
        lastSaveAgeMs: lastSave === null ? null : Math.max(0, now - lastSave * 1_000),
        changesSinceLastSave: num(info, 'rdb_changes_since_last_save') ?? 0,
        lastBgsaveStatus: info.rdb_last_bgsave_status ?? null,
        lastBgsaveSeconds: lastBgsaveSeconds === null || lastBgsaveSeconds < 0 ? null : lastBgsaveSeconds,
        bgsaveInProgress: info.rdb_bgsave_in_progress === '1',
        currentBgsaveSeconds:
          currentBgsaveSeconds === null || currentBgsaveSeconds < 0 ? null : currentBgsaveSeconds,
        saves: num(info, 'rdb_saves'),
        savePoints,
        aofEnabled: info.aof_enabled === '1',
        aofRewriteInProgress: info.aof_rewrite_in_progress === '1',
        aofLastRewriteStatus: info.aof_last_bgrewrite_status ?? null,
        aofLastWriteStatus: info.aof_last_write_status ?? null,
        loading: info.loading === '1',
      };
    },
    judge(seen) {
      const data: SnapshotStatusData = { ...seen, reasons: [] };
      const status = statusOf(data, p, warnMs, failMs);
      const age = data.lastSaveAgeMs === null ? 'unknown' : `${formatMillis(data.lastSaveAgeMs)} ago`;
      const head =
        `Last RDB save ${age} (${data.lastBgsaveStatus ?? 'status unknown'}), ` +
        `${plural(data.changesSinceLastSave, 'change')} since` +
        `${data.bgsaveInProgress ? ', a background save is running' : ''}` +
        `; AOF ${data.aofEnabled ? `on (last write ${data.aofLastWriteStatus})` : 'off'}`;
      return finding(status, data.reasons.length ? `${head}: ${data.reasons.join('; ')}` : head, data, [
        {
          kind: 'table',
          title: 'RDB',
          columns: [
            'LAST SAVE',
            'AGE',
            'STATUS',
            'CHANGES SINCE',
            'IN PROGRESS',
            'LAST DURATION',
            'SAVES',
            'SAVE POINTS',
          ],
          rows: [
            [
              data.lastSaveAt,
              data.lastSaveAgeMs === null ? null : formatMillis(data.lastSaveAgeMs),
              data.lastBgsaveStatus,
              data.changesSinceLastSave,
              data.bgsaveInProgress,
              data.lastBgsaveSeconds === null ? null : `${data.lastBgsaveSeconds}s`,
              data.saves,
              data.savePoints,
            ],
          ],
        },
        {
          kind: 'table',
          title: 'AOF',
          columns: ['ENABLED', 'REWRITE IN PROGRESS', 'LAST REWRITE', 'LAST WRITE'],
          rows: [
            [data.aofEnabled, data.aofRewriteInProgress, data.aofLastRewriteStatus, data.aofLastWriteStatus],
          ],
        },
      ]);
    },
  });
}

function statusOf(
  data: SnapshotStatusData,
  p: SnapshotStatusOptions,
  warnMs: number,
  failMs: number,
): FindingStatus {
  const statuses: FindingStatus[] = [];
  const reason = (status: FindingStatus, text: string) => {
    statuses.push(status);
    data.reasons.push(text);
  };
  if (data.lastBgsaveStatus === 'err') {
    reason(
      'fail',
      'the last background save failed (see the server log: a full disk, or a dir Redis cannot write)',
    );
  }
  if (data.aofEnabled && data.aofLastWriteStatus === 'err') {
    reason('fail', 'the last AOF write failed: Redis refuses writes until one succeeds');
  }
  if (data.aofEnabled && data.aofLastRewriteStatus === 'err') reason('warn', 'the last AOF rewrite failed');
  if (data.loading) reason('warn', 'the server is still loading its data set');
  const rdbOnly = !data.aofEnabled;
  if (
    rdbOnly &&
    data.changesSinceLastSave > 0 &&
    data.lastSaveAgeMs !== null &&
    data.lastSaveAgeMs >= warnMs
  ) {
    const failing = data.lastSaveAgeMs >= failMs;
    reason(
      failing ? 'fail' : 'warn',
      `unsaved changes for ${formatMillis(data.lastSaveAgeMs)} (${failing ? 'fail' : 'warn'} after ${formatMillis(failing ? failMs : warnMs)}): a crash now loses them`,
    );
  }
  if (p.requirePersistence && data.savePoints === '' && !data.aofEnabled) {
    reason('warn', 'no persistence configured (save "" and appendonly no): a restart loses every key');
  }
  return worstStatus(statuses);
}
