import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Action, Applied, StepContext } from '../../src/core/step';
import {
  cancelBackends,
  createIndexConcurrently,
  refreshMaterializedView,
  reindexConcurrently,
  type SqlActionApplied,
  type SqlActionParams,
  setStatementTimeout,
  sqlAction,
  terminateBackends,
  vacuumAnalyze,
} from '../../src/postgres/actions';
import { connectPostgres, type PostgresDatabase } from '../../src/postgres/database';
import { sealAsEngine, stepContext } from '../support/kubernetes';
import { startTestCluster, type TestCluster } from '../support/postgres-cluster';

// Every action against a real PostgreSQL 15 cluster of this file's own: the conditions are made for real
// (sleeping queries, failed index builds, dead rows) and every effect is read back from the catalog.

const DB = 'aiwebtest';
const APP = 'app-under-test';

let cluster: TestCluster;
let db: PostgresDatabase;
let setup: pg.Pool;
const clients: pg.Client[] = [];
const sleepers: number[] = [];

const urlFor = (user = 'postgres') => `postgres://${user}@127.0.0.1:${cluster.port}/${DB}`;

beforeAll(async () => {
  cluster = await startTestCluster();
  const admin = new pg.Client({ connectionString: cluster.url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${DB}`);
  await admin.query('CREATE ROLE app LOGIN');
  await admin.end();
  setup = new pg.Pool({ connectionString: urlFor(), application_name: 'test-setup', max: 4 });
  await setup.query('GRANT ALL ON SCHEMA public TO app');
  db = connectPostgres({ url: urlFor(), name: DB, statementTimeout: '20s' });
});

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => {});
  await db?.close();
  await setup?.end();
  await cluster?.destroy();
});

const ctx = (): StepContext => stepContext();

/** plan → seal (redacted, as stored) → apply → verify, as the engine drives them. */
async function execute<P, A>(action: Action<P, A>) {
  const c = ctx();
  const plan = sealAsEngine(action, await action.plan(c));
  const data = await action.apply(c, plan);
  const applied: Applied<P, A> = { plan, data, appliedAt: new Date().toISOString(), recovered: false };
  const verification = action.verify ? await action.verify(c, applied) : undefined;
  return { plan, applied, data, verification };
}

async function sql<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params: unknown[] = []) {
  return (await setup.query<R>(text, params)).rows;
}

/** A client of the application: connects as `user` with `application`, and runs `pg_sleep(seconds)`. */
async function sleeper(o: { user?: string; application?: string; seconds?: number; comment?: string } = {}) {
  const client = new pg.Client({
    connectionString: urlFor(o.user ?? 'app'),
    application_name: o.application ?? APP,
  });
  client.on('error', () => {});
  clients.push(client);
  await client.connect();
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid as number;
  sleepers.push(pid);
  const start = () => {
    const outcome = client.query(`SELECT pg_sleep(${o.seconds ?? 60})${o.comment ?? ''}`).then(
      () => ({ error: null as null | { code?: string; message: string } }),
      (e: { code?: string; message: string }) => ({ error: e }),
    );
    return outcome;
  };
  let outcome = start();
  await untilActive(pid);
  return {
    client,
    pid,
    get outcome() {
      return outcome;
    },
    /** Runs another sleep on the same session (the same pid, a new query_start). */
    async again() {
      await untilIdle(pid);
      outcome = start();
      await untilActive(pid);
    },
  };
}

async function untilActive(pid: number, ms = 0): Promise<void> {
  await vi.waitFor(
    async () => {
      const rows = await sql(
        `SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE 'SELECT pg_sleep%'
            AND now() - query_start >= make_interval(secs => $2::float8 / 1000)`,
        [pid, ms],
      );
      expect(rows).toHaveLength(1);
    },
    { timeout: 5_000, interval: 20 },
  );
}

/** The client sees a cancelled query fail a moment before the server reports the session idle. */
async function untilIdle(pid: number): Promise<void> {
  await vi.waitFor(async () => expect(await backend(pid)).toMatchObject({ state: 'idle' }), {
    timeout: 5_000,
    interval: 20,
  });
}

async function backend(pid: number) {
  return (await sql('SELECT pid, state, query FROM pg_stat_activity WHERE pid = $1', [pid]))[0];
}

describe('terminateBackends / cancelBackends', () => {
  // A sleeping session left behind would hold back CREATE INDEX CONCURRENTLY (it waits for old snapshots).
  afterEach(async () => {
    await sql('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY($1)', [
      sleepers.splice(0),
    ]);
  });

  it('a statement that waited for a lock while parsed, then went on, is still the planned one: it is terminated', async () => {
    await sql('CREATE TABLE IF NOT EXISTS locked_reports (id int)');
    await sql('GRANT SELECT ON locked_reports TO app');
    const holder = new pg.Client({ connectionString: urlFor(), application_name: 'lock-holder' });
    holder.on('error', () => {});
    clients.push(holder);
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE locked_reports IN ACCESS EXCLUSIVE MODE');
    // With a parameter, pg uses the extended protocol: the lock is waited for while the statement is parsed,
    // and PostgreSQL sets a new query_start when it goes on to execute it.
    const report = new pg.Client({ connectionString: urlFor('app'), application_name: APP });
    report.on('error', () => {});
    clients.push(report);
    await report.connect();
    const reportPid = (await report.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]
      ?.pid as number;
    sleepers.push(reportPid);
    const running = report
      .query('SELECT count(*) FROM locked_reports CROSS JOIN pg_sleep($1::float8)', [60])
      .catch((e) => e);
    await vi.waitFor(
      async () => {
        const waiting = await sql(
          `SELECT 1 FROM pg_stat_activity
            WHERE pid = $1 AND wait_event_type = 'Lock' AND now() - query_start >= interval '300 ms'`,
          [reportPid],
        );
        expect(waiting).toHaveLength(1);
      },
      { timeout: 5_000, interval: 20 },
    );
    const action = terminateBackends(db, { filter: { minDuration: '300ms', application: [APP] } });
    const c = ctx();
    const plan = sealAsEngine(action, await action.plan(c));
    expect(plan.params.backends.map((b) => b.pid)).toEqual([reportPid]);
    const before = (
      await sql<{ q: Date }>('SELECT query_start AS q FROM pg_stat_activity WHERE pid = $1', [reportPid])
    )[0]?.q;
    await holder.query('ROLLBACK'); // the blocker ends (say, an approver killed it first); the report goes on
    await new Promise((r) => setTimeout(r, 300));
    const after = (
      await sql<{ q: Date }>('SELECT query_start AS q FROM pg_stat_activity WHERE pid = $1', [reportPid])
    )[0]?.q;
    expect(after?.getTime()).toBeGreaterThan(before?.getTime() ?? 0);

    const data = await action.apply(c, plan);
    expect(data).toEqual({ signalled: [reportPid], skipped: [], failed: [] });
    const verification = await action.verify?.(c, {
      plan,
      data,
      appliedAt: new Date().toISOString(),
      recovered: false,
    });
    expect(verification).toMatchObject({ status: 'ok' });
    expect(await backend(reportPid)).toBeUndefined();
    expect(await running).toMatchObject({ code: '57P01' });
  });

  it('terminates exactly the matching backend: it is gone and its client got the termination error', async () => {
    const victim = await sleeper();
    const superuser = await sleeper({ user: 'postgres' });
    const ours = await sleeper({ application: db.options.applicationName });
    await untilActive(victim.pid, 300);
    const action = terminateBackends(db, {
      filter: { minDuration: '300ms', application: [APP, db.options.applicationName] },
    });
    expect(action.destructive).toBe(true);
    expect(action.risk).toBe('high');
    const { plan, data, verification } = await execute(action);

    expect(plan.changes).toHaveLength(1);
    expect(plan.changes[0]).toMatchObject({
      target: `postgres:${DB}/pid/${victim.pid}`,
      field: `backend ${victim.pid}`,
      before: {
        pid: victim.pid,
        user: 'app',
        application: APP,
        database: DB,
        client: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
        state: 'active',
        backendStart: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/),
        queryStart: expect.stringMatching(/Z$/),
        query: 'SELECT pg_sleep(60)',
      },
      after: 'terminated',
    });
    // The duration is in the summary only: it grows, and params and changes must not (the plan hash).
    expect(plan.summary).toMatch(
      new RegExp(`^Terminate 1 backend of ${DB} .*pid ${victim.pid} \\(app, ${APP}, active \\d`),
    );
    expect(plan.params.backends[0]).not.toHaveProperty('durationMs');
    expect(data).toEqual({ signalled: [victim.pid], skipped: [], failed: [] });
    expect(verification).toMatchObject({ status: 'ok' });

    expect(await backend(victim.pid)).toBeUndefined();
    expect((await victim.outcome).error).toMatchObject({ code: '57P01' });
    // The superuser's session and the session with our application_name were never touched.
    expect(await backend(superuser.pid)).toMatchObject({ state: 'active' });
    expect(await backend(ours.pid)).toMatchObject({ state: 'active' });
    // Planned again (as the engine does after a crash), the terminated backend is no longer a change to make.
    expect((await action.plan(ctx())).changes).toEqual([]);

    // includeSuperusers puts the superuser's session in the plan; our own stays out regardless.
    const wider = await terminateBackends(db, {
      filter: { application: [APP, db.options.applicationName] },
      includeSuperusers: true,
    }).plan(ctx());
    expect(wider.params.backends.map((b) => b.pid)).toEqual([superuser.pid]);
  });

  it('never lists the session that plans, even when it has taken the victims’ application_name', async () => {
    const victim = await sleeper();
    const single = connectPostgres({ url: urlFor(), poolSize: 1 });
    try {
      // The one pooled session renames itself: only its pid tells it apart now. Its planning statement is
      // active, from APP, and matches the pattern, and must still be left out.
      await single.query(`SET application_name = '${APP}'`);
      const plan = await terminateBackends(single, {
        filter: { application: APP, queryPattern: 'pg_stat_activity|pg_sleep' },
        includeSuperusers: true, // we connect as a superuser
      }).plan(ctx());
      expect(plan.params.backends.map((b) => b.pid)).toEqual([victim.pid]);
    } finally {
      await single.close();
    }
  });

  it('cancels the query: it fails with 57014, the connection lives on', async () => {
    const victim = await sleeper();
    const action = cancelBackends(db, { filter: { application: APP, queryPattern: '^SELECT pg_sleep' } });
    expect(action.destructive).toBe(false);
    const { plan, data, verification } = await execute(action);
    expect(plan.changes.map((c) => [c.field, c.after])).toEqual([[`backend ${victim.pid}`, 'cancelled']]);
    expect(data).toEqual({ signalled: [victim.pid], skipped: [], failed: [] });
    expect(verification).toMatchObject({ status: 'ok' });
    expect((await victim.outcome).error).toMatchObject({ code: '57014' });
    expect((await victim.client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await untilIdle(victim.pid);
    await victim.client.end();
  });

  it('skips a backend that moved on to another query, or ended, between plan and apply', async () => {
    const reused = await sleeper();
    const ended = await sleeper();
    const action = terminateBackends(db, { filter: { application: APP } });
    const c = ctx();
    const plan = sealAsEngine(action, await action.plan(c));
    expect(plan.params.backends.map((b) => b.pid).sort()).toEqual([reused.pid, ended.pid].sort());

    // The same pid now runs another query (a new query_start); the other session is gone.
    await sql('SELECT pg_cancel_backend($1)', [reused.pid]);
    await reused.outcome;
    await reused.again();
    await sql('SELECT pg_terminate_backend($1)', [ended.pid]);
    await vi.waitFor(async () => expect(await backend(ended.pid)).toBeUndefined(), { timeout: 5_000 });

    const logs: string[] = [];
    const data = await action.apply({ ...c, log: (m) => logs.push(m) }, plan);
    expect(data.signalled).toEqual([]);
    expect(data.skipped).toEqual(
      expect.arrayContaining([
        { pid: reused.pid, reason: 'the session now runs another query than the planned one' },
        { pid: ended.pid, reason: 'the backend has ended since the plan' },
      ]),
    );
    expect(logs.some((l) => l.startsWith(`skipped pid ${reused.pid}`))).toBe(true);
    // Nothing was done to the session that moved on.
    expect(await backend(reused.pid)).toMatchObject({ state: 'active' });
    const verification = await action.verify?.(c, { plan, data, appliedAt: '', recovered: false });
    expect(verification).toMatchObject({ status: 'ok' });
  });

  it('keeps passwords in query text out of the sealed plan, whatever their quoting or a cut', async () => {
    const quoted = await sleeper({ comment: " /* ALTER ROLE app PASSWORD 'hunter2-quoted' */" });
    const tight = await sleeper({ comment: " /* CREATE ROLE b PASSWORD'hunter2-tight' */" });
    const dollar = await sleeper({
      comment: ' /* ALTER ROLE app ENCRYPTED PASSWORD $pw$hunter2-dollar$pw$ */',
    });
    // The literal starts before the 200 characters a plan shows and ends after them.
    const cut = await sleeper({
      comment: ` /* ${'x'.repeat(150)} PASSWORD 'hunter2-cut-${'y'.repeat(60)}' */`,
    });
    const action = terminateBackends(db, { filter: { application: APP } });
    const plan = sealAsEngine(action, await action.plan(ctx()));
    const json = JSON.stringify(plan);
    expect(plan.params.backends.map((b) => b.pid).sort()).toEqual(
      [quoted.pid, tight.pid, dollar.pid, cut.pid].sort(),
    );
    expect(json).not.toMatch(/hunter2/);
    const shown = (pid: number) =>
      (plan.changes.find((c) => c.field === `backend ${pid}`)?.before as { query?: string } | undefined)
        ?.query;
    expect(shown(quoted.pid)).toBe("SELECT pg_sleep(60) /* ALTER ROLE app PASSWORD '[REDACTED]' */");
    expect(shown(tight.pid)).toBe("SELECT pg_sleep(60) /* CREATE ROLE b PASSWORD'[REDACTED]' */");
    expect(shown(dollar.pid)).toBe(
      "SELECT pg_sleep(60) /* ALTER ROLE app ENCRYPTED PASSWORD '[REDACTED]' */",
    );
    expect(shown(cut.pid)).toMatch(/PASSWORD '\[REDACTED\]' \*\/$/);
  });

  it('plans the same hash again for an unchanged world (approvals bind to it)', async () => {
    await sleeper();
    const action = terminateBackends(db, { filter: { application: APP } });
    const first = sealAsEngine(action, await action.plan(ctx()));
    await new Promise((r) => setTimeout(r, 50));
    const second = sealAsEngine(action, await action.plan(ctx()));
    expect(second.changes).toHaveLength(1);
    expect(second.hash).toBe(first.hash);
  });

  it('validates filters up front and refuses a filter that matches too many', async () => {
    expect(() => terminateBackends(db, { filter: {} })).toThrow(
      /Invalid options of pg.terminate-backends: filter: give at least one/,
    );
    expect(() => cancelBackends(db, { filter: { user: 'app', state: 'idle in transaction' } })).toThrow(
      /filter\.state: only "active" backends/,
    );
    expect(() => terminateBackends(db, { filter: { minDuration: '5 minutes' } })).toThrow(
      /filter\.minDuration/,
    );
    await sleeper();
    await sleeper();
    await expect(
      terminateBackends(db, { filter: { application: APP }, max: 1 }).plan(ctx()),
    ).rejects.toMatchObject({
      code: 'PG_TOO_MANY_BACKENDS',
    });
    const none = await cancelBackends(db, { filter: { application: 'nobody' } }).plan(ctx());
    expect(none).toMatchObject({
      changes: [],
      summary: `No backend of ${DB} matches the filter: nothing to cancel`,
    });
  });
});

async function indexState(name: string, schema = 'public') {
  return (
    await sql<{ valid: boolean; ready: boolean; def: string }>(
      `SELECT i.indisvalid AS valid, i.indisready AS ready, pg_get_indexdef(c.oid) AS def
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_index i ON i.indexrelid = c.oid
        WHERE n.nspname = $1 AND c.relname = $2`,
      [schema, name],
    )
  )[0];
}

describe('createIndexConcurrently', () => {
  beforeAll(async () => {
    await sql(
      `CREATE TABLE builds (id serial PRIMARY KEY, code text, status text, created_at timestamptz DEFAULT now())`,
    );
    await sql(`INSERT INTO builds (code, status) SELECT 'c' || g, 'done' FROM generate_series(1, 200) g`);
  });

  it('drops the INVALID index a failed build left, builds a valid one, and reverts by dropping it', async () => {
    await sql(`INSERT INTO builds (code, status) VALUES ('c1', 'dup')`);
    await expect(
      sql('CREATE UNIQUE INDEX CONCURRENTLY builds_code_key ON builds (code)'),
    ).rejects.toMatchObject({
      code: '23505',
    });
    expect(await indexState('builds_code_key')).toMatchObject({ valid: false });
    await sql(`DELETE FROM builds WHERE status = 'dup'`);

    const action = createIndexConcurrently(db, {
      table: 'builds',
      columns: ['code'],
      name: 'builds_code_key',
      unique: true,
    });
    expect(action.target).toBe(`postgres:${DB}/relation/public.builds`);
    const { plan, applied, data, verification } = await execute(action);
    const ddl =
      'CREATE UNIQUE INDEX CONCURRENTLY "builds_code_key" ON "public"."builds" USING btree ("code")';
    expect(plan.summary).toBe(
      `Drop the INVALID index public.builds_code_key left by a failed build (DROP INDEX CONCURRENTLY), then build it again: ${ddl}`,
    );
    expect(plan.changes).toEqual([
      {
        target: action.target,
        field: 'index builds_code_key',
        before: {
          definition: 'CREATE UNIQUE INDEX builds_code_key ON public.builds USING btree (code)',
          valid: false,
        },
        after: { definition: ddl, valid: true },
      },
    ]);
    expect(data.droppedInvalid).toBe(true);
    expect(verification).toMatchObject({ status: 'ok' });
    expect(await indexState('builds_code_key')).toMatchObject({ valid: true, ready: true });

    // Planned again it is done; then revert drops it.
    expect((await action.plan(ctx())).changes).toEqual([]);
    await action.revert?.(ctx(), applied);
    expect(await indexState('builds_code_key')).toBeUndefined();
  });

  it('a build that fails on duplicates cleans up after itself and says why', async () => {
    await sql(`INSERT INTO builds (code, status) VALUES ('c2', 'dup')`);
    const action = createIndexConcurrently(db, { table: 'builds', columns: ['code'], unique: true });
    const plan = sealAsEngine(action, await action.plan(ctx()));
    expect(plan.params.index).toBe('builds_code_idx');
    await expect(action.apply(ctx(), plan)).rejects.toMatchObject({
      code: 'PG_INDEX_BUILD_FAILED',
      message: expect.stringMatching(
        /duplicate key.*remove them before building a unique index.*was dropped\.$/s,
      ),
    });
    expect(await indexState('builds_code_idx')).toBeUndefined();
    await sql(`DELETE FROM builds WHERE status = 'dup'`);
  });

  it('builds a partial, descending index whose predicate values are quoted as literals', async () => {
    const action = createIndexConcurrently(db, {
      table: 'builds',
      columns: [{ name: 'created_at', order: 'desc' }],
      name: 'builds_running_idx',
      where: [
        { column: 'status', op: '=', value: "running'); DROP TABLE builds; --" },
        { column: 'code', op: 'is not null' },
      ],
    });
    const { verification } = await execute(action);
    expect(verification).toMatchObject({ status: 'ok' });
    expect((await indexState('builds_running_idx'))?.def).toBe(
      `CREATE INDEX builds_running_idx ON public.builds USING btree (created_at DESC) WHERE ((status = 'running''); DROP TABLE builds; --'::text) AND (code IS NOT NULL))`,
    );
    expect(await sql('SELECT count(*)::int AS n FROM builds')).toEqual([{ n: 200 }]);
  });

  it('gives up on a lock held too long (lock_timeout), and an aborted step cancels the build on the server', async () => {
    const holder = await setup.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE builds IN SHARE UPDATE EXCLUSIVE MODE');
      const quick = createIndexConcurrently(db, {
        table: 'builds',
        columns: ['status'],
        lockTimeout: '200ms',
      });
      const plan = sealAsEngine(quick, await quick.plan(ctx()));
      const started = Date.now();
      await expect(quick.apply(ctx(), plan)).rejects.toMatchObject({
        code: 'PG_INDEX_BUILD_FAILED',
        message: expect.stringContaining('could not be taken within lock_timeout'),
      });
      expect(Date.now() - started).toBeLessThan(5_000);

      const patient = createIndexConcurrently(db, {
        table: 'builds',
        columns: ['status'],
        lockTimeout: '1h',
      });
      const controller = new AbortController();
      const c = stepContext({ signal: controller.signal });
      const applying = patient.apply(c, sealAsEngine(patient, await patient.plan(c)));
      await vi.waitFor(async () =>
        expect(
          await sql(
            `SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'CREATE INDEX%'`,
          ),
        ).toHaveLength(1),
      );
      controller.abort(new Error('step timed out'));
      await expect(applying).rejects.toThrow('step timed out');
      await vi.waitFor(async () =>
        expect(
          await sql(`SELECT 1 FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX%' AND state = 'active'`),
        ).toHaveLength(0),
      );
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    expect(await indexState('builds_status_idx')).toBeUndefined();
  });

  it('takes an identical index as done, and refuses one of that name with another WHERE, order or method', async () => {
    await sql(`CREATE INDEX builds_open_idx ON builds (status) WHERE status = 'running'`);
    const running = { column: 'status', op: '=' as const, value: 'running' };
    const same = await createIndexConcurrently(db, {
      table: 'builds',
      columns: ['status'],
      name: 'builds_open_idx',
      where: [running],
    }).plan(ctx());
    expect(same.changes).toEqual([]);
    expect(same.summary).toMatch(/^Index public\.builds_open_idx already exists and is valid/);
    for (const other of [
      { columns: ['status'], where: [{ ...running, value: 'done' }] },
      { columns: ['status'] },
      { columns: [{ name: 'status', order: 'desc' as const }], where: [running] },
      { columns: [{ name: 'status', nulls: 'first' as const }], where: [running] },
      { columns: ['status'], where: [running], method: 'hash' as const },
      { columns: ['status'], where: [running], unique: true },
    ]) {
      await expect(
        createIndexConcurrently(db, { table: 'builds', name: 'builds_open_idx', ...other }).plan(ctx()),
      ).rejects.toMatchObject({
        code: 'PG_NAME_TAKEN',
        message: expect.stringContaining(`another definition: CREATE INDEX builds_open_idx`),
      });
    }
    await sql('DROP INDEX builds_open_idx');

    // Replaced by another definition after the apply: verify fails, and revert leaves that index alone.
    const ours = createIndexConcurrently(db, {
      table: 'builds',
      columns: ['status'],
      name: 'builds_state_idx',
    });
    const { applied, verification } = await execute(ours);
    expect(verification).toMatchObject({ status: 'ok' });
    await sql('DROP INDEX builds_state_idx');
    await sql(`CREATE INDEX builds_state_idx ON builds (status) WHERE status = 'done'`);
    expect(await ours.verify?.(ctx(), applied)).toMatchObject({
      status: 'fail',
      summary: expect.stringContaining('another definition'),
    });
    await expect(ours.revert?.(ctx(), applied)).rejects.toMatchObject({ code: 'PG_PLAN_DRIFT' });
    expect(await indexState('builds_state_idx')).toMatchObject({ valid: true });
    await sql('DROP INDEX builds_state_idx');
  });

  it('never drops an index of that name that someone else created after the plan', async () => {
    const action = createIndexConcurrently(db, {
      table: 'builds',
      columns: ['code'],
      unique: true,
      name: 'builds_code_uq',
    });
    const plan = sealAsEngine(action, await action.plan(ctx()));
    expect(plan.params.dropInvalidOid).toBeNull();
    // After the plan, someone else's build of that name fails and leaves its INVALID index.
    await sql(`INSERT INTO builds (code, status) VALUES ('c3', 'dup')`);
    await expect(
      sql('CREATE UNIQUE INDEX CONCURRENTLY builds_code_uq ON builds (code)'),
    ).rejects.toMatchObject({ code: '23505' });
    await expect(action.apply(ctx(), plan)).rejects.toMatchObject({
      code: 'PG_PLAN_DRIFT',
      retriable: false,
    });
    expect(await indexState('builds_code_uq')).toMatchObject({ valid: false });
    await sql('DROP INDEX builds_code_uq');
    await sql(`DELETE FROM builds WHERE status = 'dup'`);
  });

  it('checks the table and columns in the catalog, and refuses a name taken by another definition', async () => {
    await expect(
      createIndexConcurrently(db, { table: 'nope', columns: ['id'] }).plan(ctx()),
    ).rejects.toMatchObject({
      code: 'PG_NOT_FOUND',
      message: expect.stringContaining('public.nope does not exist'),
    });
    await expect(
      createIndexConcurrently(db, { table: 'builds', columns: ['Code'] }).plan(ctx()),
    ).rejects.toMatchObject({
      code: 'PG_NOT_FOUND',
      message: expect.stringContaining('has no column "Code"'),
    });
    await expect(
      createIndexConcurrently(db, { table: 'builds', columns: ['status'], name: 'builds_pkey' }).plan(ctx()),
    ).rejects.toMatchObject({ code: 'PG_NAME_TAKEN' });
    expect(() =>
      createIndexConcurrently(db, { table: 'builds', columns: ['code'], unique: true, method: 'gin' }),
    ).toThrow(/unique: only btree indexes can be unique/);
  });
});

