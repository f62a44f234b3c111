import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  fixtureFromRun,
  openStore,
  type RunStore,
  recordRun,
  replayRun,
  type StepContext,
  sealPlan,
} from '@aiwebtest/runbooks';
import { connectPostgres, type PostgresDatabase, quoteIdent } from '@aiwebtest/runbooks/postgres';
import { runRunbook, TEST_APPROVER } from '@aiwebtest/runbooks/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_SECONDS,
  DEFAULT_MAX_SESSIONS,
  type IdleTransactionsData,
  type IdleTransactionsObservation,
  idleTransactions,
  idleTransactionsRunbook,
  setIdleInTransactionTimeout,
} from '../idle-transactions';

// The runbook on the real PostgreSQL (database `test`), with a role of the test's own whose name needs quoting
// (a space, capitals, a double quote) and sessions of that role left idle in their transactions.

const ADMIN_URL = process.env.AIWEBTEST_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ROLE = `Idle Tx "${randomBytes(3).toString('hex')}"`;
const SETTING = 'idle_in_transaction_session_timeout';
const EXAMPLES_DIR = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(
  dirname(createRequire(import.meta.url).resolve('@aiwebtest/runbooks/package.json')),
  'dist/cli/main.js',
);

let admin: pg.Client;
let db: PostgresDatabase;
let store: RunStore;
const runbook = idleTransactionsRunbook(() => db);

