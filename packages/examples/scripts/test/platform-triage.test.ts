import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AiWebTest, connectAiWebTest } from '@aiwebtest/runbook-examples';
import {
  type Check,
  fixtureFromRun,
  isReplayableCheck,
  openStore,
  type RunStore,
  replayRun,
} from '@aiwebtest/runbooks';
import { DEPLOYMENTS, runRunbook, STATEFULSETS } from '@aiwebtest/runbooks/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCENARIO_CATALOG, type ScenarioName } from '../../src/lab/scenarios';
import { startTestLab, type TestLab } from '../../test/support/test-lab';
import { until } from '../../test/support/until';
import { AGENTS, createPlatformTriageRunbook, type ReadableObservation } from '../platform-triage';

// One lab for the file. Each incident is one of the lab's own chaos scenarios, whose catalog names the
// runbook that handles it: the triage must name the same one.

let lab: TestLab;
let platform: AiWebTest;
let store: RunStore;
const runbook = createPlatformTriageRunbook({ connect: () => platform });

beforeAll(async () => {
  [lab, store] = await Promise.all([startTestLab(), openStore({ dataDir: ':memory:' })]);
  platform = connectAiWebTest(lab.env);
}, 90_000);
afterAll(async () => {
  await platform?.close();
  await store?.close();
  await lab?.close();
});

/** Workloads whose ready replicas fall short of their spec. */
function notReady(): string[] {
  return [DEPLOYMENTS, STATEFULSETS].flatMap((type) =>
    lab.simulator.store
      .list(type, lab.namespace)
      .items.filter((w) => {
        const want = (w.spec as { replicas?: number }).replicas ?? 1;
        return ((w.status as { readyReplicas?: number } | undefined)?.readyReplicas ?? 0) < want;
      })
      .map((w) => w.metadata.name),
  );
}

const triage = () => runRunbook(runbook, { mode: 'diagnose', store });

/** Sessions of the lab's database waiting for a lock now. */
async function lockWaiters(): Promise<number> {
  const { rows } = await platform.db.db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
  );
  return rows[0]?.n ?? 0;
}

describe('platform-triage on the lab', () => {
  it('a healthy lab: every part read, done, no runbook to run next', async () => {
    const run = await triage();

    run.expectStatus('succeeded');
    expect(run.steps.map((s) => s.name)).toEqual([
      'backend',
      ...AGENTS.map((a) => `pods-${a}`),
      'database',
      'database-queries',
      'pgbouncer-pools',
      'redis',
      'selenium-grid',
    ]);
    const statuses = run.steps.map((s) => [s.name, run.finding(s.name).status]);
    expect(statuses.filter(([, status]) => status === 'fail' || status === 'unknown')).toEqual([]);
    expect(run.outcome).toMatchObject({
      kind: 'done',
      summary: expect.stringMatching(
        /^Platform healthy.*backend ok, 6\/6 agents ready, database ok, PgBouncer (ok|warn), Redis ok, Selenium Grid ok\)?$/,
      ),
    });
    expect(run.applied).toEqual([]);
  });

  it('replay: the database queries, wrapped to report instead of throw, are judged again with a new longQuery', async () => {
    await until('the lab to be healthy', () => notReady().length === 0);
    // A report holding a lock with queries queued behind it, seconds old: under the default 5m (listing
    // from 1m) the triage sees it and lets it be.
    const incident = await SCENARIO_CATALOG['database-slow'].inject(lab);
    let run: Awaited<ReturnType<typeof triage>>;
    try {
      await until('queries to wait on the lock', () => lockWaiters().then((n) => n > 0));
      run = await triage();
    } finally {
      await incident.undo();
    }
    const recorded = run.finding('database-queries');
    expect(recorded.status).toBe('ok');
    const stored = run.steps.find((s) => s.name === 'database-queries')?.result as {
      observation: ReadableObservation;
    };
    expect(stored.observation).toMatchObject({ observed: { sessions: expect.any(Array) } });
    const fixture = fixtureFromRun(run.run, run.steps);

    const same = await replayRun(runbook, fixture);
    expect(same.same).toBe(true);
    expect(same.steps.find((s) => s.name === 'database-queries')?.note).toBe(
      're-judged from the recorded observation',
    );

    // Would a 10ms threshold have sent the on-caller to database-performance? The recorded sessions say so.
    const stricter = await replayRun(runbook, fixture, { input: { longQuery: '10ms' } });
    expect(stricter.firstDifference).toMatchObject({
      name: 'database-queries',
      recorded: 'ok',
      replayed: 'fail',
    });
    expect(stricter.steps.filter((s) => !s.same).map((s) => s.name)).toEqual(['database-queries']);
    expect(stricter.outcome.replayed.summary).toMatch(/database-queries: .*blocks/);
  });

  const incidents: [ScenarioName, RegExp, () => boolean][] = [
    [
      'requirements-agent-down',
      /^pods-requirements-agent: 0\/2 pods ready.*\. Next: runbook run agent-failure --input agent=requirements-agent\.$/,
      () => notReady().includes('requirements-agent'),
    ],
    [
      'execution-stuck',
      /^selenium-grid: Selenium Grid not ready.*\. Next: runbook run execution-agent-failure\./,
      () => notReady().includes('selenium-hub'),
    ],
    [
      // Last: nothing after it needs PgBouncer back.
      'postgres-connection-loss',
      /^database: PostgreSQL .* unreachable: connect ECONNREFUSED [\d.:]+\. Next: runbook run postgres-connection-loss\. Also failing: pgbouncer-pools: could not be read: .*; backend down: .*database unreachable\.$/,
      () => !lab.pgbouncer.running(),
    ],
  ];

  it.each(incidents)(
    '%s: escalates to the runbook the lab’s catalog names for it',
    async (name, reason, broken) => {
      const scenario = SCENARIO_CATALOG[name];
      await until('the lab to be healthy', () => notReady().length === 0);
      const incident = await scenario.inject(lab);
      try {
        await until(`${name} to take effect`, broken);

        const run = await triage();

        run.expectStatus('escalated');
        expect(run.outcome).toMatchObject({ kind: 'escalate', to: scenario.runbook, severity: 'P1' });
        expect((run.outcome as { reason: string }).reason).toMatch(reason);
        expect(run.logs.map((l) => l.message)).toContain(
          `next: runbook run ${scenario.runbook}${name === 'requirements-agent-down' ? ' --input agent=requirements-agent' : ''}`,
        );
      } finally {
        await incident.undo();
      }
    },
  );
});

