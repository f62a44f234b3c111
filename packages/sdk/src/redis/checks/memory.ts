import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { type Evidence, type FindingStatus, finding, worstStatus } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { sleep } from '../../core/sleep';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import type { RedisInstance } from '../connection';
import { type Info, num, readInfo } from '../info';
import { Bytes, Ratio, toBytes } from '../options';
import { formatBytes, percent, plural, round3 } from '../wording';

/** Options of {@link memory}. */
export const MemoryOptions = z
  .object({
    /** `warn` when `used_memory` is at or above this share of `maxmemory`. @default 0.8 */
    warnAt: Ratio.default(0.8),
    /** `fail` when `used_memory` is at or above this share of `maxmemory`. @default 0.95 */
    failAt: Ratio.default(0.95),
    /**
     * Read the eviction and OOM counters twice, this far apart, and judge what happened in between (`"5s"`):
     * whether the server is evicting or refusing writes *now*. `0` reads once and only reports the totals
     * since the server started. @default 0
     */
    sampleWindow: Duration.default(0),
    /** `warn` when `mem_fragmentation_ratio` (RSS / used) is at or above this. @default 1.5 */
    fragmentationWarnAt: z.number().min(1).default(1.5),
    /**
     * Fragmentation (and RSS below used memory, a sign of swapping) is judged only from this much used memory
     * on: a nearly empty server always shows a large ratio. @default "64mb"
     */
    fragmentationMinUsed: Bytes.default('64mb'),
  })
  .refine((o) => o.warnAt <= o.failAt, { message: 'warnAt must not exceed failAt', path: ['warnAt'] });
export type MemoryOptions = z.output<typeof MemoryOptions>;
export type MemoryOptionsInput = z.input<typeof MemoryOptions>;

/** What {@link memory} found. */
export type MemoryData = {
  /** `used_memory`. */
  usedBytes: number;
  /** `maxmemory`; `null` when it is 0 (no limit). */
  maxmemoryBytes: number | null;
  /** `usedBytes / maxmemoryBytes`; `null` without a limit. */
  ratio: number | null;
  /** `maxmemory_policy`, e.g. `noeviction`, `allkeys-lru`. */
  policy: string | null;
  /** `used_memory_rss`. */
  rssBytes: number | null;
  /** `used_memory_peak`. */
  peakBytes: number | null;
  /** `total_system_memory` (of the host, not of a container's limit). */
  systemBytes: number | null;
  /** `mem_fragmentation_ratio`. */
  fragmentationRatio: number | null;
  /** `evicted_keys` since the server started (or `CONFIG RESETSTAT`). */
  evictedKeys: number;
  /** Writes refused with `OOM` since then (`errorstat_OOM`). */
  oomRejections: number;
  /** The sample window in ms; `null` when the counters were read once. */
  windowMs: number | null;
  /** Keys evicted during the window. */
  evictedInWindow: number | null;
  /** Writes refused with `OOM` during the window. */
  oomInWindow: number | null;
  /** Keys of all databases, and those with a TTL (what `volatile-*` policies may evict). */
  keys: number;
  keysWithTtl: number;
  /** Each reason behind the status, in words. */
  reasons: string[];
};

/**
 * What {@link memory} read: the figures of {@link MemoryData} without the reasons (the judgement's).
 * Replaying it with other `warnAt` / `failAt` / fragmentation thresholds judges the same figures again.
 */
export type MemoryObservation = Omit<MemoryData, 'reasons'>;

const KIND = 'redis.memory';

/**
 * Memory and eviction (`INFO memory`, `stats`, `errorstats`, `keyspace`): used memory against `maxmemory`,
 * the eviction policy, keys evicted and writes refused with `OOM`, and fragmentation.
 *
 * - `fail` when used memory is at or above `failAt` (95 %) of `maxmemory`, or writes were refused with `OOM`
 *   during the sample window.
 * - `warn` when it is at or above `warnAt` (80 %) — the summary says what happens at the limit under the
 *   policy: `noeviction` refuses writes, `volatile-*` with no key carrying a TTL evicts nothing and refuses
 *   writes too, `allkeys-*` evicts; when keys were evicted during the window (the cache is smaller than its
 *   working set); when `OOM` refusals were counted since the start (without a window); when fragmentation is
 *   at or above `fragmentationWarnAt`, or RSS is below used memory (swapping), from `fragmentationMinUsed` on.
 * - `ok` otherwise. Without `maxmemory` the usage is reported against the host's memory, not judged.
 *
 * Replayable: `read` samples the server ({@link MemoryObservation}), `judge` applies the thresholds.
 */
