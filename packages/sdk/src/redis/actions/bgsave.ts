import { z } from 'zod';
import { Duration, durationBetween, formatMillis, toMillis } from '../../core/duration';
import { RunbookError } from '../../core/errors';
import { finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { sleep } from '../../core/sleep';
import { type Action, defineAction } from '../../core/step';
import type { RedisInstance } from '../connection';
import { type Info, num, parseInfo, readInfo, serverTimeMs } from '../info';
import { plural } from '../wording';

/** Options of {@link bgsave}. */
export const BgsaveOptions = z.object({
  /**
   * How long apply waits for a save someone else started to finish before starting ours, and how long verify
   * waits for ours to finish. A large data set takes minutes to write. @default "10m"
   */
  timeout: Duration.default('10m'),
  /** How often both poll `INFO persistence` while they wait (10 ms to 1 min). @default "250ms" */
  pollInterval: durationBetween(10, 60_000, 'expected a duration from 10ms to 1m').default('250ms'),
});
export type BgsaveOptions = z.output<typeof BgsaveOptions>;
export type BgsaveOptionsInput = z.input<typeof BgsaveOptions>;

/** What a BGSAVE plan fixes: the timings it waits by. */
export type BgsaveParams = { timeoutMs: number; pollMs: number };

/** What the apply saw when the server accepted the BGSAVE: verify waits for a save after it. */
export type BgsaveApplied = {
  /** `rdb_saves` just before ours was accepted (`null` before Redis 7, which lacks it). */
  savesBefore: number | null;
  /** `rdb_last_save_time` then (seconds). */
  lastSaveBefore: number | null;
  /** Whether a save already running had to finish first. */
  waitedForRunningSave: boolean;
};

const KIND = 'redis.bgsave';

/**
 * `BGSAVE SCHEDULE`: writes a new RDB snapshot in a forked child, before a risky change or to have a fresh
 * `dump.rdb` to copy off the machine (the manual's disaster recovery restores from one).
 *
 * - **plan**: the last save (age, status) and the changes since: `BGSAVE: a new snapshot (last 42m ago, 1,204
 *   changes since)`. Always one change (`rdb_last_save_time` → a newer snapshot).
 * - **apply** sends `BGSAVE SCHEDULE`. "Background save already in progress": a save that started before
 *   ours misses the latest writes, so apply waits (at most `timeout`) for it to end and sends its own. During
 *   an AOF rewrite the save is scheduled to run after it.
 * - **verify** waits (at most `timeout`; a cancelled step stops waiting at once) until no save is running
 *   and one was started after the apply's (`rdb_saves` grew; before Redis 7, `rdb_last_save_time` moved):
 *   `ok` when `rdb_last_bgsave_status` is `ok`, `fail` when it failed (a full disk, an unwritable dir) or
 *   when none finished in time.
 * - **revert**: none needed; a snapshot changes no data.
 *
 * Risk `low`, not destructive. Forking copies the page tables: on a large data set the server may pause for
 * a moment, and copy-on-write needs memory while it writes.
 */
export function bgsave(
  redis: RedisInstance,
  options: BgsaveOptionsInput = {},
): Action<BgsaveParams, BgsaveApplied> {
  const o = parseOptions(KIND, BgsaveOptions, options);
  const target = redis.ref('rdb');
  const params: BgsaveParams = {
    timeoutMs: toMillis(o.timeout),
    pollMs: toMillis(o.pollInterval),
  };

  return defineAction<BgsaveParams, BgsaveApplied>({
    kind: KIND,
    target,
    risk: 'low',
    destructive: false,
    description: `BGSAVE: write a new RDB snapshot of ${redis.display}`,

    async plan(ctx) {
      const [info, now] = await Promise.all([
        readInfo(redis, ['persistence'], ctx.signal),
        serverTimeMs(redis, ctx.signal),
      ]);
      const lastSave = num(info, 'rdb_last_save_time');
      const lastSaveAt = lastSave === null ? null : new Date(lastSave * 1_000).toISOString();
      const age = lastSave === null ? 'unknown' : `${formatMillis(Math.max(0, now - lastSave * 1_000))} ago`;
      const running =
        info.rdb_bgsave_in_progress === '1'
          ? '; a save is running now, BGSAVE waits for it and saves again'
          : '';
      return {
        summary:
          `BGSAVE on ${redis.display}: a new snapshot (last ${age}, ${info.rdb_last_bgsave_status ?? 'status unknown'}; ` +
          `${plural(num(info, 'rdb_changes_since_last_save') ?? 0, 'change')} since)${running}`,
        changes: [{ target, field: 'rdb_last_save_time', before: lastSaveAt, after: 'a newer snapshot' }],
        params,
      };
    },

    async apply(ctx, plan) {
      const deadline = Date.now() + plan.params.timeoutMs;
      let waited = false;
      for (;;) {
        // The reading and the request in one transaction: a save finishing between them would otherwise look
        // like ours to verify. Inside MULTI, Redis always answers "scheduled" and starts the save within 1/hz s.
        const results = await redis.run(
          'BGSAVE',
          (c) => c.multi().info('persistence').call('BGSAVE', 'SCHEDULE').exec(),
          ctx.signal,
        );
        const [[, text] = [], [refused] = []] = results ?? [];
        if (!refused) {
          const info = parseInfo(String(text));
          const applied: BgsaveApplied = {
            savesBefore: num(info, 'rdb_saves'),
            lastSaveBefore: num(info, 'rdb_last_save_time'),
            waitedForRunningSave: waited,
          };
          ctx.log(`BGSAVE sent${waited ? ' (after the save that was running)' : ''}`);
          return applied;
        }
        if (!/already in progress/i.test(refused.message)) throw redis.toError(refused, 'BGSAVE');
        if (Date.now() >= deadline) {
          throw new RunbookError(
            'REDIS_BGSAVE_BUSY',
            `A background save on ${redis.display} was still running after ${formatMillis(plan.params.timeoutMs)}; BGSAVE was not sent. Raise timeout, or look at why saving is this slow (rdb_current_bgsave_time_sec).`,
          );
        }
        if (!waited)
          ctx.log('a background save is already running: waiting for it to finish, then saving again');
        waited = true;
        await sleep(plan.params.pollMs, ctx.signal);
      }
    },

    async verify(ctx, applied) {
      const { timeoutMs, pollMs } = applied.plan.params;
      const deadline = Date.now() + timeoutMs;
      const before = applied.data;
      for (;;) {
        const info = await readInfo(redis, ['persistence'], ctx.signal);
        if (before !== null && finished(info, before)) {
          const ok = info.rdb_last_bgsave_status === 'ok';
          const data = {
            status: info.rdb_last_bgsave_status ?? null,
            lastSaveAt: lastSaveIso(info),
            seconds: num(info, 'rdb_last_bgsave_time_sec'),
          };
          return ok
            ? finding(
                'ok',
                `New snapshot of ${redis.display} written at ${data.lastSaveAt} in ${data.seconds}s`,
                data,
              )
            : finding(
                'fail',
                `The background save on ${redis.display} failed (rdb_last_bgsave_status:err): see the server log (a full disk, or a dir Redis cannot write)`,
                data,
              );
        }
        if (before === null && info.rdb_bgsave_in_progress === '0' && info.rdb_last_bgsave_status === 'ok') {
          // Recovered after a crash: what apply saw is lost; a finished, successful save is what can be checked.
          return finding('ok', `Last snapshot of ${redis.display} written at ${lastSaveIso(info)}`, {
            lastSaveAt: lastSaveIso(info),
          });
        }
        if (Date.now() >= deadline) {
          return finding('fail', `No new snapshot of ${redis.display} within ${formatMillis(timeoutMs)}`, {
            inProgress: info.rdb_bgsave_in_progress === '1',
            lastSaveAt: lastSaveIso(info),
          });
        }
        await sleep(pollMs, ctx.signal);
      }
    },
  });
}

/** No save running, and one started after the apply's reading (it may have failed: the caller reads the status). */
function finished(info: Info, before: BgsaveApplied): boolean {
  if (info.rdb_bgsave_in_progress !== '0') return false;
  const saves = num(info, 'rdb_saves');
  if (saves !== null && before.savesBefore !== null) return saves > before.savesBefore;
  const last = num(info, 'rdb_last_save_time');
  return last !== null && before.lastSaveBefore !== null && last > before.lastSaveBefore;
}

function lastSaveIso(info: Info): string | null {
  const last = num(info, 'rdb_last_save_time');
  return last === null ? null : new Date(last * 1_000).toISOString();
}
