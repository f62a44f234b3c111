import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAuditChain } from '../src/engine/audit-chain';
import { ACTION_STEPS, ALL_STEPS, type EffectsLab, openEffectsLab } from './support/effects-runbook';
import { startWorker } from './support/processes';

const TRIALS = 24;
const RUNS_PER_TRIAL = 2;

/**
 * A real engine process executing multi-step runbooks with actions is SIGKILLed at a random moment,
 * then a fresh process resumes its work. Every trial must end with every run complete, every action
 * applied exactly once, every step result present, and an intact audit chain.
 */
describe('crash recovery (SIGKILL at random points, real processes, PostgreSQL)', () => {
  let lab: EffectsLab;
  beforeAll(async () => {
    lab = await openEffectsLab('crash');
  });
  afterAll(async () => {
    await lab.dispose();
  });

  it(`survives ${TRIALS} kills`, async () => {
    const { engine, schema, store } = lab;
    const killedMidRun: number[] = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      for (let i = 0; i < RUNS_PER_TRIAL; i++)
        await engine.enqueue(
          'effects',
          { label: `t${trial}-${i}` },
          { actor: 'crash-test', mode: 'execute' },
        );

      const victim = startWorker(schema, 'serve');
      await victim.ready;
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 250)));
      victim.child.kill('SIGKILL');
      const death = await victim.exited;
      expect(death.signal).toBe('SIGKILL');
      const [applying] = await store.driver.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM steps WHERE status = 'applying'`,
      );
      killedMidRun.push(applying?.n ?? 0);

      const rescuer = startWorker(schema, 'drain');
      const rescued = await rescuer.exited;
      expect(rescued.code).toBe(0);

      const runs = await store.listRuns({ limit: 10_000 });
      expect(
        runs.filter((r) => r.status !== 'succeeded').map((r) => [r.id, r.status, r.error?.message]),
      ).toEqual([]);
      const effects = await store.driver.query<{ run_id: string; step: string; n: number }>(
        'SELECT run_id, step, count(*)::int AS n FROM effects GROUP BY run_id, step',
      );
      expect(effects.filter((e) => e.n !== 1)).toEqual([]);
      expect(effects).toHaveLength(runs.length * ACTION_STEPS.length);
      for (const run of runs) {
        const steps = await store.getSteps(run.id);
        expect(steps.map((s) => [s.name, s.status])).toEqual(ALL_STEPS.map((s) => [s, 'succeeded']));
      }
    }
    const audit = await verifyAuditChain(store);
    expect(audit.problems).toEqual([]);
    // The kills must have hit real work, not only idle moments.
    const runs = await store.listRuns({ limit: 10_000 });
    const resumed = runs.filter((r) => r.attempts > 1).length;
    console.info(
      `crash test: ${TRIALS} kills, ${resumed}/${runs.length} runs resumed by another process, ${killedMidRun.filter((n) => n > 0).length} kills landed between an apply and its record`,
    );
    expect(resumed).toBeGreaterThan(TRIALS / 4);
  }, 600_000);
});
