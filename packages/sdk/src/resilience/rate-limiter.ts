import type { Redis } from 'ioredis';
import { z } from 'zod';
import { type Duration, durationBetween, formatMillis, toMillis } from '../core/duration';
import { InputValidationError } from '../core/errors';
import type { Disposable } from '../core/events';
import { parseOptions } from '../core/parse-options';
import { LuaScript, redisMillis } from '../redis/lua-script';
import { GCRA_SCRIPT } from './lua/gcra';
import { SLIDING_WINDOW_SCRIPT } from './lua/sliding-window';
import { ServiceName } from './names';
import { keySegment, RedisKeyPrefix } from './rate-limit-keys';
import { type EffectiveLimits, type StrictModeState, strictLimits, strictModeKey } from './strict-mode-state';
import { type StrictModeView, watchStrictMode } from './strict-mode-watcher';

const MAX_UNITS = 1_000_000;
const Units = z.number().int().min(1).max(MAX_UNITS);

/** The longest period of a rate (1 day): longer quotas belong to a billing counter, not to a rate limiter. */
export const MAX_RATE_PERIOD_MS = 86_400_000;
/**
 * The highest `limit` of a sliding-window limiter: its log keeps one sorted-set member per take in the window,
 * so the limit bounds the memory of a key (about 1 MB at 10000). Use GCRA for larger limits.
 */
export const MAX_SLIDING_WINDOW_LIMIT = 10_000;

/** The period of a rate: from 1 ms to 1 day. */
export const RatePeriod = durationBetween(1, MAX_RATE_PERIOD_MS, 'expected a period from 1ms to 1d');

/**
 * Why `limit` units per `periodMs` is not a usable rate, or `null`: the scripts count time in microseconds, so
 * one unit must cost at least one.
 */
export function rateIssue(limit: number, periodMs: number): string | null {
  const most = periodMs * 1000;
  return limit > most
    ? `expected at most ${most} per ${formatMillis(periodMs)} (one unit per microsecond)`
    : null;
}

/** Limits of one key, each field optional: what is not given comes from the limiter's own limits. */
export const RateLimitOverride = z.object({
  /** Units allowed per `period`. */
  limit: Units.optional(),
  /** The period `limit` is counted over, e.g. `"1m"`. */
  period: RatePeriod.optional(),
  /** GCRA only: units allowed at once from idle. When `limit` is overridden and `burst` is not, `burst = limit`. */
  burst: Units.optional(),
});
/** Limits of one key (see {@link RateLimitOverride}). */
export type RateLimitOverride = z.input<typeof RateLimitOverride>;

/** Options of {@link createRateLimiter}. */
export const RateLimiterOptions = z
  .object({
    /** What is limited (`openrouter`, `login`): part of every key; the same characters as a service's name. */
    name: ServiceName,
    /** The service whose strict mode this limiter honours; use the same name in `enableStrictMode`. @default "default" */
    service: ServiceName.default('default'),
    /** Prefix of every Redis key. @default "ratelimit" */
    prefix: RedisKeyPrefix.default('ratelimit'),
    /**
     * `gcra`: smooth, one key of one number each, `burst` at once (slack: `burst` over any window).
     * `sliding-window`: an exact sliding log (no slack, one sorted-set member per take in the window; `limit`
     * at most 10000).
     * @default "gcra"
     */
    algorithm: z.enum(['gcra', 'sliding-window']).default('gcra'),
    /** Units allowed per `period`, per key. */
    limit: Units,
    /** The period `limit` is counted over: ms or `"1m"`, at most `"1d"`. */
    period: RatePeriod,
    /** GCRA only: units allowed at once from idle. @default limit */
    burst: Units.optional(),
    /** Limits of particular keys (exact match), merged over the limiter's own. @default none */
    overrides: z.record(z.string(), RateLimitOverride).optional(),
    /**
     * Limits decided per key at each take, e.g. from a plan tier; `undefined` keeps the limiter's own. Checked
     * after `overrides`. Its result is validated on every call. @default none
     */
    limitsFor: z
      .custom<(key: string) => RateLimitOverride | undefined>(
        (v) => typeof v === 'function',
        'expected a function',
      )
      .optional(),
    /**
     * Honour the service's strict mode, polling it every `pollInterval` (at most 1 s); `false` to ignore it.
     * @default { pollInterval: "250ms" }
     */
    strictMode: z
      .union([
        z.literal(false),
        z.object({
          /** How often the strict-mode key is read. @default "250ms" */
          pollInterval: durationBetween(
            10,
            1_000,
            'expected a poll interval from 10ms to 1s, so that a change reaches every replica within 1s',
          ).default('250ms'),
        }),
      ])
      .default({ pollInterval: '250ms' }),
  })
  .superRefine((o, ctx) => {
    if (o.algorithm !== 'gcra') burstIssues(o, ctx);
    // Each key's rate must be one the scripts can count: the limiter's own and every override's. zod runs this
    // even after a refinement failed (a period out of bounds), so only periods that passed theirs are used.
    const periodMs = validPeriod(o.period);
    if (periodMs === null) return;
    const base = { limit: o.limit, periodMs, burst: o.burst ?? o.limit };
    for (const message of limitsIssues(base, o.algorithm))
      ctx.addIssue({ code: 'custom', path: ['limit'], message });
    for (const [key, override] of Object.entries(o.overrides ?? {})) {
      if (override.period !== undefined && validPeriod(override.period) === null) continue;
      for (const message of limitsIssues(merge(base, override), o.algorithm)) {
        ctx.addIssue({ code: 'custom', path: ['overrides', key, 'limit'], message });
      }
    }
  });
