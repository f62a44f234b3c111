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

/** A namespace word of a key name: lower-case letters, `_` and `-`, followed by `:` (`agent:`, `cache:`). */
const NAMESPACE = /^(?:[a-z][a-z_-]{0,31}:)+/;

/**
 * A key name as plans, findings and evidence show it: cache keys may embed what must not be stored with a run
 * (a session token, an API key, an e-mail address). Shown: `prefix` (the runbook's own words) when the key
 * starts with it, then the namespace words that follow (`user:`, `answers:`: lower-case letters, `_` and `-`
 * before a `:`; no digits, capitals, `@` or `.`, which tokens and addresses have); the rest is replaced by `…`
 * and its length in bytes: `agent:cache:user:…(17)`. A key that does not start with `prefix` is shown
 * the same way from its first character.
 */
export function maskedKey(key: Buffer, prefix = ''): string {
  const head = Buffer.from(prefix, 'utf8');
  const hasPrefix = head.length > 0 && key.length >= head.length && key.subarray(0, head.length).equals(head);
  const shownPrefix = hasPrefix ? keyText(head) : '';
  const rest = hasPrefix ? key.subarray(head.length) : key;
  // Namespace words are ASCII: as many bytes as characters.
  const words = NAMESPACE.exec(rest.toString('latin1'))?.[0] ?? '';
  const hidden = rest.length - words.length;
  return hidden === 0 ? `${shownPrefix}${words}` : `${shownPrefix}${words}…(${hidden})`;
}
