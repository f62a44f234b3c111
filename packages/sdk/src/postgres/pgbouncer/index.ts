/**
 * PgBouncer primitives over its admin console (`postgres://user@host:port/pgbouncer`): checks of pools, stats
 * and clients, and the PAUSE / RESUME / RECONNECT actions with plan, apply, verify (and revert for pause).
 *
 * ```ts
 * const bouncer = pgbouncer({ url: 'postgres://pgbouncer_admin@pgbouncer:6432/pgbouncer' });
 * await step.check('pools', bouncer.pools({ warnAt: 0.8, maxWait: '1s' }));
 * await step.act('reconnect', bouncer.reconnect({ database: 'aiwebtest' }));
 * ```
 */

import { type ClientsOptionsInput, clients } from './clients';
import { connectPgBouncer, PgBouncerConsole, type PgBouncerOptionsInput } from './console';
import { type PauseOptionsInput, pause, type ResumeOptionsInput, resume } from './pause';
import { type PoolsOptionsInput, pools } from './pools';
import { type ReconnectOptionsInput, reconnect } from './reconnect';
import { type StatsOptionsInput, stats } from './stats';

/**
 * Every PgBouncer check and action bound to one admin console: `bouncer.pools({...})` instead of
 * `pools(console, {...})`. Pass options (validated; a bad field is named) or a connected console.
 */
export function pgbouncer(options: PgBouncerOptionsInput | PgBouncerConsole) {
  const bouncer = options instanceof PgBouncerConsole ? options : connectPgBouncer(options);
  return {
    console: bouncer,
    // checks
    pools: (o: PoolsOptionsInput = {}) => pools(bouncer, o),
    stats: (o: StatsOptionsInput = {}) => stats(bouncer, o),
    clients: (o: ClientsOptionsInput = {}) => clients(bouncer, o),
    // actions
    pause: (o: PauseOptionsInput = {}) => pause(bouncer, o),
    resume: (o: ResumeOptionsInput = {}) => resume(bouncer, o),
    reconnect: (o: ReconnectOptionsInput = {}) => reconnect(bouncer, o),
  };
}

export {
  type ClientsData,
  type ClientsObservation,
  ClientsOptions,
  type ClientsOptionsInput,
  type ClientView,
  clients,
} from './clients';
export {
  adminCommand,
  type ConsoleCallOptions,
  type ConsoleRow,
  connectPgBouncer,
  isPgBouncerError,
  type PauseState,
  PgBouncerConsole,
  type PgBouncerDatabase,
  PgBouncerDatabaseName,
  PgBouncerError,
  PgBouncerOptions,
  type PgBouncerOptionsInput,
  type PgBouncerPool,
  type PgBouncerSocket,
  type PgBouncerStatsRow,
  type ShowSubject,
} from './console';
export {
  type PauseApplied,
  PauseOptions,
  type PauseOptionsInput,
  type PauseParams,
  pause,
  ResumeOptions,
  type ResumeOptionsInput,
  type ResumeParams,
  resume,
} from './pause';
export {
  type PoolDatabaseState,
  type PoolProblem,
  type PoolsData,
  type PoolsObservation,
  PoolsOptions,
  type PoolsOptionsInput,
  type PoolView,
  pools,
} from './pools';
export {
  type ReconnectApplied,
  ReconnectOptions,
  type ReconnectOptionsInput,
  type ReconnectParams,
  reconnect,
  type ServerConnection,
} from './reconnect';
export {
  type DatabaseStats,
  type StatsData,
  type StatsObservation,
  StatsOptions,
  type StatsOptionsInput,
  stats,
} from './stats';
