import { z } from 'zod';

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DURATION_PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/**
 * A duration: milliseconds as a number, or a string such as `"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"2d"`.
 * Parsed values are whole milliseconds.
 */
export const Duration = z.union([
  z.number().int().nonnegative(),
  z.string().regex(DURATION_PATTERN, 'expected a duration such as "500ms", "30s", "5m", "1h" or "2d"'),
]);
/** A duration in milliseconds (`number`) or with a unit (`"30s"`). */
export type Duration = z.infer<typeof Duration>;

/** The number of milliseconds in a {@link Duration}; throws a `RangeError` naming the bad value. */
export function toMillis(duration: Duration): number {
  if (typeof duration === 'number') {
    if (!Number.isFinite(duration) || duration < 0) {
      throw new RangeError(`Invalid duration ${duration}: expected a non-negative number of milliseconds.`);
    }
    return Math.round(duration);
  }
  const match = DURATION_PATTERN.exec(duration.trim());
  if (!match) {
    throw new RangeError(
      `Invalid duration "${duration}": expected a number of ms or a string like "30s", "5m", "1h".`,
    );
  }
  return Math.round(Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS]);
}

/**
 * A {@link Duration} from `minMs` to `maxMs` inclusive, `message` naming the bounds. A malformed value gets only
 * the format message: zod runs a refinement even when the union before it failed, so the bound is checked only
 * on what parses (calling {@link toMillis} on the rest would throw a `RangeError` instead of a validation issue).
 */
export function durationBetween(minMs: number, maxMs: number, message: string) {
  return Duration.refine((d) => {
    const ms = millisOrNaN(d);
    return Number.isNaN(ms) || (ms >= minMs && ms <= maxMs);
  }, message);
}

function millisOrNaN(d: unknown): number {
  try {
    return toMillis(d as Duration);
  } catch {
    return Number.NaN;
  }
}

/** A short human form of a millisecond count, for messages: `1500` → `"1.5s"`. */
export function formatMillis(ms: number): string {
  if (ms < 1_000) return `${ms}ms`;
  if (ms < 60_000) return `${+(ms / 1_000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${+(ms / 60_000).toFixed(1)}m`;
  return `${+(ms / 3_600_000).toFixed(1)}h`;
}
