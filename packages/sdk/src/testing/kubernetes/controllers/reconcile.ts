import { canonicalJson } from '../../../core/json';
import type { KubeObject } from '../object-store';
import { StatusError } from '../status-error';

/**
 * What the workload controllers share about running one reconcile per object: failed writes are retried
 * later instead of escaping `sync`, and wake-up times are combined.
 */

/**
 * When a write the API server refused (a stale resourceVersion, a name taken, an object gone) is tried
 * again. The change behind a conflict usually wakes the controller first; this is the safety net, like
 * the work queue's rate-limited requeue.
 */
export const RETRY_MS = 1000;

/** The earlier of two wake-ups (`undefined` means none). */
export function earliest(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

/**
 * Runs `reconcile` for each object and returns the earliest wake-up asked for. A `StatusError` (409, 404,
 * 422…) from the store ends that object's turn and asks for a retry; anything else is a bug and is thrown.
 */
export function reconcileEach(
  objects: readonly KubeObject[],
  reconcile: (obj: KubeObject) => number | undefined,
): number | undefined {
  let wake: number | undefined;
  for (const obj of objects) {
    try {
      wake = earliest(wake, reconcile(obj));
    } catch (e) {
      if (!(e instanceof StatusError)) throw e;
      wake = earliest(wake, RETRY_MS);
    }
  }
  return wake;
}

/** RFC 3339 with whole seconds, the way the API server serializes `metav1.Time`. */
export function timestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

/** Whether two values serialize alike (status comparisons before writing, so a settled cluster is quiet). */
export function sameJson(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/** The creation order the controllers sort by: creationTimestamp, then name. */
export function byCreation(a: KubeObject, b: KubeObject): number {
  const t = a.metadata.creationTimestamp.localeCompare(b.metadata.creationTimestamp);
  return t !== 0 ? t : a.metadata.name.localeCompare(b.metadata.name);
}
