import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ReplayableCheck } from '../../src/core/step';
import {
  activeQueries,
  archiverStatus,
  connectionUsage,
  connectivity,
  databaseSizes,
  idleInTransaction,
  slowQueries,
  sqlCheck,
  tableSizes,
  unusedIndexes,
} from '../../src/postgres/checks';
import { connectPostgres, type PostgresDatabase } from '../../src/postgres/database';
import { clients } from '../../src/postgres/pgbouncer/clients';
import { connectPgBouncer, type PgBouncerConsole } from '../../src/postgres/pgbouncer/console';
import { pools } from '../../src/postgres/pgbouncer/pools';
import { stats } from '../../src/postgres/pgbouncer/stats';
import { startTestPgBouncer, type TestPgBouncer } from '../support/pgbouncer';
import { startTestCluster, type TestCluster } from '../support/postgres-cluster';
import { POSTGRES_URL, uniqueSchema } from '../support/stores';
import { observe, rejudge } from './replayable';

// The PostgreSQL and PgBouncer checks whose verdict a runbook tunes, run once for real, then judged again from
// their observation: by the same check (the live finding, exactly) and by one with another threshold.
// A database of this file's own on the shared server (so no other suite's sessions or tables show), a
// throwaway cluster with pg_stat_statements loaded, and a PgBouncer in front of the shared server.

const dbName = uniqueSchema('replay_pg');
let admin: pg.Client;
let app: PostgresDatabase;
let statements: TestCluster;
let statementsDb: PostgresDatabase;
let bouncer: TestPgBouncer;
let bouncerConsole: PgBouncerConsole;
const open: pg.Client[] = [];

