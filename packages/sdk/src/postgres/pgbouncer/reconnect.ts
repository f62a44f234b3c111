import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import type { Change } from '../../core/plan';
import { sleep } from '../../core/sleep';
import { type Action, defineAction } from '../../core/step';
import {
  ADMIN_DB,
  adminCommand,
  type PgBouncerConsole,
  PgBouncerDatabaseName,
  type PgBouncerSocket,
  parseSocket,
} from './console';
import { listSome, plural } from './wording';

/** Options of {@link reconnect}. */
export const ReconnectOptions = z.object({
  /** The database whose server connections are replaced (`RECONNECT <db>`). @default every database */
  database: PgBouncerDatabaseName.optional(),
  /** How long verify waits for the old server connections to close (each closes once released). @default "30s" */
  timeout: Duration.default('30s'),
});
export type ReconnectOptions = z.output<typeof ReconnectOptions>;
export type ReconnectOptionsInput = z.input<typeof ReconnectOptions>;

/** What a reconnect plan fixes. */
export type ReconnectParams = {
  /** `null` for every database. */
  database: string | null;
  timeoutMs: number;
};

/** A server connection as the reconnect tells old from new. */
export type ServerConnection = {
  /** Database, user, addresses, backend pid and connect time: unique among PgBouncer's server connections. */
  key: string;
  database: string;
  user: string;
  /** The PostgreSQL backend pid. */
  pid: number;
  connectTime: string | null;
};

/** What the apply of {@link reconnect} returns. */
export type ReconnectApplied = {
  /** The server connections open just before `RECONNECT`: the ones verify waits to see closed. */
  servers: ServerConnection[];
};

const KIND = 'pgbouncer.reconnect';
const POLL = { firstMs: 50, maxMs: 1_000 } as const;

/**
 * PgBouncer's `RECONNECT [db]`: every server connection of the database (or of every database) is closed as
 * soon as it is released (in transaction pooling: when its transaction ends), and new ones are opened on
 * demand. Nothing in flight is interrupted. Use it after a PostgreSQL failover or a DNS change, or to shed
 * server connections in a bad state.
 *
 * - **plan** checks the database against `SHOW DATABASES` (an unknown name is refused before any command) and
 *   lists its server connections (`SHOW SERVERS`); one change per database that has some, none when there are
 *   no server connections to replace.
 * - **apply** notes the server connections open (backend pid, ports, connect time) and sends
 *   `RECONNECT "<db>"` (or `RECONNECT`).
 * - **verify** waits (at most `timeout`) until none of the noted server connections is left in `SHOW SERVERS`;
 *   `fail` naming the backend pids still open, which long transactions hold.
 * - No revert: closed connections cannot be reopened as they were.
 *
 * Risk `medium`: clients see the latency of new server connections, and a database that refuses new
 * connections (max_connections, a failed primary) refuses them now. Not destructive. Budget 3 per hour.
 */
export function reconnect(
  bouncer: PgBouncerConsole,
  options: ReconnectOptionsInput = {},
): Action<ReconnectParams, ReconnectApplied> {
  const o = parseOptions(KIND, ReconnectOptions, options);
  const database = o.database ?? null;
  const what = database ? `database ${database}` : 'every database';
  return defineAction<ReconnectParams, ReconnectApplied>({
    kind: KIND,
    target: bouncer.ref(database),
    risk: 'medium',
    destructive: false,
    budget: { max: 3, per: '1h' },
    description: `Replace the server connections of ${what} on PgBouncer ${bouncer.name} (RECONNECT)`,

    async plan(ctx) {
      if (database) await bouncer.requireDatabase(database, { signal: ctx.signal });
      const servers = await readServers(bouncer, database, ctx.signal);
      const params = { database, timeoutMs: toMillis(o.timeout) };
      const byDatabase = new Map<string, number>();
      for (const s of servers) byDatabase.set(s.database, (byDatabase.get(s.database) ?? 0) + 1);
      const changes: Change[] = [...byDatabase.keys()].sort().map((db) => ({
        target: bouncer.ref(db),
        field: 'server connections',
        before: 'open',
        after: 'closed once released, reopened on demand',
      }));
      return {
        summary:
          servers.length === 0
            ? `No server connections of ${what} on PgBouncer ${bouncer.name}: nothing to reconnect`
            : `Reconnect ${plural(servers.length, 'server connection')} of ${what} on PgBouncer ${bouncer.name} (backend pids ${listSome(
                servers.map((s) => String(s.remotePid)),
                5,
              )}): each closes once its transaction ends; new ones open on demand`,
        changes,
        params,
      };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      const servers = (await readServers(bouncer, p.database, ctx.signal)).map(identify);
      await bouncer.command(adminCommand('RECONNECT', p.database), { signal: ctx.signal });
      ctx.log(
        `RECONNECT ${p.database ?? '(every database)'} on PgBouncer ${bouncer.name}: ${plural(servers.length, 'server connection')} to replace`,
      );
      return { servers };
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      const started = Date.now();
      const deadline = started + p.timeoutMs;
      // After a crash the apply's list is lost: connections older than the apply (or marked) are the old ones.
      const appliedSecond = Math.floor(Date.parse(applied.appliedAt) / 1000) * 1000;
      const oldKeys = applied.data ? new Set(applied.data.servers.map((s) => s.key)) : null;
      const isOld = (s: PgBouncerSocket) =>
        oldKeys
          ? oldKeys.has(identify(s).key)
          : s.closeNeeded || (s.connectTime !== null && Date.parse(s.connectTime) < appliedSecond);
      const total = applied.data?.servers.length ?? null;
      for (let delay: number = POLL.firstMs; ; delay = Math.min(delay * 2, POLL.maxMs)) {
        const now = await readServers(bouncer, p.database, ctx.signal);
        const left = now.filter(isOld);
        const data = {
          database: p.database,
          replaced: total === null ? null : total - left.length,
          stillOpenPids: left.map((s) => s.remotePid),
          newPids: now.filter((s) => !isOld(s)).map((s) => s.remotePid),
          elapsedMs: Date.now() - started,
        };
        if (left.length === 0) {
          return finding(
            'ok',
            `Replaced ${total ?? 'the'} old server connection${total === 1 ? '' : 's'} of ${what} on PgBouncer ${bouncer.name}: all closed, ${plural(data.newPids.length, 'new one')} open`,
            data,
          );
        }
        const remaining = deadline - Date.now();
        if (remaining <= 0) {
          return finding(
            'fail',
            `${plural(left.length, 'old server connection')} of ${what} still open on PgBouncer ${bouncer.name} after ${formatMillis(p.timeoutMs)} (backend pids ${listSome(data.stillOpenPids.map(String), 5)}): their transactions have not ended`,
            data,
          );
        }
        await sleep(Math.min(delay, remaining), ctx.signal);
      }
    },
  });
}

async function readServers(
  bouncer: PgBouncerConsole,
  database: string | null,
  signal: AbortSignal,
): Promise<PgBouncerSocket[]> {
  return (await bouncer.show('SERVERS', { signal }))
    .map(parseSocket)
    .filter((s) => s.database !== ADMIN_DB && (!database || s.database === database));
}

function identify(s: PgBouncerSocket): ServerConnection {
  return {
    key: `${s.database}/${s.user}/${s.addr}:${s.port}/${s.localAddr}:${s.localPort}/${s.remotePid}/${s.connectTime ?? ''}`,
    database: s.database,
    user: s.user,
    pid: s.remotePid,
    connectTime: s.connectTime,
  };
}
