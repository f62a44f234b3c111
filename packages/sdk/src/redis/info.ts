import { isRedisError, type RedisInstance } from './connection';

/** `INFO` as field → value (`used_memory` → `"1048576"`); section headers and blank lines are dropped. */
export type Info = Record<string, string>;

/** Parses the text `INFO` returns (`# Memory\r\nused_memory:1048576\r\n…`). */
export function parseInfo(text: string): Info {
  const info: Info = {};
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) info[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return info;
}

/** `INFO <sections…>` on the instance, parsed. */
export async function readInfo(
  redis: RedisInstance,
  sections: string[],
  signal?: AbortSignal,
): Promise<Info> {
  const text = await redis.run(
    `INFO ${sections.join(' ')}`,
    (c) => c.call('INFO', ...sections) as Promise<unknown>,
    signal,
  );
  return parseInfo(String(text));
}

/** A numeric field, `null` when it is missing or not a number. */
export function num(info: Info, field: string): number | null {
  const raw = info[field];
  if (raw === undefined || raw === '') return null;
  const n = Number(raw);
  return Number.isFinite(n) ? n : null;
}

/** The server's clock, in milliseconds (`TIME`): ages of saves are measured on it, not on ours. */
export async function serverTimeMs(redis: RedisInstance, signal?: AbortSignal): Promise<number> {
  const [seconds, micros] = await redis.run('TIME', (c) => c.time(), signal);
  return Number(seconds) * 1_000 + Math.floor(Number(micros) / 1_000);
}

/**
 * A `CONFIG GET` value, or `null` when the server refuses `CONFIG` (renamed or ACL-denied on managed
 * Redis): checks then judge without it and say so.
 */
export async function configGet(
  redis: RedisInstance,
  parameter: string,
  signal?: AbortSignal,
): Promise<string | null> {
  try {
    const reply = (await redis.run(
      `CONFIG GET ${parameter}`,
      (c) => c.call('CONFIG', 'GET', parameter) as Promise<unknown>,
      signal,
    )) as unknown;
    if (Array.isArray(reply)) return reply.length >= 2 ? String(reply[1]) : null;
    if (reply && typeof reply === 'object')
      return String((reply as Record<string, unknown>)[parameter] ?? '');
    return null;
  } catch (e) {
    signal?.throwIfAborted();
    if (isRedisError(e) && e.code === 'REDIS_ERROR') return null;
    throw e;
  }
}

/** `major.minor.patch` of `redis_version` as numbers; `null` when unreadable. */
export function versionOf(text: string | undefined): [number, number, number] | null {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(text ?? '');
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}
