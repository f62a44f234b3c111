import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_DEPLOYMENTS, PLATFORM_STATEFULSETS, platformManifests } from '../platform/manifests';
import {
  type LabDisasterRecovery,
  REDEPLOY_ORDER,
  startLabDisasterRecovery,
  writePlatformManifests,
} from './disaster-recovery';
import { startPostgresService } from './postgres-service';

// The disaster-recovery lab's own servers, for real: a PostgreSQL cluster of its own (run as `postgres`),
// a supervised redis-server, the forwarder that follows PgBouncer's [databases] entry, the manifest files.

let dir: string;
let dr: LabDisasterRecovery | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'aiwebtest-dr-'));
  // As startLab does: the `postgres` user must traverse the lab directory to reach its cluster.
  await chmod(dir, 0o711);
});

afterAll(async () => {
  await dr?.close();
  await rm(dir, { recursive: true, force: true });
});

async function selectOne(url: string): Promise<number | null> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: 2_000,
    query_timeout: 2_000,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one ?? null;
  } catch {
    return null;
  } finally {
    await client.end().catch(() => {});
  }
}

describe('the disaster-recovery lab servers', () => {
  it('archives WAL, restarts Redis after a shutdown, and starts afresh over what an earlier lab left', async () => {
    const first = await startLabDisasterRecovery({ dir: join(dir, 'dr'), labDir: dir });
    dr = first;
    expect(await selectOne(first.postgres.adminUrl)).toBe(1);
    const segment = await first.postgres.archiveNow();
    expect(await readdir(first.postgres.archiveDir)).toContain(segment);

    // The supervisor starts redis-server again after SHUTDOWN, on the same port, loading its dump.rdb.
    const client = new Redis(first.redis.url, { maxRetriesPerRequest: 5 });
    client.on('error', () => {});
    try {
      await client.set('kept', 'yes');
      await first.redis.snapshot();
      // On a client that does not reconnect: ioredis would send the SHUTDOWN again to the restarted server.
      const once = new Redis(first.redis.url, { retryStrategy: () => null, maxRetriesPerRequest: 0 });
      once.on('error', () => {});
      await once.call('SHUTDOWN', 'SAVE').catch(() => {});
      once.disconnect();
      const deadline = Date.now() + 10_000;
      while (first.redis.starts() < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(first.redis.starts()).toBe(2);
      expect(await client.get('kept')).toBe('yes');
      expect((await readFile(first.redis.snapshotPath)).subarray(0, 5).toString()).toBe('REDIS');
    } finally {
      client.disconnect();
    }

    // A second lab in the same directory (the first one "killed": not closed) stops the old server first.
    const second = await startLabDisasterRecovery({ dir: join(dir, 'dr'), labDir: dir });
    dr = second;
    await first.redis.close();
    expect(await selectOne(first.postgres.adminUrl)).toBeNull();
    expect(await selectOne(second.postgres.adminUrl)).toBe(1);
  }, 60_000);

  it("sends the lab's own connections where PgBouncer's entry points", async () => {
    if (!dr) throw new Error('no lab servers');
    const ini = join(dir, 'pgbouncer.ini');
    await writeFile(ini, `[databases]\npostgres = host=127.0.0.1 port=1 dbname=postgres\n\n[pgbouncer]\n`);
    const service = await startPostgresService({ pgbouncerIni: ini, database: 'postgres' });
    try {
      expect(await selectOne(service.url('postgres'))).toBeNull();
      // A runbook moves the entry: the next connection follows (mtime changes with the rewrite).
      await new Promise((r) => setTimeout(r, 20));
      await writeFile(
        ini,
        `[databases]\npostgres = host=127.0.0.1 port=${dr.postgres.port} dbname=postgres\n`,
      );
      expect(await service.target()).toEqual({ host: '127.0.0.1', port: dr.postgres.port });
      expect(await selectOne(service.url('postgres'))).toBe(1);
    } finally {
      await service.close();
    }
  });
});

describe('writePlatformManifests', () => {
  it("writes every manifest once, one file per part in the manual's order", async () => {
    const out = await writePlatformManifests(join(dir, 'k8s'), { ollamaUrl: 'http://127.0.0.1:11434' });
    const files = (await readdir(out)).sort();
    expect(files).toEqual(REDEPLOY_ORDER.map((part, i) => `${String(i).padStart(2, '0')}-${part}.json`));
    const written = [];
    for (const file of files) {
      const list = JSON.parse(await readFile(join(out, file), 'utf8')) as { kind: string; items: unknown[] };
      expect(list.kind).toBe('List');
      written.push(...list.items);
    }
    expect(written).toHaveLength(platformManifests({ ollamaUrl: 'http://127.0.0.1:11434' }).length);
    const postgres = JSON.parse(await readFile(join(out, '01-postgres.json'), 'utf8')) as {
      items: { kind: string; metadata: { name: string } }[];
    };
    expect(postgres.items.map((m) => `${m.kind}/${m.metadata.name}`)).toEqual([
      'StatefulSet/postgres',
      'Service/postgres',
    ]);
    const names = written.map((m) => (m as { metadata: { name: string } }).metadata.name);
    for (const w of [...PLATFORM_DEPLOYMENTS, ...PLATFORM_STATEFULSETS]) expect(names).toContain(w);
  });
});
