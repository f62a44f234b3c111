import { z } from 'zod';
import { formatMillis } from '../../core/duration';
import { NonRetriableError } from '../../core/errors';
import { finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { type Action, defineAction, type StepContext } from '../../core/step';
import type { RedisInstance } from '../connection';
import { serverTimeMs } from '../info';
import { keyText, prefixPattern, scanBatches } from '../keys';
import { listSome, magnitude, plural } from '../wording';

/** Options of {@link clearCache}. */
export const ClearCacheOptions = z.object({
  /**
   * Delete the keys that start with this, taken literally: `*`, `?`, `[`, `]` and `\` are not wildcards.
   * Required and not empty; a prefix of glob characters only is refused (it would not mean "everything").
   */
  prefix: z
    .string()
    .min(1, 'give the prefix of the keys to delete; to empty a whole database, use flushDb')
    .refine((p) => p === '' || /[^*?[\]\\\s]/.test(p), {
      message:
        'the prefix is matched literally: glob characters alone would only match keys that start with them, not every key. To empty a whole database, use flushDb',
    }),
  /** Keys per `UNLINK` call. @default 500 */
  batchSize: z.number().int().min(1).max(10_000).default(500),
  /** `SCAN … COUNT`: keys examined per call. @default 1000 */
  scanCount: z.number().int().min(1).max(100_000).default(1_000),
  /** Refuse to plan when more keys than this match (a prefix that is too wide). @default 1000000 */
  maxKeys: z.number().int().min(1).default(1_000_000),
  /** Key names shown in the plan as a sample. @default 10 */
  sample: z.number().int().min(0).max(100).default(10),
});
export type ClearCacheOptions = z.output<typeof ClearCacheOptions>;
export type ClearCacheOptionsInput = z.input<typeof ClearCacheOptions>;

/** What a cache-clear plan fixes. */
export type ClearCacheParams = {
  prefix: string;
  /** The `SCAN MATCH` pattern: the prefix with glob characters escaped, then `*`. */
  pattern: string;
  db: number;
  /** Matching keys when planned (as `SCAN` counts them: a key may be counted twice while Redis resizes). */
  keysAtPlan: number;
  /** The server's clock when planned (ms), for messages. */
  plannedAtMs: number;
  /**
   * The server's LRU clock when planned (`INFO server` `lru_clock`, seconds modulo 2^24): verify tells keys
   * that existed then (last touched before it) from keys written since.
   */
  plannedLruClock: number;
  sample: string[];
  batchSize: number;
  scanCount: number;
};

/** What the apply did. */
export type ClearCacheApplied = {
  /** Keys `UNLINK` removed. */
  deleted: number;
  /** `UNLINK` calls. */
  batches: number;
};

const KIND = 'redis.clear-cache';

/**
 * The manual's "clear agent cache" made safe: instead of `FLUSHDB` (every key of the database, the queues and
 * breaker state included), deletes only the keys that start with `prefix`, with `SCAN MATCH` and `UNLINK` in
 * batches (the memory is freed in the background; the server never blocks on one huge delete).
 *
 * - **plan** counts the matching keys and shows a sample: `UNLINK 4,812 keys starting with "agent:cache:"`.
 *   The change's `before` is the count's order of magnitude (`"1,000 to 9,999 keys"`), so that live traffic
 *   does not void an approval; the exact count is in the summary and `params.keysAtPlan`. No matching key:
 *   nothing to do. More than `maxKeys`: refused (`REDIS_TOO_MANY_KEYS`). The plan says it cannot be reverted.
 * - **apply** scans again and unlinks every key that matches now, `batchSize` per call.
 * - **verify** scans for keys with the prefix left, and reads when each was last touched (`OBJECT IDLETIME`
 *   against the server's LRU clock, which plan recorded): a key last touched before the plan existed at plan
 *   time and survived the apply: `fail`. Keys written (or read) since the plan are live traffic refilling the
 *   cache: `ok`, and counted. The clock has one-second resolution: a key untouched since the very second of
 *   the plan counts as written since, and so does a key holding a shared small integer (`"0"`–`"9999"` under a
 *   policy that is not LRU/LFU: Redis keeps one object per number, whose idle time is not the key's). Under an
 *   LFU `maxmemory-policy` Redis keeps no idle time; leftover keys then make it `warn` (cannot tell).
 * - **revert**: none. Deleted keys are gone; a cache refills from its source.
 *
 * Risk `medium`, not destructive: the keys are a cache by the runbook's word (the prefix). For data that is
 * not a cache, use {@link flushDb}'s approval path or a runbook approval step.
 */
export function clearCache(
  redis: RedisInstance,
  options: ClearCacheOptionsInput,
): Action<ClearCacheParams, ClearCacheApplied> {
  const o = parseOptions(KIND, ClearCacheOptions, options);
  const pattern = prefixPattern(o.prefix);
  const target = redis.ref('db', String(redis.db), 'keys', encodeURIComponent(o.prefix));
  const label = `keys starting with ${JSON.stringify(o.prefix)} on ${redis.display}`;

  return defineAction<ClearCacheParams, ClearCacheApplied>({
    kind: KIND,
    target,
    risk: 'medium',
    destructive: false,
    description: `Delete the ${label} (SCAN + UNLINK)`,

    async plan(ctx) {
      const plannedAtMs = await serverTimeMs(redis, ctx.signal);
      const plannedLruClock = await lruClock(redis, ctx.signal);
      const dbsize = await redis.run('DBSIZE', (c) => c.dbsize(), ctx.signal);
      const { count, sample } = await countKeys(redis, pattern, o, ctx);
      const params: ClearCacheParams = {
        prefix: o.prefix,
        pattern,
        db: redis.db,
        keysAtPlan: count,
        plannedAtMs,
        plannedLruClock,
        sample,
        batchSize: o.batchSize,
        scanCount: o.scanCount,
      };
      if (params.keysAtPlan === 0) {
        return { summary: `No ${label}: nothing to delete`, changes: [], params };
      }
      const all = params.keysAtPlan >= dbsize ? ` (all the keys of db ${redis.db})` : '';
      return {
        summary:
          `UNLINK ${plural(params.keysAtPlan, 'key')} starting with ${JSON.stringify(o.prefix)} on ${redis.display}${all}` +
          `${params.sample.length ? `, e.g. ${listSome(params.sample, 3)}` : ''}. ` +
          'Not revertable: deleted keys are gone (a cache refills from its source)',
        changes: [
          {
            target,
            field: `keys ${JSON.stringify(pattern)}`,
            before: magnitude(params.keysAtPlan),
            after: 'no keys',
          },
        ],
        params,
      };
    },

    async apply(ctx, plan) {
      const { pattern: match, batchSize, scanCount } = plan.params;
      let deleted = 0;
      let batches = 0;
      let pending: Buffer[] = [];
      const flush = async () => {
        const keys = pending;
        pending = [];
        // UNLINK frees the values in a background thread: one call never blocks the server for long.
        deleted += await redis.run('UNLINK', (c) => c.unlink(...keys), ctx.signal);
        batches++;
        if (batches % 20 === 0) ctx.log(`deleted ${deleted} keys so far`, { deleted, batches });
      };
      for await (const batch of scanBatches(redis, { match, count: scanCount, signal: ctx.signal })) {
        for (const key of batch.keys) {
          pending.push(key);
          if (pending.length >= batchSize) await flush();
        }
      }
      if (pending.length > 0) await flush();
      ctx.log(`deleted ${deleted} ${label} in ${plural(batches, 'batch', 'batches')}`, { deleted, batches });
      return { deleted, batches };
    },

    async verify(ctx, applied) {
      const { pattern: match, plannedAtMs, plannedLruClock, scanCount, keysAtPlan } = applied.plan.params;
      const now = await serverTimeMs(redis, ctx.signal);
      let remaining = 0;
      let leftOver = 0;
      let shared = 0;
      let untracked = false;
      const examples: string[] = [];
      for await (const batch of scanBatches(redis, { match, count: scanCount, signal: ctx.signal })) {
        if (batch.keys.length === 0) continue;
        remaining += batch.keys.length;
        if (untracked) continue;
        const touched = await lastTouched(redis, batch.keys, ctx.signal);
        if (touched === null) {
          untracked = true;
          continue;
        }
        batch.keys.forEach((key, i) => {
          const clock = touched[i];
          if (clock === 'shared') shared++;
          else if (typeof clock === 'number' && before(clock, plannedLruClock)) {
            leftOver++;
            if (examples.length < 5) examples.push(keyText(key));
          }
        });
        if (remaining > o.maxKeys) break;
      }
      const data = {
        keysAtPlan,
        remaining,
        leftOver,
        sharedValues: shared,
        examples,
        idleTracked: !untracked,
      };
      const since = formatMillis(Math.max(0, now - plannedAtMs));
      const quoted = JSON.stringify(o.prefix);
      if (remaining === 0)
        return finding('ok', `No ${label} left (${plural(keysAtPlan, 'key')} at plan time)`, data);
      if (untracked) {
        return finding(
          'warn',
          `${plural(remaining, 'key')} starting with ${quoted} exist now; under an LFU maxmemory-policy Redis keeps no idle time, so whether they were written since the plan or survived the delete cannot be told`,
          data,
        );
      }
      if (leftOver > 0) {
        return finding(
          'fail',
          `${plural(leftOver, 'key')} starting with ${quoted} last touched before the plan (${since} ago) survived the delete, e.g. ${listSome(examples, 3)}`,
          data,
        );
      }
      const sharedNote =
        shared > 0
          ? ` (${plural(shared, 'of them holds', 'of them hold')} a shared small integer, whose age Redis does not keep per key)`
          : '';
      return finding(
        'ok',
        `No ${label} from plan time left; ${plural(remaining, 'key')} written since (${since}) by live traffic${sharedNote}`,
        data,
      );
    },
  });
}

/** Matching keys (as SCAN returns them) and a sample of names; refuses more than `maxKeys`. */
async function countKeys(
  redis: RedisInstance,
  pattern: string,
  o: ClearCacheOptions,
  ctx: StepContext,
): Promise<{ count: number; sample: string[] }> {
  let count = 0;
  const sample: string[] = [];
  for await (const batch of scanBatches(redis, { match: pattern, count: o.scanCount, signal: ctx.signal })) {
    count += batch.keys.length;
    for (const key of batch.keys) if (sample.length < o.sample) sample.push(keyText(key));
    if (count > o.maxKeys) {
      throw new NonRetriableError(
        `More than ${o.maxKeys.toLocaleString('en-US')} keys start with ${JSON.stringify(o.prefix)} on ${redis.display}: refusing to plan. Use a narrower prefix, or raise maxKeys if that is intended.`,
        { code: 'REDIS_TOO_MANY_KEYS', details: { prefix: o.prefix, maxKeys: o.maxKeys } },
      );
    }
  }
  return { count, sample };
}

/** `lru_clock` of `INFO server`: the server's cached LRU clock, in seconds modulo 2^24. */
async function lruClock(redis: RedisInstance, signal: AbortSignal): Promise<number> {
  const text = String(await redis.run('INFO server', (c) => c.info('server'), signal));
  return Number(/^lru_clock:(\d+)/m.exec(text)?.[1] ?? Number.NaN);
}

const LRU_CLOCK_MAX = 2 ** 24;

/** Whether LRU clock `a` is strictly before `b`, modulo the clock's 24 bits (it wraps every 194 days). */
function before(a: number, b: number): boolean {
  const diff = (((b - a) % LRU_CLOCK_MAX) + LRU_CLOCK_MAX) % LRU_CLOCK_MAX;
  return diff > 0 && diff < LRU_CLOCK_MAX / 2;
}

/**
 * The LRU clock at which each key was last touched: `null` for one deleted meanwhile, `'shared'` for one
 * whose value is a shared small integer (its idle time is that of every key holding the same number); or
 * `null` for all when the policy is LFU (Redis keeps no idle time then). `OBJECT IDLETIME` is the server's
 * cached LRU clock minus the key's, in whole seconds; reading that clock in the same `MULTI` gives the key's
 * own. Comparing clocks rather than wall-clock ages stays right when the cached clock lags (its cron refreshes
 * it, and a busy or paused server runs that late).
 */
async function lastTouched(
  redis: RedisInstance,
  keys: Buffer[],
  signal: AbortSignal,
): Promise<(number | 'shared' | null)[] | null> {
  const results = await redis.run(
    'OBJECT IDLETIME',
    (c) => {
      const transaction = c.multi().info('server');
      for (const key of keys) transaction.call('OBJECT', 'REFCOUNT', key).call('OBJECT', 'IDLETIME', key);
      return transaction.exec();
    },
    signal,
  );
  const [[infoError, info] = [], ...replies] = results ?? [];
  if (infoError) throw redis.toError(infoError, 'INFO server');
  const now = Number(/^lru_clock:(\d+)/m.exec(String(info))?.[1] ?? Number.NaN);
  const out: (number | 'shared' | null)[] = [];
  for (let i = 0; i < replies.length; i += 2) {
    const [refError, refcount] = replies[i] ?? [];
    const [idleError, idle] = replies[i + 1] ?? [];
    const error = idleError ?? refError;
    if (error) {
      if (/LFU/i.test(error.message)) return null;
      throw redis.toError(error, 'OBJECT IDLETIME');
    }
    if (idle === null || refcount === null || Number.isNaN(now)) out.push(null);
    else if (Number(refcount) === SHARED_REFCOUNT) out.push('shared');
    else out.push((((now - Number(idle)) % LRU_CLOCK_MAX) + LRU_CLOCK_MAX) % LRU_CLOCK_MAX);
  }
  return out;
}

/** The reference count Redis gives its shared objects (`OBJ_SHARED_REFCOUNT`, INT_MAX): small integers 0–9999. */
const SHARED_REFCOUNT = 2_147_483_647;
