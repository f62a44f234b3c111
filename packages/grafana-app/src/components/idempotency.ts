/**
 * A fresh idempotency key for one shown plan: every attempt to execute that plan sends the same key, so a
 * retry after a lost answer (a 502 or 504 from a proxy after the service had queued the run) gets the same
 * run back (`replayed`) instead of executing twice. `getRandomValues`, not `randomUUID`: the latter exists only
 * in secure contexts, and Grafana is often served over plain http.
 */
export function newIdempotencyKey(prefix = 'grafana'): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}
