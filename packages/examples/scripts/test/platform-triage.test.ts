import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AiWebTest, connectAiWebTest } from '@aiwebtest/runbook-examples';
import { openStore, type RunStore } from '@aiwebtest/runbooks';
import { DEPLOYMENTS, runRunbook, STATEFULSETS } from '@aiwebtest/runbooks/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCENARIO_CATALOG, type ScenarioName } from '../../src/lab/scenarios';
import { startTestLab, type TestLab } from '../../test/support/test-lab';
import { until } from '../../test/support/until';
import { AGENTS, createPlatformTriageRunbook } from '../platform-triage';

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
    } finally {
      await nowhere.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