describe('platform-triage when nothing answers', () => {
  it('names the database first, lists the rest, and reports an unreadable cluster once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'triage-'));
    const kubeconfig = join(dir, 'kubeconfig.yaml');
    await writeFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'gone', cluster: { server: 'https://127.0.0.1:1' } }],
        contexts: [{ name: 'gone', context: { cluster: 'gone', user: 'u' } }],
        'current-context': 'gone',
        users: [{ name: 'u', user: { token: 'not-a-secret' } }],
      }),
    );
    // Port 1: every connection is refused at once.
    const nowhere = connectAiWebTest({
      kubeconfig,
      kubeContext: 'gone',
      databaseUrl: 'postgres://app@127.0.0.1:1/aiwebtest',
      pgbouncerAdminUrl: 'postgres://admin@127.0.0.1:1/pgbouncer',
      redisUrl: 'redis://127.0.0.1:1/0',
      backendUrl: 'http://127.0.0.1:1',
      seleniumUrl: 'http://127.0.0.1:1',
    });
    try {
      const run = await runRunbook(createPlatformTriageRunbook({ connect: () => nowhere }), {
        mode: 'diagnose',
        store,
      });

      run.expectStatus('escalated');
      expect(run.outcome).toMatchObject({ kind: 'escalate', to: 'postgres-connection-loss', severity: 'P1' });
      const reason = (run.outcome as { reason: string }).reason;
      expect(reason).toMatch(
        /^database: PostgreSQL app@127\.0\.0\.1:1\/aiwebtest unreachable: connect ECONNREFUSED/,
      );
      // Most fundamental first: PgBouncer, then Redis, the grid, the backend, and the cluster we could not read.
      const order = [
        'Also failing: pgbouncer-pools: could not be read: PgBouncer admin console',
        'Redis 127.0.0.1:1/0 unreachable',
        'selenium-grid: Selenium hub unreachable',
        'backend unreachable',
        'pods: could not be read: Kubernetes list pods',
      ].map((text) => reason.indexOf(text));
      expect(order.every((at) => at > 0)).toBe(true);
      expect([...order].sort((a, b) => a - b)).toEqual(order);
      expect(reason).not.toMatch(/pods-\w/); // the six agents' one cause, once
      run.expectFinding('pods-requirements-agent', 'unknown');

      // What could not be read is recorded as such, and a replay judges it again to the same verdict.
      const replay = await replayRun(
        createPlatformTriageRunbook({ connect: () => nowhere }),
        fixtureFromRun(run.run, run.steps),
      );
      expect(replay.same).toBe(true);
      // The cluster and PgBouncer's console throw (the wrapper records why); Redis reports itself unreachable.
      const wrapped: [string, Check<unknown>, object][] = [
        [
          'pods-requirements-agent',
          nowhere.k8s.podStatus({ namespace: 'aiwebtest', selector: 'app=x' }),
          { unreadable: expect.stringContaining('Kubernetes list pods') },
        ],
        [
          'pgbouncer-pools',
          nowhere.pgbouncer.pools(),
          { unreadable: expect.stringContaining('PgBouncer admin console') },
        ],
        ['redis', nowhere.redis.ping(), { observed: expect.objectContaining({ reachable: false }) }],
      ];
      for (const [name, inner, observation] of wrapped) {
        const note = replay.steps.find((s) => s.name === name)?.note;
        if (!isReplayableCheck(inner)) {
          expect(note, name).toBe('recorded finding (the check is not replayable)');
          continue;
        }
        expect(note, name).toBe('re-judged from the recorded observation');
        const stored = run.steps.find((s) => s.name === name)?.result as { observation: ReadableObservation };
        expect(stored.observation, name).toEqual(observation);
      }
    } finally {
      await nowhere.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
