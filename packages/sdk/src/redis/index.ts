/**
 * `@aiwebtest/runbooks/redis` — checks and actions over ioredis for the manual's Redis steps: reachability,
 * memory and eviction, the request queue (`LLEN agent:requests:queue`), keys by prefix, snapshots; a scoped
 * cache clear instead of `FLUSHDB`, `FLUSHDB` itself as an approved destructive action, `BGSAVE`, and whether
 * an RDB file can be restored.
 *
 * ```ts
 * const cache = redis({ url: process.env.REDIS_URL!, name: 'cache' });
 * const queue = await step.check('queue', cache.queueLength({ key: 'agent:requests:queue' }));
 * await step.act('clear-agent-cache', cache.clearCache({ prefix: 'agent:cache:' }));
 * ```
 *
 * @module \@aiwebtest/runbooks/redis
 */

import {
  type BgsaveOptionsInput,
  bgsave,
  type ClearCacheOptionsInput,
  clearCache,
  type FlushDbOptionsInput,
  flushDb,
} from './actions';
import {
  type KeyCountOptionsInput,
  keyCount,
  type MemoryOptionsInput,
  memory,
  type PingOptionsInput,
  ping,
  type QueueLengthOptionsInput,
  queueLength,
  type RdbRestoreReadinessOptionsInput,
  rdbRestoreReadiness,
  type SnapshotStatusOptionsInput,
  snapshotStatus,
} from './checks';
import { connectRedis, RedisInstance, type RedisOptionsInput } from './connection';

/**
 * Every Redis check and action bound to one server: `cache.ping()` instead of `ping(instance)`. Pass options
 * (validated; a bad field is named) or a {@link RedisInstance} (from {@link connectRedis} or {@link redisFrom}).
 */
export function redis(options: RedisOptionsInput | RedisInstance) {
  const instance = options instanceof RedisInstance ? options : connectRedis(options);
  return {
    instance,
    /** The ioredis client. */
    client: instance.client,
    // checks
    ping: (o: PingOptionsInput = {}) => ping(instance, o),
    memory: (o: MemoryOptionsInput = {}) => memory(instance, o),
    queueLength: (o: QueueLengthOptionsInput = {}) => queueLength(instance, o),
    keyCount: (o: KeyCountOptionsInput) => keyCount(instance, o),
    snapshotStatus: (o: SnapshotStatusOptionsInput = {}) => snapshotStatus(instance, o),
    rdbRestoreReadiness: (o: RdbRestoreReadinessOptionsInput) => rdbRestoreReadiness(instance, o),
    // actions
    clearCache: (o: ClearCacheOptionsInput) => clearCache(instance, o),
    flushDb: (o: FlushDbOptionsInput) => flushDb(instance, o),
    bgsave: (o: BgsaveOptionsInput = {}) => bgsave(instance, o),
    /** Closes the connection if the binder opened it. */
    close: () => instance.close(),
  };
}
/** What {@link redis} returns. */
export type RedisRunbooks = ReturnType<typeof redis>;

export * from './actions';
export * from './checks';
export {
  cleanRedisError,
  connectRedis,
  isRedisError,
  RedisError,
  RedisFromOptions,
  type RedisFromOptionsInput,
  RedisInstance,
  RedisOptions,
  type RedisOptionsInput,
  RedisTlsOptions,
  redisFrom,
} from './connection';
export { escapeGlob, maskedKey, prefixPattern } from './keys';
export { Bytes, toBytes } from './options';
export type { CheckRdbResult } from './rdb/check-rdb';
export { Crc64, crc64 } from './rdb/crc64';
export { inspectRdbFile, type RdbAux, type RdbFileInfo } from './rdb/rdb-file';
export { maxRdbVersion, RDB_VERSIONS, type RdbSupport } from './rdb/versions';
