import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isInputValidationError } from '../../src/core/errors';
import type { Json } from '../../src/core/json';
import { sealPlan } from '../../src/core/plan';
import type { Action, Applied, StepContext } from '../../src/core/step';
import { clients } from '../../src/postgres/pgbouncer/clients';
import {
  adminCommand,
  connectPgBouncer,
  isPgBouncerError,
  type PgBouncerConsole,
} from '../../src/postgres/pgbouncer/console';
import { pause, resume } from '../../src/postgres/pgbouncer/pause';
import { pools } from '../../src/postgres/pgbouncer/pools';
import { reconnect } from '../../src/postgres/pgbouncer/reconnect';
import { stats } from '../../src/postgres/pgbouncer/stats';
import { startTestPgBouncer, type TestPgBouncer } from '../support/pgbouncer';
import { startTestCluster, type TestCluster } from '../support/postgres-cluster';

// A real pgbouncer 1.18 (transaction pooling) in front of a real PostgreSQL 15. Pools: `app` has 5 server
// connections per user, `small` 2, `spare`, `quiet` and `unused` the default 2. Clients connect as `app_user`, so the
// server connections pgbouncer opens for them are the `app_user` rows of pg_stat_activity.

let cluster: TestCluster;
let bouncer: TestPgBouncer;
let admin: PgBouncerConsole;
let direct: pg.Client;
const open: pg.Client[] = [];

beforeAll(async () => {
  cluster = await startTestCluster();
  direct = new pg.Client({ connectionString: cluster.url });
  await direct.connect();
  await direct.query('CREATE ROLE app_user LOGIN');
  bouncer = await startTestPgBouncer({
    postgresPort: cluster.port,
    databases: { app: { poolSize: 5 }, small: { poolSize: 2 }, spare: {}, quiet: {}, unused: {} },
    users: ['postgres', 'app_user'],
    settings: { stats_period: '1' },
  });
  admin = connectPgBouncer({ url: bouncer.adminUrl, name: 'test-bouncer' });
});

// Every test's clients are closed after it, so a failed test leaves no transaction holding a pool.
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.end().catch(() => {})));
});

afterAll(async () => {
  await direct?.end().catch(() => {});
  await bouncer?.stop();
  await cluster?.destroy();
});

function ctx(): StepContext {
  return {
    runId: 'run-1',
    runbookId: 'test',
    step: 'step',
    mode: 'execute',
    attempt: 1,
    actor: 'tester',
    signal: new AbortController().signal,
    log() {},
  };
}

/** Plans, seals as the engine does, applies. */
async function applyAction<P, A>(action: Action<P, A>) {
  const plan = sealPlan(action, await action.plan(ctx()));
  const data = await action.apply(ctx(), plan);
  const applied: Applied<P, A> = { plan, data, appliedAt: new Date().toISOString(), recovered: false };
  return { plan, applied };
}

async function verify<P, A>(action: Action<P, A>, applied: Applied<P, A>) {
  if (!action.verify) throw new Error(`${action.kind} has no verify`);
  return action.verify(ctx(), applied);
}

async function revert<P, A>(action: Action<P, A>, applied: Applied<P, A>) {
  if (!action.revert) throw new Error(`${action.kind} has no revert`);
  await action.revert(ctx(), applied);
}

/** A client through pgbouncer, closed after the suite. */
async function connect(database: string, user = 'app_user'): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: bouncer.url(database, user) });
  client.on('error', () => {});
  await client.connect();
  open.push(client);
  return client;
}

