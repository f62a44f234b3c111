import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rdbRestoreReadiness } from '../../src/redis/checks';
import { connectRedis, type RedisInstance } from '../../src/redis/connection';
import { filterLines } from '../../src/redis/rdb/check-rdb';
import { crc64, hex64 } from '../../src/redis/rdb/crc64';
import { inspectRdbFile } from '../../src/redis/rdb/rdb-file';
import { maxRdbVersion } from '../../src/redis/rdb/versions';
import { stepContext } from '../support/kubernetes';
import { startTestRedis, type TestRedis } from '../support/redis-server';

// RDB files as a real Redis 7.0 writes them, checked by our CRC-64 and by `redis-check-rdb`, and whether they
// can be restored into a server: a good dump, and truncated, corrupted, newer-format and non-RDB files.

const run = promisify(execFile);
const ctx = () => stepContext();
const SECRET_KEY = 'session:tok-4f1c9a';
const SECRET_VALUE = 'hunter2-very-secret-value';

let server: TestRedis;
let r: RedisInstance;
let work: string;
let dump: string;

beforeAll(async () => {
  server = await startTestRedis();
  r = connectRedis({ url: server.url });
  await server.admin.set(SECRET_KEY, SECRET_VALUE);
  await server.admin.rpush('agent:requests:queue', 'a', 'b', 'c');
  await server.admin.hset('h', { field: 'v'.repeat(100) });
  await server.admin.save();
  work = await mkdtemp(join(tmpdir(), 'runbook-rdb-'));
  dump = join(work, 'snapshot.rdb');
  await copyFile(join(server.dir, 'dump.rdb'), dump);
});

