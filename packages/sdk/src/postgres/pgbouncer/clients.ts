import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { type Cell, type FindingStatus, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { createRedactor } from '../../core/redact';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import {
  ADMIN_DB,
  type PgBouncerConsole,
  PgBouncerDatabaseName,
  type PgBouncerSocket,
  parseSocket,
  unknownDatabase,
} from './console';
import { plural } from './wording';

/** Options of {@link clients}. */
export const ClientsOptions = z.object({
  /** Only the clients of this database. @default every database, the admin console's included */
  database: PgBouncerDatabaseName.optional(),
  /** Most clients in data and evidence: waiting ones first (longest wait first), then the oldest. @default 50 */
  limit: z.number().int().min(1).max(1000).default(50),
  /** Fail when a client has waited longer than this for a server connection. @default "1s" */
  maxWait: Duration.default('1s'),
});
export type ClientsOptions = z.output<typeof ClientsOptions>;
export type ClientsOptionsInput = z.input<typeof ClientsOptions>;

/**
 * One client connection, as `SHOW CLIENTS` shows it, minus PgBouncer's internal pointers (`ptr`, `link`) and
 * the peer's OS pid (`remote_pid`): the link becomes the pid of the PostgreSQL backend serving the client.
 */
export type ClientView = {
  user: string;
  database: string;
  /** `active` (connected, maybe idle between transactions), `waiting` (for a server connection), `login`, … */
  state: string;
  addr: string;
  port: number;
  connectTime: string | null;
  /** When its latest request arrived. */
  requestTime: string | null;
  /** How long it has waited for a server connection, in milliseconds. */
  waitMs: number;
  /** The PostgreSQL backend pid serving it right now (its transaction's), `null` when it has none. */
  serverPid: number | null;
  /** The TLS protocol and cipher, `null` for plain TCP. */
  tls: string | null;
  applicationName: string;
};

/** What {@link clients} found. */
export type ClientsData = {
  /** Client connections matched (this check's own left out). */
  total: number;
  /** How many are in each state. */
  byState: Record<string, number>;
  waiting: number;
  /** The longest wait, in milliseconds. */
  longestWaitMs: number;
  /** At most `limit` clients. */
  clients: ClientView[];
  maxWaitMs: number;
};

/**
 * What {@link clients} read: the counts by state, the waiting clients and the longest wait, and the first
 * `limit` clients (waiting ones first). Replaying it with another `maxWait` judges the same wait again.
 */
export type ClientsObservation = {
  /** `false` when `database` is not one of PgBouncer's. */
  databaseFound: boolean;
  total: number;
  byState: Record<string, number>;
  waiting: number;
  longestWaitMs: number;
  clients: ClientView[];
};

const KIND = 'pgbouncer.clients';
const redactor = createRedactor();

/**
 * `SHOW CLIENTS` with each client's server (`SHOW SERVERS`): who is connected, from where, since when, and who
 * waits for a server connection.
 *
 * - `fail` when a client has waited longer than `maxWait`.
 * - `fail` as well when `database` is not one of PgBouncer's (`SHOW DATABASES`): its clients are refused.
 * - `warn` when clients are waiting, for less than that.
 * - `ok` otherwise.
 *
 * Replayable: `read` asks the console ({@link ClientsObservation}), `judge` applies `maxWait`.
 */
export function clients(
  bouncer: PgBouncerConsole,
  options: ClientsOptionsInput = {},
): ReplayableCheck<ClientsData, ClientsObservation> {
  const o = parseOptions(KIND, ClientsOptions, options);
  const maxWaitMs = toMillis(o.maxWait);
  return defineCheck({
    kind: KIND,
    description: `PgBouncer ${bouncer.name} clients${o.database ? ` of ${o.database}` : ''}: state, address, connect time, wait`,
    async read(ctx): Promise<ClientsObservation> {
      const { rows, selfPort } = await bouncer.showMany(['CLIENTS', 'SERVERS', 'DATABASES'], {
        signal: ctx.signal,
      });
      if (o.database && !rows.DATABASES.some((d) => d.name === o.database)) {
        return { databaseFound: false, total: 0, byState: {}, waiting: 0, longestWaitMs: 0, clients: [] };
      }
      const serverPids = new Map(
        rows.SERVERS.map(parseSocket)
          .filter((s) => s.ptr && s.remotePid > 0)
          .map((s) => [s.ptr, s.remotePid]),
      );
      const matched = rows.CLIENTS.map(parseSocket)
        .filter((c) => !(c.database === ADMIN_DB && c.port === selfPort))
        .filter((c) => !o.database || c.database === o.database);
      const byState: Record<string, number> = {};
      for (const c of matched) byState[c.state] = (byState[c.state] ?? 0) + 1;
      const waiting = matched.filter(isWaiting);
      const longestWaitMs = waiting.reduce((max, c) => Math.max(max, c.waitMs), 0);
      const views = [...matched]
        .sort(
          (a, b) =>
            Number(isWaiting(b)) - Number(isWaiting(a)) ||
            b.waitMs - a.waitMs ||
            (a.connectTime ?? '').localeCompare(b.connectTime ?? '') ||
            a.port - b.port,
        )
        .slice(0, o.limit)
        .map((c) => view(c, serverPids));
      return {
        databaseFound: true,
        total: matched.length,
        byState,
        waiting: waiting.length,
        longestWaitMs,
        clients: views,
      };
    },
    judge(seen) {
      const { total, byState, waiting, longestWaitMs, clients: views } = seen;
      if (!seen.databaseFound) {
        const data = { total: 0, byState: {}, waiting: 0, longestWaitMs: 0, clients: [], maxWaitMs };
        return unknownDatabase(bouncer, o.database ?? '', data);
      }
      const status: FindingStatus = longestWaitMs > maxWaitMs ? 'fail' : waiting > 0 ? 'warn' : 'ok';
      const where = `PgBouncer ${bouncer.name}${o.database ? ` database ${o.database}` : ''}`;
      const states = Object.entries(byState)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([state, n]) => `${n} ${state}`)
        .join(', ');
      const head = `${plural(total, 'client')} on ${where}${states ? ` (${states})` : ''}`;
      const summary =
        waiting > 0
          ? `${head}: ${plural(waiting, 'client')} waiting for a server, the longest ${formatMillis(longestWaitMs)}${status === 'fail' ? ` (limit ${formatMillis(maxWaitMs)})` : ''}`
          : head;
      return finding(status, summary, { total, byState, waiting, longestWaitMs, clients: views, maxWaitMs }, [
        {
          kind: 'table',
          title: `SHOW CLIENTS${total > views.length ? ` (${views.length} of ${total})` : ''}`,
          columns: [
            'user',
            'database',
            'state',
            'addr',
            'port',
            'connect_time',
            'wait',
            'server pid',
            'application_name',
          ],
          rows: views.map((c): Cell[] => [
            c.user,
            c.database,
            c.state,
            c.addr,
            c.port,
            c.connectTime,
            formatMillis(c.waitMs),
            c.serverPid,
            c.applicationName,
          ]),
        },
      ]);
    },
  });
}

function isWaiting(c: PgBouncerSocket): boolean {
  return c.state.startsWith('waiting');
}

function view(c: PgBouncerSocket, serverPids: Map<string, number>): ClientView {
  const name = redactor.redactText(c.applicationName);
  return {
    user: c.user,
    database: c.database,
    state: c.state,
    addr: c.addr,
    port: c.port,
    connectTime: c.connectTime,
    requestTime: c.requestTime,
    waitMs: c.waitMs,
    serverPid: c.link ? (serverPids.get(c.link) ?? null) : null,
    tls: c.tls || null,
    applicationName: name.length > 64 ? `${name.slice(0, 63)}…` : name,
  };
}