function urlOf(database: string): string {
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${database}`;
  return url.toString();
}

async function client(url: string, name = 'replay-test'): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, application_name: name });
  c.on('error', () => {});
  await c.connect();
  open.push(c);
  return c;
}

/** Reads a check until `done` holds (statistics reach pg_stat_* with a short delay). */
async function until<T, O>(check: ReplayableCheck<T, O>, done: (data: T) => boolean) {
  const deadline = Date.now() + 5000;
  let live = await observe(check);
  while (!done(live.finding.data) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    live = await observe(check);
  }
  return live;
}

beforeAll(async () => {
  const shared = new pg.Client({ connectionString: POSTGRES_URL });
  await shared.connect();
  try {
    await shared.query(`CREATE DATABASE ${dbName}`);
  } finally {
    await shared.end();
  }
  [statements, bouncer] = await Promise.all([
    startTestCluster({ preload: ['pg_stat_statements'] }),
    startTestPgBouncer({
      postgresPort: Number(new URL(POSTGRES_URL).port || 5432),
      databases: { small: { dbname: dbName, poolSize: 1 } },
      settings: { stats_period: '1' },
    }),
  ]);
  admin = await client(urlOf(dbName), 'replay-admin');
  app = connectPostgres({ url: urlOf(dbName) });
  statementsDb = connectPostgres({ url: statements.url });
  bouncerConsole = connectPgBouncer({ url: bouncer.adminUrl, name: 'replay-bouncer' });
});

afterEach(async () => {
  await Promise.all(open.filter((c) => c !== admin).map((c) => c.end().catch(() => {})));
  open.splice(0, open.length, admin);
});

afterAll(async () => {
  await admin?.end().catch(() => {});
  await Promise.all([app?.close(), statementsDb?.close()]);
  await Promise.all([bouncer?.stop(), statements?.destroy()]);
  const shared = new pg.Client({ connectionString: POSTGRES_URL });
  await shared.connect();
  try {
    await shared.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  } finally {
    await shared.end();
  }
});

describe('PostgreSQL checks judge their observation again', () => {
  it('sqlCheck: the recorded value, against other thresholds', async () => {
    const check = (warn: number) =>
      sqlCheck(app, {
        name: 'Stuck executions',
        sql: 'SELECT $1::int AS value',
        params: [5],
        thresholds: { warn },
      });
    const live = await observe(check(10));
    expect(live.finding.status).toBe('ok');
    expect(live.observation).toMatchObject({ columns: ['value'], rowCount: 1, firstValue: 5 });
    const replayed = rejudge(live, check(10), check(5), 'warn');
    expect(replayed.summary).toBe('Stuck executions: value 5 (≥ warn 5)');
  });

  it('connectivity: the recorded timings and role, against another slowAfter or expected role', async () => {
    const check = (o: { slowAfter?: number; expect?: 'primary' | 'standby' } = {}) =>
      connectivity(app, { slowAfter: 5000, ...o });
    const live = await observe(check());
    expect(live.finding.status).toBe('ok');
    rejudge(live, check(), check({ slowAfter: 0 }), 'warn');
    rejudge(live, check(), check({ expect: 'standby' }), 'fail');
  });

  it('connectionUsage: the recorded connections, against other limits', async () => {
    const check = (at: number) => connectionUsage(app, { warnAt: at, failAt: at });
    const live = await observe(check(1));
    expect(live.finding.status).toBe('ok');
    expect(live.observation.groups.length).toBeGreaterThan(0);
    rejudge(live, check(1), check(0), 'fail');
  });

  it('databaseSizes: the recorded sizes, against a size limit', async () => {
    const live = await observe(databaseSizes(app));
    expect(live.finding.status).toBe('ok');
    const replayed = rejudge(live, databaseSizes(app), databaseSizes(app, { failAbove: 1 }), 'fail');
    expect(replayed.summary).toMatch(/at or above 1 bytes: /);
  });

  it('idleInTransaction and activeQueries: the recorded sessions, against other durations', async () => {
    const holder = await client(urlOf(dbName), 'billing-worker');
    await holder.query('BEGIN');
    await holder.query('SELECT 1');
    const sleeper = await client(urlOf(dbName), 'monthly-report');
    const pid = (await sleeper.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
    const sleeping = sleeper.query('SELECT pg_sleep(5)').catch(() => null);
    try {
      const idle = (olderThan: string) => idleInTransaction(app, { olderThan });
      const live = await until(idle('1h'), (d) => d.sessions.some((s) => (s.stateMs ?? 0) >= 50));
      expect(live.finding.status).toBe('ok');
      rejudge(live, idle('1h'), idle('50ms'), 'fail');

      const active = (failAfter: string) => activeQueries(app, { minDuration: '100ms', failAfter });
      const running = await until(active('1h'), (d) => d.longRunning === 1);
      expect(running.finding.status).toBe('warn');
      expect(running.observation.sessions.map((s) => s.pid)).toContain(pid);
      rejudge(running, active('1h'), active('100ms'), 'fail');
    } finally {
      await admin.query('SELECT pg_cancel_backend($1)', [pid]);
      await sleeping;
    }
  });

  it('tableSizes: the recorded dead rows, against other ratios', async () => {
    await admin.query('CREATE TABLE runs (id int, note text) WITH (autovacuum_enabled = false)');
    await admin.query("INSERT INTO runs SELECT g, 'run ' || g FROM generate_series(1, 2000) g");
    await admin.query('DELETE FROM runs WHERE id <= 1500');
    await admin.query('SELECT pg_stat_force_next_flush()');
    const check = (o: { failDeadRatio?: number; minDeadRows?: number } = {}) =>
      tableSizes(app, { failDeadRatio: 0.9, ...o });
    const live = await until(check(), (d) => d.bloated.length > 0);
    expect(live.finding.status).toBe('warn');
    expect(live.observation.tables[0]).toMatchObject({
      table: 'runs',
      deadRows: 1500,
      ratio: 0.75,
      byDead: 1,
    });
    rejudge(live, check(), check({ failDeadRatio: 0.5 }), 'fail');
    // A stricter minDeadRows is judged from the same rows.
    rejudge(live, check(), check({ minDeadRows: 5000 }), 'ok');
  });

  it('unusedIndexes: the recorded indexes, against a larger minSize', async () => {
    await admin.query('CREATE TABLE cases (id int, email text)');
    await admin.query("INSERT INTO cases SELECT g, 'user' || g || '@x' FROM generate_series(1, 2000) g");
    await admin.query('CREATE INDEX idx_cases_email ON cases (email)');
    const check = (minSize: string) => unusedIndexes(app, { minSize });
    const live = await observe(check('8kB'));
    expect(live.finding.status).toBe('warn');
    expect(live.observation.indexes.map((i) => i.index)).toEqual(['idx_cases_email']);
    const replayed = rejudge(live, check('8kB'), check('1GB'), 'ok');
    expect(replayed.data.minSizeBytes).toBe(1024 ** 3);
  });

  it('slowQueries: the recorded means, against another failMeanTime or minMeanTime', async () => {
    await statementsDb.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    await statementsDb.query('SELECT pg_stat_statements_reset()');
    const reporter = await client(statements.url, 'report-api');
    for (let i = 0; i < 2; i++) await reporter.query('SELECT pg_sleep(0.12), $1::int AS report', [i]);
    const check = (o: { minMeanTime?: string; failMeanTime?: string } = {}) =>
      slowQueries(statementsDb, { minMeanTime: '100ms', failMeanTime: '1s', ...o });
    const live = await observe(check());
    expect(live.finding.status).toBe('warn');
    expect(live.observation).toMatchObject({ reason: null, slow: 1, slowAtMs: 100 });
    rejudge(live, check(), check({ failMeanTime: '110ms' }), 'fail');
    const stricter = rejudge(live, check(), check({ minMeanTime: '1s' }), 'ok');
    expect(stricter.data.slow).toBe(0);
  });

  it('archiverStatus: the recorded archive_mode, judged as required', async () => {
    const live = await observe(archiverStatus(statementsDb));
    expect(live.finding.status).toBe('unknown');
    expect(live.observation.archiveMode).toBe('off');
    rejudge(live, archiverStatus(statementsDb), archiverStatus(statementsDb, { required: true }), 'fail');
  });
});

describe('PgBouncer checks judge their observation again', () => {
  it('pools, clients and stats: a waiting client, against other waits', async () => {
    // The pool's one server connection held in a transaction while a second client waits for it.
    const holder = await client(bouncer.url('small'));
    await holder.query('BEGIN');
    await holder.query('SELECT 1');
    const waiter = await client(bouncer.url('small'));
    const waited = waiter.query('SELECT 1');
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const seen = await observe(pools(bouncerConsole, { database: 'small' }));
      if (seen.observation.pools.some((p) => p.clWaiting === 1)) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    await new Promise((r) => setTimeout(r, 400));

    const pool = (maxWait: string) => pools(bouncerConsole, { database: 'small', warnAt: 1, maxWait });
    const livePools = await observe(pool('1h'));
    expect(livePools.finding.status).toBe('ok');
    rejudge(livePools, pool('1h'), pool('100ms'), 'fail');

    const who = (maxWait: string) => clients(bouncerConsole, { database: 'small', maxWait });
    const liveClients = await observe(who('1h'));
    expect(liveClients.finding.status).toBe('warn');
    expect(liveClients.observation).toMatchObject({ waiting: 1 });
    rejudge(liveClients, who('1h'), who('100ms'), 'fail');

    await holder.query('COMMIT');
    await waited;
    const traffic = (warnWait: string) => stats(bouncerConsole, { database: 'small', warnWait });
    const liveStats = await observe(traffic('1h'));
    expect(liveStats.finding.status).toBe('ok');
    rejudge(liveStats, traffic('1h'), traffic('50ms'), 'warn');
  });
});
