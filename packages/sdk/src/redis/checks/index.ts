/**
 * Redis checks: read-only diagnoses over a {@link RedisInstance}, one per look the manual takes at Redis
 * (reachability and latency, memory, the request queue, keys by prefix, snapshots, restore readiness).
 */

export {
  type KeyCountData,
  type KeyCountObservation,
  KeyCountOptions,
  type KeyCountOptionsInput,
  keyCount,
} from './key-count';
export {
  type MemoryData,
  type MemoryObservation,
  MemoryOptions,
  type MemoryOptionsInput,
  memory,
} from './memory';
export { type PingData, type PingObservation, PingOptions, type PingOptionsInput, ping } from './ping';
export {
  type QueueInfo,
  type QueueLengthData,
  type QueueLengthObservation,
  QueueLengthOptions,
  type QueueLengthOptionsInput,
  queueLength,
} from './queue-length';
export {
  type RdbRestoreReadinessData,
  RdbRestoreReadinessOptions,
  type RdbRestoreReadinessOptionsInput,
  type RestoreCheck,
  rdbRestoreReadiness,
} from './rdb-restore-readiness';
export {
  type SnapshotStatusData,
  type SnapshotStatusObservation,
  SnapshotStatusOptions,
  type SnapshotStatusOptionsInput,
  snapshotStatus,
} from './snapshot-status';
