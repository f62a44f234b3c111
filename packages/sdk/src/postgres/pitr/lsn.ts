import { z } from 'zod';

/** A WAL location as PostgreSQL prints it: two hex numbers, `16/B374D848`. */
export const Lsn = z
  .string()
  .regex(/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/, 'expected a WAL location such as "0/3000148"');
export type Lsn = z.infer<typeof Lsn>;

/** The byte position of an LSN, for comparisons. */
export function lsnValue(lsn: string): bigint {
  const [high, low] = lsn.split('/');
  if (
    high === undefined ||
    low === undefined ||
    !/^[0-9A-F]{1,8}$/i.test(high) ||
    !/^[0-9A-F]{1,8}$/i.test(low)
  ) {
    throw new RangeError(`Invalid WAL location "${lsn}": expected two hex numbers such as "0/3000148".`);
  }
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}

/** The canonical (upper-case) spelling of an LSN. */
export function normalizeLsn(lsn: string): string {
  const value = lsnValue(lsn);
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}
