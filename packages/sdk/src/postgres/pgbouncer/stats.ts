import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { type Cell, finding, worstStatus } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import {
  ADMIN_DB,
  configValue,
  type PgBouncerConsole,
  PgBouncerDatabaseName,
  type PgBouncerStatsRow,
  parseStats,
  unknownDatabase,
} from './console';
import { listSome, MAX_ROWS, usToMs } from './wording';

/** Options of {@link stats}. */
export const StatsOptions = z.object({
  /** Only this database. @default every database */
  database: PgBouncerDatabaseName.optional(),
  /**
   * Warn when clients waited longer than this for a server connection, on average per transaction, over
   * PgBouncer's last `stats_period`. @default "100ms"
   */
  warnWait: Duration.default('100ms'),
});
export type StatsOptions = z.output<typeof StatsOptions>;
export type StatsOptionsInput = z.input<typeof StatsOptions>;

/** One database's `SHOW STATS`, in milliseconds and per second. */
export type DatabaseStats = {
  database: string;
  /** Since PgBouncer started. */
  totalXacts: number;
  totalQueries: number;
  totalReceivedBytes: number;
  totalSentBytes: number;
  totalXactTimeMs: number;
  totalQueryTimeMs: number;
  /** Time clients spent waiting for a server connection. */
  totalWaitTimeMs: number;
  /** Since PgBouncer started: mean transaction and query duration, mean wait per transaction; `null` for none. */
  meanXactMs: number | null;
  meanQueryMs: number | null;
  meanWaitMs: number | null;
  /** Over the last `stats_period`, as PgBouncer averages them. */
  xactsPerSecond: number;
  queriesPerSecond: number;
  receivedBytesPerSecond: number;
  sentBytesPerSecond: number;
  avgXactMs: number;
  avgQueryMs: number;
  /**
   * Mean wait for a server connection per transaction (per server assignment on versions that report `avg_server_assignment_count`) over the last
   * period; `null` when no transaction completed in it.
   */
  avgWaitMs: number | null;
  /** Milliseconds of client waiting per second of the last period (versions without `avg_server_assignment_count`, such as 1.18); else `null`. */
  waitMsPerSecond: number | null;
};

/** What {@link stats} found. */
export type StatsData = {
  /** At most 50 databases, the longest average wait first. */
  databases: DatabaseStats[];
  /** `stats_period` in seconds: what the averages are over. */
  statsPeriodSeconds: number | null;
  warnWaitMs: number;
  /** Databases whose clients waited too long, in words. */
  problems: string[];
};

/**
 * What {@link stats} read: each database's `SHOW STATS` (in ms and per second, the longest average wait
 * first) and `stats_period`. Replaying it with another `warnWait` judges the same averages again.
 */
export type StatsObservation = {
  /** `false` when `database` is not one of PgBouncer's. */
  databaseFound: boolean;
  statsPeriodSeconds: number | null;
  databases: DatabaseStats[];
};

const KIND = 'pgbouncer.stats';

/**
 * `SHOW STATS`: per database, totals since PgBouncer started (transactions, queries, bytes, time in
 * transactions and queries, time clients waited for a server connection) and averages over the last
 * `stats_period` (rates per second, mean transaction/query duration, mean wait).
 *
 * - `warn` when, over the last period, clients waited more than `warnWait` for a server connection per
 *   transaction, or waited while no transaction completed at all (a stalled pool).
 * - `fail` when `database` is not one of PgBouncer's (`SHOW DATABASES`): its clients are refused.
 * - `ok` otherwise. Pool exhaustion right now is {@link pools}' job; this check shows the recent trend.
 *
 * Replayable: `read` asks the console ({@link StatsObservation}), `judge` applies `warnWait`.
 */
