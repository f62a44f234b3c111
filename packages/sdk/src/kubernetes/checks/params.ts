import type { z } from 'zod';
import { InputValidationError } from '../../core/errors';

/**
 * Validates a check's params up front, when the check is built, so that a typo fails at definition time
 * with an {@link InputValidationError} naming each bad field, not in the middle of an incident.
 */
export function parseCheckParams<S extends z.ZodType>(kind: string, schema: S, params: unknown): z.output<S> {
  const parsed = schema.safeParse(params ?? {});
  if (!parsed.success) {
    throw new InputValidationError(
      `${kind} params`,
      parsed.error.issues.map((issue) => ({
        path: issue.path.map(String).join('.'),
        message: issue.message,
      })),
    );
  }
  return parsed.data;
}
