/** Something that runs parameterized SQL (`$1`, `$2`, …) and returns rows. */
export interface Queryable {
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<R[]>;
}

/** A database connection (or pool) the run store speaks through. Two exist: PostgreSQL (`pg`) and PGlite. */
export interface SqlDriver extends Queryable {
  readonly dialect: 'postgres' | 'pglite';
  /**
   * Runs a statement whose commit need not wait for the WAL flush (`synchronous_commit = off`): for writes
   * the engine can lose in a database crash and safely redo (see RunStore). Same as `query` where the driver
   * has no such mode.
   */
  queryRelaxed<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;

/** Checks a schema name before it is put into `search_path` (it cannot be a bind parameter there). */
export function assertSchemaName(schema: string): string {
  if (!SCHEMA_PATTERN.test(schema)) {
    throw new TypeError(
      `Invalid store schema "${schema}": use lowercase letters, digits and "_" (at most 63 characters), starting with a letter or "_".`,
    );
  }
  return schema;
}