describe('identifiers', () => {
  const schema = 'Ops "Schema"';
  const table = 'Test "Runs" 2024';

  beforeAll(async () => {
    await sql(`CREATE SCHEMA "Ops ""Schema"""`);
    await sql(`CREATE TABLE "Ops ""Schema"""."Test ""Runs"" 2024" (id int, "Started At" timestamptz)`);
    await sql(
      `INSERT INTO "Ops ""Schema"""."Test ""Runs"" 2024" SELECT g, now() FROM generate_series(1, 50) g`,
    );
  });

  it('names with quotes and spaces work through every action', async () => {
    const relation = { schema, name: table };
    const index = createIndexConcurrently(db, { table: relation, columns: ['Started At'] });
    expect(index.target).toBe(`postgres:${DB}/relation/Ops%20%22Schema%22.Test%20%22Runs%22%202024`);
    expect((await execute(index)).verification).toMatchObject({ status: 'ok' });
    expect(await indexState('Test "Runs" 2024_Started At_idx', schema)).toMatchObject({ valid: true });
    expect((await execute(vacuumAnalyze(db, { table: relation }))).verification).toMatchObject({
      status: 'ok',
    });
    expect((await execute(reindexConcurrently(db, { table: relation }))).verification).toMatchObject({
      status: 'ok',
    });
    // A string splits at the first dot: the schema is "Ops \"Schema\"".
    const byString = await vacuumAnalyze(db, { table: `${schema}.${table}` }).plan(ctx());
    expect(byString.params).toMatchObject({ schema, name: table });
  });

  it('an injection attempt in a table name is refused, or quoted harmlessly when such a table exists', async () => {
    const evil = 'builds; DROP TABLE builds; --';
    await expect(vacuumAnalyze(db, { table: evil }).plan(ctx())).rejects.toMatchObject({
      code: 'PG_NOT_FOUND',
    });
    await sql(`CREATE TABLE "builds; DROP TABLE builds; --" (id int)`);
    expect((await execute(vacuumAnalyze(db, { table: evil }))).verification).toMatchObject({ status: 'ok' });
    expect(await sql(`SELECT to_regclass('public.builds') IS NOT NULL AS present`)).toEqual([
      { present: true },
    ]);
    expect(() => vacuumAnalyze(db, { table: 'x'.repeat(64) })).toThrow(/table: longer than 63 bytes/);
  });
});

