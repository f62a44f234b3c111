import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ScenarioLab, startScenarioLab } from '../../test/support/scenario-lab';
import { sample, until } from './lab-parts.fixture';
import { workloadStatus } from './platform/platform-status';
import { currentPodsSelector, scenario } from './scenarios';

let lab: ScenarioLab;

const backendMetric = async (series: string) =>
  sample(await (await fetch(`${lab.parts.backend.url}/metrics`)).text(), series);

beforeAll(async () => {
  lab = await startScenarioLab();
});

afterAll(async () => {
  await lab?.close();
});

describe('scenarios', () => {
  it('postgres-connection-loss: pg_up 0 and postgres crash-looping, then recovers', async () => {
    const incident = await scenario('postgres-connection-loss').inject(lab.parts);
    try {
      await lab.failingCheck('database', /pg_up=0/);
      expect(await lab.metric('pg_up')).toBe(0);
      await until(
        'postgres crash-looping',
        () =>
          (workloadStatus(lab.parts.simulator.store, lab.parts.namespace, 'postgres')?.crashLooping.length ??
            0) > 0,
      );
    } finally {
      await incident.undo();
    }
    await lab.healthy();
    expect(await lab.metric('pg_up')).toBe(1);
  });

  it('openrouter-outage: the breaker opens and openrouter_api_up is 0, then recovers', async () => {
    const incident = await scenario('openrouter-outage').inject(lab.parts);
    try {
      await lab.failingCheck('openrouter breaker', /open/);
      await until('openrouter_api_up 0', async () => (await backendMetric('openrouter_api_up')) === 0);
      expect((await lab.failing()).map((c) => c.name)).toContain('openrouter');
    } finally {
      await incident.undo();
    }
    await lab.healthy();
    expect(await backendMetric('openrouter_api_up')).toBe(1);
  });

  it('test-execution-slow: the Grid fills up and the executions p95 exceeds 300 s, then recovers', async () => {
    const incident = await scenario('test-execution-slow').inject(lab.parts);
    try {
      await lab.failingCheck('execution p95', /> 300 s/);
      expect((await lab.failing()).map((c) => c.name)).toContain('selenium grid');
      await until('p95 > 300', async () => ((await lab.metric('test_execution_duration_p95')) ?? 0) > 300);
      expect(await lab.metric('selenium_grid_utilization')).toBeGreaterThan(0.8);
    } finally {
      await incident.undo();
    }
    await lab.healthy();
    expect(await lab.metric('selenium_grid_utilization')).toBeLessThanOrEqual(0.8);
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
