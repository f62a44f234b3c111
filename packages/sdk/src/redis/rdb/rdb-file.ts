import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Crc64, hex64 } from './crc64';

/**
 * The metadata fields of an RDB file's header (`AUX` opcodes) that are kept. Others are skipped unread: old
 * versions store Lua script sources in an `AUX lua` field, and nothing from a dump's data belongs in evidence.
 */
const KEPT_AUX = new Set(['redis-ver', 'redis-bits', 'ctime', 'used-mem', 'aof-base']);

/** What the header of an RDB file says about who wrote it. */
export type RdbAux = {
  /** `redis-ver`: the version of the server that wrote it. */
  redisVersion: string | null;
  /** `redis-bits`: 32 or 64. */
  bits: number | null;
  /** `ctime`: when it was written (RFC 3339). */
  createdAt: string | null;
  /** `used-mem`: the server's used memory when it wrote the file: about what loading it takes. */
  usedMemBytes: number | null;
  /** `aof-base`: 1 when this is the base of a multi-part AOF rather than a snapshot. */
  aofBase: boolean | null;
};

/** What {@link inspectRdbFile} read. */
export type RdbFileInfo = {
  sizeBytes: number;
  /** The 5-byte signature, `REDIS` for a Redis dump (shown escaped when it is not text). */
  magic: string;
  /** The 4-digit format version after it; `null` when the signature is wrong. */
  version: number | null;
  aux: RdbAux;
  /** Whether the byte before the checksum is the EOF opcode (0xFF): a cut file usually ends elsewhere. */
  endsWithEof: boolean;
  /** The CRC-64 stored in the last 8 bytes (hex); `null` for formats before version 5, which have none. */
  storedChecksum: string | null;
  /** The CRC-64 of everything before them; `null` when not computed (no checksum to compare, or a bad header). */
  computedChecksum: string | null;
};

/** Smallest valid file: 9-byte header, the EOF opcode, an 8-byte checksum. */
export const MIN_RDB_SIZE = 18;

/**
 * Reads an RDB file's header and the metadata fields it keeps (see {@link RdbAux}), then streams the whole
 * file through CRC-64 to compare with the stored checksum (version 5 and later). Never decodes keys or values.
 * Throws the file system's error when the file cannot be read; the caller checks the size first.
 */
export async function inspectRdbFile(path: string, signal?: AbortSignal): Promise<RdbFileInfo> {
  const handle = await open(path, 'r');
  let head: Buffer;
  let tail: Buffer;
  let sizeBytes: number;
  try {
    sizeBytes = (await handle.stat()).size;
    head = Buffer.alloc(Math.min(sizeBytes, 64 * 1024));
    await handle.read(head, 0, head.length, 0);
    tail = Buffer.alloc(Math.min(sizeBytes, 9));
    await handle.read(tail, 0, tail.length, sizeBytes - tail.length);
  } finally {
    await handle.close();
  }
  const magic = printable(head.subarray(0, 5));
  const digits = head.subarray(5, 9).toString('latin1');
  const version = magic === 'REDIS' && /^\d{4}$/.test(digits) ? Number(digits) : null;
  const info: RdbFileInfo = {
    sizeBytes,
    magic,
    version,
    aux: version === null ? emptyAux() : readAux(head.subarray(9)),
    endsWithEof: tail.length === 9 && tail[0] === 0xff,
    storedChecksum: null,
    computedChecksum: null,
  };
  if (version !== null && version >= 5 && sizeBytes >= MIN_RDB_SIZE) {
    info.storedChecksum = hex64(tail.readBigUInt64LE(tail.length - 8));
    info.computedChecksum = hex64(await checksumOf(path, sizeBytes - 8, signal));
  }
  return info;
}

/** CRC-64 of the first `length` bytes of the file, streamed. */
async function checksumOf(path: string, length: number, signal?: AbortSignal): Promise<bigint> {
  const crc = new Crc64();
  if (length <= 0) return crc.digest();
  const stream = createReadStream(path, {
    start: 0,
    end: length - 1,
    highWaterMark: 1024 * 1024,
    ...(signal ? { signal } : {}),
  });
  for await (const chunk of stream) crc.update(chunk as Buffer);
  return crc.digest();
}

function emptyAux(): RdbAux {
  return { redisVersion: null, bits: null, createdAt: null, usedMemBytes: null, aofBase: null };
}

