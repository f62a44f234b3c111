import { versionOf } from '../info';

/**
 * The newest RDB format each Redis release line writes and reads, from `RDB_VERSION` in each release's
 * `src/rdb.h` (newest first). Releases in between share the line before them: 2.8 reads 6, 6.x reads 9,
 * 8.0–8.4 read 12.
 */
export const RDB_VERSIONS: readonly { redis: readonly [number, number]; rdb: number }[] = [
  { redis: [8, 6], rdb: 13 },
  { redis: [7, 4], rdb: 12 },
  { redis: [7, 2], rdb: 11 },
  { redis: [7, 0], rdb: 10 },
  { redis: [5, 0], rdb: 9 },
  { redis: [4, 0], rdb: 8 },
  { redis: [3, 2], rdb: 7 },
  { redis: [2, 6], rdb: 6 },
  { redis: [2, 4], rdb: 5 },
];

/** The newest RDB version a Redis server of `redisVersion` loads. */
export type RdbSupport = {
  /** `null` when the version is unreadable or older than 2.4. */
  rdb: number | null;
  /**
   * True when the server is newer than the newest release this table knows: it reads at least that release's
   * format, and maybe newer ones.
   */
  assumed: boolean;
};

/** The newest RDB format a server of `redisVersion` (`INFO server` `redis_version`, e.g. `"7.0.15"`) loads. */
export function maxRdbVersion(redisVersion: string | undefined): RdbSupport {
  const v = versionOf(redisVersion);
  if (!v) return { rdb: null, assumed: false };
  const [major, minor] = v;
  const newest = RDB_VERSIONS[0] as (typeof RDB_VERSIONS)[number];
  for (const entry of RDB_VERSIONS) {
    const [m, n] = entry.redis;
    if (major > m || (major === m && minor >= n)) {
      const beyond = major > newest.redis[0] || (major === newest.redis[0] && minor > newest.redis[1]);
      return { rdb: entry.rdb, assumed: entry === newest && beyond };
    }
  }
  return { rdb: null, assumed: false };
}
