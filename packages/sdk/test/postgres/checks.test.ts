import { createServer, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInputValidationError, isRunbookError } from '../../src/core/errors';
import type { Finding } from '../../src/core/finding';
import type { Json } from '../../src/core/json';
import type { Check, StepContext } from '../../src/core/step';
import {
  activeQueries,
  archiverStatus,
  connectionUsage,
  connectivity,
  databaseSizes,
  idleInTransaction,
  invalidIndexes,
  slowQueries,
  sqlCheck,
  tableSizes,
  unusedIndexes,
} from '../../src/postgres/checks';
import { connectPostgres, type PostgresDatabase } from '../../src/postgres/database';
import { freePort, startTestCluster, type TestCluster } from '../support/postgres-cluster';

// Two throwaway clusters, started in parallel:
// - main: pg_stat_statements preloaded, WAL archived by `cp` (archive_command is broken and mended at run time),
//   prepared transactions allowed;
// - small: max_connections = 20, archive_mode off, pg_stat_statements not loaded.
let main: TestCluster;
let small: TestCluster;
let db: PostgresDatabase;
let smallDb: PostgresDatabase;
let admin: pg.Client;

beforeAll(async () => {
  [main, small] = await Promise.all([
    startTestCluster({
      preload: ['pg_stat_statements'],
      archive: true,
      settings: { max_prepared_transactions: '4' },
    }),
    startTestCluster({ settings: { max_connections: '20' } }),
  ]);
  db = connectPostgres({ url: main.url });
  smallDb = connectPostgres({ url: small.url, poolSize: 1 });
  admin = await client(main.url, 'test-admin');
});

afterAll(async () => {
  await admin?.end().catch(() => {});
  await Promise.all([db?.close(), smallDb?.close()]);
  await Promise.all([main?.destroy(), small?.destroy()]);
});

function ctx(signal = new AbortController().signal): StepContext {
  return {
    runId: 'run-1',
    runbookId: 'postgres-checks',
    step: 'check',
    mode: 'diagnose',
    attempt: 1,
    actor: 'tester',
    signal,
    log() {},
  };
}

// `T extends Json` makes the compiler prove that every check's data is JSON, as stored step results must be.
function run<T extends Json>(check: Check<T>, signal?: AbortSignal): Promise<Finding<T>> {
  return check.run(ctx(signal));
}

/** Runs a check until `done` holds (or the time is up) and returns its last finding. */
async function until<T extends Json>(
  check: Check<T>,
  done: (f: Finding<T>) => boolean,
  timeoutMs = 8000,
): Promise<Finding<T>> {
  const deadline = Date.now() + timeoutMs;
  let last = await run(check);
  while (!done(last) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    last = await run(check);
  }
  return last;
}

async function client(url: string, application: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, application_name: application });
  c.on('error', () => {});
  await c.connect();
  return c;
}

/** Waits until `pid` waits for a lock (its statement reached the lock queue). */
async function waitForLockWait(pid: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const { rows } = await admin.query('SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1', [pid]);
    if (rows[0]?.wait_event_type === 'Lock') return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`pid ${pid} never waited for a lock`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('connectivity', () => {
  it('connects, times SELECT 1 and reads version and role', async () => {
    // A generous slowAfter: this machine may be busy; the next test covers the judgement.
    const f = await run(connectivity(db, { slowAfter: '2s' }));
    expect(f.status).toBe('ok');
    expect(f.data.reachable).toBe(true);
    expect(f.data.version).toMatch(/^15\./);
    expect(f.data.versionNum).toBeGreaterThanOrEqual(150000);
    expect(f.data.inRecovery).toBe(false);
    expect(f.data.latencyMs).toBeLessThan(2000);
    expect(f.data.latencyMs).toBeCloseTo((f.data.connectMs ?? 0) + (f.data.queryMs ?? 0), 5);
    expect(f.summary).toMatch(
      /^PostgreSQL 15\.\d+ primary at postgres@127\.0\.0\.1:\d+\/postgres: connect \S+ \+ SELECT 1 \S+$/,
    );
  });

  it('warns when slower than slowAfter, fails on the wrong role', async () => {
    expect((await run(connectivity(db, { slowAfter: 0 }))).status).toBe('warn');
    const standby = await run(connectivity(db, { expect: 'standby' }));
    expect(standby.status).toBe('fail');
    expect(standby.summary).toMatch(/but a standby was expected$/);
  });

  it('reports a refused connection as a fail, without throwing', async () => {
    const nobody = connectPostgres({
      url: `postgres://app:s3cret-pw@127.0.0.1:${await freePort()}/aiwebtest`,
    });
    try {
      const f = await run(connectivity(nobody));
      expect(f.status).toBe('fail');
      expect(f.data.reachable).toBe(false);
      expect(f.summary).toMatch(/^PostgreSQL app@127\.0\.0\.1:\d+\/aiwebtest unreachable: .*ECONNREFUSED/);
      expect(JSON.stringify(f)).not.toContain('s3cret-pw');
    } finally {
      await nobody.close();
    }
  });

  it('fails after `timeout` when the server accepts but never answers', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const mute = connectPostgres({
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      connectTimeout: '1s',
    });
    try {
      const started = Date.now();
      const f = await run(connectivity(mute, { timeout: '300ms' }));
      expect(Date.now() - started).toBeLessThan(1000);
      expect(f.status).toBe('fail');
      expect(f.summary).toMatch(/unreachable: no answer within 300ms$/);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
      await mute.close();
    }
  });

  it('throws (does not report) when the step is cancelled', async () => {
    const cancelled = new AbortController();
    cancelled.abort(new Error('run cancelled'));
    await expect(run(connectivity(db), cancelled.signal)).rejects.toThrow('run cancelled');
  });
});

