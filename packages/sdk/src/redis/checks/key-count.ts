import { z } from 'zod';
import { type FindingStatus, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import type { RedisInstance } from '../connection';
import { maskedKey, prefixPattern, scanBatches } from '../keys';
import { plural } from '../wording';

/** Options of {@link keyCount}. */
export const KeyCountOptions = z
  .object({
    /** Count the keys that start with this, taken literally (`*?[]\` are not wildcards). `""` counts every key. */
    prefix: z.string(),
    /**
     * Stop after examining about this many keys (`SCAN` calls × `scanCount`) and report "at least N": a count
     * over a database of millions should not hold the step for long. @default 100000
     */
    maxScanned: z.number().int().min(1).max(100_000_000).default(100_000),
    /** `SCAN … COUNT`: keys examined per call. @default 1000 */
    scanCount: z.number().int().min(1).max(100_000).default(1_000),
    /** Key names kept as a sample in data and evidence. @default 10 */
    sample: z.number().int().min(0).max(100).default(10),
    /** `warn` at or above this many keys. @default none (the count is reported, not judged) */
    warnAt: z.number().int().min(0).optional(),
    /** `fail` at or above this many keys. @default none */
    failAt: z.number().int().min(0).optional(),
  })
  .refine((o) => o.warnAt === undefined || o.failAt === undefined || o.warnAt <= o.failAt, {
    message: 'warnAt must not exceed failAt',
    path: ['warnAt'],
  });
export type KeyCountOptions = z.output<typeof KeyCountOptions>;
export type KeyCountOptionsInput = z.input<typeof KeyCountOptions>;

/** What {@link keyCount} found. */
export type KeyCountData = {
  prefix: string;
  /** The `MATCH` pattern sent (the prefix with glob characters escaped, then `*`). */
  pattern: string;
  /** Distinct matching keys found: all of them when `complete`, a lower bound otherwise. */
  keys: number;
  /** Whether the whole database was scanned. */
  complete: boolean;
  /** About how many keys were examined. */
  scanned: number;
  /** `DBSIZE` when the scan started. */
  dbsize: number;
  /** When incomplete: `keys × dbsize / scanned`, a rough extrapolation; `null` when complete. */
  estimate: number | null;
  /** The first matching key names, masked after the prefix and its namespace words (`cache:user:…(17)`). */
  sample: string[];
};

/**
 * What {@link keyCount} read: the count, how complete the scan was, and the sample, as in
 * {@link KeyCountData}. Replaying it with other `warnAt` / `failAt` judges the same count again.
 */
export type KeyCountObservation = KeyCountData;

const KIND = 'redis.key-count';

/**
 * Counts the keys that start with `prefix` (`SCAN MATCH <escaped prefix>* COUNT <scanCount>`, never `KEYS`),
 * and keeps a sample of their names. The prefix is matched literally: `cache:[v2]*` counts the keys that
 * start with those eleven characters. After about `maxScanned` keys examined the count is a lower bound
 * ("at least N"), with an extrapolated estimate.
 *
 * - `fail` / `warn` when the count (or the lower bound) is at or above `failAt` / `warnAt`.
 * - `unknown` when the scan stopped early below a threshold it has: the rest might cross it.
 * - `ok` otherwise (always, without thresholds).
 *
 * Replayable: `read` scans ({@link KeyCountObservation}), `judge` applies `warnAt` and `failAt`.
 */
export function keyCount(
  redis: RedisInstance,
  options: KeyCountOptionsInput,
): ReplayableCheck<KeyCountData, KeyCountObservation> {
  const p = parseOptions(KIND, KeyCountOptions, options);
  const pattern = prefixPattern(p.prefix);
  return defineCheck({
    kind: KIND,
    description: `Keys starting with ${JSON.stringify(p.prefix)} on ${redis.display}`,
    async read(ctx): Promise<KeyCountObservation> {
      const dbsize = await redis.run('DBSIZE', (c) => c.dbsize(), ctx.signal);
      const seen = new Set<string>();
      const sample: string[] = [];
      let scanned = 0;
      let complete = true;
      for await (const batch of scanBatches(redis, {
        match: pattern,
        count: p.scanCount,
        signal: ctx.signal,
      })) {
        scanned += p.scanCount;
        for (const key of batch.keys) {
          const id = key.toString('latin1');
          if (seen.has(id)) continue;
          seen.add(id);
          if (sample.length < p.sample) sample.push(maskedKey(key, p.prefix));
        }
        if (!batch.last && scanned >= p.maxScanned) {
          complete = false;
          break;
        }
      }
      // A complete scan examined every key, whatever the COUNT hints add up to.
      if (complete) scanned = dbsize;
      const keys = seen.size;
      const estimate = complete ? null : Math.round((keys * dbsize) / Math.max(scanned, 1));
      return { prefix: p.prefix, pattern, keys, complete, scanned, dbsize, estimate, sample };
    },
    judge(data) {
      const { keys, complete, scanned, dbsize, estimate, sample } = data;
      const status = statusOf(data, p);
      const count = complete ? plural(keys, 'key') : `at least ${plural(keys, 'key')}`;
      const limit =
        status === 'fail'
          ? ` (fail at ${p.failAt})`
          : status === 'warn'
            ? ` (warn at ${p.warnAt})`
            : status === 'unknown'
              ? `: raise maxScanned to judge against ${p.warnAt ?? p.failAt}`
              : '';
      const partial = complete
        ? ''
        : ` (scan stopped after about ${scanned.toLocaleString('en-US')} of ${dbsize.toLocaleString('en-US')} keys; about ${estimate?.toLocaleString('en-US')} in all)`;
      return finding(
        status,
        `${count} starting with ${JSON.stringify(p.prefix)} on ${redis.display}${partial}${limit}`,
        data,
        [
          {
            kind: 'table',
            title: 'Keys by prefix',
            columns: ['PREFIX', 'KEYS', 'COMPLETE', 'SCANNED', 'DBSIZE', 'ESTIMATE'],
            rows: [[p.prefix, keys, complete, scanned, dbsize, estimate]],
          },
          { kind: 'log', title: `Sample of ${plural(sample.length, 'key name')}`, lines: sample },
        ],
      );
    },
  });
}

function statusOf(data: KeyCountData, p: KeyCountOptions): FindingStatus {
  if (p.failAt !== undefined && data.keys >= p.failAt) return 'fail';
  if (p.warnAt !== undefined && data.keys >= p.warnAt) return 'warn';
  if (!data.complete && (p.warnAt !== undefined || p.failAt !== undefined)) return 'unknown';
  return 'ok';
}
