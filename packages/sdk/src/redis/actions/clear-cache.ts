import { z } from 'zod';
import { formatMillis } from '../../core/duration';
import { NonRetriableError } from '../../core/errors';
import { finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { type Action, defineAction, type StepContext } from '../../core/step';
import type { RedisInstance } from '../connection';
import { serverTimeMs } from '../info';
import { maskedKey, prefixPattern, scanBatches } from '../keys';
import { LuaScript } from '../lua-script';
import { type SdkKeyNamespace, sdkNamespaceMatcher, sdkNamespacesUnder } from '../sdk-key-namespaces';
import { listSome, magnitude, plural } from '../wording';

/** The key types a cache may be stored as (`TYPE`'s names), which {@link ClearCacheOptions} `types` takes. */
export const REDIS_KEY_TYPES = ['string', 'hash', 'list', 'set', 'zset', 'stream'] as const;
/** A Redis key type, as `TYPE` names it. */
export type RedisKeyType = (typeof REDIS_KEY_TYPES)[number];

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
  /**
   * The key types deleted; keys of other types under the prefix are left (a request queue is a list, its
   * in-flight items a sorted set). @default ["string"] (a cached value)
   */
  types: z.array(z.enum(REDIS_KEY_TYPES)).min(1).default(['string']),
  /**
   * Delete keys without a TTL too. Off, they are left: a cache entry expires, a queue or a record does not.
   * @default false
   */
  includePersistent: z.boolean().default(false),
  /** Keys per `UNLINK` call. @default 500 */
  batchSize: z.number().int().min(1).max(10_000).default(500),
  /** `SCAN … COUNT`: keys examined per call. @default 1000 */
  scanCount: z.number().int().min(1).max(100_000).default(1_000),
  /**
   * Refuse to plan when more keys than this start with the prefix (a prefix that is too wide), and never
   * delete more than this in one apply. @default 1000000
   */
  maxKeys: z.number().int().min(1).default(1_000_000),
  /**
   * How far the keys apply finds may outgrow the plan's count: apply deletes at most
   * `max(keysAtPlan × maxGrowth, keysAtPlan + 100)` keys (and at most `maxKeys`), then stops and fails. Live
   * traffic refills a cache; a thousandfold growth means the prefix now covers something else. @default 2
   */
  maxGrowth: z.number().min(1).max(1_000).default(2),
  /** Key names shown in the plan as a sample (masked: see `REDIS.md`). @default 10 */
  sample: z.number().int().min(0).max(100).default(10),
  /**
   * Allow a prefix that every key of the database starts with: the database holds nothing but this cache. Off,
   * such a prefix is refused (`REDIS_PREFIX_COVERS_DB`), as it more likely names too much. @default false
   */
  wholeDatabase: z.boolean().default(false),
});
export type ClearCacheOptions = z.output<typeof ClearCacheOptions>;
export type ClearCacheOptionsInput = z.input<typeof ClearCacheOptions>;

/** What a cache-clear plan fixes. */
export type ClearCacheParams = {
  prefix: string;
  /** The `SCAN MATCH` pattern: the prefix with glob characters escaped, then `*`. */
  pattern: string;
  db: number;
  /** The key types deleted. */
  types: RedisKeyType[];
  /** Whether keys without a TTL are deleted too. */
  includePersistent: boolean;
  /**
   * Keys to delete when planned: of the `types`, with a TTL unless `includePersistent` (as `SCAN` counts
   * them: a key may be counted twice while Redis resizes).
   */
  keysAtPlan: number;
  /** Keys that start with the prefix when planned, whatever their type and TTL. */
  matchedAtPlan: number;
  /**
   * Keys the plan leaves: the SDK's own state (`sdkState`), of the `types` but without a TTL (`persistent`), or of
   * another type (`otherType`).
   */
  skippedAtPlan: { sdkState: number; persistent: number; otherType: number };
  /**
   * Roots of the SDK's key namespaces under the prefix that are left whatever their keys' type and TTL
   * (`aiwebtest:breaker`, `ratelimit`, …): the prefix does not name them.
   */
  sdkNamespaces: string[];
  /** Whether a prefix that every key of the database starts with was allowed. */
  wholeDatabase: boolean;
  /** Most keys apply deletes: `min(maxKeys, max(ceil(keysAtPlan × maxGrowth), keysAtPlan + 100))`. */
  maxDelete: number;
  /** The server's clock when planned (ms), for messages. */
  plannedAtMs: number;
  /**
   * The server's LRU clock when planned (`INFO server` `lru_clock`, seconds modulo 2^24): verify tells keys
   * that existed then (last touched before it) from keys written since.
   */
  plannedLruClock: number;
  /** Names of keys to delete, masked (`agent:cache:…(64)`). */
  sample: string[];
  /** Names of keys left, masked. */
  skippedSample: string[];
  batchSize: number;
  scanCount: number;
};

