import type { Redis } from 'ioredis';
import { z } from 'zod';
import { finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { type Action, defineAction } from '../../core/step';
import type { RedisInstance } from '../connection';
import { maskedKey } from '../keys';
import { listSome, magnitude, plural } from '../wording';

/** Options of {@link flushDb}. */
export const FlushDbOptions = z.object({
  /** The database index to empty. Required: emptying a database is never a default. */
  db: z.number().int().min(0),
  /** Key names shown in the plan as a sample of what is lost (masked: `agent:cache:…(64)`). @default 5 */
  sample: z.number().int().min(0).max(50).default(5),
});
export type FlushDbOptions = z.output<typeof FlushDbOptions>;
export type FlushDbOptionsInput = z.input<typeof FlushDbOptions>;

/** What a flush plan fixes. */
export type FlushDbParams = {
  db: number;
  /** `DBSIZE` when planned: the keys that will be lost. */
  keysAtPlan: number;
  sample: string[];
};

/** What the apply saw: `DBSIZE` right after `FLUSHDB`, in the same transaction (0). */
export type FlushDbApplied = { dbsizeAfter: number };

const KIND = 'redis.flush-db';

/**
 * `FLUSHDB ASYNC`: deletes every key of one database — the manual's "clear agent cache" as it is written,
 * kept as an explicit action for when nothing narrower will do (prefer {@link clearCache}). **Destructive**,
 * risk `high`: the engine asks a second person to approve the exact plan first.
 *
 * - **plan** reads `DBSIZE` (on a connection of its own when `db` is not the instance's) and a sample of key
 *   names: `FLUSHDB db 3: 4,812 keys will be lost`. The change's `before` is the count's order of magnitude,
 *   so that live traffic does not void the approval; the exact count is in the summary and params. An empty
 *   database: nothing to do.
 * - **apply** sends `FLUSHDB ASYNC` and `DBSIZE` in one `MULTI` (the memory is freed in the background).
 * - **verify** reads `DBSIZE` again: `ok` when it dropped below the planned count (keys written since by
 *   live traffic are counted, not held against it), `fail` otherwise.
 * - **revert**: none. Restore from a snapshot ({@link rdbRestoreReadiness}) if the keys were data.
 */
export function flushDb(
  redis: RedisInstance,
  options: FlushDbOptionsInput,
): Action<FlushDbParams, FlushDbApplied> {
  const o = parseOptions(KIND, FlushDbOptions, options);
  const target = redis.ref('db', String(o.db));
  const where = `db ${o.db} of ${redis.display.replace(/\/\d+$/, '')}`;
  // SELECT on the instance's shared client would move every other user of it to that database.
  const onDb = <T>(what: string, work: (c: Redis) => Promise<T>, signal: AbortSignal) =>
    o.db === redis.db ? redis.run(what, work, signal) : redis.dedicated(what, o.db, work, signal);

  return defineAction<FlushDbParams, FlushDbApplied>({
    kind: KIND,
    target,
    risk: 'high',
    destructive: true,
    description: `FLUSHDB ASYNC: delete every key of ${where}`,

    async plan(ctx) {
      const { keys, sample } = await onDb(
        'DBSIZE',
        async (c) => {
          const size = await c.dbsize();
          const [, names] = o.sample > 0 && size > 0 ? await c.scanBuffer('0', 'COUNT', 100) : ['0', []];
          return { keys: size, sample: names.slice(0, o.sample).map((name) => maskedKey(name)) };
        },
        ctx.signal,
      );
      const params: FlushDbParams = { db: o.db, keysAtPlan: keys, sample };
      if (keys === 0) return { summary: `${where} is empty: nothing to flush`, changes: [], params };
      return {
        summary:
          `FLUSHDB ASYNC ${where}: ${plural(keys, 'key')} will be lost` +
          `${sample.length ? `, e.g. ${listSome(sample, 3)}` : ''}. Not revertable`,
        changes: [{ target, field: 'keys', before: magnitude(keys), after: 'no keys' }],
        params,
      };
    },

    async apply(ctx) {
      const results = await onDb(
        'FLUSHDB ASYNC',
        (c) => c.multi().flushdb('ASYNC').dbsize().exec(),
        ctx.signal,
      );
      const [flushed, size] = results ?? [];
      if (flushed?.[0]) throw redis.toError(flushed[0], 'FLUSHDB ASYNC');
      const dbsizeAfter = Number(size?.[1] ?? 0);
      ctx.log(`flushed ${where}`, { dbsizeAfter });
      return { dbsizeAfter };
    },

    async verify(ctx, applied) {
      const before = applied.plan.params.keysAtPlan;
      const now = await onDb('DBSIZE', (c) => c.dbsize(), ctx.signal);
      const data = { keysAtPlan: before, dbsize: now };
      if (now === 0) return finding('ok', `${where} is empty (${plural(before, 'key')} flushed)`, data);
      if (now < before) {
        return finding(
          'ok',
          `${where} flushed (${plural(before, 'key')}); ${plural(now, 'key')} written since by live traffic`,
          data,
        );
      }
      return finding(
        'fail',
        `${where} still has ${plural(now, 'key')} (${plural(before, 'key')} at plan time): the flush did not take`,
        data,
      );
    },
  });
}