beforeAll(async () => {
  admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE ROLE ${quoteIdent(ROLE)} LOGIN`);
  db = connectPostgres({ url: ADMIN_URL, applicationName: 'idle-tx-runbook-test' });
  store = await openStore({ dataDir: ':memory:' });
});
afterAll(async () => {
  await admin?.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [ROLE]);
  await admin?.query(`DROP ROLE IF EXISTS ${quoteIdent(ROLE)}`); // its settings go with it
  await admin?.end();
  await db?.close();
  await store?.close();
});

/** `count` sessions of ROLE, each inside a transaction that then idles. */
async function idleSessions(count: number) {
  const url = new URL(ADMIN_URL);
  url.username = encodeURIComponent(ROLE);
  const clients = await Promise.all(
    Array.from({ length: count }, async () => {
      const client = new pg.Client({ connectionString: url.href, application_name: 'idle-tx-app' });
      client.on('error', () => {}); // a terminated session reports it here
      await client.connect();
      const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid ?? 0;
      await client.query('BEGIN');
      await client.query("SELECT 'card 4242 4242' AS secret_literal");
      return { client, pid };
    }),
  );
  return {
    pids: clients.map((c) => c.pid),
    close: () => Promise.all(clients.map((c) => c.client.end().catch(() => {}))),
  };
}

/** The role's setting in database `test`, as stored; `null` when unset. */
async function roleSetting(): Promise<string | null> {
  const { rows } = await admin.query<{ value: string }>(
    `SELECT substr(c, length($2) + 1) AS value
       FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole, unnest(s.setconfig) c
      WHERE r.rolname = $1 AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = 'test')
        AND starts_with(c, $2)`,
    [ROLE, `${SETTING}=`],
  );
  return rows[0]?.value ?? null;
}

async function setRoleSetting(value: string | null) {
  const change = value === null ? `RESET ${SETTING}` : `SET ${SETTING} = '${value}'`;
  await admin.query(`ALTER ROLE ${quoteIdent(ROLE)} IN DATABASE test ${change}`);
}

async function alive(pids: number[]): Promise<number[]> {
  const { rows } = await admin.query<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE pid = ANY($1) ORDER BY pid',
    [pids],
  );
  return rows.map((r) => r.pid);
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

function context(step: string): StepContext {
  return {
    runId: 'test',
    runbookId: 'idle-transactions',
    step,
    mode: 'execute',
    attempt: 1,
    actor: 'test',
    signal: AbortSignal.timeout(10_000),
    log: () => {},
  };
}

describe('idleTransactions: judge', () => {
  // A recorded observation: judging it is pure, so the thresholds can be tried without a database.
  const observation: IdleTransactionsObservation = {
    database: 'aiwebtest',
    role: 'app',
    roleTimeout: null,
    sessions: [
      {
        pid: 11,
        user: 'app',
        application: 'api',
        state: 'idle in transaction',
        idleSeconds: 95.2,
        transactionSeconds: 96,
        blocking: 0,
      },
      {
        pid: 12,
        user: 'app',
        application: 'worker',
        state: 'idle in transaction',
        idleSeconds: 40,
        transactionSeconds: 41,
        blocking: 0,
      },
    ],
  };
  const judge = (maxSeconds: number, maxSessions = 0, o = observation) =>
    idleTransactions(db, { role: 'app', maxSeconds, maxSessions }).judge(o);

  it('turns the same sessions into ok, warn or fail by the thresholds', () => {
    expect(judge(120)).toMatchObject({
      status: 'ok',
      summary: '2 sessions of app idle in transaction in aiwebtest, none for 2m or more (longest 1.6m)',
    });
    expect(judge(60, 1)).toMatchObject({
      status: 'warn',
      summary:
        '1 session of app idle in transaction for 1m or more in aiwebtest, within the 1 tolerated: pid 11 (api) idle 1.6m; role app has no idle_in_transaction_session_timeout',
    });
    const fail = judge(30);
    expect(fail).toMatchObject({
      status: 'fail',
      summary:
        '2 sessions of app idle in transaction for 30s or more in aiwebtest (0 tolerated): pid 11 (api) idle 1.6m, pid 12 (worker) idle 40s; role app has no idle_in_transaction_session_timeout',
    });
    expect((fail.data as IdleTransactionsData).stuck.map((s) => s.pid)).toEqual([11, 12]);
    expect(fail.evidence[0]).toMatchObject({
      kind: 'table',
      columns: expect.arrayContaining(['STUCK', 'BLOCKING']),
    });
  });

  it('fails on a stuck session that blocks others, however many are tolerated', () => {
    const blocking = {
      ...observation,
      sessions: observation.sessions.map((s) => (s.pid === 11 ? { ...s, blocking: 3 } : s)),
    };
    expect(judge(60, 5, blocking)).toMatchObject({
      status: 'fail',
      summary: expect.stringMatching(
        /^1 session of app idle in transaction for 1m or more in aiwebtest, blocking 3 sessions: pid 11/,
      ),
    });
  });

  it('refuses bad thresholds when the check is built, naming the field', () => {
    expect(() => idleTransactions(db, { maxSeconds: -1 })).toThrow(
      /options of example\.pg\.idle-transactions.*maxSeconds/,
    );
    expect(() => setIdleInTransactionTimeout(db, { role: ROLE, timeout: '3w' })).toThrow(/timeout/);
  });
});

describe('idle-transactions on PostgreSQL', () => {
  let sessions: Awaited<ReturnType<typeof idleSessions>>;
  const input = { role: ROLE, maxSeconds: 1, timeout: '30s' };

  beforeAll(async () => {
    await setRoleSetting(null);
    sessions = await idleSessions(2);
    await wait(1_100); // idle for longer than maxSeconds
  });
  afterAll(() => sessions?.close());

  it('diagnose: names the stuck sessions of the role and changes nothing', async () => {
    const run = await runRunbook(runbook, { input, mode: 'diagnose', store });

    run.expectStatus('succeeded');
    const idle = run.expectFinding<IdleTransactionsData>('idle-transactions', 'fail');
    expect(idle.summary).toMatch(
      /^2 sessions of Idle Tx "\w+" idle in transaction for 1s or more in test \(0 tolerated\): pid \d+ \(idle-tx-app\) idle [\d.]+s, pid \d+ \(idle-tx-app\) idle [\d.]+s; role Idle Tx "\w+" has no idle_in_transaction_session_timeout$/,
    );
    expect(idle.data.stuck.map((s) => s.pid).sort()).toEqual([...sessions.pids].sort());
    // The stored observation is committed with fixtures: it keeps what the verdict, the termination and the
    // on-caller need, and neither the sessions' last statement nor where they connect from.
    const stored = run.steps.find((s) => s.name === 'idle-transactions')?.result as unknown as {
      observation: IdleTransactionsObservation;
    };
    expect(stored.observation.sessions).toHaveLength(2);
    for (const session of stored.observation.sessions) {
      expect(Object.keys(session).sort()).toEqual(
        ['application', 'blocking', 'idleSeconds', 'pid', 'state', 'transactionSeconds', 'user'].sort(),
      );
      expect(session).toMatchObject({ user: ROLE, application: 'idle-tx-app', state: 'idle in transaction' });
    }
    for (const secret of ['4242', 'secret_literal', '127.0.0.1']) {
      expect(JSON.stringify(stored)).not.toContain(secret);
      expect(JSON.stringify(idle)).not.toContain(secret);
    }
    expect(run.applied).toEqual([]);
    expect(await roleSetting()).toBeNull();
    expect(await alive(sessions.pids)).toEqual([...sessions.pids].sort((a, b) => a - b));
  });

  it('plan: the setting before → after, exactly the sessions to terminate, nothing applied', async () => {
    await setRoleSetting('10min');
    const run = await runRunbook(runbook, { input, mode: 'plan', store });

    run.expectStatus('succeeded');
    expect(run.plan('set-timeout')).toMatchObject({
      action: 'example.pg.set-idle-in-transaction-timeout',
      risk: 'medium',
      destructive: false,
      changes: [
        {
          target: `postgres:test/role/${encodeURIComponent(ROLE)}/database/test/setting/${SETTING}`,
          field: SETTING,
          before: '10min',
          after: '30000ms',
        },
      ],
      params: { role: ROLE, database: 'test', previous: '10min', value: '30000ms' },
    });
    const terminate = run.plan('terminate-stuck');
    expect(terminate).toMatchObject({ action: 'pg.terminate-backends', risk: 'high', destructive: true });
    expect(terminate.changes.map((c) => c.field).sort()).toEqual(
      sessions.pids.map((p) => `backend ${p}`).sort(),
    );
    expect(run.outcome).toMatchObject({
      kind: 'done',
      summary: expect.stringContaining(
        '. set-timeout planned: Set idle_in_transaction_session_timeout of role',
      ),
    });
    expect(run.approvalsAsked).toEqual([]);
    expect(await roleSetting()).toBe('10min');
    expect(await alive(sessions.pids)).toHaveLength(2);
  });

  it('execute, the termination not approved yet: the timeout is set, the sessions live on', async () => {
    const run = await runRunbook(runbook, { input, approvals: { 'terminate-stuck': 'leave' }, store });

    run.expectStatus('waiting_approval');
    expect(run.applied).toEqual(['set-timeout']);
    expect(run.expectApprovalAsked('terminate-stuck', 'pending').summary).toMatch(/Terminate|terminate/);
    expect(await roleSetting()).toBe('30000ms');
    expect(await alive(sessions.pids)).toHaveLength(2);
  });

  it('execute, approved by a second person: the setting changed in the database, the stuck sessions ended', async () => {
    await setRoleSetting('10min');
    const run = await runRunbook(runbook, { input, store });

    run.expectStatus('succeeded');
    run.expectApplied('set-timeout', 'terminate-stuck');
    // Only the destructive step asked; the setting (medium risk, reversible) did not need to.
    expect(run.approvalsAsked.map((a) => [a.step, a.decision, a.decidedBy])).toEqual([
      ['terminate-stuck', 'approved', TEST_APPROVER],
    ]);
    run.expectAudit('action.applied', 'set-timeout');
    run.expectAudit('action.applied', 'terminate-stuck');
    expect(run.plan('set-timeout').changes[0]).toMatchObject({ before: '10min', after: '30000ms' });
    expect(await roleSetting()).toBe('30000ms');
    expect(await alive(sessions.pids)).toEqual([]);
    expect((run.outcome as { summary: string }).summary).toMatch(
      /\. set-timeout applied: Set idle_in_transaction_session_timeout of role .* from 10min to 30000ms.*; terminate-stuck applied: /,
    );
  });
});

describe('setIdleInTransactionTimeout: verify and revert', () => {
  const action = () => setIdleInTransactionTimeout(db, { role: ROLE, database: 'test', timeout: '45s' });
  async function applyIt() {
    const a = action();
    const plan = sealPlan(a, await a.plan(context('set')));
    await a.apply(context('set'), plan);
    return { a, applied: { plan, data: null, appliedAt: new Date().toISOString(), recovered: false } };
  }

  it('revert restores the previous value, or RESETs when there was none', async () => {
    await setRoleSetting('10min');
    const first = await applyIt();
    expect(await roleSetting()).toBe('45000ms');
    expect(await first.a.verify?.(context('set'), first.applied)).toMatchObject({ status: 'ok' });
    await first.a.revert?.(context('set'), first.applied);
    expect(await roleSetting()).toBe('10min');

    await setRoleSetting(null);
    const second = await applyIt();
    expect(second.applied.plan.changes).toEqual([
      expect.objectContaining({ before: null, after: '45000ms' }),
    ]);
    await second.a.revert?.(context('set'), second.applied);
    expect(await roleSetting()).toBeNull();
  });

  it('plans nothing when the setting already means the same time, and refuses to revert over a later change', async () => {
    await setRoleSetting('45s');
    expect((await action().plan(context('set'))).changes).toEqual([]);

    await setRoleSetting('10min');
    const { a, applied } = await applyIt();
    await setRoleSetting('2min'); // a DBA's own fix since
    await expect(a.revert?.(context('set'), applied)).rejects.toMatchObject({
      code: 'PG_SETTING_CHANGED',
      message: expect.stringContaining('is now 2min, not the 45000ms this action set'),
    });
    expect(await roleSetting()).toBe('2min');
    expect(await a.verify?.(context('set'), applied)).toMatchObject({ status: 'fail' });
  });

  it('refuses an unknown role by name', async () => {
    const missing = setIdleInTransactionTimeout(db, { role: 'no such role', timeout: '1m' });
    await expect(missing.plan(context('set'))).rejects.toMatchObject({
      code: 'PG_NOT_FOUND',
      message: 'Role "no such role" does not exist (role names are case-sensitive).',
    });
  });
});

describe('record and replay', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'idle-tx-replay-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('records only the thresholds given: a replay judges the others with the defaults in the code now', async () => {
    await setRoleSetting(null);
    const session = await idleSessions(1);
    let fixture: ReturnType<typeof fixtureFromRun>;
    try {
      await wait(300); // idle long enough to show at the 0.1 s the observation keeps
      const run = await runRunbook(runbook, { input: { role: ROLE }, mode: 'diagnose', store });
      run.expectFinding('idle-transactions', 'ok');
      fixture = fixtureFromRun(run.run, run.steps);
    } finally {
      await session.close();
    }
    // A default recorded with the input would win over the code's in every replay, changed or not.
    expect(fixture.run.input).toEqual({ role: ROLE });

    const replayed = await replayRun(runbook, fixture);
    expect(replayed.same).toBe(true);
    expect(replayed.steps[0]?.finding?.data).toMatchObject({
      maxSeconds: DEFAULT_MAX_SECONDS,
      maxSessions: DEFAULT_MAX_SESSIONS,
    });
    // Given, a threshold is recorded and replayed as given.
    const given = await replayRun(runbook, fixture, { input: { maxSeconds: 0.1 } });
    expect(given.input).toEqual({ role: ROLE, maxSeconds: 0.1 });
    expect(given.firstDifference).toMatchObject({
      name: 'idle-transactions',
      recorded: 'ok',
      replayed: 'fail',
    });
  });

  it('a lower threshold turns the recorded "ok" into "fail" at the check, in code and through the CLI', async () => {
    await setRoleSetting(null);
    const session = await idleSessions(1);
    let fixtureFile: string;
    let fixture: Awaited<ReturnType<typeof recordRun>>;
    try {
      await wait(700);
      // The incident as it was: one session idle for under a second, well within 60 s.
      const run = await runRunbook(runbook, { input: { role: ROLE, maxSeconds: 60 }, store });
      run.expectStatus('succeeded');
      run.expectFinding('idle-transactions', 'ok');

      fixture = await recordRun(store, run.runId);
      // The kit's snapshot of the run gives the same fixture.
      expect(fixtureFromRun(run.run, run.steps, { now: new Date(fixture.recordedAt) })).toEqual(fixture);
      fixtureFile = join(dir, 'idle-transactions.json');
      await writeFile(fixtureFile, JSON.stringify(fixture, null, 2));
    } finally {
      await session.close();
    }
    const before = await roleSetting();

    const same = await replayRun(runbook, fixture);
    expect(same.same).toBe(true);

    const stricter = await replayRun(runbook, fixture, { input: { maxSeconds: 0.5 } });
    expect(stricter.same).toBe(false);
    expect(stricter.firstDifference).toMatchObject({
      name: 'idle-transactions',
      recordedSeq: 1,
      recorded: 'ok',
      replayed: 'fail',
      note: expect.stringMatching(
        /^ok → fail: 1 session of Idle Tx "\w+" idle in transaction for 500ms or more in test \(0 tolerated\)/,
      ),
    });
    // The new path shows, and nothing was read or changed: the first action the recording does not have
    // cannot be planned from it, so the replay stops there instead of guessing.
    expect(stricter.steps.slice(1).map((s) => [s.name, s.recorded, s.replayed])).toEqual([
      ['set-timeout', null, 'new'],
    ]);
    expect(stricter.outcome.replayed).toMatchObject({ status: 'incomplete' });
    expect(await roleSetting()).toBe(before);

    // The same through `runbook replay`, loading this very file; DATABASE_URL is set because the runbook
    // builds its client when a run starts, but a replay never connects.
    const replay = (extra: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          [CLI, 'replay', fixtureFile, '--runbooks', './scripts/idle-transactions.ts', ...extra],
          {
            cwd: EXAMPLES_DIR,
            env: { ...process.env, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' },
            timeout: 30_000,
          },
          (error, stdout, stderr) =>
            resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    const unchanged = await replay([]);
    expect(unchanged.stderr).toBe('');
    expect(unchanged.code).toBe(0);
    expect(unchanged.stdout).toContain('Same decisions at every step and the same outcome.');

    const changed = await replay(['--input', 'maxSeconds=0.5']);
    expect(changed.code).toBe(1);
    expect(changed.stdout).toMatch(
      /\n≠ +1 +idle-transactions +check +ok +fail +ok → fail: 1 session of Idle Tx /,
    );
    expect(changed.stdout).toContain('Decisions differ: first at step "idle-transactions" (ok → fail).');
  });
});