/** What the apply did. */
export type ClearCacheApplied = {
  /** Keys `UNLINK` removed. */
  deleted: number;
  /** Keys with the prefix left: the SDK's own state, or because of their type or their missing TTL. */
  skipped: number;
  /** Delete calls (one script each: `TYPE`, `PTTL` and `UNLINK` per key). */
  batches: number;
};

const KIND = 'redis.clear-cache';

/** Keys apply may delete beyond `keysAtPlan × maxGrowth` when the plan found few: a small cache refills too. */
const GROWTH_SLACK = 100;

/**
 * Deletes the keys of `KEYS` that are of a type in `ARGV[3…]` and, unless `ARGV[1]` is `1`, have a TTL, at
 * most `ARGV[2]` of them. Checking and deleting in one script leaves no moment for a key to become a queue in
 * between. Returns `{deleted, skipped, over}`: `over` is 1 when an eligible key was left because the budget
 * was spent.
 */
const DELETE_SCRIPT = new LuaScript(`
local persistent = ARGV[1] == '1'
local budget = tonumber(ARGV[2])
local allowed = {}
for i = 3, #ARGV do allowed[ARGV[i]] = true end
local deleted, skipped = 0, 0
for _, key in ipairs(KEYS) do
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' then
    if allowed[t] and (persistent or redis.call('PTTL', key) >= 0) then
      if deleted >= budget then return {deleted, skipped, 1} end
      deleted = deleted + redis.call('UNLINK', key)
    else
      skipped = skipped + 1
    end
  end
end
return {deleted, skipped, 0}
`);

/**
 * The manual's "clear agent cache" made safe: instead of `FLUSHDB` (every key of the database, the queues and
 * breaker state included), deletes only the cache entries among the keys that start with `prefix`: strings
 * (`types`) with a TTL (unless `includePersistent`), with `SCAN MATCH` and a script per batch that checks each
 * key's `TYPE` and `PTTL` and `UNLINK`s it (the memory is freed in the background; the server never blocks on
 * one huge delete). A request queue under the prefix (a list without a TTL) is left, and so is the SDK's own state
 * under its default prefixes (`aiwebtest:breaker:…`, `ratelimit:…`, the request queue's keys: some are strings
 * with a TTL), unless the prefix starts with that namespace (`ratelimit:login:`).
 *
 * - **plan** counts the matching keys and shows a masked sample: `UNLINK 4,812 keys starting with
 *   "agent:cache:" (strings with a TTL; at most 9,624)`, and the keys it leaves. The change's `before` is the
 *   count's order of magnitude (`"1,000 to 9,999 keys"`), so that live traffic does not void an approval; the
 *   exact count is in the summary and `params.keysAtPlan`. No key to delete: nothing to do. More than
 *   `maxKeys` keys with the prefix: refused (`REDIS_TOO_MANY_KEYS`). A prefix every key of the database starts
 *   with (each key counted once): refused (`REDIS_PREFIX_COVERS_DB`: that is {@link flushDb}, which needs an
 *   approval) unless `wholeDatabase`. This guards against a prefix that is too wide; it is no proof that one is
 *   not, since a single key outside the prefix passes it. The plan says it cannot be reverted.
 * - **apply** scans again and deletes the keys that match now and pass the same filter, `batchSize` per call,
 *   at most `params.maxDelete`: past it, it stops and throws `REDIS_TOO_MANY_KEYS` (what it deleted is in the
 *   error's details).
 * - **verify** scans for keys with the prefix left that the filter would delete, and reads when each was last
 *   touched (`OBJECT IDLETIME` against the server's LRU clock, which plan recorded): a key last touched before
 *   the plan existed at plan time and survived the apply: `fail`. Keys written (or read) since the plan are
 *   live traffic refilling the cache: `ok`, and counted. The clock has one-second resolution: a key untouched
 *   since the very second of the plan counts as written since, and so does a key holding a shared small
 *   integer (`"0"`–`"9999"` under a policy that is not LRU/LFU: Redis keeps one object per number, whose idle
 *   time is not the key's). Under an LFU `maxmemory-policy` Redis keeps no idle time; leftover keys then make
 *   it `warn` (cannot tell).
 * - **revert**: none. Deleted keys are gone; a cache refills from its source.
 *
 * Risk `medium`, not destructive: the keys are a cache by the runbook's word (the prefix), by their type and
 * by their TTL, and their number is bounded by the plan's. For data that is not a cache, use {@link flushDb}'s
 * approval path or a runbook approval step.
 */
