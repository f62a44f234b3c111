import { randomBytes } from 'node:crypto';

/** A sortable, URL-safe id: prefix, base-36 milliseconds, 8 random base-36 characters (`run_mf3k2x9a1b2c3d4e`). */
export function newId(prefix: 'run' | 'apr' | 'wrk'): string {
  const random = [...randomBytes(8)].map((b) => (b % 36).toString(36)).join('');
  return `${prefix}_${Date.now().toString(36)}${random}`;
}
