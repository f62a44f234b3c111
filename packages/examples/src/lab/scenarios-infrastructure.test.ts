import type { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Activity, startActivity } from './activity';
import { type LabHealthOptions, labHealth } from './lab-health';
import { createLabMetrics } from './lab-metrics';
import { type LabPartsFixture, sample, startLabPartsFixture, until } from './lab-parts.fixture';
import { workloadStatus } from './platform/platform-status';
import { currentPodsSelector, scenario } from './scenarios';

// Windows of seconds instead of minutes, so an incident shows (and its end shows) within a test.
const WINDOWS = { confidenceWindowMinutes: 0.05, p95WindowMinutes: 0.05 };
const HEALTH: LabHealthOptions = { ...WINDOWS };

let lab: LabPartsFixture;
let activity: Activity;
let metrics: Registry;

const failing = async () => (await labHealth(lab.parts, HEALTH)).checks.filter((c) => !c.ok);
const healthy = () =>
  until('a healthy lab', async () => {
    const bad = await failing();
    return bad.length === 0 || bad.map((c) => `${c.name}: ${c.detail}`).join('; ');
  });
const failingCheck = (name: string, detail: RegExp = /./) =>
  until(`the "${name}" check to fail with ${detail}`, async () =>
    (await failing()).some((c) => c.name === name && detail.test(c.detail)),
  );
const metric = async (series: string) => sample(await metrics.metrics(), series);
const backendMetric = async (series: string) =>
  sample(await (await fetch(`${lab.parts.backend.url}/metrics`)).text(), series);

beforeAll(async () => {
  // No stale generation-cache entries are written here, so this file may share Redis database 13.
  lab = await startLabPartsFixture();
  activity = startActivity(lab.parts, { tickMs: 200, executionRealMs: [200, 400], trafficPerSecond: 4 });
  metrics = createLabMetrics(lab.parts, WINDOWS);
  await healthy();
});

afterAll(async () => {
  await activity?.stop();
  await lab?.close();
});

describe('scenarios', () => {
  it('postgres-connection-loss: pg_up 0 and postgres crash-looping, then recovers', async () => {
    const incident = await scenario('postgres-connection-loss').inject(lab.parts);
    try {
      await failingCheck('database', /pg_up=0/);
      expect(await metric('pg_up')).toBe(0);
      await until(
        'postgres crash-looping',
        () =>
          (workloadStatus(lab.parts.simulator.store, lab.parts.namespace, 'postgres')?.crashLooping.length ??
            0) > 0,
      );
    } finally {
      await incident.undo();
    }
    await healthy();
    expect(await metric('pg_up')).toBe(1);
  });

  it('openrouter-outage: the breaker opens and openrouter_api_up is 0, then recovers', async () => {
    const incident = await scenario('openrouter-outage').inject(lab.parts);
    try {
      await failingCheck('openrouter breaker', /open/);
      await until('openrouter_api_up 0', async () => (await backendMetric('openrouter_api_up')) === 0);
      expect((await failing()).map((c) => c.name)).toContain('openrouter');
    } finally {
      await incident.undo();
    }
    await healthy();
    expect(await backendMetric('openrouter_api_up')).toBe(1);
  });

  it('test-execution-slow: the Grid fills up and the executions p95 exceeds 300 s, then recovers', async () => {
    const incident = await scenario('test-execution-slow').inject(lab.parts);
    try {
      await failingCheck('execution p95', /> 300 s/);
      expect((await failing()).map((c) => c.name)).toContain('selenium grid');
      await until('p95 > 300', async () => ((await metric('test_execution_duration_p95')) ?? 0) > 300);
      expect(await metric('selenium_grid_utilization')).toBeGreaterThan(0.8);
    } finally {
      await incident.undo();
    }
    await healthy();
    expect(await metric('selenium_grid_utilization')).toBeLessThanOrEqual(0.8);
  });

  it('a fault scoped to the current pods leaves the pods of a rollout restart alone', () => {
    expect(currentPodsSelector(lab.parts, 'requirements-agent')).toMatch(
      /^app=requirements-agent,pod-template-hash in \([a-z0-9]+\)$/,
    );
    expect(currentPodsSelector(lab.parts, 'postgres')).toMatch(
      /^app=postgres,controller-revision-hash in \(/,
    );
  });
});
