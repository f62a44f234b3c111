import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { type Evidence, type FindingStatus, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import type { PostgresDatabase } from '../database';
import { type BlockingChain, blockingChains } from './blocking';
import { type SessionRow, type SessionView, sessionColumns, VERSION_SQL, viewSession } from './session-view';
import { clip, formatDuration, hiddenNote, isoOf, listSome, MAX_ROWS, plural, whoIs } from './wording';

/** Options of {@link activeQueries}. */
export const ActiveQueriesOptions = z
  .object({
    /**
     * Queries running at least this long are listed (and `warn`); a session blocked at least this long is a
     * `fail`. @default "1m"
     */
    minDuration: Duration.default('1m'),
    /** A query running at least this long is a `fail`. @default "5m" (the manual's threshold for terminating) */
    failAfter: Duration.default('5m'),
    /** Also list sessions that are not `active` (idle, idle in transaction) for at least `minDuration`. @default false */
    includeIdle: z.boolean().default(false),
    /**
     * Also list the sessions of the server's other databases. Off, only the database this check connects to
     * is looked at: on a shared server another application's long query is not this incident's cause (and
     * cannot hold locks on this database's tables). @default false
     */
    allDatabases: z.boolean().default(false),
  })
  .refine((p) => toMillis(p.minDuration) <= toMillis(p.failAfter), {
    message: 'minDuration must not exceed failAfter',
    path: ['minDuration'],
  });
export type ActiveQueriesOptions = z.output<typeof ActiveQueriesOptions>;
export type ActiveQueriesOptionsInput = z.input<typeof ActiveQueriesOptions>;

/** A prepared transaction (`PREPARE TRANSACTION`, two-phase commit): it holds its locks with no session. */
export type PreparedTransaction = {
  /** `pg_prepared_xacts.gid`: what `COMMIT PREPARED` / `ROLLBACK PREPARED` take. */
  gid: string;
  owner: string | null;
  database: string | null;
  /** When it was prepared. */
  preparedAt: string | null;
  /** How long it has been prepared (holding its locks). */
  preparedMs: number | null;
};

/** A root blocker with the size of the queue behind it. */
export type RootBlocker = BlockingChain & {
  state: string | null;
  user: string | null;
  application: string | null;
  /** Age of its transaction: how long it has held its locks at most. */
  transactionMs: number | null;
  /**
   * For root `0`: `pg_blocking_pids()` reports prepared transactions as pid 0; these are the ones the
   * blocked sessions wait for (or, when that cannot be told, every prepared transaction of the database).
   * Empty for a session.
   */
  prepared: PreparedTransaction[];
};

/** What {@link activeQueries} found. */
export type ActiveQueriesData = {
  /** Long-running, blocked and blocking sessions, longest first (at most 100). */
  sessions: SessionView[];
  /** Sessions that matched, before the cut to 100. */
  matched: number;
  /** Queries running at least `minDuration` (not counting those waiting for a lock). */
  longRunning: number;
  /** Blocking chains, the root that holds up the most sessions first. */
  rootBlockers: RootBlocker[];
  /** Sessions waiting for another's lock. */
  blocked: number;
  /** Longest lock wait now. */
  longestWaitMs: number | null;
  minDurationMs: number;
  failAfterMs: number;
};

/**
 * What {@link activeQueries} read: the sessions it lists (running at least `minDuration`, blocked, blocking,
 * and with `includeIdle` the idle ones), and the prepared transactions they wait for. Replaying it with
 * another `failAfter`, or a longer `minDuration`, judges them again; a shorter `minDuration` cannot list
 * sessions the recorded run did not read.
 */
export type ActiveQueriesObservation = {
  /** In the order of their query start. */
  sessions: SessionView[];
  prepared: PreparedTransaction[];
};

const KIND = 'pg.active-queries';
const MAX_SESSIONS = 100;

/**
 * The manual's "check active queries" (Runbook 5, `pg_stat_activity WHERE state = 'active'`), with the
 * blocking chains (`pg_blocking_pids()`) that usually explain them: who blocks whom, root blockers first.
 * Lists the queries running at least `minDuration`, every session that waits for a lock or holds one that
 * others wait for, and, with `includeIdle`, sessions idle at least `minDuration`. Our own session is left out.
 *
 * - `fail` when a query has run for `failAfter` (5 min, the manual's terminate threshold) or a session has
 *   waited for a lock for `minDuration`.
 * - `warn` when a query has run for `minDuration`.
 * - `ok` otherwise (shorter lock waits are listed and mentioned, but row locks come and go).
 *
 * A role without `pg_read_all_stats` sees other users' query text as `<insufficient privilege>`. A prepared
 * transaction that blocks (pid 0 in `pg_blocking_pids()`) is named by its `pg_prepared_xacts` gid.
 *
 * Replayable: `read` lists the sessions ({@link ActiveQueriesObservation}), `judge` applies the durations.
 */
export function activeQueries(
  db: PostgresDatabase,
  options: ActiveQueriesOptionsInput = {},
): ReplayableCheck<ActiveQueriesData, ActiveQueriesObservation> {
  const p = parseOptions(KIND, ActiveQueriesOptions, options);
  const minMs = toMillis(p.minDuration);
  const failMs = toMillis(p.failAfter);
  return defineCheck({
    kind: KIND,
    description: `Queries running over ${formatDuration(minMs)} and blocking chains on ${db.display}`,
    async read(ctx): Promise<ActiveQueriesObservation> {
      const q = { signal: ctx.signal };
      const version = (await db.query<{ version: number }>(VERSION_SQL, [], q)).rows[0]?.version ?? 0;
      const { rows } = await db.query<SessionRow>(
        `WITH s AS (
           SELECT a.*, pg_blocking_pids(a.pid) AS blocked_by
             FROM pg_stat_activity a
            WHERE a.pid <> pg_backend_pid() AND ($3 OR a.datname = current_database())
         ), blockers AS (SELECT DISTINCT unnest(blocked_by) AS pid FROM s)
         SELECT ${sessionColumns(version)}, a.blocked_by
           FROM s a
          WHERE cardinality(a.blocked_by) > 0
             OR a.pid IN (SELECT pid FROM blockers)
             OR (a.backend_type = 'client backend' AND a.state = 'active'
                 AND a.query_start <= now() - $1::float8 * interval '1 millisecond')
             OR ($2 AND a.backend_type = 'client backend' AND a.state <> 'active'
                 AND a.state_change <= now() - $1::float8 * interval '1 millisecond')
          ORDER BY a.query_start NULLS LAST, a.pid`,
        [minMs, p.includeIdle, p.allDatabases],
        q,
      );
      const sessions = rows.map(viewSession);
      // pg_blocking_pids() reports a prepared transaction as pid 0: no session to name, so its gid instead.
      const waitingOnPrepared = sessions.filter((s) => s.blockedBy.includes(PREPARED_PID)).map((s) => s.pid);
      const prepared = waitingOnPrepared.length ? await preparedBlockers(db, waitingOnPrepared, q) : [];
      return { sessions, prepared };
    },
    judge({ sessions, prepared }) {
      const byPid = new Map(sessions.map((s) => [s.pid, s]));
      const { chains, lines } = blockingChains(sessions);
      const rootBlockers: RootBlocker[] = chains.map((c) => {
        const s = byPid.get(c.root);
        const isPrepared = c.root === PREPARED_PID && !s;
        return {
          ...c,
          state: s?.state ?? (isPrepared ? 'prepared' : null),
          user:
            s?.user ?? (isPrepared ? listSome(unique(prepared.map((x) => x.owner ?? '?'))) || null : null),
          application: s?.application ?? null,
          transactionMs:
            s?.transactionMs ??
            (isPrepared && prepared.length ? Math.max(0, ...prepared.map((x) => x.preparedMs ?? 0)) : null),
          prepared: isPrepared ? prepared : [],
        };
      });
      // A blocked query is judged by how long it has waited, not as a long-running one.
      const running = sessions.filter(
        (s) => s.state === 'active' && !s.blockedBy.length && (s.queryMs ?? 0) >= minMs,
      );
      const waiting = sessions.filter((s) => s.blockedBy.length > 0);
      const longestWaitMs = waiting.length ? Math.max(...waiting.map((s) => s.waitingMs ?? 0)) : null;
      const tooLong = running.filter((s) => (s.queryMs ?? 0) >= failMs);
      const data: ActiveQueriesData = {
        sessions: sessions.slice(0, MAX_SESSIONS),
        matched: sessions.length,
        longRunning: running.length,
        rootBlockers,
        blocked: waiting.length,
        longestWaitMs,
        minDurationMs: minMs,
        failAfterMs: failMs,
      };

      const statuses: FindingStatus[] = [];
      const parts: string[] = [];
      if (waiting.length) {
        const root = rootBlockers[0] as RootBlocker;
        const rootSession = byPid.get(root.root);
        const rootState = rootSession?.state ? `, ${rootSession.state}` : '';
        // A prepared transaction's name already says how long it has been prepared.
        const held =
          root.transactionMs === null || !rootSession ? '' : ` ${formatDuration(root.transactionMs)}`;
        const more =
          rootBlockers.length > 1 ? ` (${plural(rootBlockers.length, 'root blocker')} in all)` : '';
        const who = rootSession
          ? whoIs(rootSession)
          : root.root === PREPARED_PID
            ? preparedName(root.prepared)
            : `pid ${root.root}`;
        parts.push(
          `${who}${rootState}${held} blocks ${plural(root.blocked.length, 'session')}${more}; ` +
            `longest lock wait ${formatDuration(longestWaitMs ?? 0)}`,
        );
        statuses.push((longestWaitMs ?? 0) >= minMs ? 'fail' : 'ok');
      }
      if (running.length) {
        const longest = running.reduce((a, b) => ((b.queryMs ?? 0) > (a.queryMs ?? 0) ? b : a));
        parts.push(
          `${plural(running.length, 'query', 'queries')} running over ${formatDuration(minMs)}, longest ` +
            `${formatDuration(longest.queryMs ?? 0)} by ${whoIs(longest)}: ${clip(longest.query ?? '', 60)}`,
        );
        statuses.push(tooLong.length ? 'fail' : 'warn');
      }
      const status: FindingStatus = statuses.includes('fail')
        ? 'fail'
        : statuses.includes('warn')
          ? 'warn'
          : 'ok';
      const summary = parts.length
        ? parts.join('; ')
        : `No query running over ${formatDuration(minMs)}, no lock waits`;
      return finding(status, summary, data, evidenceOf(sessions, lines, byPid, prepared));
    },
  });
}

/** pg_blocking_pids() puts a prepared transaction in the list as pid 0. */
const PREPARED_PID = 0;

/** `a prepared transaction (pg_prepared_xacts: gid 'x', owner app, prepared 5m00s ago)`. */
function preparedName(prepared: PreparedTransaction[]): string {
  if (!prepared.length) return 'a prepared transaction (pg_prepared_xacts; its gid could not be read)';
  const one = (x: PreparedTransaction) =>
    `gid '${x.gid}'${x.owner ? `, owner ${x.owner}` : ''}${x.preparedMs === null ? '' : `, prepared ${formatDuration(x.preparedMs)} ago`}`;
  return prepared.length === 1
    ? `a prepared transaction (pg_prepared_xacts: ${one(prepared[0] as PreparedTransaction)})`
    : `${prepared.length} prepared transactions (pg_prepared_xacts: ${listSome(prepared.map(one))})`;
}

function unique(items: string[]): string[] {
  return [...new Set(items)];
}

/**
 * The prepared transactions that the `waiters` wait for: a prepared transaction's locks are in `pg_locks`
 * with no pid, under its own virtual transaction, which also holds the lock on its xid (the
 * `pg_prepared_xacts.transaction`). When none can be matched, every prepared transaction of the database.
 */
async function preparedBlockers(
  db: PostgresDatabase,
  waiters: number[],
  q: { signal: AbortSignal },
): Promise<PreparedTransaction[]> {
  type Row = {
    gid: string;
    owner: string | null;
    database: string | null;
    prepared: Date | null;
    prepared_ms: number | null;
  };
  const columns = `p.gid, p.owner::text AS owner, p.database::text AS database, p.prepared,
                   extract(epoch FROM now() - p.prepared)::float8 * 1000 AS prepared_ms`;
  const { rows } = await db.query<Row>(
    `SELECT DISTINCT ${columns}
       FROM pg_catalog.pg_locks w
       JOIN pg_catalog.pg_locks h
         ON h.pid IS NULL AND h.granted
        AND (h.locktype, h.database, h.relation, h.page, h.tuple, h.virtualxid, h.transactionid,
             h.classid, h.objid, h.objsubid)
            IS NOT DISTINCT FROM
            (w.locktype, w.database, w.relation, w.page, w.tuple, w.virtualxid, w.transactionid,
             w.classid, w.objid, w.objsubid)
       JOIN pg_catalog.pg_locks x
         ON x.pid IS NULL AND x.locktype = 'transactionid' AND x.virtualtransaction = h.virtualtransaction
       JOIN pg_catalog.pg_prepared_xacts p ON p.transaction = x.transactionid
      WHERE w.pid = ANY($1::int4[]) AND NOT w.granted
      ORDER BY p.prepared, p.gid`,
    [waiters],
    q,
  );
  const found = rows.length
    ? rows
    : (
        await db.query<Row>(
          `SELECT ${columns} FROM pg_catalog.pg_prepared_xacts p
            WHERE p.database = current_database() ORDER BY p.prepared, p.gid`,
          [],
          q,
        )
      ).rows;
  return found.map((r) => ({
    gid: r.gid,
    owner: r.owner,
    database: r.database,
    preparedAt: isoOf(r.prepared),
    preparedMs: r.prepared_ms === null ? null : Math.max(0, Math.round(r.prepared_ms)),
  }));
}

function evidenceOf(
  sessions: SessionView[],
  lines: ReturnType<typeof blockingChains>['lines'],
  byPid: Map<number, SessionView>,
  prepared: PreparedTransaction[],
): Evidence[] {
  const evidence: Evidence[] = [];
  if (lines.length) {
    evidence.push({
      kind: 'table',
      title: 'Blocking chains (root blockers first)',
      columns: [
        'PID',
        'BLOCKED BY',
        'USER',
        'APPLICATION',
        'STATE',
        'WAIT EVENT',
        'WAITING',
        'XACT AGE',
        'QUERY',
      ],
      rows: lines.slice(0, MAX_ROWS).map((l) => {
        const s = byPid.get(l.pid);
        const indent = `${'  '.repeat(l.depth)}${l.depth ? '└ ' : ''}`;
        if (!s && l.pid === PREPARED_PID) {
          const oldest = Math.max(0, ...prepared.map((x) => x.preparedMs ?? 0));
          return [
            `${indent}prepared transaction`,
            null,
            unique(prepared.map((x) => x.owner ?? '?')).join(', ') || null,
            null,
            'prepared',
            null,
            null,
            prepared.length ? formatDuration(oldest) : null,
            prepared.length
              ? `pg_prepared_xacts gid ${prepared.map((x) => `'${x.gid}'`).join(', ')}: COMMIT PREPARED or ROLLBACK PREPARED`
              : 'pg_prepared_xacts',
          ];
        }
        return [
          `${indent}${l.pid}`,
          l.blockedBy.map((b) => (b === PREPARED_PID ? 'prepared transaction' : String(b))).join(', ') ||
            null,
          s?.user ?? null,
          s?.application ?? null,
          s?.state ?? null,
          s?.waitEvent ?? null,
          s?.waitingMs === null || s?.waitingMs === undefined ? null : formatDuration(s.waitingMs),
          s?.transactionMs === null || s?.transactionMs === undefined
            ? null
            : formatDuration(s.transactionMs),
          s?.query ?? null,
        ];
      }),
    });
  }
  evidence.push({
    kind: 'table',
    title: 'Sessions',
    columns: ['PID', 'USER', 'APPLICATION', 'CLIENT', 'STATE', 'WAIT EVENT', 'DURATION', 'QUERY'],
    rows: [...sessions]
      .sort((a, b) => (b.queryMs ?? 0) - (a.queryMs ?? 0))
      .slice(0, MAX_ROWS)
      .map((s) => [
        s.pid,
        s.user,
        s.application,
        s.client,
        s.state,
        s.waitEvent,
        s.queryMs === null ? null : formatDuration(s.state === 'active' ? s.queryMs : (s.stateMs ?? 0)),
        s.query,
      ]),
  });
  const hidden = hiddenNote(Math.max(sessions.length, lines.length), MAX_ROWS);
  if (hidden) evidence.push({ kind: 'text', title: 'Not shown', text: hidden });
  return evidence;
}