afterAll(async () => {
  await r?.close();
  await server?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** A copy of the good dump, changed by `edit`. */
async function variant(name: string, edit: (bytes: Buffer) => Buffer): Promise<string> {
  const path = join(work, name);
  await writeFile(path, edit(await readFile(dump)));
  return path;
}

/** The bytes with their trailing checksum recomputed, as a newer Redis would have written them. */
function resealed(bytes: Buffer): Buffer {
  const body = bytes.subarray(0, bytes.length - 8);
  const sum = Buffer.alloc(8);
  sum.writeBigUInt64LE(crc64(body));
  return Buffer.concat([body, sum]);
}

describe('CRC-64/Jones', () => {
  it('matches the check value of the Jones model', () => {
    expect(hex64(crc64(Buffer.from('123456789')))).toBe('e9c6d914c4b8d9ca');
    expect(hex64(crc64(Buffer.alloc(0)))).toBe('0000000000000000');
  });

  it('agrees with redis-check-rdb on a real dump: equal when it says OK, different when it says CRC error', async () => {
    const info = await inspectRdbFile(dump);
    expect(info.storedChecksum).toBe(info.computedChecksum);
    expect((await run('redis-check-rdb', [dump])).stdout).toContain('Checksum OK');

    // One byte of a value changed: the structure still parses, only the checksum can tell.
    const bytes = await readFile(dump);
    const at = bytes.indexOf(SECRET_VALUE) + 3;
    const flipped = await variant('flipped.rdb', (b) => {
      const copy = Buffer.from(b);
      copy[at] = (copy[at] as number) ^ 0x01;
      return copy;
    });
    const bad = await inspectRdbFile(flipped);
    expect(bad.storedChecksum).toBe(info.storedChecksum);
    expect(bad.computedChecksum).not.toBe(bad.storedChecksum);
    const checked = await run('redis-check-rdb', [flipped]).catch((e: { stdout: string }) => e);
    expect(checked.stdout).toContain('RDB CRC error');
    // And recomputing the checksum our way makes redis-check-rdb accept the changed file.
    const resealedPath = await variant('resealed.rdb', (b) =>
      resealed(Buffer.from(b.map((x, i) => (i === at ? x ^ 0x01 : x)))),
    );
    expect((await run('redis-check-rdb', [resealedPath])).stdout).toContain('RDB looks OK');
  });

  it('reads the header: version and who wrote it, nothing of the data', async () => {
    const info = await inspectRdbFile(dump);
    expect(info).toMatchObject({ magic: 'REDIS', version: 10, endsWithEof: true });
    expect(info.aux).toMatchObject({
      redisVersion: expect.stringMatching(/^7\.0\./),
      bits: 64,
      aofBase: false,
    });
    expect(info.aux.usedMemBytes).toBeGreaterThan(100_000);
    expect(Date.parse(info.aux.createdAt ?? '')).toBeGreaterThan(Date.now() - 600_000);
    expect(JSON.stringify(info)).not.toMatch(/session|hunter2|agent:requests/);
  });
});

describe('rdbRestoreReadiness', () => {
  it('ok for a good dump: version, checksum and redis-check-rdb pass; says where it goes and that it fits', async () => {
    const f = await rdbRestoreReadiness(r, { path: dump }).run(ctx());
    expect(f.status).toBe('ok');
    expect(f.data).toMatchObject({
      serverVersion: expect.stringMatching(/^7\.0\./),
      serverMaxRdb: 10,
      serverMaxRdbAssumed: false,
      targetDir: server.dir,
      targetFile: join(server.dir, 'dump.rdb'),
      aofEnabled: false,
      savePoints: '',
      checkRdb: { ran: true, ok: true, exitCode: 0 },
    });
    expect(f.data.freeBytes).toBeGreaterThan(f.data.file?.sizeBytes ?? 0);
    expect(f.data.checks.map((c) => [c.check, c.status])).toEqual([
      ['file', 'ok'],
      ['format', 'ok'],
      ['version', 'ok'],
      ['checksum', 'ok'],
      ['redis-check-rdb', 'ok'],
      ['target', 'ok'],
      ['disk', 'ok'],
    ]);
    expect(f.summary).toMatch(
      new RegExp(
        `^snapshot\\.rdb \\(RDB 10, \\d+B\\) can be restored into Redis 7\\.0\\.\\d+ at 127\\.0\\.0\\.1:${server.port}/0: copy it to ${server.dir}/dump\\.rdb$`,
      ),
    );
    const everything = JSON.stringify(f);
    expect(everything).not.toContain(SECRET_KEY);
    expect(everything).not.toContain(SECRET_VALUE);
  });

  it('fail for a truncated file', async () => {
    const path = join(work, 'truncated.rdb');
    await copyFile(dump, path);
    await truncate(path, (await readFile(dump)).length - 5);
    const f = await rdbRestoreReadiness(r, { path }).run(ctx());
    expect(f.status).toBe('fail');
    expect(f.data.checks.filter((c) => c.status === 'fail').map((c) => c.check)).toEqual([
      'checksum',
      'redis-check-rdb',
    ]);
    expect(f.summary).toMatch(
      /cannot be restored .*checksum: no EOF marker before the checksum: the file is truncated or corrupted; redis-check-rdb: Unexpected EOF reading RDB file/,
    );
  });

  it('fail for a corrupted file, without any key name from redis-check-rdb’s report in the evidence', async () => {
    const bytes = await readFile(dump);
    const at = bytes.indexOf(Buffer.from('agent:requests:queue')) + 'agent:requests:queue'.length;
    // The list's encoding byte right after its key name: the structure breaks there.
    const path = await variant('corrupted.rdb', (b) => {
      const copy = Buffer.from(b);
      copy[at] = 0xfe;
      copy[at + 1] = 0xfe;
      return copy;
    });
    const f = await rdbRestoreReadiness(r, { path }).run(ctx());
    expect(f.status).toBe('fail');
    expect(f.data.checks.find((c) => c.check === 'checksum')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/^CRC-64 mismatch/),
    });
    expect(f.data.checkRdb).toMatchObject({ ran: true, ok: false });
    const { stdout } = await run('redis-check-rdb', [path]).catch((e: { stdout: string }) => e);
    expect(stdout).toContain('Reading key');
    const everything = JSON.stringify(f);
    expect(everything).not.toMatch(/Reading key|agent:requests|session:tok|hunter2/);
  });

  it('fail for a newer format than the server loads, even with a valid checksum', async () => {
    const path = await variant('newer.rdb', (b) => {
      const copy = Buffer.from(b);
      copy.write('0011', 5, 'latin1');
      return resealed(copy);
    });
    const f = await rdbRestoreReadiness(r, { path }).run(ctx());
    expect(f.status).toBe('fail');
    expect(f.data.checks.find((c) => c.check === 'checksum')?.status).toBe('ok');
    expect(f.data.checks.find((c) => c.check === 'version')).toEqual({
      check: 'version',
      status: 'fail',
      detail: expect.stringMatching(
        /^RDB 11 is newer than Redis 7\.0\.\d+ loads \(RDB 10\): restore into a server at least as new/,
      ),
    });
    // redis-check-rdb 7.0 cannot read RDB 11 either; that says something about the program, not the file.
    expect(f.data.checks.find((c) => c.check === 'redis-check-rdb')).toMatchObject({
      status: 'warn',
      detail: "Can't handle RDB format version 11 (the redis-check-rdb here is older than RDB 11)",
    });
  });

  it('fail for a file that is not an RDB, or not there', async () => {
    const text = join(work, 'notes.txt');
    await writeFile(text, 'these are not the keys you are looking for\n');
    const notRdb = await rdbRestoreReadiness(r, { path: text, checkRdb: false }).run(ctx());
    expect(notRdb.status).toBe('fail');
    expect(notRdb.data.checks[1]).toEqual({
      check: 'format',
      status: 'fail',
      detail: 'not a Redis RDB file: it starts with "these", not "REDIS" and a 4-digit version',
    });
    const missing = await rdbRestoreReadiness(r, { path: join(work, 'nope.rdb') }).run(ctx());
    expect(missing.status).toBe('fail');
    expect(missing.data.checks[0]).toEqual({
      check: 'file',
      status: 'fail',
      detail: `${join(work, 'nope.rdb')} does not exist`,
    });
  });

  it('fail with AOF on; warn about SHUTDOWN with save points and about a data set larger than maxmemory', async () => {
    const other = await startTestRedis({
      args: ['--appendonly', 'yes', '--save', '60 1', '--maxmemory', '200kb'],
    });
    const o = connectRedis({ url: other.url });
    try {
      const f = await rdbRestoreReadiness(o, { path: dump, checkRdb: '/nonexistent/redis-check-rdb' }).run(
        ctx(),
      );
      expect(f.status).toBe('fail');
      expect(f.data.checks.filter((c) => c.status !== 'ok').map((c) => [c.check, c.status])).toEqual([
        ['aof', 'fail'],
        ['shutdown', 'warn'],
        ['memory', 'warn'],
      ]);
      expect(f.data.checks.find((c) => c.check === 'redis-check-rdb')?.detail).toBe(
        'not run: /nonexistent/redis-check-rdb: not installed',
      );
      expect(f.data.checks.find((c) => c.check === 'shutdown')?.detail).toMatch(
        /stop the server with SHUTDOWN NOSAVE$/,
      );
    } finally {
      await o.close();
      await other.stop();
    }
  });

  it('judges free space only where the server’s dir is on this machine (or localDir says where)', async () => {
    const remote = connectRedis({ url: server.url.replace('127.0.0.1', 'localhost'), name: 'remote' });
    const viaName = await rdbRestoreReadiness(remote, { path: dump, checkRdb: false }).run(ctx());
    expect(viaName.data.checks.find((c) => c.check === 'disk')?.detail).toMatch(/ free in /);
    await remote.close();
    const elsewhere = await rdbRestoreReadiness(r, {
      path: dump,
      checkRdb: false,
      localDir: join(work, 'absent'),
    }).run(ctx());
    expect(elsewhere.data.checks.find((c) => c.check === 'disk')).toEqual({
      check: 'disk',
      status: 'ok',
      detail: `free space not checked: ${join(work, 'absent')}: ENOENT`,
    });
  });
});

