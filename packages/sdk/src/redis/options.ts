import { z } from 'zod';
import { Duration, toMillis } from '../core/duration';

const UNIT_BYTES = {
  b: 1,
  k: 1024,
  kb: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
} as const;
const SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s*(b|kb?|mb?|gb?)$/i;

/** A size: bytes as a number, or with a 1024-based unit as Redis writes them: `"512kb"`, `"64mb"`, `"2gb"`. */
export const Bytes = z.union([
  z.number().int().nonnegative(),
  z.string().regex(SIZE_PATTERN, 'expected a size such as "512kb", "64mb" or "2gb" (or a number of bytes)'),
]);
/** Bytes (`number`) or with a unit (`"64mb"`). */
export type Bytes = z.infer<typeof Bytes>;

/** The number of bytes in a {@link Bytes}. */
export function toBytes(size: Bytes): number {
  if (typeof size === 'number') return size;
  const match = SIZE_PATTERN.exec(size.trim());
  if (!match) throw new RangeError(`Invalid size "${size}": expected a number of bytes or "64mb", "2gb".`);
  const unit = (match[2] as string).toLowerCase() as keyof typeof UNIT_BYTES;
  return Math.round(Number(match[1]) * UNIT_BYTES[unit]);
}

/** A share between 0 and 1, e.g. `0.8` for 80 %. */
export const Ratio = z.number().min(0).max(1);

/**
 * Whether `warnAfter ≤ failAfter`, for an options object's refinement. Either duration malformed: `true`, leaving
 * the field's own format issue to say so — zod runs an object's refinement even when a field failed, and
 * `toMillis` would throw a `RangeError` instead of reporting an issue.
 */
export function warnNotAfterFail(o: { warnAfter: unknown; failAfter: unknown }): boolean {
  const warn = Duration.safeParse(o.warnAfter);
  const fail = Duration.safeParse(o.failAfter);
  return !warn.success || !fail.success || toMillis(warn.data) <= toMillis(fail.data);
}
