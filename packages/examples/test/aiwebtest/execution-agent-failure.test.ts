import type { Engine, Finding, Plan } from '@aiwebtest/runbooks';
import { DEPLOYMENTS, PODS } from '@aiwebtest/runbooks/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AiWebTest } from '../../src/aiwebtest/environment';
import {
  createExecutionAgentFailureRunbook,
  EXECUTION_AGENT_ESCALATIONS,
} from '../../src/aiwebtest/execution-agent-failure';
import { startActivity } from '../../src/lab/activity';
import { type Injection, insertStuckExecutions } from '../../src/lab/database/chaos';
import { resultOf, stepsOf as stepsIn } from '../support/run-steps';
import { type RunbookLab, startRunbookLab } from '../support/runbook-lab';
import type { TestLab } from '../support/test-lab';
import { until } from '../support/until';

// Runbook 3 against the real lab: stuck rows in PostgreSQL, a crash-looping Selenium hub in the simulated
// cluster behind the Grid double, and the execution agent's activity running tests on the Grid.
const RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';

let harness: RunbookLab;
let lab: TestLab;
let platform: AiWebTest;
let engine: Engine;

beforeAll(async () => {
  harness = await startRunbookLab(createExecutionAgentFailureRunbook);
  ({ lab, platform, engine } = harness);
}, 90_000);
afterAll(() => harness?.close());

const stepsOf = (runId: string) => stepsIn(engine, runId);

const pods = (app: string) =>
  lab.simulator.store
    .list(PODS, lab.namespace)
    .items.filter((p) => p.metadata.labels?.app === app && !p.metadata.deletionTimestamp);
const restartedAt = (name: string) => {
  const d = lab.simulator.store.list(DEPLOYMENTS, lab.namespace).items.find((x) => x.metadata.name === name);
  if (!d) throw new Error(`no deployment/${name}`);
  const { template } = d.spec as { template: { metadata?: { annotations?: Record<string, string> } } };
  return template.metadata?.annotations?.[RESTARTED_AT] ?? null;
};
const gridReady = async () =>
  ((await (await fetch(`${lab.grid.url}/status`)).json()) as { value: { ready: boolean } }).value.ready;
const executions = async (ids: string[]) =>
  (
    await lab.pool.query<{ id: string; result: string; error_message: string | null }>(
      `SELECT execution_id::text AS id, result, error_message FROM test_executions
        WHERE execution_id = ANY($1::bigint[]) ORDER BY execution_id`,
      [ids],
    )
  ).rows;
const runningIds = async () =>
  (
    await lab.pool.query<{ id: string; started_at: Date }>(
      `SELECT execution_id::text AS id FROM test_executions WHERE result = 'running' ORDER BY execution_id`,
    )
  ).rows.map((r) => r.id);

/** Breaks the hub's current pods (their pod-template-hash): a rollout restart's new pods are healthy. */
function breakCurrentHub() {
  const hash = pods('selenium-hub')[0]?.metadata.labels?.['pod-template-hash'];
  expect(hash).toBeTruthy();
  return lab.simulator.faults.inject({
    kind: 'crashLoop',
    namespace: lab.namespace,
    selector: `app=selenium-hub,pod-template-hash=${hash}`,
    message: 'java.lang.OutOfMemoryError: Java heap space (selenium-hub)',
  });
}