describe('RDB versions and report filtering', () => {
  it('maps Redis releases to the newest RDB format they load', () => {
    const v = (s: string) => maxRdbVersion(s);
    expect(v('7.0.15')).toEqual({ rdb: 10, assumed: false });
    expect(v('7.2.4')).toEqual({ rdb: 11, assumed: false });
    expect(v('7.4.1')).toEqual({ rdb: 12, assumed: false });
    expect(v('8.0.2')).toEqual({ rdb: 12, assumed: false });
    expect(v('8.6.0')).toEqual({ rdb: 13, assumed: false });
    expect(v('9.1.0')).toEqual({ rdb: 13, assumed: true });
    expect(v('6.2.14')).toEqual({ rdb: 9, assumed: false });
    expect(v('2.8.24')).toEqual({ rdb: 6, assumed: false });
    expect(v('2.2.0')).toEqual({ rdb: null, assumed: false });
    expect(v('nonsense')).toEqual({ rdb: null, assumed: false });
  });

  it('keeps only report lines that cannot carry data from the file', () => {
    const report = [
      '[offset 0] Checking RDB file dump.rdb',
      "[offset 27] AUX FIELD redis-ver = '7.0.15'",
      '[offset 90] AUX FIELD lua = \'redis.call("AUTH", "s3cret")\'',
      '--- RDB ERROR DETECTED ---',
      "[offset 144] Internal error in RDB reading key 'user:1' at offset 12",
      '[additional info] While doing: read-object-value',
      "[additional info] Reading key 'session:abc'",
      '[additional info] Reading type 16 (hash-listpack)',
      '[info] 3 keys read',
      '12345:C 28 Nov 2026 04:33:33.718 # Terminating server after rdb file reading failure.',
    ].join('\n');
    expect(filterLines(report)).toEqual([
      '[offset 0] Checking RDB file dump.rdb',
      "[offset 27] AUX FIELD redis-ver = '7.0.15'",
      "[offset 90] AUX FIELD lua = '…'",
      '--- RDB ERROR DETECTED ---',
      "[offset 144] Internal error in RDB reading key '…'",
      '[additional info] While doing: read-object-value',
      '[additional info] Reading type 16 (hash-listpack)',
      '[info] 3 keys read',
    ]);
  });
});
