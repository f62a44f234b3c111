import type { RedisInstance } from './connection';

/** Characters Redis's glob matching treats specially (`stringmatchlen`): each is escaped to match itself. */
const GLOB_SPECIAL = /[*?[\]\\]/g;

/** `prefix` with every glob character escaped, so that `MATCH` compares it literally: `a*b[1]` → `a\*b\[1\]`. */
export function escapeGlob(prefix: string): string {
  return prefix.replace(GLOB_SPECIAL, '\\$&');
}

/** The `SCAN MATCH` pattern for the keys that start with `prefix`, taken literally. */
export function prefixPattern(prefix: string): string {
  return `${escapeGlob(prefix)}*`;
}

/** Options of {@link scanBatches}. */
export interface ScanOptions {
  /** A `MATCH` pattern (see {@link prefixPattern}). */
  match: string;
  /** `COUNT`: about how many keys the server examines per call. */
  count: number;
  signal?: AbortSignal;
}

/**
 * The replies of a full `SCAN` of the instance's database, one batch of key names per call (often empty when
 * few keys match); `last` marks the final one. Key names are Buffers: they are bytes, and a key that is not UTF-8 must be deleted by its
 * exact bytes. Every key present for the whole scan is returned at least once; a key may come twice while
 * Redis resizes its table, and keys added or removed meanwhile may or may not be.
 */
export async function* scanBatches(
  redis: RedisInstance,
  options: ScanOptions,
): AsyncGenerator<{ keys: Buffer[]; last: boolean }> {
  let cursor = '0';
  do {
    options.signal?.throwIfAborted();
    const [next, keys] = await redis.run(
      'SCAN',
      (c) => c.scanBuffer(cursor, 'MATCH', options.match, 'COUNT', options.count),
      options.signal,
    );
    cursor = String(next);
    yield { keys, last: cursor === '0' };
  } while (cursor !== '0');
}

/** A key name for people: its UTF-8 text, or with `\xNN` escapes for bytes that are not UTF-8 or not printable. */
export function keyText(key: Buffer): string {
  const text = key.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(key) && !/[\p{Cc}]/u.test(text)) return text;
  let out = '';
  for (const byte of key) {
    out +=
      byte >= 0x20 && byte < 0x7f && byte !== 0x5c
        ? String.fromCharCode(byte)
        : `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}