describe('connectionUsage', () => {
  it('warns above 80% of the slots left after superuser_reserved_connections, fails at 95%', async () => {
    const check = connectionUsage(smallDb);
    const idle = await run(check);
    expect(idle.status).toBe('ok');
    expect(idle.data).toMatchObject({ maxConnections: 20, reserved: 3, available: 17 });
    const leaked: pg.Client[] = [];
    try {
      // 14 of 17 (82%): our own check's connection plus 13 of a "leaky pool".
      while (leaked.length < 14 - idle.data.used) leaked.push(await client(small.url, 'leaky-pool'));
      const warn = await run(check);
      expect(warn.status).toBe('warn');
      expect(warn.data.used).toBe(14);
      expect(warn.data.ratio).toBeCloseTo(14 / 17, 3);
      expect(warn.data.byState.idle).toBe(13);
      expect(warn.data.byClient[0]).toMatchObject({
        user: 'postgres',
        application: 'leaky-pool',
        connections: 13,
        idle: 13,
      });
      expect(warn.data.byDatabase[0]).toMatchObject({ database: 'postgres', connections: 14 });
      expect(warn.summary).toBe(
        '14/17 connections in use, 82% (warn at 80%): 13 idle, 1 active; most held by postgres@leaky-pool (13)',
      );
      // 17 of 17: ordinary users would now get "too many clients"; a superuser may still use the reserve.
      while (leaked.length < 17 - idle.data.used) leaked.push(await client(small.url, 'leaky-pool'));
      const full = await run(check);
      expect(full.status).toBe('fail');
      expect(full.summary).toMatch(/^17\/17 connections in use, 100% \(fail at 95%\)/);
    } finally {
      await Promise.all(leaked.map((c) => c.end()));
    }
  });
});