export function stats(
  bouncer: PgBouncerConsole,
  options: StatsOptionsInput = {},
): ReplayableCheck<StatsData, StatsObservation> {
  const o = parseOptions(KIND, StatsOptions, options);
  const warnWaitMs = toMillis(o.warnWait);
  return defineCheck({
    kind: KIND,
    description: `PgBouncer ${bouncer.name} traffic${o.database ? ` of ${o.database}` : ''}: transactions, queries, durations, wait`,
    async read(ctx): Promise<StatsObservation> {
      const { rows } = await bouncer.showMany(['STATS', 'DATABASES', 'CONFIG'], { signal: ctx.signal });
      const statsPeriodSeconds = configValue(rows.CONFIG, 'stats_period');
      if (o.database && !rows.DATABASES.some((d) => d.name === o.database)) {
        return { databaseFound: false, statsPeriodSeconds, databases: [] };
      }
      const parsed = rows.STATS.map(parseStats);
      // PgBouncer lists a database only once it has had a pool: one without traffic yet has zero stats.
      if (o.database && !parsed.some((s) => s.database === o.database)) parsed.push(zeroStats(o.database));
      const databases = parsed
        .filter((s) => s.database !== ADMIN_DB && (!o.database || s.database === o.database))
        .map(view)
        .sort((a, b) => (b.avgWaitMs ?? 0) - (a.avgWaitMs ?? 0) || a.database.localeCompare(b.database));
      return { databaseFound: true, statsPeriodSeconds, databases };
    },
    judge({ databaseFound, statsPeriodSeconds, databases: all }) {
      if (!databaseFound) {
        return unknownDatabase(bouncer, o.database ?? '', {
          databases: [],
          statsPeriodSeconds,
          warnWaitMs,
          problems: [],
        });
      }
      const problems: string[] = [];
      for (const s of all) {
        if (s.avgWaitMs !== null && s.avgWaitMs > warnWaitMs) {
          problems.push(
            `${s.database} clients waited ${formatMillis(Math.round(s.avgWaitMs))} per transaction for a server (limit ${formatMillis(warnWaitMs)})`,
          );
        } else if (s.avgWaitMs === null && (s.waitMsPerSecond ?? 0) > 0) {
          problems.push(
            `${s.database} clients waited ${formatMillis(Math.round(s.waitMsPerSecond ?? 0))} per second for a server and no transaction completed`,
          );
        }
      }
      const status = worstStatus(problems.map(() => 'warn' as const));
      const period = statsPeriodSeconds ? `last ${statsPeriodSeconds}s` : 'last period';
      const total = all.reduce((sum, s) => sum + s.totalXacts, 0);
      const rate = all.reduce((sum, s) => sum + s.xactsPerSecond, 0);
      const head = `PgBouncer ${bouncer.name}${o.database ? ` database ${o.database}` : ''}: ${total} transactions since start, ${rate} per second over the ${period}`;
      const data: StatsData = { databases: all.slice(0, MAX_ROWS), statsPeriodSeconds, warnWaitMs, problems };
      return finding(status, problems.length ? `${head}: ${listSome(problems)}` : head, data, [
        {
          kind: 'table',
          title: `SHOW STATS (averages over the ${period})`,
          columns: [
            'database',
            'transactions',
            'queries',
            'xact/s',
            'query/s',
            'avg xact ms',
            'avg query ms',
            'avg wait ms',
            'total wait ms',
          ],
          rows: all
            .slice(0, MAX_ROWS)
            .map((s): Cell[] => [
              s.database,
              s.totalXacts,
              s.totalQueries,
              s.xactsPerSecond,
              s.queriesPerSecond,
              s.avgXactMs,
              s.avgQueryMs,
              s.avgWaitMs,
              s.totalWaitTimeMs,
            ]),
        },
      ]);
    },
  });
}

function zeroStats(database: string): PgBouncerStatsRow {
  return {
    database,
    totalXactCount: 0,
    totalQueryCount: 0,
    totalReceived: 0,
    totalSent: 0,
    totalXactTimeUs: 0,
    totalQueryTimeUs: 0,
    totalWaitTimeUs: 0,
    avgXactCount: 0,
    avgQueryCount: 0,
    avgRecv: 0,
    avgSent: 0,
    avgXactTimeUs: 0,
    avgQueryTimeUs: 0,
    avgWaitTimeUs: 0,
    avgServerAssignmentCount: null,
  };
}

function view(s: PgBouncerStatsRow): DatabaseStats {
  // Where PgBouncer counts server assignments avg_wait_time is per assignment; before (1.18) it is
  // microseconds of waiting per second of the period.
  const perAssignment = s.avgServerAssignmentCount !== null;
  const avgWaitMs = perAssignment
    ? usToMs(s.avgWaitTimeUs)
    : s.avgXactCount > 0
      ? usToMs(s.avgWaitTimeUs / s.avgXactCount)
      : null;
  return {
    database: s.database,
    totalXacts: s.totalXactCount,
    totalQueries: s.totalQueryCount,
    totalReceivedBytes: s.totalReceived,
    totalSentBytes: s.totalSent,
    totalXactTimeMs: usToMs(s.totalXactTimeUs),
    totalQueryTimeMs: usToMs(s.totalQueryTimeUs),
    totalWaitTimeMs: usToMs(s.totalWaitTimeUs),
    meanXactMs: s.totalXactCount > 0 ? usToMs(s.totalXactTimeUs / s.totalXactCount) : null,
    meanQueryMs: s.totalQueryCount > 0 ? usToMs(s.totalQueryTimeUs / s.totalQueryCount) : null,
    meanWaitMs: s.totalXactCount > 0 ? usToMs(s.totalWaitTimeUs / s.totalXactCount) : null,
    xactsPerSecond: s.avgXactCount,
    queriesPerSecond: s.avgQueryCount,
    receivedBytesPerSecond: s.avgRecv,
    sentBytesPerSecond: s.avgSent,
    avgXactMs: usToMs(s.avgXactTimeUs),
    avgQueryMs: usToMs(s.avgQueryTimeUs),
    avgWaitMs,
    waitMsPerSecond: perAssignment ? null : usToMs(s.avgWaitTimeUs),
  };
}
