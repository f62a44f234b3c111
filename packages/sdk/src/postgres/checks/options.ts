import { z } from 'zod';

const UNIT_BYTES = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 } as const;
const SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s*(B|kB|MB|GB|TB)$/i;

/**
 * A size: bytes as a number, or a string with PostgreSQL's units (1024-based, as `pg_size_pretty` prints
 * them): `"512kB"`, `"1MB"`, `"20GB"`.
 */
export const Size = z.union([
  z.number().int().nonnegative(),
  z.string().regex(SIZE_PATTERN, 'expected a size such as "8kB", "1MB" or "20GB" (or a number of bytes)'),
]);
/** Bytes (`number`) or with a unit (`"1MB"`). */
export type Size = z.infer<typeof Size>;

/** The number of bytes in a {@link Size}. */
export function toBytes(size: Size): number {
  if (typeof size === 'number') return size;
  const match = SIZE_PATTERN.exec(size.trim());
  if (!match) throw new RangeError(`Invalid size "${size}": expected a number of bytes or "1MB", "20GB".`);
  return Math.round(
    Number(match[1]) * UNIT_BYTES[(match[2] as string).toLowerCase() as keyof typeof UNIT_BYTES],
  );
}

/** A share between 0 and 1, e.g. `0.8` for 80 %. */
export const Ratio = z.number().min(0).max(1);