/** Clients each inside an open transaction: each holds one server connection. Returns their backend pids. */
async function holdTransactions(database: string, n: number): Promise<{ held: pg.Client[]; pids: number[] }> {
  const held = await Promise.all(Array.from({ length: n }, () => connect(database)));
  const pids: number[] = [];
  for (const c of held) {
    await c.query('BEGIN');
    pids.push((await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid ?? -1);
  }
  return { held, pids };
}

async function commitAll(held: pg.Client[]): Promise<void> {
  await Promise.all(held.map((c) => c.query('COMMIT')));
}

async function poolOf(database: string) {
  const f = await pools(admin, { database }).run(ctx());
  const pool = f.data.pools.find((p) => p.user === 'app_user');
  if (!pool) throw new Error(`no app_user pool for ${database}`);
  return { finding: f, pool };
}

/** Resolves when `predicate` holds, polling every 25 ms for at most 5 s. */
async function until(predicate: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error('condition not reached in 5s');
    await sleep(25);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Tracks whether a promise has settled, and when. */
function track<T>(promise: Promise<T>) {
  const state = { settled: false, at: 0, value: undefined as T | undefined, error: undefined as unknown };
  const done = promise.then(
    (value) => Object.assign(state, { settled: true, at: Date.now(), value }),
    (error: unknown) => Object.assign(state, { settled: true, at: Date.now(), error }),
  );
  return { state, done };
}

async function pausedFlag(database: string): Promise<boolean> {
  return (await admin.databases()).find((d) => d.name === database)?.paused ?? false;
}

async function backendsOf(pids: number[]): Promise<number[]> {
  const { rows } = await direct.query<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])',
    [pids],
  );
  return rows.map((r) => r.pid);
}

describe('input validation, before any command', () => {
  it('refuses a console URL that is not the admin database, naming the field', () => {
    try {
      connectPgBouncer({ url: 'postgres://postgres@127.0.0.1:6432/app' });
      expect.unreachable();
    } catch (e) {
      expect(isInputValidationError(e) && e.issues.map((i) => i.path)).toEqual(['url']);
    }
  });

  it('refuses bad options and database names with anything but [A-Za-z0-9_.-]', async () => {
    const before = await bouncer.log();
    for (const [build, field] of [
      [() => pools(admin, { warnAt: 1.5 }), 'warnAt'],
      [() => clients(admin, { limit: 0 }), 'limit'],
      [() => pause(admin, { database: 'app"; SHUTDOWN; --' }), 'database'],
      [() => pause(admin, { database: 'app db' }), 'database'],
      [() => reconnect(admin, { database: 'pgbouncer' }), 'database'],
      [() => resume(admin, { database: '' }), 'database'],
    ] as const) {
      let error: unknown;
      try {
        build();
      } catch (e) {
        error = e;
      }
      expect(isInputValidationError(error) && [...new Set(error.issues.map((i) => i.path))]).toEqual([field]);
    }
    expect(() => adminCommand('PAUSE', 'x";RESUME')).toThrow(/database/);
    expect(adminCommand('RECONNECT', 'app.v2-x')).toBe('RECONNECT "app.v2-x"');
    // Nothing reached pgbouncer: its log has no new PAUSE/RECONNECT/RESUME.
    expect((await bouncer.log()).slice(before.length)).not.toMatch(/PAUSE|RECONNECT|RESUME/);
  });

  it('refuses a well-formed name that SHOW DATABASES does not list, without sending the command', async () => {
    const before = await bouncer.log();
    for (const action of [pause(admin, { database: 'nosuch' }), reconnect(admin, { database: 'nosuch' })]) {
      const error = await action.plan(ctx()).catch((e: unknown) => e);
      expect(isPgBouncerError(error) && error.code).toBe('PGBOUNCER_UNKNOWN_DATABASE');
      expect((error as Error).message).toMatch(/no database "nosuch".*app, quiet, small, spare, unused/);
    }
    expect((await bouncer.log()).slice(before.length)).not.toMatch(/nosuch/);
    expect((await admin.databases()).map((d) => d.name)).not.toContain('nosuch');
  });
});

