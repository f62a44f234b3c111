/**
 * PostgreSQL checks: read-only diagnoses over a {@link PostgresDatabase}, one per look the manual's database
 * runbooks take (connection loss, performance, disaster recovery), plus {@link sqlCheck} for the
 * application's own queries.
 */

export {
  type ActiveQueriesData,
  ActiveQueriesOptions,
  type ActiveQueriesOptionsInput,
  activeQueries,
  type PreparedTransaction,
  type RootBlocker,
} from './active-queries';
export {
  type ArchiverStatusData,
  ArchiverStatusOptions,
  type ArchiverStatusOptionsInput,
  archiverStatus,
} from './archiver-status';
export type { BlockingChain } from './blocking';
export {
  type ConnectionHolder,
  type ConnectionUsageData,
  ConnectionUsageOptions,
  type ConnectionUsageOptionsInput,
  connectionUsage,
} from './connection-usage';
export {
  type ConnectivityData,
  ConnectivityOptions,
  type ConnectivityOptionsInput,
  connectivity,
} from './connectivity';
export {
  type DatabaseSize,
  type DatabaseSizesData,
  DatabaseSizesOptions,
  type DatabaseSizesOptionsInput,
  databaseSizes,
} from './database-sizes';
export {
  type IdleInTransactionData,
  IdleInTransactionOptions,
  type IdleInTransactionOptionsInput,
  type IdleTransaction,
  idleInTransaction,
} from './idle-in-transaction';
export { type InvalidIndex, type InvalidIndexesData, invalidIndexes } from './invalid-indexes';
export { Size, toBytes } from './options';
export type { SessionView } from './session-view';
export {
  type SlowQueriesData,
  SlowQueriesOptions,
  type SlowQueriesOptionsInput,
  type SlowStatement,
  slowQueries,
} from './slow-queries';
export { type SqlCheckData, SqlCheckOptions, type SqlCheckOptionsInput, sqlCheck } from './sql-check';
export {
  type TableSize,
  type TableSizesData,
  TableSizesOptions,
  type TableSizesOptionsInput,
  tableSizes,
} from './table-sizes';
export {
  type UnusedIndex,
  type UnusedIndexesData,
  UnusedIndexesOptions,
  type UnusedIndexesOptionsInput,
  unusedIndexes,
} from './unused-indexes';