export function clearCache(
  redis: RedisInstance,
  options: ClearCacheOptionsInput,
): Action<ClearCacheParams, ClearCacheApplied> {
  const o = parseOptions(KIND, ClearCacheOptions, options);
  const pattern = prefixPattern(o.prefix);
  const target = redis.ref('db', String(redis.db), 'keys', encodeURIComponent(o.prefix));
  const label = `keys starting with ${JSON.stringify(o.prefix)} on ${redis.display}`;
  const filter = filterText(o.types, o.includePersistent);
  const namespaces = sdkNamespacesUnder(o.prefix);
  const sdkNamespaceOf = sdkNamespaceMatcher(namespaces);

  return defineAction<ClearCacheParams, ClearCacheApplied>({
    kind: KIND,
    target,
    risk: 'medium',
    destructive: false,
    description: `Delete the ${label} (${filter}; SCAN + UNLINK)`,

    async plan(ctx) {
      const plannedAtMs = await serverTimeMs(redis, ctx.signal);
      const plannedLruClock = await lruClock(redis, ctx.signal);
      let found = await countKeys(redis, pattern, o, sdkNamespaceOf, ctx, false);
      // Read after the scan: keys written outside the prefix meanwhile count, so a live database is not
      // mistaken for one the prefix covers.
      let dbsize = await redis.run('DBSIZE', (c) => c.dbsize(), ctx.signal);
      if (!o.wholeDatabase && found.matched > 0 && found.matched >= dbsize) {
        // SCAN may return a key twice (while Redis resizes its table): count again, each key once, before
        // refusing. Only here: remembering every key name costs memory in proportion to the keys.
        found = await countKeys(redis, pattern, o, sdkNamespaceOf, ctx, true);
        dbsize = await redis.run('DBSIZE', (c) => c.dbsize(), ctx.signal);
        if (found.matched > 0 && found.matched >= dbsize) {
          throw new NonRetriableError(
            `Every key of db ${redis.db} on ${redis.display} (${plural(dbsize, 'key')}) starts with ${JSON.stringify(o.prefix)}: refusing to clear it as a cache. Use a narrower prefix; if the database holds nothing but this cache, set wholeDatabase: true; to empty it, flushDb (destructive: it needs an approval).`,
            { code: 'REDIS_PREFIX_COVERS_DB', details: { prefix: o.prefix, db: redis.db, dbsize } },
          );
        }
      }
      const keysAtPlan = found.eligible;
      const params: ClearCacheParams = {
        prefix: o.prefix,
        pattern,
        db: redis.db,
        types: o.types,
        includePersistent: o.includePersistent,
        keysAtPlan,
        matchedAtPlan: found.matched,
        skippedAtPlan: { sdkState: found.sdkState, persistent: found.persistent, otherType: found.otherType },
        sdkNamespaces: namespaces.map((n) => n.root),
        wholeDatabase: o.wholeDatabase,
        maxDelete: Math.min(
          o.maxKeys,
          Math.max(Math.ceil(keysAtPlan * o.maxGrowth), keysAtPlan + GROWTH_SLACK),
        ),
        plannedAtMs,
        plannedLruClock,
        sample: found.sample,
        skippedSample: found.skippedSample,
        batchSize: o.batchSize,
        scanCount: o.scanCount,
      };
      const left = skippedText(found);
      if (keysAtPlan === 0) {
        return { summary: `No ${label} to delete (${filter}): nothing to do${left}`, changes: [], params };
      }
      return {
        summary:
          `UNLINK ${plural(keysAtPlan, 'key')} starting with ${JSON.stringify(o.prefix)} on ${redis.display} ` +
          `(${filter}; at most ${params.maxDelete.toLocaleString('en-US')})` +
          `${params.sample.length ? `, e.g. ${listSome(params.sample, 3)}` : ''}${left}. ` +
          'Not revertable: deleted keys are gone (a cache refills from its source)',
        changes: [
          {
            target,
            field: `keys ${JSON.stringify(pattern)} (${filter})`,
            before: magnitude(keysAtPlan),
            after: 'no keys',
          },
        ],
        params,
      };
    },

    async apply(ctx, plan) {
      const { pattern: match, batchSize, scanCount, maxDelete, types, includePersistent } = plan.params;
      let deleted = 0;
      let skipped = 0;
      let batches = 0;
      let pending: Buffer[] = [];
      const flush = async () => {
        const keys = pending;
        pending = [];
        const [removed, left, over] = await redis.run(
          'UNLINK',
          async (c) =>
            (await DELETE_SCRIPT.run(c, keys, [
              includePersistent ? '1' : '0',
              String(maxDelete - deleted),
              ...types,
            ])) as [number, number, number],
          ctx.signal,
        );
        deleted += removed;
        skipped += left;
        batches++;
        if (over === 1) {
          throw new NonRetriableError(
            `More ${label} to delete than the plan allows (${maxDelete.toLocaleString('en-US')}; ${plural(plan.params.keysAtPlan, 'key')} when planned): stopped after deleting ${deleted.toLocaleString('en-US')}. Plan again to see what the prefix covers now.`,
            {
              code: 'REDIS_TOO_MANY_KEYS',
              details: { prefix: plan.params.prefix, maxDelete, keysAtPlan: plan.params.keysAtPlan, deleted },
            },
          );
        }
        if (batches % 20 === 0) ctx.log(`deleted ${deleted} keys so far`, { deleted, skipped, batches });
      };
      for await (const batch of scanBatches(redis, { match, count: scanCount, signal: ctx.signal })) {
        for (const key of batch.keys) {
          if (sdkNamespaceOf(key)) {
            skipped++;
            continue;
          }
          pending.push(key);
          if (pending.length >= batchSize) await flush();
        }
      }
      if (pending.length > 0) await flush();
      ctx.log(`deleted ${deleted} ${label} in ${plural(batches, 'batch', 'batches')}; left ${skipped}`, {
        deleted,
        skipped,
        batches,
      });
      return { deleted, skipped, batches };
    },

    async verify(ctx, applied) {
      const {
        pattern: match,
        plannedAtMs,
        plannedLruClock,
        scanCount,
        keysAtPlan,
        prefix,
        types,
        includePersistent,
      } = applied.plan.params;
      const eligible = isEligible(types, includePersistent);
      const now = await serverTimeMs(redis, ctx.signal);
      let remaining = 0;
      let skipped = 0;
      let sdkState = 0;
      let leftOver = 0;
      let shared = 0;
      let untracked = false;
      const examples: string[] = [];
      for await (const batch of scanBatches(redis, { match, count: scanCount, signal: ctx.signal })) {
        const keys = batch.keys.filter((key) => {
          if (!sdkNamespaceOf(key)) return true;
          sdkState++;
          return false;
        });
        if (keys.length === 0) continue;
        const looks = await lastTouched(redis, keys, ctx.signal);
        keys.forEach((key, i) => {
          const look = looks[i];
          if (!look || look.type === 'none') return;
          if (!eligible(look.type, look.ttlMs)) {
            skipped++;
            return;
          }
          remaining++;
          if (look.touched === 'untracked') untracked = true;
          else if (look.touched === 'shared') shared++;
          else if (typeof look.touched === 'number' && before(look.touched, plannedLruClock)) {
            leftOver++;
            if (examples.length < 5) examples.push(maskedKey(key, prefix));
          }
        });
        if (remaining > o.maxKeys) break;
      }
      const data = {
        keysAtPlan,
        remaining,
        skipped,
        sdkState,
        leftOver,
        sharedValues: shared,
        examples,
        idleTracked: !untracked,
      };
      const since = formatMillis(Math.max(0, now - plannedAtMs));
      const quoted = JSON.stringify(o.prefix);
      const leftParts = [
        ...(skipped > 0
          ? [`${sdkState > 0 ? `${skipped} ` : ''}${filterText(types, includePersistent, true)}`]
          : []),
        ...(sdkState > 0 ? [`${sdkState} of the SDK's own state`] : []),
      ];
      const leftNote =
        leftParts.length > 0
          ? ` (${plural(skipped + sdkState, 'other key')} left: ${leftParts.join(', ')})`
          : '';
      if (remaining === 0)
        return finding('ok', `No ${label} left (${plural(keysAtPlan, 'key')} at plan time)${leftNote}`, data);
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
        `No ${label} from plan time left; ${plural(remaining, 'key')} written since (${since}) by live traffic${sharedNote}${leftNote}`,
        data,
      );
    },
  });
}

