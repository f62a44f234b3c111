import { finding } from '../../core/finding';
import { type Check, defineCheck } from '../../core/step';
import type { PostgresDatabase } from '../database';
import { formatBytes, listSome, MAX_ROWS, plural } from './wording';

/** An index PostgreSQL does not use for queries (`pg_index.indisvalid = false`). */
export type InvalidIndex = {
  schema: string;
  table: string;
  index: string;
  bytes: number;
  definition: string;
  unique: boolean;
  /** `indisready`: still maintained on every write (so it costs without helping). */
  ready: boolean;
  /** True while a `CREATE INDEX CONCURRENTLY` / `REINDEX CONCURRENTLY` is still building it (not a leftover). */
  building: boolean;
  /** The session building it, when `building`. */
  buildPid: number | null;
  /**
   * Not seen being built, but it may be: another role's build is in progress whose progress row is hidden
   * from us (no `pg_read_all_stats`), so which index it builds cannot be told.
   */
  possiblyBuilding: boolean;
};

/** What {@link invalidIndexes} found. */
export type InvalidIndexesData = {
  /** At most 50. */
  indexes: InvalidIndex[];
  /** Leftovers of a failed build (not seen being built now; some may be, see `hiddenBuilds`). */
  leftovers: number;
  building: number;
  /**
   * Index builds in progress in this database whose progress rows hide which index they build (other roles'
   * builds, for a role without `pg_read_all_stats`): up to this many leftovers may still be being built.
   */
  hiddenBuilds: number;
  /** Whether our role sees every build's progress (superuser or `pg_read_all_stats`). */
  seesAllProgress: boolean;
};

const KIND = 'pg.invalid-indexes';

/**
 * Invalid indexes (`pg_index.indisvalid = false`) in the current database: the leftover of a
 * `CREATE INDEX CONCURRENTLY` that failed (a duplicate value for a unique index, a deadlock, a cancel) — or,
 * briefly, one still being built (`pg_stat_progress_create_index`). A leftover is never used by queries yet
 * still slows every write; the manual's recovery (Runbook 5, step 2) needs it dropped and built again, or
 * `REINDEX INDEX CONCURRENTLY`.
 *
 * - `fail` when there is a leftover (the index you think you have is not there).
 * - `warn` when every one of them may still be being built by another role, whose progress rows our role
 *   cannot see (no `pg_read_all_stats`): they are worded "possibly still being built by another role".
 * - `ok` when there is none; builds in progress are listed and mentioned.
 */
export function invalidIndexes(db: PostgresDatabase): Check<InvalidIndexesData> {
  return defineCheck({
    kind: KIND,
    description: `Invalid indexes (failed CREATE INDEX CONCURRENTLY) on ${db.display}`,
    async run(ctx) {
      const { rows } = await db.query<{
        schema: string;
        table: string;
        index: string;
        bytes: number;
        definition: string;
        unique: boolean;
        ready: boolean;
        build_pid: number | null;
        hidden_builds: number;
        sees_all: boolean;
      }>(
        `SELECT n.nspname AS schema, t.relname AS table, c.relname AS index,
                pg_relation_size(c.oid)::float8 AS bytes, pg_get_indexdef(c.oid) AS definition,
                i.indisunique AS unique, i.indisready AS ready,
                (SELECT p.pid FROM pg_stat_progress_create_index p
                  WHERE p.index_relid = c.oid LIMIT 1) AS build_pid,
                -- Another role's progress row shows its pid and database, not its table or index (relid NULL)
                -- unless we are a member of pg_read_all_stats: such a build may be one of these indexes.
                (SELECT count(*)::int FROM pg_stat_progress_create_index p
                  WHERE p.relid IS NULL
                    AND p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())) AS hidden_builds,
                (pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')
                  OR coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false)) AS sees_all
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_class t ON t.oid = i.indrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE NOT i.indisvalid
          ORDER BY n.nspname, t.relname, c.relname
          LIMIT ${MAX_ROWS}`,
        [],
        { signal: ctx.signal },
      );
      // Read on every row; the same value (one statement, one snapshot of the progress rows).
      const hiddenBuilds = rows[0]?.hidden_builds ?? 0;
      const seesAllProgress = rows[0]?.sees_all ?? true;
      const indexes: InvalidIndex[] = rows.map((r) => ({
        schema: r.schema,
        table: r.table,
        index: r.index,
        bytes: r.bytes,
        definition: r.definition,
        unique: r.unique,
        ready: r.ready,
        building: r.build_pid !== null,
        buildPid: r.build_pid,
        possiblyBuilding: r.build_pid === null && hiddenBuilds > 0,
      }));
      const leftovers = indexes.filter((i) => !i.building);
      const building = indexes.filter((i) => i.building);
      const data: InvalidIndexesData = {
        indexes,
        leftovers: leftovers.length,
        building: building.length,
        hiddenBuilds,
        seesAllProgress,
      };
      const evidence = indexes.length
        ? [
            {
              kind: 'table' as const,
              title: 'Invalid indexes',
              columns: ['SCHEMA', 'TABLE', 'INDEX', 'SIZE', 'UNIQUE', 'STATE', 'DEFINITION'],
              rows: indexes.map((i) => [
                i.schema,
                i.table,
                i.index,
                formatBytes(i.bytes),
                i.unique,
                i.building
                  ? `being built by pid ${i.buildPid}`
                  : i.possiblyBuilding
                    ? 'invalid (possibly still being built by another role): check again later'
                    : 'failed build: drop and recreate',
                i.definition,
              ]),
            },
          ]
        : [];
      const inProgress = building.length
        ? `; ${plural(building.length, 'index', 'indexes')} being built concurrently`
        : '';
      if (!leftovers.length) return finding('ok', `No invalid index${inProgress}`, data, evidence);
      if (hiddenBuilds > 0) {
        // Our role cannot see which index those builds make: at most that many of these are not leftovers.
        const hidden =
          `${plural(hiddenBuilds, 'index build')} by another role in progress, whose progress is hidden from ` +
          `${seesAllProgress ? 'us' : 'this role (no pg_read_all_stats)'}`;
        const summary =
          `${plural(leftovers.length, 'index', 'indexes')} invalid (possibly still being built by another role): ` +
          `${listSome(leftovers.map((i) => `${i.schema}.${i.index} on ${i.table}${i.unique ? ' (unique)' : ''}`))}` +
          `; ${hidden}. Check again once it ends before dropping anything${inProgress}`;
        return finding(leftovers.length > hiddenBuilds ? 'fail' : 'warn', summary, data, evidence);
      }
      const summary =
        `${plural(leftovers.length, 'invalid index', 'invalid indexes')} left by a failed concurrent build: ` +
        `${listSome(leftovers.map((i) => `${i.schema}.${i.index} on ${i.table}${i.unique ? ' (unique)' : ''}`))}` +
        `; unused by queries, still slowing writes: DROP INDEX CONCURRENTLY and rebuild${inProgress}`;
      return finding('fail', summary, data, evidence);
    },
  });
}
