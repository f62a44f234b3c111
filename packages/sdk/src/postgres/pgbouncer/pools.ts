import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { type Cell, type FindingStatus, finding, worstStatus } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import {
  ADMIN_DB,
  configValue,
  type PgBouncerConsole,
  PgBouncerDatabaseName,
  type PgBouncerPool,
  parseDatabase,
  parsePool,
  unknownDatabase,
} from './console';
import { listSome, MAX_ROWS, percent, plural } from './wording';

/** Options of {@link pools}. */
export const PoolsOptions = z.object({
  /** Warn when a pool uses more than this fraction of its server connections (the manual: alert at >80%). @default 0.8 */
  warnAt: z.number().gt(0).max(1).default(0.8),
  /** Fail when a client has waited longer than this for a server connection (`SHOW POOLS` maxwait). @default "1s" */
  maxWait: Duration.default('1s'),
  /** Only the pools of this database. @default every database */
  database: PgBouncerDatabaseName.optional(),
});
export type PoolsOptions = z.output<typeof PoolsOptions>;
export type PoolsOptionsInput = z.input<typeof PoolsOptions>;

/** One (database, user) pool with its size and how much of it is in use. */
export type PoolView = PgBouncerPool & {
  /** Server connections the pool may open (`pool_size` of the database, else `default_pool_size`). */
  poolSize: number;
  /** Extra connections after `reserve_pool_timeout`; not counted in the size. */
  reservePool: number;
  /** `sv_active / poolSize`: server connections in use. Above 1 when the reserve pool is in use; `null` for size 0. */
  utilization: number | null;
  /** The database is paused (`PAUSE <db>`) or disabled. */
  paused: boolean;
  disabled: boolean;
};

/** Something wrong with a pool, in words for the summary. */
export type PoolProblem = {
  database: string | null;
  user: string | null;
  reason: 'clients-waiting' | 'utilization' | 'paused' | 'disabled' | 'max-client-conn';
  severity: 'warn' | 'fail';
  text: string;
};

/** What {@link pools} found. */
export type PoolsData = {
  /** At most 50 pools, the busiest first. */
  pools: PoolView[];
  /** Pools read (the admin console's own left out). */
  poolCount: number;
  /** Client connections PgBouncer holds (`SHOW LISTS` used_clients, this check's own left out). */
  clients: number;
  maxClientConn: number | null;
  warnAt: number;
  maxWaitMs: number;
  problems: PoolProblem[];
};

/** A database of PgBouncer as {@link pools} judges it: whether its traffic is stopped. */
export type PoolDatabaseState = { name: string; paused: boolean; disabled: boolean };

/**
 * What {@link pools} read: every pool with its size and use (the busiest first), the databases' paused and
 * disabled states, and the client connections against `max_client_conn`. Replaying it with another
 * `warnAt` or `maxWait` judges the same pools again.
 */
export type PoolsObservation = {
  /** `false` when `database` is not one of PgBouncer's. */
  databaseFound: boolean;
  pools: PoolView[];
  /** The databases the check looks at (the admin console's left out). */
  databases: PoolDatabaseState[];
  /** Client connections PgBouncer holds, this check's own left out. */
  clients: number;
  maxClientConn: number | null;
};

const KIND = 'pgbouncer.pools';

/**
 * Like `SHOW POOLS` read by someone on call, with each pool's size from `SHOW DATABASES`/`SHOW CONFIG`.
 *
 * - `fail` when a pool's oldest waiting client has waited longer than `maxWait` (`maxwait` + `maxwait_us`):
 *   the pool is exhausted and queries queue.
 * - `warn` when a pool uses more than `warnAt` of its size (`sv_active / pool_size`; exactly `warnAt` is ok),
 *   when PgBouncer holds more than `warnAt` of `max_client_conn` client connections, or when a database is
 *   paused or disabled (its traffic is stopped).
 * - `fail` as well when `database` is not one of PgBouncer's (`SHOW DATABASES`): its clients are refused.
 * - `ok` otherwise.
 *
 * In transaction pooling a server connection is in use (`sv_active`) only while a client's transaction
 * runs; `sv_idle` and `sv_used` connections are free to take.
 *
 * Replayable: `read` asks the console ({@link PoolsObservation}), `judge` applies `warnAt` and `maxWait`.
 */