/** Parsed {@link RateLimiterOptions}. */
export type RateLimiterOptions = z.output<typeof RateLimiterOptions>;
/** {@link RateLimiterOptions} as written by users. */
export type RateLimiterOptionsInput = z.input<typeof RateLimiterOptions>;

/** The answer to one {@link RateLimiter.take}. */
export interface RateLimitDecision {
  /** Whether the units were taken. */
  allowed: boolean;
  /** Units of cost 1 that could still be taken now. */
  remaining: number;
  /** 0 when allowed; otherwise how long until the same take would be allowed (ms, rounded up). */
  retryAfterMs: number;
  /** How long until the key is back to its full allowance (ms, rounded up). */
  resetAfterMs: number;
  /** The limit that applied (per period), strict mode included. */
  limit: number;
  /** When Redis decided, by its clock (ms since the epoch, with a fraction). */
  at: number;
}

/** A distributed rate limiter: every process sharing the Redis keys shares the limits. */
export interface RateLimiter {
  readonly name: string;
  readonly service: string;
  readonly algorithm: 'gcra' | 'sliding-window';
  /** The limiter's own limit per period (before overrides and strict mode). */
  readonly limit: number;
  /** The limiter's own period, as given (`"1m"` or ms). */
  readonly period: Duration;
  /** The same in ms. */
  readonly periodMs: number;
  /** Units at once from idle (GCRA); equals `limit` for the sliding window. */
  readonly burst: number;
  /**
   * Takes `cost` units (default 1; 0 only reads) for `key`, atomically in Redis by Redis' clock. Throws a
   * `RangeError` when `cost` exceeds what the key's limits could ever allow; under strict mode such a take is
   * denied instead.
   */
  take(key: string, cost?: number): Promise<RateLimitDecision>;
  /** The limits that apply to `key` now: overrides, then `limitsFor`, then strict mode. */
  limitsFor(key: string): EffectiveLimits;
  /** The Redis key that holds `key`'s state (for `redis-cli`). */
  redisKey(key: string): string;
  /** Forgets `key`'s state: its full allowance is back. */
  reset(key: string): Promise<void>;
  /** Strict mode as this process knows it (updated by polling); `null` when off or ignored. */
  readonly strictMode: StrictModeState | null;
  /** Listens for strict-mode changes as this process learns them. */
  onStrictModeChange(listener: (state: StrictModeState | null) => void): Disposable;
  /** Resolves once strict mode has been read; `take` waits for it on its own. */
  ready(): Promise<void>;
  /** Stops polling strict mode. The Redis client is the caller's and stays open. */
  close(): void;
}

const scripts = { gcra: new LuaScript(GCRA_SCRIPT), 'sliding-window': new LuaScript(SLIDING_WINDOW_SCRIPT) };
const KIND = 'rate-limiter';

/**
 * A rate limiter on Redis shared by every replica: each decision is one atomic Lua script that reads the
 * server's clock (`TIME`), so replicas with drifting clocks still agree. Keys are
 * `<prefix>:<name>:<gcra|sw2>:<key>`, the user's key escaped (or hashed when long) and passed as `KEYS`.
 *
 * ```ts
 * const limiter = createRateLimiter(redis, { name: 'openrouter', limit: 50, period: '1m', burst: 5 });
 * const { allowed, retryAfterMs } = await limiter.take(`user:${userId}`);
 * ```
 */
