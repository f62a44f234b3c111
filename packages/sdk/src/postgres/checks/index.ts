/**
 * PostgreSQL checks: read-only diagnoses over a {@link PostgresDatabase}, one per look the manual's database
 * runbooks take (connection loss, performance, disaster recovery), plus {@link sqlCheck} for the
 * application's own queries.
 */

export {
  type ActiveQueriesData,
  type ActiveQueriesObservation,
  ActiveQueriesOptions,
  type ActiveQueriesOptionsInput,
  activeQueries,
  type PreparedTransaction,
  type RootBlocker,
} from './active-queries';
export {
  type ArchiverStatusData,
  type ArchiverStatusObservation,
  ArchiverStatusOptions,
  type ArchiverStatusOptionsInput,
  archiverStatus,
} from './archiver-status';
export type { BlockingChain } from './blocking';
export {
  type ConnectionGroup,
  type ConnectionHolder,
  type ConnectionUsageData,
  type ConnectionUsageObservation,
  ConnectionUsageOptions,
  type ConnectionUsageOptionsInput,
  connectionUsage,
} from './connection-usage';
export {
  type ConnectivityData,
  type ConnectivityObservation,
  ConnectivityOptions,
  type ConnectivityOptionsInput,
  connectivity,
} from './connectivity';
export {
  type DatabaseSize,
  type DatabaseSizesData,
  type DatabaseSizesObservation,
  DatabaseSizesOptions,
  type DatabaseSizesOptionsInput,
  databaseSizes,
} from './database-sizes';
export {
  type IdleInTransactionData,
  type IdleInTransactionObservation,
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
  type SlowQueriesObservation,
  SlowQueriesOptions,
  type SlowQueriesOptionsInput,
  type SlowStatement,
  type SlowStatementRead,
  slowQueries,
} from './slow-queries';
export {
  type SqlCheckData,
  type SqlCheckObservation,
  SqlCheckOptions,
  type SqlCheckOptionsInput,
  sqlCheck,
} from './sql-check';
export {
  type TableRead,
  type TableSize,
  type TableSizesData,
  type TableSizesObservation,
  TableSizesOptions,
  type TableSizesOptionsInput,
  tableSizes,
} from './table-sizes';
export {
  type UnusedIndex,
  type UnusedIndexesData,
  type UnusedIndexesObservation,
  UnusedIndexesOptions,
  type UnusedIndexesOptionsInput,
  unusedIndexes,
} from './unused-indexes';
