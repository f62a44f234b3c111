/**
 * CRC-64/Jones, the checksum Redis writes at the end of an RDB file (and of `DUMP` payloads): polynomial
 * 0xad93d23594c935a9, reflected in and out, initial value 0, no final xor. `crc64("123456789")` is
 * 0xe9c6d914c4b8d9ca.
 *
 * 64-bit values are kept as two 32-bit halves (BigInt arithmetic per byte would be two orders of magnitude
 * slower), and eight bytes are folded per step with eight tables ("slicing-by-8"), so a multi-gigabyte dump
 * is checked at disk speed.
 */

/** The reflected form of the Jones polynomial. */
const POLY_REFLECTED = 0x95ac9329ac4bc9b5n;

/** `TABLES[k]` holds 256 entries of [lo, hi] pairs: the CRC of a byte followed by `k` zero bytes. */
const TABLES: Uint32Array[] = buildTables();

function buildTables(): Uint32Array[] {
  const t0 = new Uint32Array(512);
  for (let n = 0; n < 256; n++) {
    let crc = BigInt(n);
    for (let bit = 0; bit < 8; bit++) crc = crc & 1n ? (crc >> 1n) ^ POLY_REFLECTED : crc >> 1n;
    t0[2 * n] = Number(crc & 0xffffffffn);
    t0[2 * n + 1] = Number(crc >> 32n);
  }
  const tables = [t0];
  for (let k = 1; k < 8; k++) {
    const prev = tables[k - 1] as Uint32Array;
    const next = new Uint32Array(512);
    for (let n = 0; n < 256; n++) {
      const lo = prev[2 * n] as number;
      const hi = prev[2 * n + 1] as number;
      const i = lo & 0xff;
      next[2 * n] = ((lo >>> 8) | (hi << 24)) ^ (t0[2 * i] as number);
      next[2 * n + 1] = (hi >>> 8) ^ (t0[2 * i + 1] as number);
    }
    tables.push(next);
  }
  return tables;
}

/** An incremental CRC-64/Jones: `update()` with consecutive chunks, then `digest()`. */
export class Crc64 {
  #lo = 0;
  #hi = 0;

  /** Adds `data` to the checksum. */
  update(data: Uint8Array): this {
    const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES as [
      Uint32Array,
      Uint32Array,
      Uint32Array,
      Uint32Array,
      Uint32Array,
      Uint32Array,
      Uint32Array,
      Uint32Array,
    ];
    let lo = this.#lo;
    let hi = this.#hi;
    let i = 0;
    const end8 = data.length - (data.length % 8);
    for (; i < end8; i += 8) {
      lo ^=
        (data[i] as number) |
        ((data[i + 1] as number) << 8) |
        ((data[i + 2] as number) << 16) |
        ((data[i + 3] as number) << 24);
      hi ^=
        (data[i + 4] as number) |
        ((data[i + 5] as number) << 8) |
        ((data[i + 6] as number) << 16) |
        ((data[i + 7] as number) << 24);
      const a = 2 * (lo & 0xff);
      const b = 2 * ((lo >>> 8) & 0xff);
      const c = 2 * ((lo >>> 16) & 0xff);
      const d = 2 * (lo >>> 24);
      const e = 2 * (hi & 0xff);
      const f = 2 * ((hi >>> 8) & 0xff);
      const g = 2 * ((hi >>> 16) & 0xff);
      const h = 2 * (hi >>> 24);
      lo =
        (t7[a] as number) ^
        (t6[b] as number) ^
        (t5[c] as number) ^
        (t4[d] as number) ^
        (t3[e] as number) ^
        (t2[f] as number) ^
        (t1[g] as number) ^
        (t0[h] as number);
      hi =
        (t7[a + 1] as number) ^
        (t6[b + 1] as number) ^
        (t5[c + 1] as number) ^
        (t4[d + 1] as number) ^
        (t3[e + 1] as number) ^
        (t2[f + 1] as number) ^
        (t1[g + 1] as number) ^
        (t0[h + 1] as number);
    }
    for (; i < data.length; i++) {
      const n = 2 * ((lo ^ (data[i] as number)) & 0xff);
      lo = ((lo >>> 8) | (hi << 24)) ^ (t0[n] as number);
      hi = (hi >>> 8) ^ (t0[n + 1] as number);
    }
    this.#lo = lo;
    this.#hi = hi;
    return this;
  }

  /** The checksum of everything added so far. */
  digest(): bigint {
    return (BigInt(this.#hi >>> 0) << 32n) | BigInt(this.#lo >>> 0);
  }
}

/** CRC-64/Jones of `data` in one call. */
export function crc64(data: Uint8Array): bigint {
  return new Crc64().update(data).digest();
}

/** A 64-bit value as 16 hex digits, the way checksums are shown in data and evidence. */
export function hex64(value: bigint): string {
  return value.toString(16).padStart(16, '0');
}
