import type { z } from 'zod';
import { InputValidationError } from './errors';

/**
 * Validates a check's or an action's options when it is built, so that a typo fails at definition time with an
 * {@link InputValidationError} naming each bad field (`env.FOO`, `manifests[2].metadata`), not mid-incident.
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

/** A zod issue path as people write it: `steps[2].kind`. */
export function issuePath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
    .join('');
}
