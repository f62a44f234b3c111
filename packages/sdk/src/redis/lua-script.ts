import { createHash } from 'node:crypto';
import type { Redis, RedisKey } from 'ioredis';

/**
 * A Lua script run with `EVALSHA`, falling back to `EVAL` (which also caches it on the server) when the server
 * answers `NOSCRIPT` — after a restart, a `SCRIPT FLUSH` or a failover to a replica that never saw it.
 * Keys always travel as `KEYS` and values as `ARGV`: nothing from a caller is ever spliced into the source.
 * Unlike ioredis' `defineCommand`, it adds no method to the caller's client.
 */
export class LuaScript {
  /** SHA-1 of the source, as `EVALSHA` names it. */
  readonly sha: string;

  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source, 'utf8').digest('hex');
  }

  /** Runs the script atomically on `redis`; `keys` must all live in one hash slot on a cluster. */
  async run(redis: Redis, keys: readonly RedisKey[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (e) {
      if (!(e instanceof Error) || !e.message.startsWith('NOSCRIPT')) throw e;
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

/**
 * Lua that sets `now` to the server's clock in microseconds since {@link EPOCH_US}, so every replica of a
 * service decides by one clock. The offset keeps the numbers near 1e14, where a double still resolves a
 * hundredth of a microsecond, so GCRA's running sums do not lose precision.
 */
export const REDIS_NOW = `
local __time = redis.call('TIME')
local now = (tonumber(__time[1]) - ${1_700_000_000}) * 1000000 + tonumber(__time[2])
`;

/** The instant (2023-11-14T22:13:20Z) that the scripts' microsecond clock counts from. */
export const EPOCH_US = 1_700_000_000 * 1_000_000;

/** Milliseconds since the Unix epoch of a script's `now` (microseconds since {@link EPOCH_US}). */
export function redisMillis(nowUs: number | string): number {
  return (EPOCH_US + Number(nowUs)) / 1000;
}