/** What the plan's scan found under the prefix. */
type Found = {
  matched: number;
  eligible: number;
  /** Keys of the SDK's own state, left whatever their type and TTL. */
  sdkState: number;
  /** Whose state those are (`breaker control`, …). */
  sdkOwners: Set<string>;
  persistent: number;
  otherType: number;
  /** Types of the keys left for their type. */
  otherTypes: Set<string>;
  sample: string[];
  skippedSample: string[];
};

/**
 * Counts the keys that start with the prefix, those the filter deletes, and those it leaves, with masked samples
 * of both; refuses more than `maxKeys` keys. With `distinct`, each key once; without, as `SCAN` returns them (a
 * key may come twice), without remembering every name.
 */
async function countKeys(
  redis: RedisInstance,
  pattern: string,
  o: ClearCacheOptions,
  sdkNamespaceOf: (key: Buffer) => SdkKeyNamespace | undefined,
  ctx: StepContext,
  distinct: boolean,
): Promise<Found> {
  const eligible = isEligible(o.types, o.includePersistent);
  const seen = new Set<string>();
  const found: Found = {
    matched: 0,
    eligible: 0,
    sdkState: 0,
    sdkOwners: new Set(),
    persistent: 0,
    otherType: 0,
    otherTypes: new Set(),
    sample: [],
    skippedSample: [],
  };
  for await (const batch of scanBatches(redis, { match: pattern, count: o.scanCount, signal: ctx.signal })) {
    const keys = distinct ? batch.keys.filter((k) => firstSight(seen, k)) : batch.keys;
    if (keys.length === 0) continue;
    const looks = await typesAndTtls(redis, keys, ctx.signal);
    keys.forEach((key, i) => {
      const look = looks[i];
      if (!look || look.type === 'none') return; // deleted since the scan returned it
      found.matched++;
      const namespace = sdkNamespaceOf(key);
      if (namespace) {
        found.sdkState++;
        found.sdkOwners.add(namespace.owner);
      } else if (eligible(look.type, look.ttlMs)) {
        found.eligible++;
        if (found.sample.length < o.sample) found.sample.push(maskedKey(key, o.prefix));
        return;
      } else if ((o.types as string[]).includes(look.type)) found.persistent++;
      else {
        found.otherType++;
        found.otherTypes.add(look.type);
      }
      if (found.skippedSample.length < Math.min(o.sample, 3))
        found.skippedSample.push(maskedKey(key, o.prefix));
    });
    if (found.matched > o.maxKeys) {
      throw new NonRetriableError(
        `More than ${o.maxKeys.toLocaleString('en-US')} keys start with ${JSON.stringify(o.prefix)} on ${redis.display}: refusing to plan. Use a narrower prefix, or raise maxKeys if that is intended.`,
        { code: 'REDIS_TOO_MANY_KEYS', details: { prefix: o.prefix, maxKeys: o.maxKeys } },
      );
    }
  }
  return found;
}

