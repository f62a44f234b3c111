import { createHash } from 'node:crypto';
import { z } from 'zod';

// A limiter's `name` and `service` follow `ServiceName` (names.ts): they become parts of keys the same way.

/** A Redis key prefix: no whitespace, and no braces (they would move keys to another cluster slot). */
export const RedisKeyPrefix = z
  .string()
  .regex(/^[^\s{}]{1,100}$/, 'expected 1 to 100 characters without whitespace or braces');

// Percent-encoded in a user's key: `%` itself (so the encoding is reversible and two keys never meet), braces
// (a hash tag would pin keys to one cluster slot), `#` (marks a hashed key), whitespace and control characters.
const UNSAFE = /[%{}#\s\p{Cc}]/gu;
const MAX_KEY_PART = 200;

/**
 * A user's key (an IP, a user id, an API key's name) as the last segment of a Redis key: unsafe characters
 * percent-encoded, and keys longer than 200 characters replaced by `#` and their SHA-256, so that a client
 * cannot make keys of unbounded size. Distinct inputs give distinct segments.
 */
export function keySegment(key: string): string {
  const escaped = key.replace(UNSAFE, (c) => encodeURIComponent(c));
  if (escaped.length <= MAX_KEY_PART) return escaped;
  return `#${createHash('sha256').update(key, 'utf8').digest('hex')}`;
}
