import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION_STEPS, type EffectsLab, openEffectsLab } from './support/effects-runbook';
import { startWorker } from './support/processes';

const RUNS = 40;

describe('two engine processes sharing one PostgreSQL', () => {
  let lab: EffectsLab;
  beforeAll(async () => {
    lab = await openEffectsLab('pair');
  });
  afterAll(async () => {
    await lab.dispose();
  });

  it('split the queue between them and never execute a step twice', async () => {
    const { engine, schema, store } = lab;
    for (let i = 0; i < RUNS; i++)
      await engine.enqueue('effects', { label: `r${i}` }, { actor: 'test', mode: 'execute' });

    const workers = [startWorker(schema, 'drain'), startWorker(schema, 'drain')];
    const results = await Promise.all(workers.map((w) => w.exited));
    const executed = results.map((r) => r.summary?.executed ?? 0);

    expect(executed.reduce((a, b) => a + b, 0)).toBe(RUNS);
    expect(Math.min(...executed)).toBeGreaterThan(0); // both really worked
    const runs = await store.listRuns({ limit: 1000 });
    expect(runs.filter((r) => r.status !== 'succeeded')).toEqual([]);
    expect(runs.every((r) => r.attempts === 1)).toBe(true); // nobody took over a live run

    const effects = await store.driver.query<{ run_id: string; step: string; n: number }>(
      'SELECT run_id, step, count(*)::int AS n FROM effects GROUP BY run_id, step',
    );
    expect(effects).toHaveLength(RUNS * ACTION_STEPS.length);
    expect(effects.filter((e) => e.n !== 1)).toEqual([]);
    const byPid = await store.driver.query<{ pid: number }>('SELECT DISTINCT pid FROM effects');
    expect(byPid).toHaveLength(2);
  }, 120_000);
});
