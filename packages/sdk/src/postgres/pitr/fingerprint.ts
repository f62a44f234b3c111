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
   * MD5 over the sorted MD5s of the table's rows as text: independent of physical order and of the
   * collation (hex digests sort the same everywhere), and 32 bytes per row in memory rather than the rows
   * themselves (so tables far beyond `string_agg`'s 1 GB limit work). Reads the whole table.
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
    `SELECT count(*)::text AS rows, md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text) COLLATE "C"), '')) AS checksum FROM ${quoteQualified(table)} AS t`,
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
