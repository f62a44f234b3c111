import { z } from 'zod';
import { type Evidence, type FindingStatus, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import type { PostgresDatabase } from '../database';
import { Ratio } from './options';
import { listSome, percent, plural } from './wording';

/** Options of {@link connectionUsage}. */
export const ConnectionUsageOptions = z
  .object({
    /** `warn` at or above this share of the connections ordinary users may open. @default 0.8 (the manual's alert) */
    warnAt: Ratio.default(0.8),
    /** `fail` at or above this share: new application connections are about to be refused. @default 0.95 */
    failAt: Ratio.default(0.95),
    /** Entries in each "top" list (per database, per user and application). @default 10 */
    top: z.number().int().min(1).max(50).default(10),
  })
  .refine((p) => p.warnAt <= p.failAt, { message: 'warnAt must not exceed failAt', path: ['warnAt'] });
export type ConnectionUsageOptions = z.output<typeof ConnectionUsageOptions>;
export type ConnectionUsageOptionsInput = z.input<typeof ConnectionUsageOptions>;

/** Connections held by one database, or by one user and application. */
export type ConnectionHolder = {
  database?: string | null;
  user?: string | null;
  application?: string | null;
  connections: number;
  active: number;
  idle: number;
  idleInTransaction: number;
};

/** What {@link connectionUsage} found. */
export type ConnectionUsageData = {
  /** `max_connections`. */
  maxConnections: number;
  /** `superuser_reserved_connections` plus, from PostgreSQL 16, `reserved_connections`. */
  reserved: number;
  /** What ordinary users may open: `maxConnections - reserved`. */
  available: number;
  /** Client connections now (walsenders and background workers have slots of their own and are not counted). */
  used: number;
  /** `used / available`; above 1 when superusers use the reserved slots. */
  ratio: number;
  /** Connections per state: `active`, `idle`, `idle in transaction`, … */
  byState: Record<string, number>;
  byDatabase: ConnectionHolder[];
  byClient: ConnectionHolder[];
};

/** Client connections of one database, user, application and state, as {@link connectionUsage} counts them. */
export type ConnectionGroup = {
  database: string | null;
  user: string | null;
  application: string | null;
  state: string | null;
  connections: number;
};

/**
 * What {@link connectionUsage} read: the connection limits and the client connections grouped by database,
 * user, application and state. Replaying it with other `warnAt` / `failAt` / `top` judges them again.
 */
export type ConnectionUsageObservation = {
  /** `max_connections`. */
  maxConnections: number;
  /** `superuser_reserved_connections`. */
  superuserReserved: number;
  /** `reserved_connections` (PostgreSQL 16+); `null` before. */
  reservedConnections: number | null;
  groups: ConnectionGroup[];
};

const KIND = 'pg.connection-usage';

/**
 * Connection-slot usage, the manual's "monitor connection pool utilization (alert at >80%)" (Runbook 4):
 * client backends in `pg_stat_activity` against `max_connections` minus the slots reserved for superusers
 * (`superuser_reserved_connections`, and `reserved_connections` on 16+) — the number an application can
 * actually get before PostgreSQL answers "sorry, too many clients already".
 *
 * - `fail` at or above `failAt` (95 %), `warn` at or above `warnAt` (80 %), `ok` below.
 *
 * The summary says who holds the connections (by state, and the largest user/application), because an
 * exhausted server is usually one pool that grew or leaked `idle` / `idle in transaction` sessions.
 *
 * Replayable: `read` counts ({@link ConnectionUsageObservation}), `judge` applies `warnAt`, `failAt` and `top`.
 */
export function connectionUsage(
  db: PostgresDatabase,
  options: ConnectionUsageOptionsInput = {},
): ReplayableCheck<ConnectionUsageData, ConnectionUsageObservation> {
  const p = parseOptions(KIND, ConnectionUsageOptions, options);
  return defineCheck({
    kind: KIND,
    description: `Connections in use on ${db.display} against max_connections, by state, database and client`,
    async read(ctx): Promise<ConnectionUsageObservation> {
      const q = { signal: ctx.signal };
      const { rows: limits } = await db.query<{ max: number; superuser: number; reserved: number | null }>(
        `SELECT current_setting('max_connections')::int AS max,
                current_setting('superuser_reserved_connections')::int AS superuser,
                current_setting('reserved_connections', true)::int AS reserved`,
        [],
        q,
      );
      const { rows } = await db.query<ConnectionGroup>(
        `SELECT datname AS database, usename AS "user", application_name AS application,
                coalesce(state, 'unknown') AS state, count(*)::int AS connections
           FROM pg_stat_activity
          WHERE backend_type = 'client backend'
          GROUP BY 1, 2, 3, 4`,
        [],
        q,
      );
      const l = limits[0] ?? { max: 0, superuser: 0, reserved: 0 };
      return {
        maxConnections: l.max,
        superuserReserved: l.superuser,
        reservedConnections: l.reserved,
        groups: rows.map((r) => ({
          database: r.database,
          user: r.user,
          application: r.application,
          state: r.state,
          connections: r.connections,
        })),
      };
    },
    judge(seen) {
      const reserved = seen.superuserReserved + (seen.reservedConnections ?? 0);
      const available = Math.max(seen.maxConnections - reserved, 1);
      const byState: Record<string, number> = {};
      const dbs = new Map<string, ConnectionHolder>();
      const clients = new Map<string, ConnectionHolder>();
      let used = 0;
      for (const r of seen.groups) {
        used += r.connections;
        byState[r.state ?? 'unknown'] = (byState[r.state ?? 'unknown'] ?? 0) + r.connections;
        add(dbs, JSON.stringify([r.database]), { database: r.database }, r);
        add(
          clients,
          JSON.stringify([r.user, r.application]),
          { user: r.user, application: r.application },
          r,
        );
      }
      const ratio = used / available;
      const data: ConnectionUsageData = {
        maxConnections: seen.maxConnections,
        reserved,
        available,
        used,
        ratio: Math.round(ratio * 1000) / 1000,
        byState,
        byDatabase: topOf(dbs, p.top),
        byClient: topOf(clients, p.top),
      };
      const status: FindingStatus = ratio >= p.failAt ? 'fail' : ratio >= p.warnAt ? 'warn' : 'ok';
      const states = Object.entries(byState)
        .sort((a, b) => b[1] - a[1])
        .map(([state, n]) => `${n} ${state}`);
      const biggest = data.byClient[0];
      const holder = biggest
        ? `; most held by ${biggest.user ?? '?'}${biggest.application ? `@${biggest.application}` : ''} (${biggest.connections})`
        : '';
      const limit =
        status === 'ok' ? '' : ` (${status} at ${percent(status === 'fail' ? p.failAt : p.warnAt)})`;
      const summary =
        `${used}/${available} connections in use, ${percent(ratio)}${limit}` +
        `${states.length ? `: ${listSome(states, 4)}` : ''}${holder}`;
      return finding(status, summary, data, evidenceOf(data, seen.maxConnections, reserved));
    },
  });
}

function add(
  into: Map<string, ConnectionHolder>,
  key: string,
  who: Partial<ConnectionHolder>,
  row: { state: string | null; connections: number },
): void {
  const h = into.get(key) ?? { ...who, connections: 0, active: 0, idle: 0, idleInTransaction: 0 };
  h.connections += row.connections;
  if (row.state === 'active') h.active += row.connections;
  else if (row.state === 'idle') h.idle += row.connections;
  else if (row.state?.startsWith('idle in transaction')) h.idleInTransaction += row.connections;
  into.set(key, h);
}

function topOf(map: Map<string, ConnectionHolder>, top: number): ConnectionHolder[] {
  return [...map.values()].sort((a, b) => b.connections - a.connections).slice(0, top);
}

function evidenceOf(data: ConnectionUsageData, max: number, reserved: number): Evidence[] {
  const counts = (h: ConnectionHolder) => [h.connections, h.active, h.idle, h.idleInTransaction];
  return [
    {
      kind: 'table',
      title: 'Connection slots',
      columns: ['MAX_CONNECTIONS', 'RESERVED', 'AVAILABLE', 'USED', 'USAGE'],
      rows: [[max, reserved, data.available, data.used, percent(data.ratio)]],
    },
    {
      kind: 'table',
      title: 'Connections by state',
      columns: ['STATE', 'CONNECTIONS'],
      rows: Object.entries(data.byState).sort((a, b) => b[1] - a[1]),
    },
    {
      kind: 'table',
      title: `Top ${plural(data.byDatabase.length, 'database')}`,
      columns: ['DATABASE', 'CONNECTIONS', 'ACTIVE', 'IDLE', 'IDLE IN TX'],
      rows: data.byDatabase.map((h) => [h.database ?? null, ...counts(h)]),
    },
    {
      kind: 'table',
      title: 'Top users and applications',
      columns: ['USER', 'APPLICATION', 'CONNECTIONS', 'ACTIVE', 'IDLE', 'IDLE IN TX'],
      rows: data.byClient.map((h) => [h.user ?? null, h.application ?? null, ...counts(h)]),
    },
  ];
}