/** Whether `key` is not in `seen` yet; adds it. */
function firstSight(seen: Set<string>, key: Buffer): boolean {
  // latin1: one character per byte, so distinct key names give distinct strings.
  const name = key.toString('latin1');
  if (seen.has(name)) return false;
  seen.add(name);
  return true;
}

/** Whether a key of `type` with `ttlMs` (`PTTL`: -1 without a TTL) is one the filter deletes. */
function isEligible(types: readonly string[], includePersistent: boolean) {
  return (type: string, ttlMs: number) => types.includes(type) && (includePersistent || ttlMs >= 0);
}

/** `TYPE` and `PTTL` of each key, in one pipeline. */
async function typesAndTtls(
  redis: RedisInstance,
  keys: Buffer[],
  signal: AbortSignal,
): Promise<{ type: string; ttlMs: number }[]> {
  const replies = await redis.run(
    'TYPE',
    (c) => {
      const pipeline = c.pipeline();
      for (const key of keys) pipeline.type(key).pttl(key);
      return pipeline.exec();
    },
    signal,
  );
  const out: { type: string; ttlMs: number }[] = [];
  for (let i = 0; i < keys.length; i++) {
    const [typeError, type] = replies?.[2 * i] ?? [];
    const [ttlError, ttl] = replies?.[2 * i + 1] ?? [];
    const error = typeError ?? ttlError;
    if (error) throw redis.toError(error, 'TYPE');
    out.push({ type: String(type), ttlMs: Number(ttl) });
  }
  return out;
}