describe('execution-agent-failure', () => {
  it('is triggered by TestExecutionStuck with the manual’s severity', () => {
    const runbook = createExecutionAgentFailureRunbook({ connect: () => platform });
    expect(runbook).toMatchObject({
      id: 'execution-agent-failure',
      severity: 'P1',
      triggers: [{ kind: 'alert', match: { alertname: 'TestExecutionStuck' } }],
    });
  });

  it('refuses bad input naming the field', async () => {
    await expect(
      engine.start('execution-agent-failure', { stuckAfter: 'soon' }, { mode: 'diagnose', actor: 'alice' }),
    ).rejects.toThrow(/stuckAfter/);
  });

  it('healthy platform: says so and changes nothing', async () => {
    const before = { hub: restartedAt('selenium-hub'), agent: restartedAt('execution-agent') };
    const result = await engine.start('execution-agent-failure', {}, { mode: 'execute', actor: 'alice' });
    expect(result.status, JSON.stringify(result.error)).toBe('succeeded');
    expect(result.outcome).toMatchObject({ kind: 'done' });
    expect((result.outcome as { summary: string }).summary).toMatch(/^test execution healthy/);
    const steps = await stepsOf(result.runId);
    expect([...steps.keys()]).toEqual(['active-executions', 'selenium-grid', 'browser-pods', 'agent-logs']);
    expect({ hub: restartedAt('selenium-hub'), agent: restartedAt('execution-agent') }).toEqual(before);
  });

  describe('stuck executions and a crashed Selenium hub', () => {
    let stuck: Injection;
    let fresh: Injection;
    let stuckIds: string[];
    let freshIds: string[];
    let fault: { clear(): void };

    beforeAll(async () => {
      const before = new Set(await runningIds());
      stuck = await insertStuckExecutions({ url: lab.databaseUrl, count: 3, runningFor: 20 * 60 });
      stuckIds = (await runningIds()).filter((id) => !before.has(id));
      fresh = await insertStuckExecutions({ url: lab.databaseUrl, count: 1, runningFor: 60 });
      freshIds = (await runningIds()).filter((id) => !before.has(id) && !stuckIds.includes(id));
      fault = breakCurrentHub();
      await until('the Grid to go down', async () => !(await gridReady()));
    });
    afterAll(async () => {
      fault?.clear();
      await stuck?.stop();
      await fresh?.stop();
    });

    it('diagnose: names the stuck executions and the down Grid, and changes nothing', async () => {
      const hub = restartedAt('selenium-hub');
      const result = await engine.start('execution-agent-failure', {}, { mode: 'diagnose', actor: 'alice' });
      expect(result.status, JSON.stringify(result.error)).toBe('succeeded');
      const steps = await stepsOf(result.runId);
      const active = resultOf(steps, 'active-executions') as Finding;
      expect(active.status).toBe('fail');
      expect(active.summary).toBe('3 test execution(s) stuck in "running" for more than 10m (of 4 running)');
      const grid = resultOf(steps, 'selenium-grid') as Finding;
      expect(grid.status).toBe('fail');
      expect(grid.summary).toMatch(/Selenium Grid not ready: no selenium-hub pod is ready/);
      const summary = (result.outcome as { summary: string }).summary;
      expect(summary).toContain('3 test execution(s) stuck');
      expect(summary).toContain('no selenium-hub pod is ready');
      expect(steps.has('cancel-stuck-executions')).toBe(false);
      expect((await executions([...stuckIds, ...freshIds])).map((r) => r.result)).toEqual([
        'running',
        'running',
        'running',
        'running',
      ]);
      expect(restartedAt('selenium-hub')).toBe(hub);
    });

    it('plan: lists exactly the stuck execution ids and the restarts, and changes nothing', async () => {
      const result = await engine.start('execution-agent-failure', {}, { mode: 'plan', actor: 'alice' });
      expect(result.status, JSON.stringify(result.error)).toBe('succeeded');
      const steps = await stepsOf(result.runId);
      const cancel = resultOf(steps, 'cancel-stuck-executions') as {
        status: string;
        plan: Plan;
      };
      expect(cancel.status).toBe('planned');
      expect(cancel.plan).toMatchObject({ action: 'pg.sql-action', destructive: true });
      expect((cancel.plan.params as { keys: unknown[] }).keys.map(String).sort()).toEqual(
        [...stuckIds].sort(),
      );
      expect(cancel.plan.changes).toHaveLength(3);
      expect(cancel.plan.changes.map((c) => c.after)).toEqual(
        Array(3).fill("result running → error, error_message 'Execution timeout'"),
      );
      expect(cancel.plan.summary).toContain('cannot be reverted');
      for (const name of [
        'selenium-hub',
        'selenium-node-chrome',
        'selenium-node-firefox',
        'execution-agent',
      ]) {
        const restart = resultOf(steps, `restart-${name}`) as { status: string; plan: Plan };
        expect(restart.status, name).toBe('planned');
        expect(restart.plan.changes[0]?.field).toContain(RESTARTED_AT);
      }
      expect((await executions(stuckIds)).every((r) => r.result === 'running')).toBe(true);
      expect(await gridReady()).toBe(false);
    });

    it('execute: cancels exactly the stuck rows after approval, restarts the Grid, and a test runs again', async () => {
      const oldHubPods = pods('selenium-hub').map((p) => p.metadata.name);
      const activity = startActivity(lab, { tickMs: 200, executionRealMs: [200, 600], trafficPerSecond: 1 });
      try {
        const started = await engine.start(
          'execution-agent-failure',
          { sampleTestTimeout: '20s' },
          { mode: 'execute', actor: 'alice' },
        );
        expect(started.status).toBe('waiting_approval');
        await expect(engine.approve(started.runId, { actor: 'alice' })).rejects.toThrow(/another person/);
        await engine.approve(started.runId, { actor: 'bob' });
        const result = await engine.resume(started.runId);
        expect(result.status, JSON.stringify(result.error)).toBe('succeeded');

        expect(await executions(stuckIds)).toEqual(
          stuckIds.map((id) => ({ id, result: 'error', error_message: 'Execution timeout' })),
        );
        expect((await executions(freshIds)).map((r) => r.result)).toEqual(['running']);
        const steps = await stepsOf(result.runId);
        expect(steps.get('cancel-stuck-executions')?.result).toMatchObject({
          status: 'applied',
          verification: { status: 'ok' },
        });
        for (const name of [
          'selenium-hub',
          'selenium-node-chrome',
          'selenium-node-firefox',
          'execution-agent',
        ]) {
          expect(restartedAt(name), name).not.toBeNull();
        }
        const newHubPods = pods('selenium-hub').map((p) => p.metadata.name);
        expect(newHubPods.some((n) => oldHubPods.includes(n))).toBe(false);
        expect(await gridReady()).toBe(true);
        expect((resultOf(steps, 'run-sample-test') as Finding).status).toBe('ok');
        expect((result.outcome as { summary: string }).summary).toMatch(
          /cancelled 3 stuck execution\(s\); restarted deployment\/selenium-hub.*sample test ran/,
        );
        expect((await engine.verifyAudit()).ok).toBe(true);
      } finally {
        await activity.stop();
      }
    });
  });

  it('escalates with the manual’s words when the hub keeps crashing after the restart', async () => {
    const fault = lab.simulator.faults.inject({
      kind: 'crashLoop',
      namespace: lab.namespace,
      selector: 'app=selenium-hub',
    });
    try {
      await until('the Grid to go down', async () => !(await gridReady()));
      const result = await engine.start(
        'execution-agent-failure',
        { rolloutTimeout: '20s' },
        { mode: 'execute', actor: 'alice' },
      );
      expect(result.status).toBe('escalated');
      expect(result.outcome).toEqual({ kind: 'escalate', reason: EXECUTION_AGENT_ESCALATIONS.gridDown });
      expect((await stepsOf(result.runId)).get('restart-selenium-hub')?.status).toBe('failed');
      expect(await gridReady()).toBe(false);
    } finally {
      fault.clear();
    }
    await until('the hub to recover', gridReady, 30_000);
  });
});
