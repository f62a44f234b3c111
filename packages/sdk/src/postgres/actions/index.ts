/**
 * PostgreSQL actions: signal backends, build and rebuild indexes, vacuum, refresh materialized views, set
 * statement timeouts, and guarded data fixes. Each takes the {@link PostgresDatabase} first.
 */

export {
  BackendFilter,
  BackendState,
  type BackendsApplied,
  type BackendsParams,
  CancelBackendsOptions,
  type CancelBackendsOptionsInput,
  cancelBackends,
  type PlannedBackend,
  TerminateBackendsOptions,
  type TerminateBackendsOptionsInput,
  terminateBackends,
} from './backends';
export {
  type CreateIndexApplied,
  CreateIndexOptions,
  type CreateIndexOptionsInput,
  type CreateIndexParams,
  createIndexConcurrently,
  IndexColumn,
  IndexCondition,
} from './create-index';
export {
  RefreshMaterializedViewOptions,
  type RefreshMaterializedViewOptionsInput,
  type RefreshMaterializedViewParams,
  refreshMaterializedView,
} from './refresh-materialized-view';
export {
  type PlannedIndex,
  ReindexOptions,
  type ReindexOptionsInput,
  type ReindexParams,
  reindexConcurrently,
} from './reindex';
export {
  Identifier,
  type QualifiedName,
  RelationName,
  type RelationNameInput,
  relationRef,
} from './relations';
export {
  SetStatementTimeoutOptions,
  type SetStatementTimeoutOptionsInput,
  type SetStatementTimeoutParams,
  setStatementTimeout,
} from './set-statement-timeout';
export {
  type SqlActionApplied,
  SqlActionOptions,
  type SqlActionOptionsInput,
  type SqlActionParams,
  type SqlKey,
  SqlStatement,
  sqlAction,
} from './sql-action';
export {
  VacuumAnalyzeOptions,
  type VacuumAnalyzeOptionsInput,
  type VacuumAnalyzeParams,
  vacuumAnalyze,
} from './vacuum-analyze';
