/** Redis actions: a scoped cache clear, an explicit FLUSHDB, and BGSAVE. Each takes the {@link RedisInstance} first. */

export {
  type BgsaveApplied,
  BgsaveOptions,
  type BgsaveOptionsInput,
  type BgsaveParams,
  bgsave,
} from './bgsave';
export {
  type ClearCacheApplied,
  ClearCacheOptions,
  type ClearCacheOptionsInput,
  type ClearCacheParams,
  clearCache,
  REDIS_KEY_TYPES,
  type RedisKeyType,
} from './clear-cache';
export {
  type FlushDbApplied,
  FlushDbOptions,
  type FlushDbOptionsInput,
  type FlushDbParams,
  flushDb,
} from './flush-db';
export {
  type RestartRedis,
  type RestoreRdbApplied,
  RestoreRdbOptions,
  type RestoreRdbOptionsInput,
  type RestoreRdbParams,
  restoreRdb,
} from './restore-rdb';