export function memory(
  redis: RedisInstance,
  options: MemoryOptionsInput = {},
): ReplayableCheck<MemoryData, MemoryObservation> {
  const p = parseOptions(KIND, MemoryOptions, options);
  const windowMs = toMillis(p.sampleWindow);
  const fragmentationMin = toBytes(p.fragmentationMinUsed);
  return defineCheck({
    kind: KIND,
    description: `Memory, eviction policy, evictions and OOM refusals of ${redis.display}`,
    async read(ctx): Promise<MemoryObservation> {
      const read = async () => {
        const [mem, stats, errors, keyspace] = await Promise.all(
          ['memory', 'stats', 'errorstats', 'keyspace'].map((s) => readInfo(redis, [s], ctx.signal)),
        );
        return { ...(mem as Info), ...stats, ...errors, ...keyspace } as Info;
      };
      const first = await read();
      let last = first;
      if (windowMs > 0) {
        await sleep(windowMs, ctx.signal);
        last = await read();
      }
      const maxmemory = num(last, 'maxmemory') ?? 0;
      const used = num(last, 'used_memory') ?? 0;
      const [keys, keysWithTtl] = keyspaceTotals(last);
      return {
        usedBytes: used,
        maxmemoryBytes: maxmemory > 0 ? maxmemory : null,
        ratio: maxmemory > 0 ? round3(used / maxmemory) : null,
        policy: last.maxmemory_policy ?? null,
        rssBytes: num(last, 'used_memory_rss'),
        peakBytes: num(last, 'used_memory_peak'),
        systemBytes: num(last, 'total_system_memory'),
        fragmentationRatio: num(last, 'mem_fragmentation_ratio'),
        evictedKeys: num(last, 'evicted_keys') ?? 0,
        oomRejections: oomCount(last),
        windowMs: windowMs > 0 ? windowMs : null,
        evictedInWindow:
          windowMs > 0 ? (num(last, 'evicted_keys') ?? 0) - (num(first, 'evicted_keys') ?? 0) : null,
        oomInWindow: windowMs > 0 ? oomCount(last) - oomCount(first) : null,
        keys,
        keysWithTtl,
      };
    },
    judge(seen) {
      const data: MemoryData = { ...seen, reasons: [] };
      const status = statusOf(data, p, fragmentationMin);
      return finding(status, summaryOf(data, status), data, evidenceOf(data));
    },
  });
}

function statusOf(data: MemoryData, p: MemoryOptions, fragmentationMin: number): FindingStatus {
  const statuses: FindingStatus[] = [];
  const reason = (status: FindingStatus, text: string) => {
    statuses.push(status);
    data.reasons.push(text);
  };
  const window = data.windowMs === null ? '' : ` in ${formatMillis(data.windowMs)}`;
  if (data.ratio !== null && data.ratio >= p.warnAt) {
    const status = data.ratio >= p.failAt ? 'fail' : 'warn';
    reason(
      status,
      `${percent(data.ratio)} of maxmemory used (${status} at ${percent(status === 'fail' ? p.failAt : p.warnAt)})${atLimit(data)}`,
    );
  }
  if (data.oomInWindow !== null && data.oomInWindow > 0) {
    reason('fail', `${plural(data.oomInWindow, 'write')} refused with OOM${window}`);
  } else if (data.oomInWindow === null && data.oomRejections > 0) {
    reason(
      'warn',
      `${plural(data.oomRejections, 'write')} refused with OOM since the server started (give sampleWindow to see whether it still happens)`,
    );
  }
  if (data.evictedInWindow !== null && data.evictedInWindow > 0) {
    reason(
      'warn',
      `${plural(data.evictedInWindow, 'key')} evicted${window} under ${data.policy}: the data set does not fit in maxmemory`,
    );
  }
  const frag = data.fragmentationRatio;
  if (frag !== null && data.usedBytes >= fragmentationMin) {
    if (frag >= p.fragmentationWarnAt) {
      reason(
        'warn',
        `fragmentation ratio ${frag} (RSS ${formatBytes(data.rssBytes ?? 0)} for ${formatBytes(data.usedBytes)} used)`,
      );
    } else if (frag < 1) {
      reason(
        'warn',
        `RSS ${formatBytes(data.rssBytes ?? 0)} is below the ${formatBytes(data.usedBytes)} used: part of the data set may be swapped out`,
      );
    }
  }
  return worstStatus(statuses);
}

