import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { type Evidence, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import type { PostgresDatabase } from '../database';
import { type SessionRow, type SessionView, sessionColumns, viewSession } from './session-view';
import { formatDuration, hiddenNote, listSome, MAX_ROWS, plural, whoIs } from './wording';

/** Options of {@link idleInTransaction}. */
export const IdleInTransactionOptions = z.object({
  /** A session idle in a transaction at least this long is a `fail`. @default "5m" (the manual's terminate threshold) */
  olderThan: Duration.default('5m'),
});
export type IdleInTransactionOptions = z.output<typeof IdleInTransactionOptions>;
export type IdleInTransactionOptionsInput = z.input<typeof IdleInTransactionOptions>;

/** A session idle in an open transaction, and what it holds up. */
export type IdleTransaction = SessionView & {
  /** Sessions waiting for its locks. */
  blocking: number[];
};

/** What {@link idleInTransaction} found. */
export type IdleInTransactionData = {
  /** Every session idle in a transaction, longest idle first (at most 50). */
  sessions: IdleTransaction[];
  /** How many of them are idle at least `olderThan`. */
  old: number;
  olderThanMs: number;
  /** The server's `idle_in_transaction_session_timeout` in ms; 0 when off. */
  serverTimeoutMs: number;
};

/**
 * What {@link idleInTransaction} read: every session idle in a transaction (longest idle first, with whom
 * it blocks) and the server's timeout. Replaying it with another `olderThan` judges them again.
 */
export type IdleInTransactionObservation = {
  sessions: IdleTransaction[];
  /** `idle_in_transaction_session_timeout` in ms; 0 when off. */
  serverTimeoutMs: number;
};

const KIND = 'pg.idle-in-transaction';

/**
 * Sessions `idle in transaction` (or `… (aborted)`): an application that opened a transaction and stopped
 * talking. Each holds its locks (blocking writers and DDL) and its snapshot (holding back VACUUM) until it
 * ends; pools leak them when a request dies between `BEGIN` and `COMMIT`.
 *
 * - `fail` when one has been idle (time since its last state change) at least `olderThan` (5 min).
 * - `ok` otherwise; younger ones are listed, with whom they block.
 *
 * The summary names the server's `idle_in_transaction_session_timeout` when it is off, the setting that
 * would end such sessions by itself.
 *
 * Replayable: `read` lists the sessions ({@link IdleInTransactionObservation}), `judge` applies `olderThan`.
 */
export function idleInTransaction(
  db: PostgresDatabase,
  options: IdleInTransactionOptionsInput = {},
): ReplayableCheck<IdleInTransactionData, IdleInTransactionObservation> {
  const p = parseOptions(KIND, IdleInTransactionOptions, options);
  const olderMs = toMillis(p.olderThan);
  return defineCheck({
    kind: KIND,
    description: `Sessions idle in transaction for ${formatDuration(olderMs)} or more on ${db.display}`,
    async read(ctx): Promise<IdleInTransactionObservation> {
      const q = { signal: ctx.signal };
      const { rows: settings } = await db.query<{ version: number; timeout: number }>(
        `SELECT current_setting('server_version_num')::int AS version,
                (SELECT setting::int FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout') AS timeout`,
        [],
        q,
      );
      const version = settings[0]?.version ?? 0;
      const serverTimeoutMs = settings[0]?.timeout ?? 0;
      const { rows } = await db.query<SessionRow & { blocking: number[] }>(
        `WITH waits AS (
           SELECT w.pid, unnest(pg_blocking_pids(w.pid)) AS blocker FROM pg_stat_activity w
            WHERE w.wait_event_type = 'Lock'
         )
         SELECT ${sessionColumns(version)}, '{}'::int[] AS blocked_by,
                coalesce((SELECT array_agg(DISTINCT waits.pid ORDER BY waits.pid) FROM waits
                           WHERE waits.blocker = a.pid), '{}') AS blocking
           FROM pg_stat_activity a
          WHERE a.state LIKE 'idle in transaction%' AND a.pid <> pg_backend_pid()
          ORDER BY a.state_change, a.pid`,
        [],
        q,
      );
      return {
        sessions: rows.map((r) => ({ ...viewSession(r), blocking: r.blocking })),
        serverTimeoutMs,
      };
    },
    judge({ sessions, serverTimeoutMs }) {
      const old = sessions.filter((s) => (s.stateMs ?? 0) >= olderMs);
      const data: IdleInTransactionData = {
        sessions: sessions.slice(0, MAX_ROWS),
        old: old.length,
        olderThanMs: olderMs,
        serverTimeoutMs,
      };
      const timeout = serverTimeoutMs
        ? `idle_in_transaction_session_timeout ${formatDuration(serverTimeoutMs)}`
        : 'idle_in_transaction_session_timeout is off';
      const describe = (s: IdleTransaction) =>
        `${whoIs(s)} idle ${formatDuration(s.stateMs ?? 0)}` +
        `${s.blocking.length ? `, blocking ${plural(s.blocking.length, 'session')}` : ''}`;
      let summary: string;
      if (old.length) {
        summary = `${plural(old.length, 'session')} idle in transaction for ${formatDuration(olderMs)} or more: ${listSome(old.map(describe), 2)} (${timeout})`;
      } else if (sessions.length) {
        summary = `${plural(sessions.length, 'session')} idle in transaction, none for ${formatDuration(olderMs)}; longest ${describe(sessions[0] as IdleTransaction)}`;
      } else {
        summary = 'No session idle in transaction';
      }
      const evidence: Evidence[] = sessions.length
        ? [
            {
              kind: 'table',
              title: 'Sessions idle in transaction',
              columns: [
                'PID',
                'USER',
                'APPLICATION',
                'CLIENT',
                'STATE',
                'IDLE FOR',
                'XACT AGE',
                'BLOCKING',
                'LAST QUERY',
              ],
              rows: data.sessions.map((s) => [
                s.pid,
                s.user,
                s.application,
                s.client,
                s.state,
                formatDuration(s.stateMs ?? 0),
                s.transactionMs === null ? null : formatDuration(s.transactionMs),
                s.blocking.join(', ') || null,
                s.query,
              ]),
            },
          ]
        : [];
      const hidden = hiddenNote(sessions.length, data.sessions.length);
      if (hidden) evidence.push({ kind: 'text', title: 'Not shown', text: hidden });
      return finding(old.length ? 'fail' : 'ok', summary, data, evidence);
    },
  });
}