describe('vacuumAnalyze, reindexConcurrently, refreshMaterializedView', () => {
  beforeAll(async () => {
    await sql('CREATE TABLE events (id int PRIMARY KEY, kind text)');
    await sql('CREATE INDEX events_kind_idx ON events (kind)');
    await sql(`INSERT INTO events SELECT g, 'k' || (g % 10) FROM generate_series(1, 2000) g`);
    await sql('DELETE FROM events WHERE id % 2 = 0');
  });

  it('VACUUM ANALYZE advances last_vacuum and last_analyze', async () => {
    const action = vacuumAnalyze(db, { table: 'events' });
    expect([action.risk, action.destructive]).toEqual(['low', false]);
    const { plan, verification } = await execute(action);
    expect(plan.changes.map((c) => [c.field, c.before, c.after])).toEqual([
      ['last_vacuum', null, 'advanced'],
      ['last_analyze', null, 'advanced'],
    ]);
    expect(verification).toMatchObject({ status: 'ok' });
    const [stats] = await sql(
      `SELECT last_vacuum IS NOT NULL AS vacuumed, last_analyze IS NOT NULL AS analyzed, n_dead_tup::int AS dead
         FROM pg_stat_user_tables WHERE relname = 'events'`,
    );
    expect(stats).toEqual({ vacuumed: true, analyzed: true, dead: 0 });
  });

  it('VACUUM FULL is refused without allowFull, and rewrites the table with it', async () => {
    expect(() => vacuumAnalyze(db, { table: 'events', full: true })).toThrow(
      /full: VACUUM FULL locks the table exclusively/,
    );
    const before = await sql<{ f: string }>(`SELECT pg_relation_filenode('events')::text AS f`);
    const action = vacuumAnalyze(db, { table: 'events', full: true, allowFull: true });
    expect([action.risk, action.destructive]).toEqual(['high', true]);
    const { plan, verification } = await execute(action);
    expect(plan.summary).toMatch(/^VACUUM FULL ANALYZE \(exclusive lock/);
    expect(verification).toMatchObject({ status: 'ok' });
    expect(await sql(`SELECT pg_relation_filenode('events')::text AS f`)).not.toEqual(before);
  });

  it('REINDEX CONCURRENTLY gives an index, or every index of a table, new storage', async () => {
    const filenode = async (name: string) =>
      (await sql<{ f: string }>('SELECT pg_relation_filenode($1)::text AS f', [name]))[0]?.f;
    const one = await filenode('events_kind_idx');
    const { plan, verification } = await execute(reindexConcurrently(db, { index: 'events_kind_idx' }));
    expect(plan.changes).toEqual([
      {
        target: `postgres:${DB}/relation/public.events_kind_idx`,
        field: 'index public.events_kind_idx',
        before: { relfilenode: one, valid: true },
        after: 'rebuilt',
      },
    ]);
    expect(verification).toMatchObject({ status: 'ok' });
    expect(await filenode('events_kind_idx')).not.toBe(one);

    const pkey = await filenode('events_pkey');
    const table = await execute(reindexConcurrently(db, { table: 'events' }));
    expect(table.plan.changes.map((c) => c.field)).toEqual([
      'index public.events_kind_idx',
      'index public.events_pkey',
    ]);
    expect(table.verification).toMatchObject({ status: 'ok' });
    expect(await filenode('events_pkey')).not.toBe(pkey);
    expect(() => reindexConcurrently(db, { index: 'a', table: 'b' })).toThrow(
      /give exactly one of index and table/,
    );
  });

  it('refreshes concurrently with a unique index, and says a plain refresh blocks reads', async () => {
    await sql(
      'CREATE MATERIALIZED VIEW event_counts AS SELECT kind, count(*) AS n FROM events GROUP BY kind',
    );
    const plain = refreshMaterializedView(db, { view: 'event_counts' });
    await sql(`INSERT INTO events VALUES (100001, 'new-kind')`);
    const blocking = await execute(plain);
    expect(blocking.plan.summary).toBe(
      'Refresh materialized view public.event_counts WITHOUT CONCURRENTLY, because it has no unique index without WHERE clause or expressions: it blocks every read of the view until the refresh ends',
    );
    expect(blocking.verification).toMatchObject({ status: 'ok', data: { replaced: true } });
    expect(await sql(`SELECT n::int FROM event_counts WHERE kind = 'new-kind'`)).toEqual([{ n: 1 }]);
    await expect(
      refreshMaterializedView(db, { view: 'event_counts', allowBlocking: false }).plan(ctx()),
    ).rejects.toMatchObject({ code: 'PG_REFRESH_WOULD_BLOCK' });

    await sql('CREATE UNIQUE INDEX event_counts_kind ON event_counts (kind)');
    await sql(`INSERT INTO events VALUES (100002, 'new-kind')`);
    const refresh = refreshMaterializedView(db, { view: 'event_counts', allowBlocking: false });
    // No refresh since this plan: verify must say so, although the view is populated and keeps its storage.
    const unapplied = sealAsEngine(refresh, await refresh.plan(ctx()));
    expect(
      await refresh.verify?.(ctx(), { plan: unapplied, data: null, appliedAt: '', recovered: false }),
    ).toMatchObject({ status: 'fail', data: { populated: true, replaced: false, refreshed: false } });
    const concurrent = await execute(refresh);
    expect(concurrent.plan.params).toMatchObject({ concurrently: true, uniqueIndex: 'event_counts_kind' });
    expect(concurrent.plan.changes[0]).toMatchObject({
      before: { populated: true },
      after: 'refreshed concurrently',
    });
    expect(concurrent.verification).toMatchObject({
      status: 'ok',
      data: { populated: true, replaced: false, refreshed: true },
    });
    expect(await sql(`SELECT n::int FROM event_counts WHERE kind = 'new-kind'`)).toEqual([{ n: 2 }]);

    // Never populated: CONCURRENTLY is impossible even with the unique index.
    await sql('CREATE MATERIALIZED VIEW empty_counts AS SELECT kind FROM events GROUP BY kind WITH NO DATA');
    await sql('CREATE UNIQUE INDEX empty_counts_kind ON empty_counts (kind)');
    const first = await execute(refreshMaterializedView(db, { view: 'empty_counts' }));
    expect(first.plan.summary).toMatch(/WITHOUT CONCURRENTLY, because it was never populated/);
    expect(first.verification).toMatchObject({ status: 'ok' });
    await expect(refreshMaterializedView(db, { view: 'events' }).plan(ctx())).rejects.toMatchObject({
      code: 'PG_WRONG_KIND',
      message: 'public.events is a table, not a materialized view.',
    });
  });
});

describe('setStatementTimeout', () => {
  const stored = async (role: string) =>
    (
      await sql<{ cfg: string[] | null }>(
        `SELECT s.setconfig AS cfg FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
          WHERE r.rolname = $1 AND s.setdatabase = 0`,
        [role],
      )
    )[0]?.cfg ?? null;

  it('sets a role’s timeout (new sessions get it), verifies it, and revert removes it again', async () => {
    const action = setStatementTimeout(db, { role: 'app', value: '30s' });
    const { plan, applied, verification } = await execute(action);
    expect(plan.changes).toEqual([
      {
        target: `postgres:${DB}/role/app/setting/statement_timeout`,
        field: 'statement_timeout',
        before: null,
        after: '30000ms',
      },
    ]);
    expect(verification).toMatchObject({ status: 'ok' });
    expect(await stored('app')).toEqual(['statement_timeout=30000ms']);
    const session = new pg.Client({ connectionString: urlFor('app') });
    await session.connect();
    expect((await session.query('SHOW statement_timeout')).rows).toEqual([{ statement_timeout: '30s' }]);
    await session.end();
    expect((await action.plan(ctx())).changes).toEqual([]);
    await action.revert?.(ctx(), applied);
    expect(await stored('app')).toBeNull();
  });

  it('revert restores the previous value; a database setting and RESET work the same way', async () => {
    await sql(`ALTER ROLE app SET statement_timeout = '1min'`);
    const action = setStatementTimeout(db, { role: 'app', value: 5_000 });
    const { plan, applied } = await execute(action);
    expect(plan.changes[0]).toMatchObject({ before: '1min', after: '5000ms' });
    await action.revert?.(ctx(), applied);
    expect(await stored('app')).toEqual(['statement_timeout=1min']);
    // The same time in another spelling is no change.
    expect((await setStatementTimeout(db, { role: 'app', value: '60s' }).plan(ctx())).changes).toEqual([]);
    const reset = await execute(setStatementTimeout(db, { role: 'app', value: null }));
    expect(reset.plan.changes[0]).toMatchObject({ before: '1min', after: null });
    expect(await stored('app')).toBeNull();

    const database = setStatementTimeout(db, { database: DB, value: '45s' });
    const onDb = await execute(database);
    expect(onDb.verification).toMatchObject({ status: 'ok' });
    const [row] = await sql(
      `SELECT s.setconfig AS cfg FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
        WHERE d.datname = $1 AND s.setrole = 0`,
      [DB],
    );
    expect(row).toEqual({ cfg: ['statement_timeout=45000ms'] });
    await database.revert?.(ctx(), onDb.applied);
    await expect(setStatementTimeout(db, { role: 'ghost', value: '1s' }).plan(ctx())).rejects.toMatchObject({
      code: 'PG_NOT_FOUND',
    });
    expect(() => setStatementTimeout(db, { value: '1s' })).toThrow(/role: give a role, a database, or both/);
  });

  it('revert refuses when someone changed the setting since the apply, and names the value now', async () => {
    const action = setStatementTimeout(db, { role: 'app', value: '30s' });
    const { applied } = await execute(action);
    await sql(`ALTER ROLE app SET statement_timeout = '2min'`);
    await expect(action.revert?.(ctx(), applied)).rejects.toMatchObject({
      code: 'PG_SETTING_CHANGED',
      retriable: false,
      message: expect.stringContaining('is now 2min, not the 30000ms this action set'),
    });
    expect(await stored('app')).toEqual(['statement_timeout=2min']);
    // RESET since: refused too. The same time in another spelling is still ours: revert goes ahead.
    await sql('ALTER ROLE app RESET statement_timeout');
    await expect(action.revert?.(ctx(), applied)).rejects.toMatchObject({ code: 'PG_SETTING_CHANGED' });
    await sql(`ALTER ROLE app SET statement_timeout = '30s'`);
    await action.revert?.(ctx(), applied);
    expect(await stored('app')).toBeNull();
  });
});

describe('sqlAction on test_executions', () => {
  beforeAll(async () => {
    await sql(
      `CREATE TABLE test_executions (id serial PRIMARY KEY, status text NOT NULL, started_at timestamptz NOT NULL)`,
    );
  });

  const seed = async () => {
    await sql('TRUNCATE test_executions RESTART IDENTITY');
    await sql(`INSERT INTO test_executions (status, started_at) VALUES
      ('running', now() - interval '30 minutes'), ('running', now() - interval '12 minutes'),
      ('running', now() - interval '1 minute'), ('passed', now() - interval '1 hour')`);
  };
  const statuses = async () =>
    (await sql<{ status: string }>('SELECT status FROM test_executions ORDER BY id')).map((r) => r.status);

  const options = {
    name: 'cancel-stuck-executions',
    target: 'test_executions',
    select: {
      sql: `SELECT id, status, started_at FROM test_executions
             WHERE status = 'running' AND started_at < now() - $1::interval ORDER BY id -- stuck ones`,
      params: ['10 minutes'],
    },
    update: {
      sql: `UPDATE test_executions SET status = 'cancelled' WHERE id = ANY($1) AND status = $2`,
      params: ['running'],
    },
    maxRows: 10,
    effect: 'status = cancelled',
  };

  it('plans the stuck rows, updates exactly them, verifies, and is destructive without a revert', async () => {
    await seed();
    const action = sqlAction(db, options);
    expect(action.target).toBe(`postgres:${DB}/test_executions`);
    expect(action.destructive).toBe(true);
    const { plan, data, verification } = await execute(action);
    expect(plan.summary).toBe(
      'SQL action cancel-stuck-executions: status = cancelled for 2 rows of test_executions (id 1, 2)',
    );
    expect(plan.changes.map((c) => [c.field, (c.before as { status: string }).status, c.after])).toEqual([
      ['row id=1', 'running', 'status = cancelled'],
      ['row id=2', 'running', 'status = cancelled'],
    ]);
    expect(plan.params.keys).toEqual([1, 2]);
    expect(data).toEqual({ updated: [1, 2], missing: [], added: [] });
    expect(verification).toMatchObject({ status: 'ok' });
    expect(await statuses()).toEqual(['cancelled', 'cancelled', 'running', 'passed']);
    expect((await action.plan(ctx())).changes).toEqual([]);
  });

  it('rolls back when the selection moved beyond the tolerance', async () => {
    await seed();
    const action = sqlAction(db, options);
    const plan = sealAsEngine(action, await action.plan(ctx()));
    await sql(
      `INSERT INTO test_executions (status, started_at) VALUES ('running', now() - interval '2 hours')`,
    );
    await expect(action.apply(ctx(), plan)).rejects.toMatchObject({
      code: 'PG_PLAN_DRIFT',
      message: expect.stringContaining(
        '1 row(s) joined: 5; 0 left), more than the tolerance of 0. Rolled back',
      ),
    });
    expect(await statuses()).toEqual(['running', 'running', 'running', 'passed', 'running']);

    // Within tolerance: the planned rows that still match are updated, the newcomer and the leaver are not.
    const tolerant = sqlAction(db, { ...options, tolerance: 2 });
    const plan2 = sealAsEngine(tolerant, await tolerant.plan(ctx()));
    expect(plan2.params.keys).toEqual([1, 2, 5]);
    await sql(`UPDATE test_executions SET status = 'passed' WHERE id = 2`);
    await sql(
      `INSERT INTO test_executions (status, started_at) VALUES ('running', now() - interval '3 hours')`,
    );
    expect(await tolerant.apply(ctx(), plan2)).toEqual({ updated: [1, 5], missing: [2], added: [6] });
    expect(await statuses()).toEqual(['cancelled', 'passed', 'running', 'passed', 'cancelled', 'running']);
  });

  it('rolls back when the update changes another number of rows than planned', async () => {
    await seed();
    const action = sqlAction(db, {
      ...options,
      update: {
        sql: `UPDATE test_executions SET status = 'cancelled' WHERE id = ANY($1) OR status = 'running'`,
      },
    });
    const plan = sealAsEngine(action, await action.plan(ctx()));
    await expect(action.apply(ctx(), plan)).rejects.toMatchObject({
      code: 'PG_ROW_COUNT_MISMATCH',
      message: expect.stringContaining(
        'the update changed 3 row(s), but 2 planned row(s) still match. Rolled back',
      ),
    });
    expect(await statuses()).toEqual(['running', 'running', 'running', 'passed']);
  });

  it('refuses too many rows and an update without $1; reverts with the given statement', async () => {
    await seed();
    await expect(sqlAction(db, { ...options, maxRows: 1 }).plan(ctx())).rejects.toMatchObject({
      code: 'PG_TOO_MANY_ROWS',
    });
    expect(() =>
      sqlAction(db, { ...options, update: { sql: `UPDATE test_executions SET status = 'x'` } }),
    ).toThrow(/update: must use the planned keys as \$1/);
    const action = sqlAction(db, {
      ...options,
      revert: {
        sql: `UPDATE test_executions SET status = 'running' WHERE id = ANY($1) AND status = 'cancelled'`,
      },
    });
    expect(action.destructive).toBe(false);
    const { applied } = await execute(action);
    expect(await statuses()).toEqual(['cancelled', 'cancelled', 'running', 'passed']);
    await action.revert?.(ctx(), applied);
    expect(await statuses()).toEqual(['running', 'running', 'running', 'passed']);
    // The plan's select runs read-only: one that writes (here: advances a sequence) is refused by PostgreSQL.
    const writer = sqlAction(db, {
      ...options,
      select: { sql: `SELECT id, nextval('test_executions_id_seq') AS n FROM test_executions` },
    });
    await expect(writer.plan(ctx())).rejects.toMatchObject({ code: 'PG_ERROR', sqlstate: '25006' });
    expect(await sql('SELECT last_value::int AS v FROM test_executions_id_seq')).toEqual([{ v: 4 }]);
  });

  it('after a recovered apply (its data lost), never reverts or judges rows it cannot know it changed', async () => {
    await seed();
    const revert = {
      sql: `UPDATE test_executions SET status = 'running' WHERE id = ANY($1) AND status = 'cancelled'`,
    };
    const tolerant = sqlAction(db, { ...options, tolerance: 1, revert });
    const plan = sealAsEngine(tolerant, await tolerant.plan(ctx()));
    expect(plan.params.keys).toEqual([1, 2]);
    // Someone else finishes row 2 first: it leaves the selection, and the apply leaves it alone.
    await sql(`UPDATE test_executions SET status = 'cancelled' WHERE id = 2`);
    expect(await tolerant.apply(ctx(), plan)).toEqual({ updated: [1], missing: [2], added: [] });
    // After a crash the engine has only the plan: revert cannot tell row 2 (not ours) from row 1.
    const recovered: Applied<SqlActionParams, SqlActionApplied> = {
      plan,
      data: null,
      appliedAt: '',
      recovered: true,
    };
    await expect(tolerant.revert?.(ctx(), recovered)).rejects.toMatchObject({
      code: 'PG_REVERT_UNKNOWN_ROWS',
      retriable: false,
    });
    expect(await statuses()).toEqual(['cancelled', 'cancelled', 'running', 'passed']);
    // No planned row matches: ok. A planned row matching again may be one the apply left alone: unknown.
    expect(await tolerant.verify?.(ctx(), recovered)).toMatchObject({ status: 'ok' });
    await sql(`UPDATE test_executions SET status = 'running' WHERE id = 2`);
    expect(await tolerant.verify?.(ctx(), recovered)).toMatchObject({
      status: 'unknown',
      data: { stillMatching: [2] },
    });
    // With its data, verify knows row 2 was never its own.
    expect(
      await tolerant.verify?.(ctx(), { ...recovered, data: { updated: [1], missing: [2], added: [] } }),
    ).toMatchObject({ status: 'ok' });

    // Tolerance 0: the apply changed exactly the planned rows or nothing, so the plan is enough to revert.
    await seed();
    const strict = sqlAction(db, { ...options, revert });
    const strictPlan = sealAsEngine(strict, await strict.plan(ctx()));
    await strict.apply(ctx(), strictPlan);
    const strictRecovered = { plan: strictPlan, data: null, appliedAt: '', recovered: true };
    expect(await strict.verify?.(ctx(), strictRecovered)).toMatchObject({ status: 'ok' });
    await strict.revert?.(ctx(), strictRecovered);
    expect(await statuses()).toEqual(['running', 'running', 'running', 'passed']);
  });
});
