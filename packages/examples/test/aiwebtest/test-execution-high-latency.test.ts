import type { Engine, Finding, Plan } from '@aiwebtest/runbooks';
import { DEPLOYMENTS } from '@aiwebtest/runbooks/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AiWebTest } from '../../src/aiwebtest/environment';
import {
  createTestExecutionHighLatencyRunbook,
  TEST_LATENCY_ESCALATIONS,
} from '../../src/aiwebtest/test-execution-high-latency';
import { startActivity } from '../../src/lab/activity';
import { type Injection, insertSlowExecutions } from '../../src/lab/database/chaos';
import { readBackendHealth } from '../support/lab-backend';
import { resultOf, stepsOf as stepsIn } from '../support/run-steps';
import { type RunbookLab, startRunbookLab } from '../support/runbook-lab';
import type { TestLab } from '../support/test-lab';

// Runbook 9 against the real lab: slow rows in PostgreSQL, a Grid whose slots are taken, and the backend the
// lab's bridge reconfigures when the runbook sets env on deployment/backend.

let harness: RunbookLab;
let lab: TestLab;
let platform: AiWebTest;
let engine: Engine;

beforeAll(async () => {
  harness = await startRunbookLab(createTestExecutionHighLatencyRunbook);
  ({ lab, platform, engine } = harness);
}, 90_000);
afterAll(() => harness?.close());

const stepsOf = (runId: string) => stepsIn(engine, runId);

const replicas = (name: string) => {
  const d = lab.simulator.store.list(DEPLOYMENTS, lab.namespace).items.find((x) => x.metadata.name === name);
  if (!d) throw new Error(`no deployment/${name}`);
  return (d.spec as { replicas: number }).replicas;
};
const backendConfig = async () => (await readBackendHealth(lab.env.backendUrl)).config;

