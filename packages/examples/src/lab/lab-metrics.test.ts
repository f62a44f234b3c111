import { spawnSync } from 'node:child_process';
import type { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertStuckExecutions } from './database/chaos';
import { createLabMetrics } from './lab-metrics';
import { type LabPartsFixture, startLabPartsFixture } from './lab-parts.fixture';

let lab: LabPartsFixture;
let registry: Registry;

/** The value of `series` (`name` or `name{labels}` exactly as exposed) in the exposition text. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const until = async (what: string, condition: () => Promise<boolean>, timeoutMs = 8_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
};

beforeAll(async () => {
  lab = await startLabPartsFixture();
  registry = createLabMetrics(lab.parts);
});

afterAll(async () => {
  await lab?.close();
});

describe('createLabMetrics', () => {
  it('exposes the metric contract in a format promtool accepts', async () => {
    const text = await registry.metrics();
    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(promtool.error, 'promtool must be installed').toBeUndefined();
    expect((promtool.stdout + promtool.stderr).trim()).toBe('');
    expect(promtool.status).toBe(0);
    for (const agent of ['requirements', 'generation', 'execution', 'observation', 'analysis', 'evolution'])
      expect(value(text, `agent_health{agent="${agent}_agent"}`)).toBe(1);
    expect(value(text, 'agent_confidence{agent="generation_agent"}')).toBeGreaterThan(0.8);
    expect(value(text, 'pg_up')).toBe(1);
    expect(value(text, 'pgbouncer_config_max_client_connections')).toBe(100);
    expect(value(text, 'pgbouncer_pools_client_waiting_connections')).toBe(0);
    expect(value(text, 'selenium_grid_slots')).toBe(30);
    expect(value(text, 'selenium_grid_utilization')).toBe(0);
    expect(value(text, 'test_execution_duration')).toBe(0);
    const p95 = value(text, 'test_execution_duration_p95') ?? -1;
    expect(p95).toBeGreaterThan(30);
    expect(p95).toBeLessThanOrEqual(110);
  });

  it('follows the cluster, the Grid and the database', async () => {
    const fault = lab.parts.simulator.faults.inject({
      kind: 'crashLoop',
      namespace: lab.parts.namespace,
      selector: 'app=requirements-agent',
    });
    lab.parts.grid.occupy(27);
    const stuck = await insertStuckExecutions({ url: lab.parts.databaseUrl, count: 1, runningFor: 900 });
    try {
      await until(
        'agent_health 0',
        async () => value(await registry.metrics(), 'agent_health{agent="requirements_agent"}') === 0,
      );
      const text = await registry.metrics();
      expect(value(text, 'selenium_grid_sessions_active')).toBe(27);
      expect(value(text, 'selenium_grid_utilization')).toBe(0.9);
      expect(value(text, 'test_execution_duration')).toBeGreaterThanOrEqual(900);
    } finally {
      fault.clear();
      lab.parts.grid.release();
      await stuck.stop();
    }
  });

  it('keeps answering when PgBouncer is down: pg_up 0 and the source reported down', async () => {
    await lab.parts.pgbouncer.kill();
    try {
      const text = await registry.metrics();
      expect(value(text, 'pg_up')).toBe(0);
      expect(value(text, 'lab_exporter_source_up{source="pgbouncer"}')).toBe(0);
      expect(value(text, 'lab_exporter_source_up{source="database"}')).toBe(1);
      expect(value(text, 'selenium_grid_slots')).toBe(30);
    } finally {
      await lab.parts.pgbouncer.restart();
    }
    expect(value(await registry.metrics(), 'pg_up')).toBe(1);
  });
});