export function createRateLimiter(redis: Redis, options: RateLimiterOptionsInput): RateLimiter {
  const o = parseOptions(KIND, RateLimiterOptions, options);
  const base: EffectiveLimits = {
    limit: o.limit,
    periodMs: toMillis(o.period),
    burst: o.algorithm === 'gcra' ? (o.burst ?? o.limit) : o.limit,
  };
  const overrides = new Map(
    Object.entries(o.overrides ?? {}).map(([key, value]) => [key, merge(base, value)]),
  );
  // `sw2`: the log's members are running totals since this format; the `sw` keys of older versions held
  // `<µs stamp>:<n>` members, which this script would read as huge totals (and they as stamps).
  const tag = o.algorithm === 'gcra' ? 'gcra' : 'sw2';
  const script = scripts[o.algorithm];
  const strict: StrictModeView | null =
    o.strictMode === false
      ? null
      : watchStrictMode(redis, strictModeKey(o.prefix, o.service), toMillis(o.strictMode.pollInterval));

  const ownLimits = (key: string): EffectiveLimits => {
    const limits = configuredLimits(key);
    // The sliding window has no burst of its own: at most `limit` in any window, all at once if need be.
    return o.algorithm === 'gcra' ? limits : { ...limits, burst: limits.limit };
  };
  const configuredLimits = (key: string): EffectiveLimits => {
    const fixed = overrides.get(key) ?? base;
    if (!o.limitsFor) return fixed;
    const dynamic = o.limitsFor(key);
    if (dynamic === undefined) return fixed;
    const what = `limits returned by limitsFor(${JSON.stringify(key)}) of rate limiter ${o.name}`;
    const parsed = RateLimitOverride.safeParse(dynamic);
    if (!parsed.success) {
      throw new InputValidationError(
        what,
        parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      );
    }
    const merged = merge(fixed, parsed.data);
    const issues = limitsIssues(merged, o.algorithm);
    if (issues.length > 0)
      throw new InputValidationError(
        what,
        issues.map((message) => ({ path: 'limit', message })),
      );
    return merged;
  };
  const redisKey = (key: string) => `${o.prefix}:${o.name}:${tag}:${keySegment(key)}`;

  return {
    name: o.name,
    service: o.service,
    algorithm: o.algorithm,
    limit: base.limit,
    period: o.period,
    periodMs: base.periodMs,
    burst: base.burst,

    async take(key, cost = 1) {
      if (typeof key !== 'string' || key === '')
        throw new TypeError(`${o.name}: take() needs a non-empty string key.`);
      const own = ownLimits(key);
      if (!Number.isInteger(cost) || cost < 0 || cost > own.burst) {
        throw new RangeError(
          `${o.name}: cost ${cost} is not an integer from 0 to ${own.burst}, the most key ${JSON.stringify(key)} can ever take at once.`,
        );
      }
      if (strict && !strict.known) await strict.ready();
      const limits = strictLimits(own, strict?.state ?? null);
      const periodUs = limits.periodMs * 1000;
      const interval = periodUs / limits.limit;
      const args =
        o.algorithm === 'gcra'
          ? [String(interval), String(limits.burst * interval), cost]
          : [limits.limit, periodUs, cost];
      const reply = (await script.run(redis, [redisKey(key)], args)) as [
        number,
        number,
        number,
        number,
        number,
      ];
      return {
        allowed: reply[0] === 1,
        remaining: reply[1],
        retryAfterMs: Math.ceil(reply[2] / 1000),
        resetAfterMs: Math.ceil(reply[3] / 1000),
        limit: limits.limit,
        at: redisMillis(reply[4]),
      };
    },

    limitsFor: (key) => strictLimits(ownLimits(key), strict?.state ?? null),
    redisKey,
    async reset(key) {
      await redis.del(redisKey(key));
    },
    get strictMode() {
      return strict?.state ?? null;
    },
    onStrictModeChange(listener) {
      if (strict) return strict.onChange(listener);
      const dispose = () => {};
      return { dispose, [Symbol.dispose]: dispose };
    },
    ready: async () => {
      await strict?.ready();
    },
    close() {
      strict?.release();
    },
  };
}

/** `over` merged on `limits`: an override that sets `limit` but not `burst` gets `burst = limit`. */
function merge(limits: EffectiveLimits, over: z.output<typeof RateLimitOverride>): EffectiveLimits {
  const limit = over.limit ?? limits.limit;
  return {
    limit,
    periodMs: over.period === undefined ? limits.periodMs : toMillis(over.period),
    burst: over.burst ?? (over.limit === undefined ? limits.burst : limit),
  };
}

/** What makes `limits` unusable with `algorithm`: the rate's resolution, and the sliding log's size. */
function limitsIssues(limits: EffectiveLimits, algorithm: 'gcra' | 'sliding-window'): string[] {
  const issues: string[] = [];
  const rate = rateIssue(limits.limit, limits.periodMs);
  if (rate) issues.push(rate);
  if (algorithm === 'sliding-window' && limits.limit > MAX_SLIDING_WINDOW_LIMIT) {
    issues.push(
      `expected at most ${MAX_SLIDING_WINDOW_LIMIT} with algorithm "sliding-window" (its log keeps one entry per take in the window); use "gcra" for larger limits`,
    );
  }
  return issues;
}

/** The ms of a period that passed its own validation, or `null`. */
function validPeriod(period: unknown): number | null {
  return RatePeriod.safeParse(period).success ? toMillis(period as Duration) : null;
}

/** `burst` given where the algorithm has none. */
function burstIssues(
  o: { burst?: number; overrides?: Record<string, { burst?: number }> },
  ctx: z.RefinementCtx,
): void {
  if (o.burst !== undefined)
    ctx.addIssue({ code: 'custom', path: ['burst'], message: 'burst applies to algorithm "gcra" only' });
  for (const [key, override] of Object.entries(o.overrides ?? {})) {
    if (override.burst !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['overrides', key, 'burst'],
        message: 'burst applies to algorithm "gcra" only',
      });
    }
  }
}