describe('test-execution-high-latency', () => {
  it('is triggered by TestExecutionSlow with the manual’s severity', () => {
    expect(createTestExecutionHighLatencyRunbook({ connect: () => platform })).toMatchObject({
      id: 'test-execution-high-latency',
      severity: 'P2',
      triggers: [{ kind: 'alert', match: { alertname: 'TestExecutionSlow' } }],
    });
  });

  it('refuses bad input naming the field', async () => {
    await expect(
      engine.start(
        'test-execution-high-latency',
        { maxUtilization: 3 },
        { mode: 'diagnose', actor: 'alice' },
      ),
    ).rejects.toThrow(/maxUtilization/);
  });

  it('healthy platform: p95 normal, no change', async () => {
    const result = await engine.start('test-execution-high-latency', {}, { mode: 'execute', actor: 'alice' });
    expect(result.status, JSON.stringify(result.error)).toBe('succeeded');
    expect((result.outcome as { summary: string }).summary).toMatch(
      /^test execution latency normal: test execution p95 is \d+ s/,
    );
    const steps = await stepsOf(result.runId);
    expect([...steps.keys()]).toEqual([
      'execution-times',
      'execution-p95',
      'grid-capacity',
      'browser-node-resources',
      'test-code-complexity',
    ]);
    expect(replicas('selenium-node-chrome')).toBe(2);
    expect((await backendConfig()).max_parallel_tests).toBe(2);
  });

  describe('slow executions on a saturated Grid', () => {
    let slow: Injection;

    beforeAll(async () => {
      slow = await insertSlowExecutions({ url: lab.databaseUrl, count: 20, executionTime: 420 });
      // 26 of the 30 slots (3 nodes × 10): above the manual's 80%, with room left for the agent's tests.
      expect(lab.grid.occupy(26)).toBe(26);
    });
    afterAll(async () => {
      lab.grid.release();
      await slow?.stop();
    });

    it('diagnose: names the p95 and the Grid at capacity, and changes nothing', async () => {
      const result = await engine.start(
        'test-execution-high-latency',
        {},
        { mode: 'diagnose', actor: 'alice' },
      );
      expect(result.status, JSON.stringify(result.error)).toBe('succeeded');
      const steps = await stepsOf(result.runId);
      expect((resultOf(steps, 'execution-p95') as Finding).summary).toBe(
        'test execution p95 is 420 s (limit 300 s)',
      );
      const grid = resultOf(steps, 'grid-capacity') as Finding;
      expect(grid.status).toBe('warn');
      expect(grid.summary).toBe('Selenium Grid saturated: 26/30 slots busy (87%) on 3 nodes');
      const times = resultOf(steps, 'execution-times') as Finding;
      expect(times.summary).toBe('10 recent test execution(s) took more than 300 s (up to 420 s)');
      const complexity = resultOf(steps, 'test-code-complexity') as Finding<{
        rowCount: number;
      }>;
      expect(complexity.data.rowCount).toBeGreaterThan(0);
      const summary = (result.outcome as { summary: string }).summary;
      expect(summary).toContain('p95 is 420 s');
      expect(summary).toContain('Selenium Grid saturated');
      expect(replicas('selenium-node-chrome')).toBe(2);
      expect(replicas('selenium-node-firefox')).toBe(1);
      expect((await backendConfig()).max_parallel_tests).toBe(2);
    });

    it('plan: the scale-ups and the backend env, exactly, and changes nothing', async () => {
      const result = await engine.start('test-execution-high-latency', {}, { mode: 'plan', actor: 'alice' });
      expect(result.status, JSON.stringify(result.error)).toBe('succeeded');
      const steps = await stepsOf(result.runId);
      const planOf = (name: string) => (resultOf(steps, name) as { plan: Plan }).plan;
      expect(planOf('scale-chrome-nodes').changes).toEqual([
        expect.objectContaining({ field: 'spec.replicas', before: 2, after: 5 }),
      ]);
      expect(planOf('scale-firefox-nodes').changes).toEqual([
        expect.objectContaining({ field: 'spec.replicas', before: 1, after: 3 }),
      ]);
      expect(planOf('enable-parallel-execution').changes.map((c) => [c.before, c.after])).toEqual([
        ['2', '10'],
      ]);
      expect(planOf('enable-result-caching').changes.map((c) => c.after)).toEqual(['true']);
      const review = resultOf(steps, 'optimize-slow-tests') as Finding;
      expect(review.status).toBe('warn');
      expect(review.summary).toMatch(/slow test\(s\) to review/);
      expect(replicas('selenium-node-chrome')).toBe(2);
      expect((await backendConfig()).max_parallel_tests).toBe(2);
    });

    it('execute: scales the nodes, reconfigures the real backend, new tests run under 120 s, audit verifies', async () => {
      const activity = startActivity(lab, { tickMs: 200, executionRealMs: [200, 500], trafficPerSecond: 1 });
      try {
        const result = await engine.start(
          'test-execution-high-latency',
          { monitorFor: '30s', rolloutTimeout: '30s' },
          { mode: 'execute', actor: 'alice' },
        );
        expect(result.status, JSON.stringify(result.error)).toBe('succeeded');
        expect(replicas('selenium-node-chrome')).toBe(5);
        expect(replicas('selenium-node-firefox')).toBe(3);
        expect(lab.grid.capacity().slots).toBe(80);
        const config = await backendConfig();
        expect(config).toMatchObject({
          max_parallel_tests: 10,
          test_result_cache_enabled: true,
          test_result_cache_ttl: 3600,
        });
        const steps = await stepsOf(result.runId);
        const monitored = resultOf(steps, 'monitor-execution-times') as Finding<{ p95: number }>;
        expect(monitored.status).toBe('ok');
        expect(monitored.data.p95).toBeLessThan(120);
        expect((result.outcome as { summary: string }).summary).toMatch(/new executions is .* s \(< 120 s\)/);
        expect((await engine.verifyAudit()).ok).toBe(true);
      } finally {
        await activity.stop();
      }
    });

    it('escalates “add more nodes” when the Grid is still full at the manual’s node counts', async () => {
      // The execute test left 5 chrome + 3 firefox nodes (80 slots); fill them past 80%.
      expect(lab.grid.capacity().slots).toBe(80);
      lab.grid.occupy(70 - lab.grid.capacity().active);
      try {
        const result = await engine.start(
          'test-execution-high-latency',
          { monitorFor: '1s', monitorMinExecutions: 1 },
          { mode: 'execute', actor: 'alice' },
        );
        expect(result.status).toBe('escalated');
        expect(result.outcome).toEqual({ kind: 'escalate', reason: TEST_LATENCY_ESCALATIONS.capacity });
        const steps = await stepsOf(result.runId);
        expect(resultOf(steps, 'scale-chrome-nodes')).toMatchObject({ status: 'noop' });
        expect(replicas('selenium-node-chrome')).toBe(5);
      } finally {
        lab.grid.release(lab.grid.capacity().active - 26);
      }
    });

    it('escalates with the manual’s words when new tests stay slow', async () => {
      // No agent is running tests: nothing new finishes, the p95 cannot drop.
      const result = await engine.start(
        'test-execution-high-latency',
        { monitorFor: '2s', monitorMinExecutions: 1 },
        { mode: 'execute', actor: 'alice' },
      );
      expect(result.status).toBe('escalated');
      expect((result.outcome as { reason: string }).reason).toMatch(
        new RegExp(`^${TEST_LATENCY_ESCALATIONS.testCode.replace(/[()]/g, '\\$&')} \\(only 0 new execution`),
      );
    });
  });
});
