/**
 * `@aiwebtest/runbooks/postgres` — checks and actions over `pg` for the manual's database runbooks
 * (connection loss, slow queries, disaster recovery), PgBouncer's admin console, and point-in-time restore.
 *
 * ```ts
 * const pg = postgres({ url: process.env.DATABASE_URL! });
 * const blocked = await step.check('blocking', pg.activeQueries({ failAfter: '5m' }));
 * await step.act('terminate', pg.terminateBackends({ filter: { minDuration: '5m' } }));
 * ```
 *
 * @module \@aiwebtest/runbooks/postgres
 */

import {
  type CancelBackendsOptionsInput,
  type CreateIndexOptionsInput,
  cancelBackends,
  createIndexConcurrently,
  type RefreshMaterializedViewOptionsInput,
  type ReindexOptionsInput,
  refreshMaterializedView,
  reindexConcurrently,
  type SetStatementTimeoutOptionsInput,
  type SqlActionOptionsInput,
  setStatementTimeout,
  sqlAction,
  type TerminateBackendsOptionsInput,
  terminateBackends,
  type VacuumAnalyzeOptionsInput,
  vacuumAnalyze,
} from './actions';
import {
  type ActiveQueriesOptionsInput,
  type ArchiverStatusOptionsInput,
  activeQueries,
  archiverStatus,
  type ConnectionUsageOptionsInput,
  type ConnectivityOptionsInput,
  connectionUsage,
  connectivity,
  type DatabaseSizesOptionsInput,
  databaseSizes,
  type IdleInTransactionOptionsInput,
  idleInTransaction,
  invalidIndexes,
  type SlowQueriesOptionsInput,
  type SqlCheckOptionsInput,
  slowQueries,
  sqlCheck,
  type TableSizesOptionsInput,
  tableSizes,
  type UnusedIndexesOptionsInput,
  unusedIndexes,
} from './checks';
import { connectPostgres, PostgresDatabase, type PostgresOptionsInput } from './database';

/**
 * Every PostgreSQL check and action bound to one database: `pg.activeQueries()` instead of
 * `activeQueries(db)`. Pass options (validated; a bad field is named) or a connected database.
 * PgBouncer has its own binder, {@link pgbouncer}; restores are {@link pitrRestore}.
 */
export function postgres(options: PostgresOptionsInput | PostgresDatabase) {
  const db = options instanceof PostgresDatabase ? options : connectPostgres(options);
  return {
    db,
    // checks
    activeQueries: (o: ActiveQueriesOptionsInput = {}) => activeQueries(db, o),
    archiverStatus: (o: ArchiverStatusOptionsInput = {}) => archiverStatus(db, o),
    connectionUsage: (o: ConnectionUsageOptionsInput = {}) => connectionUsage(db, o),
    connectivity: (o: ConnectivityOptionsInput = {}) => connectivity(db, o),
    databaseSizes: (o: DatabaseSizesOptionsInput = {}) => databaseSizes(db, o),
    idleInTransaction: (o: IdleInTransactionOptionsInput = {}) => idleInTransaction(db, o),
    invalidIndexes: () => invalidIndexes(db),
    slowQueries: (o: SlowQueriesOptionsInput = {}) => slowQueries(db, o),
    sqlCheck: (o: SqlCheckOptionsInput) => sqlCheck(db, o),
    tableSizes: (o: TableSizesOptionsInput = {}) => tableSizes(db, o),
    unusedIndexes: (o: UnusedIndexesOptionsInput = {}) => unusedIndexes(db, o),
    // actions
    terminateBackends: (o: TerminateBackendsOptionsInput) => terminateBackends(db, o),
    cancelBackends: (o: CancelBackendsOptionsInput) => cancelBackends(db, o),
    createIndexConcurrently: (o: CreateIndexOptionsInput) => createIndexConcurrently(db, o),
    reindexConcurrently: (o: ReindexOptionsInput) => reindexConcurrently(db, o),
    vacuumAnalyze: (o: VacuumAnalyzeOptionsInput) => vacuumAnalyze(db, o),
    refreshMaterializedView: (o: RefreshMaterializedViewOptionsInput) => refreshMaterializedView(db, o),
    setStatementTimeout: (o: SetStatementTimeoutOptionsInput) => setStatementTimeout(db, o),
    sqlAction: (o: SqlActionOptionsInput) => sqlAction(db, o),
  };
}
/** What {@link postgres} returns. */
export type Postgres = ReturnType<typeof postgres>;

export * from './actions';
export * from './checks';
export {
  connectPostgres,
  isPostgresError,
  PostgresDatabase,
  PostgresError,
  PostgresOptions,
  type PostgresOptionsInput,
  type QueryOptions,
  quoteIdent,
  quoteQualified,
  type Row,
  type Session,
} from './database';
export * from './pgbouncer';
export * from './pitr';