export function pools(
  bouncer: PgBouncerConsole,
  options: PoolsOptionsInput = {},
): ReplayableCheck<PoolsData, PoolsObservation> {
  const o = parseOptions(KIND, PoolsOptions, options);
  const maxWaitMs = toMillis(o.maxWait);
  return defineCheck({
    kind: KIND,
    description: `PgBouncer ${bouncer.name} pools${o.database ? ` of ${o.database}` : ''}: server connections in use, clients waiting`,
    async read(ctx): Promise<PoolsObservation> {
      const { rows } = await bouncer.showMany(['POOLS', 'DATABASES', 'CONFIG', 'LISTS'], {
        signal: ctx.signal,
      });
      const defaultPoolSize = configValue(rows.CONFIG, 'default_pool_size') ?? 20;
      const maxClientConn = configValue(rows.CONFIG, 'max_client_conn');
      if (o.database && !rows.DATABASES.some((d) => d.name === o.database)) {
        return { databaseFound: false, pools: [], databases: [], clients: 0, maxClientConn };
      }
      const databases = new Map(
        rows.DATABASES.map((r) => parseDatabase(r, defaultPoolSize)).map((d) => [d.name, d]),
      );
      const views = rows.POOLS.map(parsePool)
        .filter((p) => p.database !== ADMIN_DB && (!o.database || p.database === o.database))
        .map((p): PoolView => {
          const db = databases.get(p.database);
          const poolSize = db?.poolSize ?? defaultPoolSize;
          return {
            ...p,
            poolSize,
            reservePool: db?.reservePool ?? 0,
            utilization: poolSize > 0 ? p.svActive / poolSize : null,
            paused: db?.paused ?? false,
            disabled: db?.disabled ?? false,
          };
        })
        .sort(
          (a, b) =>
            b.maxWaitMs - a.maxWaitMs ||
            (b.utilization ?? 0) - (a.utilization ?? 0) ||
            a.database.localeCompare(b.database) ||
            a.user.localeCompare(b.user),
        );

      const usedClients = rows.LISTS.find((r) => r.list === 'used_clients');
      return {
        databaseFound: true,
        pools: views,
        databases: [...databases.values()]
          .filter((db) => db.name !== ADMIN_DB && !(o.database && db.name !== o.database))
          .map((db) => ({ name: db.name, paused: db.paused, disabled: db.disabled })),
        clients: Math.max(0, Number(usedClients?.items ?? 0) - 1),
        maxClientConn,
      };
    },
    judge(seen) {
      const { pools: views, clients, maxClientConn } = seen;
      if (!seen.databaseFound) {
        const data = {
          pools: [],
          poolCount: 0,
          clients: 0,
          maxClientConn,
          warnAt: o.warnAt,
          maxWaitMs,
          problems: [],
        };
        return unknownDatabase(bouncer, o.database ?? '', data);
      }
      const problems: PoolProblem[] = [];
      for (const v of views) {
        const name = `${v.database}/${v.user}`;
        if (v.maxWaitMs > maxWaitMs) {
          problems.push({
            database: v.database,
            user: v.user,
            reason: 'clients-waiting',
            severity: 'fail',
            text: `${name} ${plural(v.clWaiting, 'client')} waiting, the oldest ${formatMillis(v.maxWaitMs)} (limit ${formatMillis(maxWaitMs)}), ${v.svActive}/${v.poolSize} server connections in use`,
          });
        } else if (v.utilization !== null && v.utilization > o.warnAt) {
          problems.push({
            database: v.database,
            user: v.user,
            reason: 'utilization',
            severity: 'warn',
            text: `${name} ${v.svActive}/${v.poolSize} server connections in use (${percent(v.utilization)} > ${percent(o.warnAt)})`,
          });
        }
      }
      for (const db of seen.databases) {
        if (db.paused || db.disabled) {
          const reason = db.paused ? 'paused' : 'disabled';
          problems.push({
            database: db.name,
            user: null,
            reason,
            severity: 'warn',
            text: `database ${db.name} is ${reason}: its traffic is stopped`,
          });
        }
      }
      if (maxClientConn && clients > o.warnAt * maxClientConn) {
        problems.push({
          database: null,
          user: null,
          reason: 'max-client-conn',
          severity: 'warn',
          text: `${clients}/${maxClientConn} client connections (${percent(clients / maxClientConn)} of max_client_conn)`,
        });
      }

      const status: FindingStatus = worstStatus(problems.map((p) => p.severity));
      const busiest = views.find((v) => v.utilization !== null);
      const head =
        views.length === 0
          ? `No pools${o.database ? ` for database ${o.database}` : ''} on PgBouncer ${bouncer.name}`
          : `${plural(views.length, 'pool')} on PgBouncer ${bouncer.name}${busiest ? `, busiest ${busiest.database}/${busiest.user} ${busiest.svActive}/${busiest.poolSize} in use` : ''}`;
      const shown = problems.filter((p) => p.severity === status);
      const data: PoolsData = {
        pools: views.slice(0, MAX_ROWS),
        poolCount: views.length,
        clients,
        maxClientConn,
        warnAt: o.warnAt,
        maxWaitMs,
        problems,
      };
      return finding(status, shown.length ? `${head}: ${listSome(shown.map((p) => p.text))}` : head, data, [
        {
          kind: 'table',
          title: 'SHOW POOLS',
          columns: [
            'database',
            'user',
            'cl_active',
            'cl_waiting',
            'sv_active',
            'sv_idle',
            'sv_used',
            'pool_size',
            'in use',
            'maxwait',
            'pool_mode',
          ],
          rows: views
            .slice(0, MAX_ROWS)
            .map((v): Cell[] => [
              v.database,
              v.user,
              v.clActive,
              v.clWaiting,
              v.svActive,
              v.svIdle,
              v.svUsed,
              v.poolSize,
              v.utilization === null ? null : percent(v.utilization),
              formatMillis(v.maxWaitMs),
              v.poolMode,
            ]),
        },
      ]);
    },
  });
}
