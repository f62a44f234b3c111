import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatHealthReport, type HealthReport, main, runHealthReport } from '../db-health-report';

// The report against the real PostgreSQL, on a database of this file's own: the database-scoped checks
// (active queries, bloat, indexes) then see only what the test made, whatever other test files do on the
// server at the same time.

const SERVER = process.env.AIWEBTEST_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432';
const DATABASE = `db_health_t_${randomBytes(4).toString('hex')}`;
const URL_OF_TEST_DB = `${SERVER}/${DATABASE}`;
const SCRIPT = fileURLToPath(new URL('../db-health-report.ts', import.meta.url));

let admin: pg.Client;
let db: pg.Client;

beforeAll(async () => {
  admin = new pg.Client({ connectionString: `${SERVER}/test` });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${DATABASE}`);
  db = new pg.Client({ connectionString: URL_OF_TEST_DB });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await admin?.query(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
  await admin?.end();
});

/** Runs the command as cron would, capturing what it prints. */
async function command(argv: string[], env: Record<string, string | undefined> = {}) {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    env,
  });
  return { code, stdout, stderr };
}

const row = (report: HealthReport, check: string) => {
  const found = report.checks.find((r) => r.check === check);
  if (!found) throw new Error(`no row ${check} in ${report.checks.map((r) => r.check).join(', ')}`);
  return found;
};

/** Sessions of the test's own, each left idle inside an open transaction. */
async function idleTransactions(count: number) {
  const clients = await Promise.all(
    Array.from({ length: count }, async () => {
      const client = new pg.Client({ connectionString: URL_OF_TEST_DB, application_name: 'db-health-test' });
      await client.connect();
      await client.query('BEGIN');
      await client.query('SELECT 1');
      return client;
    }),
  );
  const pids = await Promise.all(
    clients.map(async (c) => (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid),
  );
  return { pids, close: () => Promise.all(clients.map((c) => c.end())) };
}

describe('db-health-report', () => {
  it('reports a healthy database: every row ok, a table for people, exit 0', async () => {
    await db.query('CREATE TABLE runs (id int PRIMARY KEY, result text)');
    await db.query("INSERT INTO runs SELECT g, 'passed' FROM generate_series(1, 100) g");

    const report = await runHealthReport({
      databaseUrl: URL_OF_TEST_DB,
      checks: ['connectivity', 'active-queries', 'database-sizes', 'table-bloat', 'invalid-indexes'],
      slowConnect: '5s', // a loaded CI machine must not turn a healthy connect into a warning
    });

    expect(report).toMatchObject({
      database: `postgres@127.0.0.1:5432/${DATABASE}`,
      status: 'ok',
      exitCode: 0,
    });
    expect(report.checks.map((r) => [r.check, r.kind, r.status])).toEqual([
      ['connectivity', 'pg.connectivity', 'ok'],
      ['active-queries', 'pg.active-queries', 'ok'],
      ['database-sizes', 'pg.database-sizes', 'ok'],
      ['table-bloat', 'pg.table-sizes', 'ok'],
      ['invalid-indexes', 'pg.invalid-indexes', 'ok'],
    ]);
    expect(row(report, 'connectivity').figure).toMatch(/^\d+(\.\d+)? ms$/);
    expect(row(report, 'active-queries').figure).toBe('0 long, 0 blocked');
    expect(row(report, 'invalid-indexes').figure).toBe('0 invalid');
    expect(row(report, 'database-sizes').data).toMatchObject({
      databases: expect.arrayContaining([expect.objectContaining({ name: DATABASE })]),
    });

    const table = formatHealthReport(report).split('\n');
    expect(table[0]).toBe(`PostgreSQL health of postgres@127.0.0.1:5432/${DATABASE} at ${report.startedAt}`);
    expect(table[2]).toMatch(/^CHECK +STATUS +KEY FIGURE +SUMMARY$/);
    expect(table[4]).toMatch(/^active-queries +ok +0 long, 0 blocked +No query running over 1m00s/);
    expect(table.at(-1)).toMatch(/^OK: 5 ok in \d+ ms \(exit 0; --fail-on fail\)$/);
  });

  it('fails on idle transactions the test leaves open, naming them: exit 1', async () => {
    const sessions = await idleTransactions(2);
    try {
      await new Promise((r) => setTimeout(r, 1_100));
      const result = await command(
        ['--checks', 'idle-in-transaction', '--idle-transaction', '1s', '--json'],
        { DATABASE_URL: URL_OF_TEST_DB },
      );

      expect(result.code).toBe(1);
      const report = JSON.parse(result.stdout) as HealthReport;
      expect(report).toMatchObject({ status: 'fail', exitCode: 1 });
      const idle = row(report, 'idle-in-transaction');
      expect(idle.status).toBe('fail');
      // The check is server-wide: an older idle transaction of another test may be named first.
      expect(idle.summary).toMatch(/^\d+ sessions idle in transaction for 1s or more: pid \d+ \(/);
      const seen = (idle.data as { sessions: { pid: number; application: string }[] }).sessions;
      expect(seen.filter((s) => sessions.pids.includes(s.pid)).map((s) => s.application)).toEqual([
        'db-health-test',
        'db-health-test',
      ]);
      expect(idle.figure).toMatch(/^[2-9]\d* of \d+ ≥ 1s$/);
    } finally {
      await sessions.close();
    }
  });

  it('fails on an invalid index a failed concurrent build left, and --fail-on warn makes a warning count', async () => {
    await db.query('CREATE TABLE dupes (k int)');
    await db.query('INSERT INTO dupes VALUES (1), (1)');
    await expect(db.query('CREATE UNIQUE INDEX CONCURRENTLY dupes_k ON dupes (k)')).rejects.toThrow(
      /could not create unique index/,
    );
    try {
      const failed = await command(['--database-url', URL_OF_TEST_DB, '--checks', 'invalid-indexes']);
      expect(failed.code).toBe(1);
      expect(failed.stdout).toMatch(/\ninvalid-indexes +fail +1 invalid +1 invalid index left by a failed/);
      expect(failed.stdout).toMatch(/\nFAILING: 1 fail in \d+ ms \(exit 1; --fail-on fail\)\n$/);
    } finally {
      await db.query('DROP INDEX dupes_k');
    }

    // Any connection takes 0 ms or more: a warning by construction.
    const slow = ['--database-url', URL_OF_TEST_DB, '--checks', 'connectivity', '--slow-connect', '0ms'];
    const tolerant = await command(slow);
    expect(tolerant.stdout).toMatch(/\nconnectivity +warn +/);
    expect(tolerant.code).toBe(0);
    expect((await command([...slow, '--fail-on', 'warn'])).code).toBe(1);
  });

  it('an unreachable server fails connectivity, skips the rest, and never prints the password', async () => {
    const result = await command(['--database-url', 'postgres://monitor:s3cret-pw@127.0.0.1:1/app']);

    expect(result.code).toBe(1);
    expect(result.stdout).not.toContain('s3cret-pw');
    expect(result.stdout).toContain('PostgreSQL health of monitor@127.0.0.1:1/app');
    expect(result.stdout).toMatch(
      /\nconnectivity +fail +unreachable +PostgreSQL monitor@127\.0\.0\.1:1\/app unreachable: connect ECONNREFUSED/,
    );
    expect(result.stdout).toMatch(/\nwal-archiving +skipped +- +not run: the database is unreachable/);
    expect(result.stdout).toMatch(/\nFAILING: 1 fail, 9 skipped in \d+ ms/);
  });

  it('refuses bad usage with exit 2, naming the flag and never the URL', async () => {
    const wrongScheme = await command(['--database-url', 'mysql://monitor:s3cret-pw@db/app']);
    expect(wrongScheme).toEqual({
      code: 2,
      stdout: '',
      stderr:
        'db-health-report: --database-url (or DATABASE_URL): expected a connection URL like postgres://user@host:5432/database (the value is not shown)\nRun with --help for the options.\n',
    });

    const missing = await command([], { DATABASE_URL: '' });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--database-url (or DATABASE_URL): is required');

    const bad = await command([
      '--database-url',
      URL_OF_TEST_DB,
      '--idle-transaction',
      'five minutes',
      '--connections-warn',
      '80',
      '--checks',
      'connectivity,disk',
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--checks: unknown check "disk"');
    expect(bad.stderr).toContain('--connections-warn: expected a number between 0 and 1');
    expect(bad.stderr).toContain('--idle-transaction: expected a duration such as "500ms"');

    const unknown = await command(['--verbose']);
    expect(unknown).toMatchObject({ code: 2, stderr: expect.stringContaining("Unknown option '--verbose'") });

    const help = await command(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: node scripts\/db-health-report\.ts \[options\]/);
  });

  it('runs as `node scripts/db-health-report.ts`, without a build step', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [SCRIPT, '--checks', 'connectivity,invalid-indexes', '--slow-connect', '5s', '--json'],
      { env: { ...process.env, DATABASE_URL: URL_OF_TEST_DB }, timeout: 20_000 },
    );
    const report = JSON.parse(stdout) as HealthReport;
    expect(report.exitCode).toBe(0);
    expect(report.checks.map((r) => [r.check, r.status])).toEqual([
      ['connectivity', 'ok'],
      ['invalid-indexes', 'ok'],
    ]);
  });
});