describe('checks with real client traffic', () => {
  it('pools: utilization per pool, warn above warnAt, fail when a client waits longer than maxWait', async () => {
    const idle = await pools(admin).run(ctx());
    expect(idle.status).toBe('ok');

    // 4 of 5 server connections in use: exactly 80% is not above 80%.
    const first = await holdTransactions('app', 4);
    let { finding, pool } = await poolOf('app');
    expect(pool).toMatchObject({ svActive: 4, poolSize: 5, clActive: 4, clWaiting: 0, utilization: 0.8 });
    expect(finding.status).toBe('ok');

    // 5 of 5: warn.
    const fifth = await holdTransactions('app', 1);
    ({ finding, pool } = await poolOf('app'));
    expect(pool).toMatchObject({ svActive: 5, utilization: 1, clWaiting: 0 });
    expect(finding.status).toBe('warn');
    expect(finding.summary).toMatch(/app\/app_user 5\/5 server connections in use \(100% > 80%\)/);

    // A sixth client's query waits for a server connection.
    const waiter = await connect('app');
    const waited = track(waiter.query('SELECT 1'));
    await until(async () => (await poolOf('app')).pool.clWaiting === 1);
    await sleep(450);
    const [lenient, strict, who] = await Promise.all([
      pools(admin, { database: 'app' }).run(ctx()), // maxWait 1s: only the utilization warns
      pools(admin, { database: 'app', maxWait: '300ms' }).run(ctx()),
      clients(admin, { database: 'app', maxWait: '300ms' }).run(ctx()),
    ]);
    expect(waited.state.settled).toBe(false);
    expect(lenient.status).toBe('warn');
    expect(strict.status).toBe('fail');
    const strictPool = strict.data.pools.find((p) => p.user === 'app_user');
    expect(strictPool).toMatchObject({ clWaiting: 1, clActive: 5, svActive: 5, utilization: 1 });
    expect(strictPool?.maxWaitMs).toBeGreaterThanOrEqual(400);
    expect(strictPool?.maxWaitMs).toBeLessThan(1000);
    expect(strict.summary).toMatch(/app\/app_user 1 client waiting, the oldest .*limit 300ms/);
    expect(strict.data.problems.map((p) => [p.reason, p.severity])).toEqual([['clients-waiting', 'fail']]);

    // clients: the waiting one first; every holder's server is its own backend; no internal pointers.
    expect(who.status).toBe('fail');
    expect(who.data).toMatchObject({ total: 6, waiting: 1, byState: { active: 5, waiting: 1 } });
    expect(who.data.clients[0]).toMatchObject({ state: 'waiting', serverPid: null, user: 'app_user' });
    expect(who.data.clients[0]?.waitMs).toBeGreaterThanOrEqual(400);
    const servedBy = who.data.clients.slice(1).map((c) => c.serverPid);
    expect(servedBy.sort()).toEqual([...first.pids, ...fifth.pids].sort());
    const text = JSON.stringify(who);
    expect(text).not.toMatch(/0x[0-9a-f]+|"ptr"|"link"|remotePid/);

    await commitAll([...first.held, ...fifth.held]);
    await waited.done;
    expect(waited.state.error).toBeUndefined();
    const after = await poolOf('app');
    expect(after.pool).toMatchObject({ svActive: 0, clWaiting: 0, utilization: 0 });
    expect(after.finding.status).toBe('ok');
  });

  it('stats: exact totals from real traffic, and the wait of an exhausted pool', async () => {
    const read = async () => {
      const f = await stats(admin, { database: 'small', warnWait: '50ms' }).run(ctx());
      const row = f.data.databases[0];
      if (!row) throw new Error('no stats for small');
      return { f, row };
    };
    // No traffic yet: PgBouncer does not list the database in SHOW STATS; the check reports zeros.
    const before = await read();
    expect(before.f.status).toBe('ok');
    expect(before.row).toMatchObject({ totalXacts: 0, totalQueries: 0, avgWaitMs: null });
    expect(before.f.data.statsPeriodSeconds).toBe(1);

    // Both server connections held for 400 ms while a third client waits for one.
    const c = await connect('small');
    const { held } = await holdTransactions('small', 2);
    const waited = track(c.query('SELECT 1'));
    await until(async () => (await poolOf('small')).pool.clWaiting === 1);
    await sleep(400);
    await commitAll(held);
    await waited.done;
    // PgBouncer 1.18 averages from its previous stats tick until now (1 to 2 periods): the wait shows at once.
    const afterWait = await read();
    // 2 held transactions (BEGIN, SELECT, COMMIT) and the waiter's SELECT.
    expect(afterWait.row.totalXacts).toBe(3);
    expect(afterWait.row.totalQueries).toBe(7);
    expect(afterWait.row.totalWaitTimeMs).toBeGreaterThanOrEqual(400);
    expect(afterWait.row.meanWaitMs).toBeGreaterThanOrEqual(400 / 3);
    expect(afterWait.f.status).toBe('warn');
    expect(afterWait.f.summary).toMatch(/small clients waited .* (per transaction|per second) for a server/);

    // Ten more transactions, one query each.
    for (let i = 0; i < 10; i++) await c.query('SELECT 1');
    const afterSelects = await read();
    expect(afterSelects.row.totalXacts - afterWait.row.totalXacts).toBe(10);
    expect(afterSelects.row.totalQueries - afterWait.row.totalQueries).toBe(10);
    expect(afterSelects.row.totalWaitTimeMs).toBe(afterWait.row.totalWaitTimeMs);
    expect(afterSelects.row.meanQueryMs).toBeGreaterThan(0);
  });
});

