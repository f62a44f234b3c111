import type { QueryOptions, Row } from '../database';
import { quoteQualified } from '../database';

/** Anything that runs a query: a {@link PostgresDatabase} or a session of one. */
export interface Queryable {
  query<R extends Row = Row>(sql: string, params?: unknown[], options?: QueryOptions): Promise<{ rows: R[] }>;
}

/** A table's row count and content checksum. */
export interface TableFingerprint {
  rows: number;
  /**
   * MD5 of the table's rows as text, sorted, one per line: independent of physical order, so a table and its
   * restored copy agree exactly when they hold the same rows. Reads the whole table.
   */
  checksum: string;
}

/**
 * Counts a table's rows and computes its {@link TableFingerprint.checksum}, the value `verify.tables[].expectedChecksum`
 * of a point-in-time restore compares with. `table` is `name` or `schema.name` (quoted as identifiers).
 */
export async function tableFingerprint(
  db: Queryable,
  table: string,
  options: QueryOptions = {},
): Promise<TableFingerprint> {
  const { rows } = await db.query<{ rows: string; checksum: string }>(
    `SELECT count(*)::text AS rows, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) AS checksum FROM ${quoteQualified(table)} AS t`,
    [],
    options,
  );
  const row = rows[0] as { rows: string; checksum: string };
  return { rows: Number(row.rows), checksum: row.checksum };
}

/** Counts a table's rows. */
export async function tableRowCount(
  db: Queryable,
  table: string,
  options: QueryOptions = {},
): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*)::text AS n FROM ${quoteQualified(table)}`,
    [],
    options,
  );
  return Number((rows[0] as { n: string }).n);
}
