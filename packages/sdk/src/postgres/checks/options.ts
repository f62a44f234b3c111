import { z } from 'zod';
import { InputValidationError } from '../../core/errors';

/**
 * Validates a check's options when it is built, so that a typo fails at definition time with an
 * {@link InputValidationError} naming each bad field, not mid-incident. (The same contract as the Kubernetes
 * primitives' `parseOptions`; kept here so that the postgres subpath does not depend on the Kubernetes one.)
 */
export function parseOptions<S extends z.ZodType>(kind: string, schema: S, input: unknown): z.output<S> {
  const parsed = schema.safeParse(input ?? {});
  if (!parsed.success) {
    throw new InputValidationError(
      `options of ${kind}`,
      parsed.error.issues.map((issue) => ({ path: issuePath(issue.path), message: issue.message })),
    );
  }
  return parsed.data;
}

function issuePath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
    .join('');
}

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
