import { z } from 'zod';

/**
 * What an action changes, as `system:path`: `k8s:aiwebtest/deployment/requirements-agent`,
 * `postgres:aiwebtest/pid/4711`, `redis:cache/agent:*`. Locks and budgets are keyed by it.
 */
export type ResourceRef = `${string}:${string}`;

const RESOURCE_PATTERN = /^[a-z][a-z0-9-]*:[^\s]+$/;

/** Validates a {@link ResourceRef}: a lowercase system name, a colon, and a path without spaces. */
export const ResourceRefSchema = z
  .string()
  .regex(RESOURCE_PATTERN, 'expected a resource reference like "k8s:namespace/deployment/name"')
  .transform((s) => s as ResourceRef);

/** Builds a {@link ResourceRef} from a system and path segments, rejecting segments that would be ambiguous. */
export function resourceRef(system: string, ...path: string[]): ResourceRef {
  for (const segment of path) {
    if (segment === '' || /[\s/]/.test(segment)) {
      throw new TypeError(
        `Invalid resource path segment "${segment}": segments must be non-empty without "/" or spaces.`,
      );
    }
  }
  const ref = `${system}:${path.join('/')}`;
  if (!RESOURCE_PATTERN.test(ref)) {
    throw new TypeError(
      `Invalid resource reference "${ref}": expected "system:path" with a lowercase system name.`,
    );
  }
  return ref as ResourceRef;
}
