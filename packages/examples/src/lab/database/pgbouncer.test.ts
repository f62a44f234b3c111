import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_URL, labDatabaseName } from '../../../test/support/lab-database';
import { exhaustConnections } from './chaos';
import { pgbouncerPools, pgUp } from './database-metrics';
import { dropLabDatabase, prepareLabDatabase } from './lab-database';
import { type LabPgBouncer, startLabPgBouncer } from './pgbouncer';

const DATABASE = labDatabaseName();
const POOL_SIZE = 2;

let dir: string;
let bouncer: LabPgBouncer;

beforeAll(async () => {
  await prepareLabDatabase({ adminUrl: ADMIN_URL, database: DATABASE });
  dir = await mkdtemp(join(tmpdir(), 'aiwebtest-lab-pgbouncer-'));
  await chmod(dir, 0o755);
  bouncer = await startLabPgBouncer({
    postgresPort: 5432,
    database: DATABASE,
    port: 0,
    dir: join(dir, 'pgbouncer'),
    poolSize: POOL_SIZE,
    maxClientConn: 50,
  });
});

afterAll(async () => {
  await bouncer?.stop();
  await dropLabDatabase({ adminUrl: ADMIN_URL, database: DATABASE });
  await rm(dir, { recursive: true, force: true });
});

/** Runs one statement on a short connection (simple protocol: the admin console knows no other). */
async function once(url: string, sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

describe('startLabPgBouncer', () => {
  it('serves the lab database in transaction pooling and answers runbook 4’s console queries', async () => {
    expect(bouncer.running()).toBe(true);
    expect(await pgUp(bouncer.url(DATABASE))).toBe(1);
    const now = await once(bouncer.url(DATABASE), 'SELECT NOW();');
    expect(now.rows).toHaveLength(1);
    const pools = await once(bouncer.adminUrl, 'SHOW POOLS;');
    expect(pools.rows.find((r) => r.database === DATABASE)).toMatchObject({ pool_mode: 'transaction' });
    const stats = await once(bouncer.adminUrl, 'SHOW STATS;');
    expect(stats.rows.map((r) => r.database)).toContain(DATABASE);
    expect(await pgbouncerPools(bouncer.adminUrl)).toMatchObject({ maxClientConn: 50, clientWaiting: 0 });
    expect(await bouncer.log()).toMatch(/process up/);
  });

  it('pg_up goes 1 → 0 when pgbouncer is killed, and back to 1 after a restart on the same port', async () => {
    const port = bouncer.port;
    await bouncer.kill();
    expect(bouncer.running()).toBe(false);
    expect(await pgUp(bouncer.url(DATABASE), 1000)).toBe(0);
    await bouncer.restart();
    expect(bouncer.running()).toBe(true);
    expect(bouncer.port).toBe(port);
    expect(await pgUp(`postgres://postgres@127.0.0.1:${port}/${DATABASE}`)).toBe(1);
  });

  it('rejects a database name that could not go into pgbouncer.ini, naming the field', async () => {
    await expect(startLabPgBouncer({ database: 'a b\n[pgbouncer]', dir: join(dir, 'x') })).rejects.toThrow(
      /database: expected lower-case letters/,
    );
  });
});

describe('exhaustConnections', () => {
  it('saturates the pool so clients wait and pg_up reads 0; stop() gives the pool back', async () => {
    const injection = await exhaustConnections({ url: bouncer.url(DATABASE), count: POOL_SIZE + 3 });
    try {
      const pools = await pgbouncerPools(bouncer.adminUrl);
      expect(pools.clientWaiting).toBeGreaterThan(0);
      expect(pools.clientActive).toBeGreaterThanOrEqual(POOL_SIZE);
      // A new client's query waits for a server connection: it does not answer within the bound.
      expect(await pgUp(bouncer.url(DATABASE), 700)).toBe(0);
    } finally {
      await injection.stop();
    }
    const deadline = Date.now() + 5000;
    while ((await pgbouncerPools(bouncer.adminUrl)).clientWaiting > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect((await pgbouncerPools(bouncer.adminUrl)).clientWaiting).toBe(0);
    expect(await pgUp(bouncer.url(DATABASE))).toBe(1);
  });
});

describe('stop', () => {
  it('ends the process', async () => {
    await bouncer.stop();
    expect(bouncer.running()).toBe(false);
    expect(await pgUp(bouncer.url(DATABASE), 500)).toBe(0);
  });
});