describe('activeQueries', () => {
  it('lists a long query: warn past minDuration, fail past failAfter', async () => {
    const reporter = await client(main.url, 'slow-report');
    const pid = (await reporter.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    const sleeping = reporter.query('SELECT pg_sleep(30) /* monthly report */').catch((e: Error) => e);
    try {
      const warn = await until(activeQueries(db, { minDuration: '200ms' }), (f) => f.status !== 'ok');
      expect(warn.status).toBe('warn');
      const session = warn.data.sessions.find((s) => s.pid === pid);
      expect(session).toMatchObject({
        application: 'slow-report',
        state: 'active',
        user: 'postgres',
        blockedBy: [],
      });
      expect(session?.query).toBe('SELECT pg_sleep(30) /* monthly report */');
      expect(session?.client).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(warn.data.sessions.some((s) => s.state === 'idle')).toBe(false);
      expect(warn.summary).toMatch(
        /^1 query running over 200ms, longest \S+ by pid \d+ \(postgres@slow-report\): SELECT pg_sleep\(30\)/,
      );

      await sleep(300);
      const fail = await run(activeQueries(db, { minDuration: '200ms', failAfter: '500ms' }));
      expect(fail.status).toBe('fail');
      expect(fail.data.longRunning).toBe(1);

      // With includeIdle, idle sessions (the admin connection) are listed too.
      await sleep(200);
      const all = await run(activeQueries(db, { minDuration: '200ms', includeIdle: true }));
      expect(all.data.sessions.some((s) => s.application === 'test-admin' && s.state === 'idle')).toBe(true);
    } finally {
      await admin.query('SELECT pg_cancel_backend($1)', [pid]);
      expect(String(await sleeping)).toMatch(/canceling statement/);
      await reporter.end();
    }
    const quiet = await run(activeQueries(db, { minDuration: '200ms' }));
    expect(quiet.status).toBe('ok');
    expect(quiet.summary).toBe('No query running over 200ms, no lock waits');
  });

  it('shows the blocking chain of a row lock, root blocker first; idleInTransaction names the holder', async () => {
    await admin.query('CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)');
    await admin.query('INSERT INTO accounts VALUES (1, 100), (2, 200)');
    const holder = await client(main.url, 'billing-worker');
    const waiter1 = await client(main.url, 'api');
    const waiter2 = await client(main.url, 'api');
    const pidOf = async (c: pg.Client) =>
      (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    const [h, w1, w2] = [await pidOf(holder), await pidOf(waiter1), await pidOf(waiter2)];
    await holder.query('BEGIN');
    await holder.query('UPDATE accounts SET balance = balance - 10 WHERE id = 1');
    const first = waiter1.query('UPDATE accounts SET balance = balance + 1 WHERE id = 1');
    await waitForLockWait(w1);
    const second = waiter2.query('UPDATE accounts SET balance = balance + 2 WHERE id = 1');
    await waitForLockWait(w2);
    try {
      // A lock wait shorter than minDuration is reported, not judged.
      const young = await run(activeQueries(db, { minDuration: '1m' }));
      expect(young.status).toBe('ok');
      expect(young.data.blocked).toBe(2);
      expect(young.summary).toMatch(
        new RegExp(
          `^pid ${h} \\(postgres@billing-worker\\), idle in transaction \\S+ blocks 2 sessions; longest lock wait \\S+$`,
        ),
      );

      await sleep(300);
      const f = await run(activeQueries(db, { minDuration: '250ms' }));
      expect(f.status).toBe('fail');
      expect(f.data.rootBlockers).toHaveLength(1);
      expect(f.data.rootBlockers[0]).toMatchObject({
        root: h,
        state: 'idle in transaction',
        application: 'billing-worker',
        cycle: false,
      });
      expect([...(f.data.rootBlockers[0]?.blocked ?? [])].sort()).toEqual([w1, w2].sort());
      expect(f.data.longestWaitMs).toBeGreaterThanOrEqual(250);
      const waiting = f.data.sessions.find((s) => s.pid === w1);
      expect(waiting).toMatchObject({ blockedBy: [h], state: 'active', waitEvent: 'Lock:transactionid' });
      // The holder is listed although it is idle and includeIdle is off: it is the root of the chain.
      expect(f.data.sessions.find((s) => s.pid === h)?.query).toBe(
        'UPDATE accounts SET balance = balance - 10 WHERE id = 1',
      );
      const chain = f.evidence.find((e) => e.kind === 'table' && e.title.startsWith('Blocking chains'));
      expect(chain?.kind === 'table' && chain.rows.map((r) => String(r[0]).trim())).toEqual([
        String(h),
        expect.stringMatching(new RegExp(`^└ (${w1}|${w2})$`)),
        expect.stringMatching(new RegExp(`^└ (${w1}|${w2})$`)),
      ]);

      const idle = await run(idleInTransaction(db, { olderThan: '250ms' }));
      expect(idle.status).toBe('fail');
      expect(idle.data.old).toBe(1);
      expect(idle.data.sessions[0]).toMatchObject({ pid: h, state: 'idle in transaction' });
      expect(idle.data.sessions[0]?.blocking).toContain(w1);
      expect(idle.data.serverTimeoutMs).toBe(0);
      expect(idle.summary).toMatch(
        new RegExp(
          `^1 session idle in transaction for 250ms or more: pid ${h} \\(postgres@billing-worker\\) idle \\S+, blocking \\d sessions? \\(idle_in_transaction_session_timeout is off\\)$`,
        ),
      );
      const patient = await run(idleInTransaction(db, { olderThan: '1m' }));
      expect(patient.status).toBe('ok');
      expect(patient.summary).toMatch(/^1 session idle in transaction, none for 1m00s; longest pid \d+/);
    } finally {
      await holder.query('ROLLBACK');
      await Promise.all([first, second]);
      await Promise.all([holder.end(), waiter1.end(), waiter2.end()]);
    }
    expect((await run(idleInTransaction(db))).summary).toBe('No session idle in transaction');
    expect((await run(activeQueries(db, { minDuration: '250ms' }))).status).toBe('ok');
  });

  it('names a prepared transaction that blocks by its gid, not as the "pid 0" pg_blocking_pids reports', async () => {
    await admin.query('CREATE TABLE ledger (id int PRIMARY KEY, n int NOT NULL)');
    await admin.query('INSERT INTO ledger VALUES (1, 0)');
    const coordinator = await client(main.url, 'xa-coordinator');
    await coordinator.query('BEGIN');
    await coordinator.query('UPDATE ledger SET n = n + 1 WHERE id = 1');
    await coordinator.query("PREPARE TRANSACTION 'xa-42'");
    await coordinator.end(); // the prepared transaction outlives its session, and keeps its locks
    const waiter = await client(main.url, 'api');
    const w = (await waiter.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    const pending = waiter.query('UPDATE ledger SET n = n + 2 WHERE id = 1');
    try {
      await waitForLockWait(w);
      const f = await run(activeQueries(db, { minDuration: '1m' }));
      expect(f.data.rootBlockers).toHaveLength(1);
      expect(f.data.rootBlockers[0]).toMatchObject({
        root: 0,
        blocked: [w],
        state: 'prepared',
        user: 'postgres',
        prepared: [{ gid: 'xa-42', owner: 'postgres', database: 'postgres' }],
      });
      expect(f.summary).toMatch(
        /^a prepared transaction \(pg_prepared_xacts: gid 'xa-42', owner postgres, prepared \S+ ago\) blocks 1 session; longest lock wait \S+$/,
      );
      expect(f.summary).not.toMatch(/pid 0/);
      const chain = f.evidence.find((e) => e.kind === 'table' && e.title.startsWith('Blocking chains'));
      expect(chain?.kind === 'table' && chain.rows.map((r) => [String(r[0]).trim(), r[1], r[8]])).toEqual([
        ['prepared transaction', null, expect.stringContaining("gid 'xa-42'")],
        [`└ ${w}`, 'prepared transaction', 'UPDATE ledger SET n = n + 2 WHERE id = 1'],
      ]);
    } finally {
      await admin.query("ROLLBACK PREPARED 'xa-42'");
      await pending;
      await waiter.end();
    }
  });

  it('rejects contradicting options when built', () => {
    expect(() => activeQueries(db, { minDuration: '10m', failAfter: '5m' })).toThrow(
      /minDuration must not exceed failAfter/,
    );
  });
});

describe('slowQueries', () => {
  it('is unknown, saying what to do, while pg_stat_statements is not installed', async () => {
    const f = await run(slowQueries(db));
    expect(f.status).toBe('unknown');
    expect(f.data.available).toBe(false);
    expect(f.summary).toMatch(
      /^pg_stat_statements is not installed .*CREATE EXTENSION pg_stat_statements.*shared_preload_libraries/,
    );
  });

  it('is unknown when installed but not loaded through shared_preload_libraries', async () => {
    await smallDb.query('CREATE EXTENSION pg_stat_statements');
    const f = await run(slowQueries(smallDb));
    expect(f.status).toBe('unknown');
    expect(f.summary).toMatch(/^pg_stat_statements is not loaded: add it to shared_preload_libraries/);
  });

  it('lists statements by mean time: warn past minMeanTime, fail past failMeanTime', async () => {
    await admin.query('CREATE EXTENSION pg_stat_statements');
    await admin.query('SELECT pg_stat_statements_reset()');
    const app = await client(main.url, 'report-api');
    try {
      for (let i = 0; i < 2; i++) await app.query('SELECT pg_sleep(0.15), $1::int AS report', [i]);
      await app.query('SELECT count(*) FROM pg_class');
    } finally {
      await app.end();
    }
    const f = await run(slowQueries(db));
    expect(f.status).toBe('warn');
    expect(f.data.available).toBe(true);
    expect(f.data.slow).toBe(1);
    expect(f.data.statements).toHaveLength(1);
    const s = f.data.statements[0];
    expect(s?.query).toMatch(/^SELECT pg_sleep\(\$\d\), \$\d::int AS report$/);
    expect(s?.calls).toBe(2);
    expect(s?.meanMs).toBeGreaterThanOrEqual(150);
    expect(s?.totalMs).toBeGreaterThanOrEqual(300);
    expect(s?.database).toBe('postgres');
    expect(s?.shareOfTotal).toBeGreaterThan(0.5);
    expect(f.data.statsReset).not.toBeNull();
    expect(f.summary).toMatch(
      /^1 statement with a mean at or above 100ms since \d{4}-\d\d-\d\d \d\d:\d\d UTC; slowest 1\d\dms mean × 2 calls: SELECT pg_sleep\(\$\d\)/,
    );
    expect((await run(slowQueries(db, { failMeanTime: '120ms' }))).status).toBe('fail');
    const strict = await run(slowQueries(db, { minMeanTime: '1s', failMeanTime: '2s' }));
    expect(strict.status).toBe('ok');
    expect(strict.data.statements).toEqual([]);
  });
});

describe('databaseSizes and tableSizes', () => {
  it('lists databases largest first, judged only against given limits', async () => {
    await admin.query('CREATE DATABASE aiwebtest');
    const app = await client(main.url.replace(/\/postgres$/, '/aiwebtest'), 'seed');
    try {
      await app.query(
        'CREATE TABLE payload AS SELECT g AS id, repeat(md5(g::text), 8) AS body FROM generate_series(1, 30000) g',
      );
    } finally {
      await app.end();
    }
    const f = await run(databaseSizes(db));
    expect(f.status).toBe('ok');
    expect(f.data.databases.map((d) => d.name)).toEqual(['aiwebtest', 'postgres']);
    const [big, small] = f.data.databases;
    expect(big?.bytes).toBeGreaterThan((small?.bytes ?? 0) + 5 * 1024 * 1024);
    expect(f.data.totalBytes).toBe((big?.bytes ?? 0) + (small?.bytes ?? 0));
    expect(f.summary).toMatch(/^2 databases, [\d.]+ MB in all; largest aiwebtest [\d.]+ MB$/);
    expect((await run(databaseSizes(db, { includeTemplates: true }))).data.databases).toHaveLength(4);
    const limited = await run(databaseSizes(db, { warnAbove: '1MB', failAbove: '14MB' }));
    expect(limited.status).toBe('fail');
    expect(limited.summary).toMatch(/at or above 14 MB: aiwebtest [\d.]+ MB$/);
    expect((await run(databaseSizes(db, { warnAbove: '1MB' }))).status).toBe('warn');
  });

  it('estimates bloat from dead rows, and VACUUM clears it', async () => {
    await admin.query(
      'CREATE TABLE test_runs (id int PRIMARY KEY, note text) WITH (autovacuum_enabled = false)',
    );
    await admin.query("INSERT INTO test_runs SELECT g, 'run ' || g FROM generate_series(1, 20000) g");
    await admin.query('CREATE TABLE tiny (id int)');
    await admin.query('DELETE FROM test_runs WHERE id <= 12000');
    await admin.query('SELECT pg_stat_force_next_flush()');
    const check = tableSizes(db, { schemas: ['public'] });
    const f = await until(check, (x) => x.status === 'fail');
    expect(f.status).toBe('fail');
    const t = f.data.bloated.find((x) => x.table === 'test_runs');
    expect(t).toMatchObject({
      schema: 'public',
      liveRows: 8000,
      deadRows: 12000,
      deadRatio: 0.6,
      lastVacuum: null,
    });
    expect(f.data.largest[0]?.table).toBe('test_runs');
    expect(f.data.largest.map((x) => x.table)).toContain('tiny');
    expect(f.summary).toBe('1 table needs VACUUM: public.test_runs 60% dead (12000 rows)');
    expect((await run(tableSizes(db, { failDeadRatio: 0.7 }))).status).toBe('warn');
    expect((await run(tableSizes(db, { minDeadRows: 20000 }))).status).toBe('ok');

    await admin.query('VACUUM test_runs');
    const after = await until(check, (x) => x.status === 'ok');
    expect(after.status).toBe('ok');
    const vacuumed = after.data.largest.find((x) => x.table === 'test_runs');
    expect(vacuumed?.deadRows).toBe(0);
    expect(vacuumed?.lastVacuum).not.toBeNull();
    expect(after.summary).toMatch(
      /^Largest table public\.test_runs [\d.]+ (kB|MB) \(\d+ tables listed\); no table with 20%\+ dead rows$/,
    );
  });
});

describe('unusedIndexes and invalidIndexes', () => {
  it('lists never-scanned indexes that enforce nothing and pass minSize', async () => {
    await admin.query(
      `CREATE TABLE test_cases (id int PRIMARY KEY, project int, created_at timestamptz, email text,
                                code text UNIQUE)`,
    );
    await admin.query(
      `INSERT INTO test_cases SELECT g, g % 50, now() - g * interval '1 minute', 'user' || (g % 70000) || '@x',
                                     'TC-' || g FROM generate_series(1, 80000) g`,
    );
    await admin.query('CREATE INDEX idx_cases_project ON test_cases (project)');
    await admin.query('CREATE INDEX idx_cases_created ON test_cases (created_at)');
    await admin.query('ANALYZE test_cases');
    const reader = await client(main.url, 'reader');
    try {
      await reader.query('SET enable_seqscan = off');
      await reader.query('SELECT count(*) FROM test_cases WHERE project = 3');
      await reader.query('SELECT pg_stat_force_next_flush()');
    } finally {
      await reader.end();
    }
    // idx_cases_project was scanned; it is also small (50 distinct values, deduplicated). idx_cases_created
    // (80 000 distinct timestamps) never was.
    const f = await until(unusedIndexes(db, { minSize: 0 }), (x) =>
      x.data.indexes.every((i) => i.index !== 'idx_cases_project'),
    );
    expect(f.data.indexes.map((i) => i.index)).toEqual(['idx_cases_created']);
    const sized = await run(unusedIndexes(db));
    expect(sized.status).toBe('warn');
    expect(sized.data.indexes.map((i) => i.index)).toEqual(['idx_cases_created']);
    expect(sized.data.indexes[0]).toMatchObject({
      schema: 'public',
      table: 'test_cases',
      definition: 'CREATE INDEX idx_cases_created ON public.test_cases USING btree (created_at)',
    });
    expect(sized.data.indexes[0]?.bytes).toBeGreaterThanOrEqual(1024 * 1024);
    expect(sized.summary).toMatch(
      /^1 index never scanned since .* \([\d.]+ MB\): public\.idx_cases_created on test_cases [\d.]+ MB; check replicas before dropping$/,
    );
    const big = await run(unusedIndexes(db, { minSize: '100MB' }));
    expect(big.status).toBe('ok');
    expect(big.summary).toMatch(/^No unused index of 100 MB or more since/);
  });

  it('fails on the INVALID leftover of a failed CREATE UNIQUE INDEX CONCURRENTLY', async () => {
    expect((await run(invalidIndexes(db))).status).toBe('ok');
    await expect(
      admin.query('CREATE UNIQUE INDEX CONCURRENTLY idx_cases_email ON test_cases (email)'),
    ).rejects.toThrow(/could not create unique index/);
    // The client hears the error a moment before the backend has aborted its build (and cleared its progress
    // row); until then the index still reads as being built.
    const f = await until(invalidIndexes(db), (x) => x.data.building === 0);
    expect(f.status).toBe('fail');
    expect(f.data).toMatchObject({ leftovers: 1, building: 0 });
    expect(f.data.indexes[0]).toMatchObject({
      schema: 'public',
      table: 'test_cases',
      index: 'idx_cases_email',
      unique: true,
      building: false,
    });
    expect(f.summary).toMatch(
      /^1 invalid index left by a failed concurrent build: public\.idx_cases_email on test_cases \(unique\);/,
    );
    // An invalid index is not "unused": it is this check's business, not unusedIndexes'.
    expect((await run(unusedIndexes(db, { minSize: 0 }))).data.indexes.map((i) => i.index)).not.toContain(
      'idx_cases_email',
    );
    await admin.query('DROP INDEX idx_cases_email');
    expect((await run(invalidIndexes(db))).summary).toBe('No invalid index');
  });

  it('says "possibly still being built" when a build by another role hides its progress from ours', async () => {
    // `monitor` has no pg_read_all_stats: progress rows of postgres' builds show it no table and no index.
    await admin.query('CREATE ROLE monitor LOGIN');
    const monitorDb = connectPostgres({ url: main.url.replace('//postgres@', '//monitor@') });
    // An old snapshot keeps the build waiting at its end, its index still INVALID.
    const snapshot = await client(main.url, 'old-snapshot');
    await snapshot.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await snapshot.query('SELECT 1');
    const builder = await client(main.url, 'builder');
    const building = builder
      .query('CREATE INDEX CONCURRENTLY idx_cases_code_lower ON test_cases (lower(code))')
      .catch((e: Error) => e);
    try {
      const seen = await until(invalidIndexes(db), (x) => x.data.building === 1);
      expect(seen).toMatchObject({ status: 'ok', data: { building: 1, leftovers: 0, hiddenBuilds: 0 } });
      const f = await run(invalidIndexes(monitorDb));
      expect(f.status).toBe('warn');
      expect(f.data).toMatchObject({ leftovers: 1, building: 0, hiddenBuilds: 1, seesAllProgress: false });
      expect(f.data.indexes[0]).toMatchObject({
        index: 'idx_cases_code_lower',
        building: false,
        possiblyBuilding: true,
      });
      expect(f.summary).toBe(
        '1 index invalid (possibly still being built by another role): public.idx_cases_code_lower on test_cases; 1 index build by another role in progress, whose progress is hidden from this role (no pg_read_all_stats). Check again once it ends before dropping anything',
      );
    } finally {
      await snapshot.query('COMMIT');
      expect(await building).not.toBeInstanceOf(Error);
      await Promise.all([snapshot.end(), builder.end(), monitorDb.close()]);
    }
    await admin.query('DROP INDEX idx_cases_code_lower');
    expect((await run(invalidIndexes(db))).summary).toBe('No invalid index');
  });
});

describe('archiverStatus', () => {
  async function switchWal(url: string): Promise<void> {
    const c = await client(url, 'wal-switch');
    try {
      await c.query('CREATE TABLE IF NOT EXISTS wal_filler (x int)');
      await c.query('INSERT INTO wal_filler VALUES (1)');
      await c.query('SELECT pg_switch_wal()');
    } finally {
      await c.end();
    }
  }

  it('is ok once a segment is archived, fails while archive_command fails, and recovers when it is mended', async () => {
    await switchWal(main.url);
    const ok = await until(archiverStatus(db), (x) => x.data.archivedCount > 0 && x.data.pending === 0);
    expect(ok.status).toBe('ok');
    expect(ok.data).toMatchObject({
      archiveMode: 'on',
      archiverConfigured: true,
      walLevel: 'replica',
      failing: false,
      failedCount: 0,
      pending: 0,
    });
    expect(ok.data.lastArchivedWal).toMatch(/^[0-9A-F]{24}$/);
    expect(ok.summary).toMatch(/^WAL archiving ok: [0-9A-F]{24} archived \S+ ago, \d+ archived, 0 failed$/);

    const mended = (await admin.query('SHOW archive_command')).rows[0].archive_command as string;
    await admin.query("ALTER SYSTEM SET archive_command = 'false'");
    await admin.query('SELECT pg_reload_conf()');
    try {
      // The archiver reads the new command in its own time: until it has, a new segment is still archived.
      // Switch segments until one fails (failed_count grows), not after a guessed pause.
      const failures = async () =>
        Number((await admin.query('SELECT failed_count FROM pg_stat_archiver')).rows[0].failed_count);
      const before = await failures();
      const deadline = Date.now() + 15_000;
      await switchWal(main.url);
      for (let next = Date.now() + 1_000; (await failures()) === before; await sleep(50)) {
        if (Date.now() > deadline) throw new Error('archive_command = false never failed an archive');
        if (Date.now() > next) {
          await switchWal(main.url);
          next = Date.now() + 1_000;
        }
      }
      const f = await until(archiverStatus(db), (x) => x.data.failing);
      expect(f.status).toBe('fail');
      expect(f.data.failedCount).toBeGreaterThanOrEqual(1);
      expect(f.data.lastFailedWal).not.toBe(ok.data.lastArchivedWal);
      expect(f.data.pending).toBeGreaterThanOrEqual(1);
      expect(f.summary).toMatch(
        /^WAL archiving failing: \d+ failures?, last for [0-9A-F]{24} \S+ ago; last success \S+ ago, \d+ WAL segments? waiting\. Check archive_command and the server log$/,
      );
    } finally {
      await admin.query(
        'ALTER SYSTEM SET archive_command = $1'.replace('$1', `'${mended.replace(/'/g, "''")}'`),
      );
      await admin.query('SELECT pg_reload_conf()');
    }
    const healed = await until(archiverStatus(db), (x) => !x.data.failing && x.data.pending === 0);
    expect(healed.status).toBe('ok');
    expect(healed.data.archivedCount).toBeGreaterThan(ok.data.archivedCount);
  });

  it('says plainly when archiving is off: unknown, or fail when required', async () => {
    const f = await run(archiverStatus(smallDb));
    expect(f.status).toBe('unknown');
    expect(f.summary).toBe(
      'WAL archiving is off (archive_mode = off): this server keeps no WAL archive, so point-in-time recovery from it is not possible',
    );
    expect((await run(archiverStatus(smallDb, { required: true }))).status).toBe('fail');
  });
});

describe('sqlCheck', () => {
  beforeAll(async () => {
    await admin.query(
      `CREATE TABLE test_executions (execution_id serial PRIMARY KEY, result text NOT NULL, started_at timestamptz NOT NULL)`,
    );
    await admin.query(
      `INSERT INTO test_executions (result, started_at) VALUES
         ('running', now() - interval '20 minutes'), ('running', now() - interval '15 minutes'),
         ('running', now() - interval '11 minutes'), ('running', now()), ('passed', now()), ('failed', now())`,
    );
  });

  const stuck = {
    name: 'Test executions running > 10 minutes',
    sql: `SELECT execution_id, started_at, now() - started_at AS duration FROM test_executions
           WHERE result = 'running' AND started_at < now() - $1::interval ORDER BY started_at`,
    params: ['10 minutes'],
  };

  it('judges the row count by default, with the rows as evidence', async () => {
    const f = await run(sqlCheck(db, { ...stuck, thresholds: { fail: 1 } }));
    expect(f.status).toBe('fail');
    expect(f.summary).toBe('Test executions running > 10 minutes: 3 rows (≥ fail 1)');
    expect(f.data).toMatchObject({
      measure: 'rows',
      value: 3,
      rowCount: 3,
      columns: ['execution_id', 'started_at', 'duration'],
    });
    expect(f.data.rows[0]?.execution_id).toBe(1);
    expect(f.data.rows[0]?.started_at).toMatch(/^\d{4}-\d\d-\d\dT.*Z$/);
    expect(f.data.rows[0]?.duration).toMatch(/^20 minutes [\d.]+ seconds$/);
    expect(f.evidence[0]).toMatchObject({ kind: 'table', title: stuck.name });
    expect(f.evidence[0]?.kind === 'table' && f.evidence[0].rows).toHaveLength(3);
    const none = await run(sqlCheck(db, { ...stuck, params: ['1 day'], thresholds: { fail: 1 } }));
    expect(none.status).toBe('ok');
    expect(none.summary).toBe('Test executions running > 10 minutes: 0 rows');
  });

  it('judges a `value` column, above or below the thresholds', async () => {
    const running = "SELECT count(*) AS value FROM test_executions WHERE result = 'running'";
    const f = await run(
      sqlCheck(db, { name: 'Running executions', sql: running, thresholds: { warn: 3, fail: 10 } }),
    );
    expect(f.status).toBe('warn');
    expect(f.data).toMatchObject({ measure: 'value', value: 4, rowCount: 1 });
    expect(f.summary).toBe('Running executions: value 4 (≥ warn 3)');
    const below = await run(
      sqlCheck(db, {
        name: 'Executions after restore',
        sql: 'SELECT count(*) AS value FROM test_executions',
        thresholds: { fail: 100, direction: 'below' },
        rowsAsEvidence: false,
      }),
    );
    expect(below.status).toBe('fail');
    expect(below.summary).toBe('Executions after restore: value 6 (≤ fail 100)');
    expect(below.evidence).toEqual([]);
    const nothing = await run(
      sqlCheck(db, {
        name: 'Max',
        sql: 'SELECT max(started_at)::text AS value FROM test_executions WHERE false',
      }),
    );
    expect(nothing.status).toBe('unknown');
    expect(nothing.summary).toBe('Max: column "value" is null or not a number');
  });

  it('refuses to write: an UPDATE fails with a clear error and the rows stay as they were', async () => {
    const update = sqlCheck(db, {
      name: 'Oops',
      sql: "UPDATE test_executions SET result = 'error' WHERE result = 'running' RETURNING execution_id",
    });
    const error = await run(update).catch((e: unknown) => e);
    expect(isRunbookError(error) && error.code).toBe('SQL_CHECK_NOT_READ_ONLY');
    expect(isRunbookError(error) && error.retriable).toBe(false);
    expect(String((error as Error).message)).toMatch(
      /^sqlCheck "Oops" tried to change data, and PostgreSQL refused it: cannot execute UPDATE in a read-only transaction \(SQLSTATE 25006\)\. A check only reads; write the change as an action\.$/,
    );
    const cte = sqlCheck(db, {
      name: 'Sneaky',
      sql: 'WITH gone AS (DELETE FROM test_executions RETURNING 1) SELECT count(*) AS value FROM gone',
    });
    await expect(run(cte)).rejects.toThrow(/refused it: cannot execute \w+ in a read-only transaction/);
    await expect(
      run(sqlCheck(db, { name: 'Seq', sql: "SELECT nextval('test_executions_execution_id_seq')" })),
    ).rejects.toThrow(/read-only transaction/);
    const { rows } = await admin.query(
      'SELECT result, count(*)::int AS n FROM test_executions GROUP BY 1 ORDER BY 1',
    );
    expect(rows).toEqual([
      { result: 'failed', n: 1 },
      { result: 'passed', n: 1 },
      { result: 'running', n: 4 },
    ]);
    // The pooled connections came back out of the read-only transaction.
    expect((await db.query('SHOW transaction_read_only')).rows[0]?.transaction_read_only).toBe('off');
  });

  it('refuses two statements, and transaction control, when built', () => {
    const build = (sql: string) => () => sqlCheck(db, { name: 'x', sql });
    expect(build("SELECT 1; UPDATE test_executions SET result = 'error'")).toThrow(/more than one statement/);
    expect(build('COMMIT')).toThrow(/COMMIT is not allowed/);
    expect(build('set transaction_read_only = off')).toThrow(/SET is not allowed/);
    const error = (() => {
      try {
        build('SELECT 1; SELECT 2')();
      } catch (e) {
        return e;
      }
    })();
    expect(isInputValidationError(error) && error.issues[0]?.path).toBe('sql');
    expect(build("SELECT ';' AS value;")).not.toThrow();
  });

  it('stops the statement on the server when the step is aborted', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const running = run(sqlCheck(db, { name: 'Slow', sql: 'SELECT pg_sleep(20)' }), controller.signal);
    setTimeout(() => controller.abort(new Error('step timed out')), 200);
    await expect(running).rejects.toThrow('step timed out');
    expect(Date.now() - started).toBeLessThan(3000);
    const { rows } = await admin.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(20)' AND state = 'active'",
    );
    expect(rows[0].n).toBe(0);
  });
});
