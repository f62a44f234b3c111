/**
 * @aiwebtest/runbooks/postgres — checks and actions over `pg` for the manual's database runbooks
 * (connection loss, slow queries, disaster recovery), PgBouncer's admin console, and point-in-time restore.
 */
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
