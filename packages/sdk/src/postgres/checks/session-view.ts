import { isoOf, MAX_QUERY_TEXT, queryText } from './wording';

/** One server session (a row of `pg_stat_activity`), as checks report it. */
export type SessionView = {
  pid: number;
  user: string | null;
  application: string | null;
  /** `10.0.3.7:51234`, or `local` for a Unix socket. */
  client: string | null;
  database: string | null;
  /** `active`, `idle`, `idle in transaction`, `idle in transaction (aborted)`, … */
  state: string | null;
  /** `Lock:transactionid`, `IO:DataFileRead`, … or `null` when not waiting. */
  waitEvent: string | null;
  /** How long the current (or, when idle, the last) statement has run. */
  queryMs: number | null;
  /** Age of the open transaction; `null` outside one. */
  transactionMs: number | null;
  /** Time in the current state (how long it has been idle in transaction, say). */
  stateMs: number | null;
  queryStart: string | null;
  transactionStart: string | null;
  /** At most 500 characters; the literal of a `PASSWORD '…'` clause is redacted. */
  query: string | null;
  /** `pg_blocking_pids()`: the sessions it waits for. */
  blockedBy: number[];
  /** How long it has waited for a lock (`pg_locks.waitstart`, PostgreSQL 14+; else since its statement began). */
  waitingMs: number | null;
};

/** The columns of a {@link SessionRow} from `pg_stat_activity a`, for a server of version `versionNum` (lock wait start needs 14+). */
export function sessionColumns(versionNum: number): string {
  const lockWait =
    versionNum >= 140000
      ? `(SELECT extract(epoch FROM now() - min(l.waitstart))::float8 * 1000
            FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted)`
      : `CASE WHEN a.wait_event_type = 'Lock'
              THEN extract(epoch FROM now() - a.query_start)::float8 * 1000 END`;
  return `a.pid, a.usename AS "user", a.application_name AS application,
          CASE WHEN a.client_addr IS NOT NULL THEN host(a.client_addr) || ':' || a.client_port
               WHEN a.client_port = -1 THEN 'local' END AS client,
          a.datname AS database, a.state, a.backend_type,
          CASE WHEN a.wait_event IS NOT NULL THEN a.wait_event_type || ':' || a.wait_event END AS wait_event,
          extract(epoch FROM now() - a.query_start)::float8 * 1000 AS query_ms,
          extract(epoch FROM now() - a.xact_start)::float8 * 1000 AS transaction_ms,
          extract(epoch FROM now() - a.state_change)::float8 * 1000 AS state_ms,
          a.query_start, a.xact_start,
          left(a.query, ${MAX_QUERY_TEXT + 1}) AS query,
          ${lockWait} AS waiting_ms`;
}

/** A row selected with {@link sessionColumns} (plus `blocked_by`). */
export type SessionRow = {
  pid: number;
  user: string | null;
  application: string | null;
  client: string | null;
  database: string | null;
  state: string | null;
  backend_type: string | null;
  wait_event: string | null;
  query_ms: number | null;
  transaction_ms: number | null;
  state_ms: number | null;
  query_start: Date | null;
  xact_start: Date | null;
  query: string | null;
  waiting_ms: number | null;
  blocked_by: number[] | null;
};

/** A {@link SessionRow} as JSON data. */
export function viewSession(r: SessionRow): SessionView {
  const ms = (v: number | null) => (v === null ? null : Math.max(0, Math.round(v)));
  const blockedBy = r.blocked_by ?? [];
  return {
    pid: r.pid,
    user: r.user,
    // Background workers (autovacuum) have no application name; their type says what they are.
    application: r.application || (r.backend_type !== 'client backend' ? r.backend_type : null),
    client: r.client,
    database: r.database,
    state: r.state,
    waitEvent: r.wait_event,
    queryMs: ms(r.query_ms),
    transactionMs: ms(r.transaction_ms),
    stateMs: ms(r.state_ms),
    queryStart: isoOf(r.query_start),
    transactionStart: isoOf(r.xact_start),
    query: queryText(r.query),
    blockedBy,
    waitingMs: blockedBy.length ? ms(r.waiting_ms ?? r.query_ms) : null,
  };
}

/** `current_setting('server_version_num')` of the server, for version-dependent SQL. */
export const VERSION_SQL = `SELECT current_setting('server_version_num')::int AS version`;
