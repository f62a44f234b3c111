import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { type Evidence, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import type { PostgresDatabase } from '../database';
import { formatDuration, isoOf, plural } from './wording';

/** Options of {@link archiverStatus}. */
export const ArchiverStatusOptions = z.object({
  /**
   * Whether this server must archive WAL. When true, archiving off is a `fail` (no point-in-time recovery);
   * when false it is `unknown` (backups may be taken another way). @default false
   */
  required: z.boolean().default(false),
  /**
   * With WAL segments waiting to be archived, no success for this long is a `warn` (archiving stuck or too
   * slow). An idle server archives nothing and is not judged. @default "1h"
   */
  staleAfter: Duration.default('1h'),
});
export type ArchiverStatusOptions = z.output<typeof ArchiverStatusOptions>;
export type ArchiverStatusOptionsInput = z.input<typeof ArchiverStatusOptions>;

/** What {@link archiverStatus} found. */
export type ArchiverStatusData = {
  /** `archive_mode`: `on`, `always` or `off`. */
  archiveMode: string;
  /** True when `archive_command` (or, 15+, `archive_library`) is set. Its text is not reported: it may hold credentials. */
  archiverConfigured: boolean;
  walLevel: string;
  inRecovery: boolean;
  archivedCount: number;
  lastArchivedWal: string | null;
  lastArchivedTime: string | null;
  failedCount: number;
  lastFailedWal: string | null;
  lastFailedTime: string | null;
  statsReset: string | null;
  /** Milliseconds since the last successful archive, `null` when none. */
  sinceLastArchiveMs: number | null;
  /** WAL segments waiting (`.ready` files); `null` when we may not list `pg_wal/archive_status` (needs pg_monitor). */
  pending: number | null;
  /** True when the last attempt failed (a failure newer than the last success). */
  failing: boolean;
};

/**
 * What {@link archiverStatus} read: `pg_stat_archiver`, the settings, and the WAL backlog, with the ages on
 * the server's clock. Replaying it with another `staleAfter` or `required` judges them again.
 */
export type ArchiverStatusObservation = Omit<ArchiverStatusData, 'failing'> & {
  /** Milliseconds since the last failed archive on the server's clock, `null` when none. */
  sinceLastFailMs: number | null;
};

const KIND = 'pg.archiver-status';

/**
 * WAL archiving, what the disaster-recovery runbook's point-in-time recovery (Runbook 13) stands on:
 * `pg_stat_archiver` (archived and failed counts, last success and failure), `archive_mode`, and the WAL
 * segments waiting to be archived.
 *
 * - `fail` when the last attempt failed (a failure newer than the last success — `archive_command` is
 *   failing and WAL piles up in `pg_wal` until the disk fills), when `archive_mode` is on but nothing is
 *   configured to archive, or when archiving is off and `required`.
 * - `warn` when segments wait and nothing has been archived for `staleAfter`.
 * - `unknown` when archiving is off (and not `required`), or on a standby with `archive_mode = on` (only
 *   the primary archives): the summary says so plainly.
 * - `ok` otherwise.
 *
 * Replayable: `read` asks the server ({@link ArchiverStatusObservation}), `judge` applies `staleAfter` and
 * `required`.
 */
export function archiverStatus(
  db: PostgresDatabase,
  options: ArchiverStatusOptionsInput = {},
): ReplayableCheck<ArchiverStatusData, ArchiverStatusObservation> {
  const p = parseOptions(KIND, ArchiverStatusOptions, options);
  const staleMs = toMillis(p.staleAfter);
  return defineCheck({
    kind: KIND,
    description: `WAL archiving (pg_stat_archiver, archive_mode) on ${db.display}`,
    async read(ctx): Promise<ArchiverStatusObservation> {
      const q = { signal: ctx.signal };
      const { rows } = await db.query<{
        archive_mode: string;
        configured: boolean;
        wal_level: string;
        in_recovery: boolean;
        archived_count: number;
        last_archived_wal: string | null;
        last_archived_time: Date | null;
        failed_count: number;
        last_failed_wal: string | null;
        last_failed_time: Date | null;
        stats_reset: Date | null;
        since_ms: number | null;
        since_fail_ms: number | null;
      }>(
        `SELECT current_setting('archive_mode') AS archive_mode,
                (current_setting('archive_command') NOT IN ('', '(disabled)')
                  OR coalesce(current_setting('archive_library', true), '') <> '') AS configured,
                current_setting('wal_level') AS wal_level, pg_is_in_recovery() AS in_recovery,
                a.archived_count::float8 AS archived_count, a.last_archived_wal, a.last_archived_time,
                a.failed_count::float8 AS failed_count, a.last_failed_wal, a.last_failed_time, a.stats_reset,
                extract(epoch FROM now() - a.last_archived_time)::float8 * 1000 AS since_ms,
                extract(epoch FROM now() - a.last_failed_time)::float8 * 1000 AS since_fail_ms
           FROM pg_stat_archiver a`,
        [],
        q,
      );
      const r = rows[0];
      if (!r) throw new Error('pg_stat_archiver returned no row');
      // Listing pg_wal/archive_status needs superuser or pg_monitor; without it the backlog stays unknown.
      const pending = await db
        .query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'",
          [],
          q,
        )
        .then((res) => res.rows[0]?.n ?? 0)
        .catch(() => null);
      ctx.signal.throwIfAborted();
      return {
        archiveMode: r.archive_mode,
        archiverConfigured: r.configured,
        walLevel: r.wal_level,
        inRecovery: r.in_recovery,
        archivedCount: r.archived_count,
        lastArchivedWal: r.last_archived_wal,
        lastArchivedTime: isoOf(r.last_archived_time),
        failedCount: r.failed_count,
        lastFailedWal: r.last_failed_wal,
        lastFailedTime: isoOf(r.last_failed_time),
        statsReset: isoOf(r.stats_reset),
        sinceLastArchiveMs: r.since_ms === null ? null : Math.max(0, Math.round(r.since_ms)),
        pending,
        sinceLastFailMs: r.since_fail_ms,
      };
    },
    judge({ sinceLastFailMs, ...seen }) {
      const lastOk = seen.lastArchivedTime === null ? null : Date.parse(seen.lastArchivedTime);
      const lastFail = seen.lastFailedTime === null ? null : Date.parse(seen.lastFailedTime);
      const data: ArchiverStatusData = {
        ...seen,
        failing: lastFail !== null && (lastOk === null || lastFail > lastOk),
      };
      const { pending } = data;
      const evidence = evidenceOf(data);
      const waiting = pending ? `, ${plural(pending, 'WAL segment')} waiting` : '';

      if (data.archiveMode === 'off') {
        const text =
          'WAL archiving is off (archive_mode = off): this server keeps no WAL archive, so point-in-time ' +
          'recovery from it is not possible';
        return finding(p.required ? 'fail' : 'unknown', text, data, evidence);
      }
      if (data.inRecovery && data.archiveMode === 'on') {
        return finding(
          'unknown',
          'Standby with archive_mode = on: only the primary archives WAL; check the archiver there',
          data,
          evidence,
        );
      }
      if (!data.archiverConfigured) {
        return finding(
          'fail',
          `archive_mode = ${data.archiveMode} but archive_command is empty: WAL is kept in pg_wal and never archived${waiting}`,
          data,
          evidence,
        );
      }
      if (data.failing) {
        const since =
          lastOk === null ? 'no WAL archived yet' : `last success ${ago(data.sinceLastArchiveMs)}`;
        return finding(
          'fail',
          `WAL archiving failing: ${plural(data.failedCount, 'failure')}, last for ${data.lastFailedWal} ` +
            `${ago(sinceLastFailMs)}; ${since}${waiting}. Check archive_command and the server log`,
          data,
          evidence,
        );
      }
      if (lastOk === null) {
        return finding(
          'ok',
          `WAL archiving on, nothing archived yet (no failures)${waiting}`,
          data,
          evidence,
        );
      }
      const head = `WAL archiving ok: ${data.lastArchivedWal} archived ${ago(data.sinceLastArchiveMs)}, ${data.archivedCount} archived, ${data.failedCount} failed`;
      if (pending && (data.sinceLastArchiveMs ?? 0) >= staleMs) {
        return finding(
          'warn',
          `WAL archiving stalled: nothing archived for ${formatDuration(data.sinceLastArchiveMs ?? 0)}${waiting}`,
          data,
          evidence,
        );
      }
      return finding('ok', `${head}${waiting}`, data, evidence);
    },
  });
}

function ago(ms: number | null): string {
  return ms === null ? 'never' : `${formatDuration(Math.max(0, ms))} ago`;
}

function evidenceOf(d: ArchiverStatusData): Evidence[] {
  return [
    {
      kind: 'table',
      title: 'WAL archiver (pg_stat_archiver)',
      columns: [
        'ARCHIVE MODE',
        'WAL LEVEL',
        'ARCHIVED',
        'LAST ARCHIVED WAL',
        'LAST ARCHIVED',
        'FAILED',
        'LAST FAILED WAL',
        'LAST FAILED',
        'PENDING',
      ],
      rows: [
        [
          d.archiveMode,
          d.walLevel,
          d.archivedCount,
          d.lastArchivedWal,
          d.lastArchivedTime,
          d.failedCount,
          d.lastFailedWal,
          d.lastFailedTime,
          d.pending,
        ],
      ],
    },
  ];
}