describe('pause and resume', () => {
  it('pause <db>: a query through pgbouncer blocks until resume, then completes', async () => {
    const c = await connect('spare');
    await c.query('SELECT 1');

    const action = pause(admin, { database: 'spare' });
    expect(action).toMatchObject({ kind: 'pgbouncer.pause', risk: 'high', destructive: false });
    expect(action.target).toBe('pgbouncer:test-bouncer/database/spare');
    const { plan, applied } = await applyAction(action);
    expect(plan.summary).toMatch(/^Pause database spare on PgBouncer test-bouncer: new transactions wait/);
    expect(plan.changes).toEqual([
      { target: 'pgbouncer:test-bouncer/database/spare', field: 'paused', before: false, after: true },
    ]);
    expect(await pausedFlag('spare')).toBe(true);
    expect(await pausedFlag('app')).toBe(false);
    const verified = await verify(action, applied);
    expect(verified?.status).toBe('ok');
    // Planning again finds nothing to do.
    expect((await action.plan(ctx())).changes).toEqual([]);
    // The pools check sees the stopped traffic.
    expect((await pools(admin, { database: 'spare' }).run(ctx())).data.problems).toContainEqual(
      expect.objectContaining({ reason: 'paused', severity: 'warn' }),
    );

    const started = Date.now();
    const blocked = track(c.query('SELECT 42 AS answer'));
    await sleep(600);
    expect(blocked.state.settled).toBe(false);
    // Other databases flow.
    const other = await connect('quiet');
    await other.query('SELECT 1');

    const undo = resume(admin, { database: 'spare' });
    expect(undo.risk).toBe('low');
    const resumed = await applyAction(undo);
    expect(resumed.plan.changes).toEqual([
      { target: 'pgbouncer:test-bouncer/database/spare', field: 'paused', before: true, after: false },
    ]);
    expect((await verify(undo, resumed.applied))?.status).toBe('ok');
    await blocked.done;
    expect(blocked.state.error).toBeUndefined();
    expect((blocked.state.value as pg.QueryResult).rows).toEqual([{ answer: 42 }]);
    expect(blocked.state.at - started).toBeGreaterThanOrEqual(600);
    expect(await pausedFlag('spare')).toBe(false);
    // Verify of the pause now fails (it was resumed); its revert is then a no-op.
    expect((await verify(action, applied))?.status).toBe('fail');
    await revert(action, applied);
    // And with nothing paused, resume has nothing to do.
    expect((await resume(admin, { database: 'spare' }).plan(ctx())).changes).toEqual([]);
  });

  it('revert of pause resumes the database', async () => {
    const action = pause(admin, { database: 'spare' });
    const { applied } = await applyAction(action);
    expect(await pausedFlag('spare')).toBe(true);
    await revert(action, applied);
    expect(await pausedFlag('spare')).toBe(false);
    const c = await connect('spare');
    const t0 = Date.now();
    await c.query('SELECT 1');
    expect(Date.now() - t0).toBeLessThan(500);
  });

  it('a pause that cannot finish within its timeout is withdrawn, and traffic flows', async () => {
    const { held } = await holdTransactions('spare', 1);
    const action = pause(admin, { database: 'spare', timeout: '300ms' });
    const plan = sealPlan(action, await action.plan(ctx()));
    expect(plan.summary).toMatch(/waits up to 300ms for 1 transaction in flight/);
    const t0 = Date.now();
    const error = await action.apply(ctx(), plan).catch((e: unknown) => e);
    expect(isPgBouncerError(error) && error.code).toBe('PGBOUNCER_PAUSE_TIMEOUT');
    expect((error as Error).message).toMatch(/withdrawn \(RESUME\)/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(await pausedFlag('spare')).toBe(false);
    const other = await connect('spare');
    const t1 = Date.now();
    await other.query('SELECT 1');
    expect(Date.now() - t1).toBeLessThan(500);
    await commitAll(held);
  });

  it('global pause: every database waits, resume() lifts it', async () => {
    const c = await connect('quiet');
    await c.query('SELECT 1');
    const action = pause(admin);
    expect(action.target).toBe('pgbouncer:test-bouncer');
    const { plan, applied } = await applyAction(action);
    expect(plan.summary).toMatch(/^Pause every database/);
    expect(plan.changes).toEqual([
      { target: 'pgbouncer:test-bouncer', field: 'paused', before: false, after: true },
    ]);
    expect(await verify(action, applied)).toMatchObject({ status: 'ok', data: { global: true } });
    // A database is not paused on its own: resuming it alone is refused.
    const refused = await resume(admin, { database: 'quiet' })
      .plan(ctx())
      .catch((e: unknown) => e);
    expect(isPgBouncerError(refused) && refused.code).toBe('PGBOUNCER_PAUSED_GLOBALLY');

    const blocked = track(c.query('SELECT 1'));
    await sleep(400);
    expect(blocked.state.settled).toBe(false);
    const undo = resume(admin);
    const resumed = await applyAction(undo);
    expect(resumed.plan.changes).toEqual([
      { target: 'pgbouncer:test-bouncer', field: 'paused', before: true, after: false },
    ]);
    expect((await verify(undo, resumed.applied))?.status).toBe('ok');
    await blocked.done;
    expect(blocked.state.error).toBeUndefined();
    expect((await admin.pauseState()).global).toBe(false);
  });
});

describe('reconnect', () => {
  it('replaces the server connections once released: new backend pids in pg_stat_activity', async () => {
    // Three server connections for app: two idle, one held by an open transaction.
    const warm = await holdTransactions('app', 3);
    await commitAll(warm.held.slice(0, 2));
    const heldClient = warm.held[2] as pg.Client;
    const heldPid = warm.pids[2] as number;
    const { rows } = await direct.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE usename = 'app_user' AND pid = ANY($1::int[])",
      [warm.pids],
    );
    expect(rows.map((r) => r.pid).sort()).toEqual([...warm.pids].sort());

    const action = reconnect(admin, { database: 'app', timeout: '400ms' });
    expect(action).toMatchObject({ kind: 'pgbouncer.reconnect', risk: 'medium', destructive: false });
    const { plan, applied } = await applyAction(action);
    expect(plan.changes).toEqual([
      {
        target: 'pgbouncer:test-bouncer/database/app',
        field: 'server connections',
        before: 'open',
        after: 'closed once released, reopened on demand',
      },
    ]);
    const old = (applied.data?.servers ?? []).map((s) => s.pid);
    expect([...old].sort()).toEqual(expect.arrayContaining([...warm.pids].sort()));

    // The held transaction keeps its server connection: verify fails naming it, the transaction is intact.
    const early = await verify(action, applied);
    expect(early.status).toBe('fail');
    expect(early.summary).toMatch(new RegExp(`1 old server connection .*backend pids ${heldPid}\\)`));
    expect((early.data as { stillOpenPids: Json }).stillOpenPids).toEqual([heldPid]);
    expect((await heldClient.query('SELECT pg_backend_pid() AS pid')).rows[0]?.pid).toBe(heldPid);
    await heldClient.query('COMMIT');

    const done = await verify(action, applied);
    expect(done?.status).toBe('ok');
    // pgbouncer closed them; their backends exit in PostgreSQL a moment later.
    await until(async () => (await backendsOf(old)).length === 0);
    const fresh = await connect('app');
    const pid = (await fresh.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
    expect(old).not.toContain(pid);
    expect(await backendsOf([pid ?? -1])).toEqual([pid]);
  });

  it('plans nothing for a database without server connections', async () => {
    const plan = await reconnect(admin, { database: 'unused' }).plan(ctx());
    expect(plan.changes).toEqual([]);
    expect(plan.summary).toMatch(/No server connections of database unused .*nothing to reconnect/);
  });
});