const TYPE_PLURALS: Record<string, string> = {
  string: 'strings',
  hash: 'hashes',
  list: 'lists',
  set: 'sets',
  zset: 'sorted sets',
  stream: 'streams',
};

/** `strings with a TTL`, `strings and hashes`; with `negated`, what the filter leaves. */
function filterText(types: readonly string[], includePersistent: boolean, negated = false): string {
  const names = types.map((t) => TYPE_PLURALS[t] ?? t);
  const list = names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names.at(-1)}` : (names[0] ?? '');
  if (negated) return includePersistent ? `not ${list}` : `not ${list}, or without a TTL`;
  return includePersistent ? list : `${list} with a TTL`;
}

/** What the plan leaves, for its summary: `; leaves 2 keys: 1 without a TTL, 1 list, e.g. …`. */
function skippedText(found: Found): string {
  const total = found.sdkState + found.persistent + found.otherType;
  if (total === 0) return '';
  const parts = [
    ...(found.sdkState > 0
      ? [
          `${found.sdkState.toLocaleString('en-US')} of the SDK's own state (${[...found.sdkOwners].sort().join(', ')})`,
        ]
      : []),
    ...(found.persistent > 0 ? [`${found.persistent.toLocaleString('en-US')} without a TTL`] : []),
    ...(found.otherType > 0
      ? [
          `${found.otherType.toLocaleString('en-US')} of another type (${[...found.otherTypes].sort().join(', ')})`,
        ]
      : []),
  ];
  return `; leaves ${plural(total, 'other key')} with the prefix: ${parts.join(', ')}, e.g. ${listSome(found.skippedSample, 3)}`;
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

/** What verify reads of a key left with the prefix. */
type Look = {
  /** `TYPE`: `none` for a key deleted meanwhile. */
  type: string;
  /** `PTTL`: -1 without a TTL. */
  ttlMs: number;
  /**
   * The LRU clock at which it was last touched; `'shared'` when its value is a shared small integer (its
   * idle time is that of every key holding the same number); `'untracked'` under an LFU policy (Redis keeps
   * no idle time then); `null` when it could not be read.
   */
  touched: number | 'shared' | 'untracked' | null;
};

/**
 * Type, TTL and last touch of each key, in one `MULTI`. `OBJECT IDLETIME` is the server's cached LRU clock
 * minus the key's, in whole seconds; reading that clock in the same `MULTI` gives the key's own. Comparing
 * clocks rather than wall-clock ages stays right when the cached clock lags (its cron refreshes it, and a busy
 * or paused server runs that late).
 */
async function lastTouched(redis: RedisInstance, keys: Buffer[], signal: AbortSignal): Promise<Look[]> {
  const results = await redis.run(
    'OBJECT IDLETIME',
    (c) => {
      const transaction = c.multi().info('server');
      for (const key of keys) {
        transaction.type(key).pttl(key).call('OBJECT', 'REFCOUNT', key).call('OBJECT', 'IDLETIME', key);
      }
      return transaction.exec();
    },
    signal,
  );
  const [[infoError, info] = [], ...replies] = results ?? [];
  if (infoError) throw redis.toError(infoError, 'INFO server');
  const now = Number(/^lru_clock:(\d+)/m.exec(String(info))?.[1] ?? Number.NaN);
  const out: Look[] = [];
  for (let i = 0; i < replies.length; i += 4) {
    const [typeError, type] = replies[i] ?? [];
    const [ttlError, ttl] = replies[i + 1] ?? [];
    const [refError, refcount] = replies[i + 2] ?? [];
    const [idleError, idle] = replies[i + 3] ?? [];
    const error = typeError ?? ttlError;
    if (error) throw redis.toError(error, 'TYPE');
    const look: Look = { type: String(type), ttlMs: Number(ttl), touched: null };
    const objectError = idleError ?? refError;
    if (objectError) {
      if (!/LFU/i.test(objectError.message)) throw redis.toError(objectError, 'OBJECT IDLETIME');
      look.touched = 'untracked';
    } else if (idle !== null && refcount !== null && !Number.isNaN(now)) {
      look.touched =
        Number(refcount) === SHARED_REFCOUNT
          ? 'shared'
          : (((now - Number(idle)) % LRU_CLOCK_MAX) + LRU_CLOCK_MAX) % LRU_CLOCK_MAX;
    }
    out.push(look);
  }
  return out;
}

/** The reference count Redis gives its shared objects (`OBJ_SHARED_REFCOUNT`, INT_MAX): small integers 0–9999. */
const SHARED_REFCOUNT = 2_147_483_647;