/** What the policy does when the limit is reached: the difference between slow and down. */
function atLimit(data: MemoryData): string {
  const policy = data.policy ?? 'unknown';
  if (policy === 'noeviction')
    return '; policy noeviction: at the limit writes are refused (OOM), nothing is evicted';
  if (policy.startsWith('volatile-') && data.keysWithTtl === 0) {
    return `; policy ${policy} but no key has a TTL: nothing can be evicted, writes will be refused (OOM)`;
  }
  return `; policy ${policy}: keys are evicted at the limit`;
}

function summaryOf(data: MemoryData, status: FindingStatus): string {
  const usage =
    data.maxmemoryBytes === null
      ? `${formatBytes(data.usedBytes)} used, no maxmemory${data.systemBytes ? ` (host has ${formatBytes(data.systemBytes)})` : ''}`
      : `${formatBytes(data.usedBytes)} of ${formatBytes(data.maxmemoryBytes)} used (${percent(data.ratio ?? 0)}), policy ${data.policy}`;
  if (status === 'ok') {
    const evictions =
      data.evictedInWindow !== null
        ? `, no evictions in ${formatMillis(data.windowMs ?? 0)}`
        : data.evictedKeys > 0
          ? `, ${plural(data.evictedKeys, 'key')} evicted since start`
          : '';
    return `Redis memory: ${usage}${evictions}`;
  }
  return `Redis memory: ${usage}: ${data.reasons.join('; ')}`;
}

function evidenceOf(data: MemoryData): Evidence[] {
  return [
    {
      kind: 'table',
      title: 'Memory',
      columns: ['USED', 'MAXMEMORY', 'USAGE', 'POLICY', 'RSS', 'PEAK', 'FRAGMENTATION'],
      rows: [
        [
          formatBytes(data.usedBytes),
          data.maxmemoryBytes === null ? 'no limit' : formatBytes(data.maxmemoryBytes),
          data.ratio === null ? null : percent(data.ratio),
          data.policy,
          data.rssBytes === null ? null : formatBytes(data.rssBytes),
          data.peakBytes === null ? null : formatBytes(data.peakBytes),
          data.fragmentationRatio,
        ],
      ],
    },
    {
      kind: 'table',
      title: 'Eviction',
      columns: [
        'EVICTED SINCE START',
        'OOM SINCE START',
        'WINDOW',
        'EVICTED IN WINDOW',
        'OOM IN WINDOW',
        'KEYS',
        'KEYS WITH TTL',
      ],
      rows: [
        [
          data.evictedKeys,
          data.oomRejections,
          data.windowMs === null ? null : formatMillis(data.windowMs),
          data.evictedInWindow,
          data.oomInWindow,
          data.keys,
          data.keysWithTtl,
        ],
      ],
    },
  ];
}

/** `errorstat_OOM:count=12` → 12. */
function oomCount(info: Info): number {
  const m = /count=(\d+)/.exec(info.errorstat_OOM ?? '');
  return m ? Number(m[1]) : 0;
}

/** Keys and keys with a TTL over every `dbN:keys=…,expires=…` line. */
function keyspaceTotals(info: Info): [number, number] {
  let keys = 0;
  let expires = 0;
  for (const [field, value] of Object.entries(info)) {
    if (!/^db\d+$/.test(field)) continue;
    keys += Number(/keys=(\d+)/.exec(value)?.[1] ?? 0);
    expires += Number(/expires=(\d+)/.exec(value)?.[1] ?? 0);
  }
  return [keys, expires];
}