const OPCODE_AUX = 0xfa;

/** The `AUX` fields at the start of the body, until the first other opcode; stops quietly at anything odd. */
function readAux(body: Buffer): RdbAux {
  const aux = emptyAux();
  const reader = new Reader(body);
  try {
    while (reader.more() && reader.peek() === OPCODE_AUX) {
      reader.skip(1);
      const key = reader.string();
      const keep = key !== null && KEPT_AUX.has(key.toString('latin1'));
      const value = reader.string(!keep);
      if (!keep || value === null) continue;
      const text = value.toString('utf8');
      switch (key.toString('latin1')) {
        case 'redis-ver':
          aux.redisVersion = /^[\w.+-]{1,32}$/.test(text) ? text : null;
          break;
        case 'redis-bits':
          aux.bits = intOf(text);
          break;
        case 'ctime': {
          const seconds = intOf(text);
          aux.createdAt = seconds === null ? null : new Date(seconds * 1_000).toISOString();
          break;
        }
        case 'used-mem':
          aux.usedMemBytes = intOf(text);
          break;
        case 'aof-base':
          aux.aofBase = text === '1';
          break;
      }
    }
  } catch {
    // A header cut short (a truncated file) or unknown encoding: what was read stands, the checksum judges.
  }
  return aux;
}

function intOf(text: string): number | null {
  return /^-?\d{1,16}$/.test(text) ? Number(text) : null;
}

/** A cursor over the header bytes, decoding RDB length-encoded strings. Throws a RangeError past the end. */
class Reader {
  #at = 0;
  constructor(private readonly bytes: Buffer) {}

  more(): boolean {
    return this.#at < this.bytes.length;
  }

  peek(): number {
    return this.#byte(this.#at);
  }

  skip(n: number): void {
    this.#need(n);
    this.#at += n;
  }

  /**
   * One string: raw (`len` then bytes), an integer encoding (as its decimal text), or LZF-compressed (skipped:
   * `null`). With `discard`, the bytes are stepped over and `null` returned.
   */
  string(discard = false): Buffer | null {
    const first = this.#byte(this.#at++);
    const kind = first >> 6;
    if (kind === 3) {
      const encoding = first & 0x3f;
      if (encoding <= 2) {
        const width = 1 << encoding;
        this.#need(width);
        const n =
          width === 1
            ? this.bytes.readInt8(this.#at)
            : width === 2
              ? this.bytes.readInt16LE(this.#at)
              : this.bytes.readInt32LE(this.#at);
        this.#at += width;
        return discard ? null : Buffer.from(String(n));
      }
      if (encoding === 3) {
        const compressed = this.#length();
        this.#length(); // uncompressed length
        this.skip(compressed);
        return null;
      }
      throw new RangeError(`unknown string encoding ${encoding}`);
    }
    this.#at--;
    const length = this.#length();
    this.#need(length);
    const value = discard ? null : this.bytes.subarray(this.#at, this.#at + length);
    this.#at += length;
    return value;
  }

  /** A length: 6 bits, 14 bits, or a 32/64-bit big-endian number after a marker byte. */
  #length(): number {
    const first = this.#byte(this.#at++);
    switch (first >> 6) {
      case 0:
        return first & 0x3f;
      case 1:
        return ((first & 0x3f) << 8) | this.#byte(this.#at++);
      case 2: {
        if (first === 0x80) {
          this.#need(4);
          const n = this.bytes.readUInt32BE(this.#at);
          this.#at += 4;
          return n;
        }
        if (first === 0x81) {
          this.#need(8);
          const n = Number(this.bytes.readBigUInt64BE(this.#at));
          this.#at += 8;
          return n;
        }
        throw new RangeError(`unknown length marker ${first}`);
      }
      default:
        throw new RangeError('an encoded value where a length was expected');
    }
  }

  #byte(at: number): number {
    const b = this.bytes[at];
    if (b === undefined) throw new RangeError('past the end of the header');
    return b;
  }

  #need(n: number): void {
    if (this.#at + n > this.bytes.length) throw new RangeError('past the end of the header');
  }
}

/** Bytes as text, non-printable ones as `\xNN`. */
function printable(bytes: Buffer): string {
  let out = '';
  for (const b of bytes)
    out += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return out;
}
