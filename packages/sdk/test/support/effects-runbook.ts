import pg from 'pg';
import { z } from 'zod';
import { finding } from '../../src/core/finding';
import { resourceRef } from '../../src/core/resource';
import { defineRunbook } from '../../src/core/runbook';
import { defineAction, defineCheck } from '../../src/core/step';
import { Engine } from '../../src/engine/engine';
import { POSTGRES_URL, postgresStore, type StoreUnderTest, uniqueSchema } from './stores';

const { Pool } = pg;

/** The action steps of the `effects` runbook; each must leave exactly one row in `effects`. */
export const ACTION_STEPS = ['act-1', 'act-2', 'act-3'];
/** Every step of the `effects` runbook, in order. */
export const ALL_STEPS = ['probe-1', 'act-1', 'probe-2', 'act-2', 'settle', 'act-3'];

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const jitter = () => pause(Math.floor(Math.random() * 15));

/**
 * A multi-step runbook whose actions each insert a row into the `effects` table (through their own
 * connection, not the store's), so that an action applied twice shows up as two rows.
 */
export function effectsRunbook(effects: pg.Pool) {
  /** An action whose effect is a row in `effects`; applied twice would mean two rows. */
  function recordEffect(runId: string, step: string) {
    const target = resourceRef('effects', runId, step);
    return defineAction({
      kind: 'test.effect',
      target,
      risk: 'low',
      destructive: false,
      async plan() {
        const { rows } = await effects.query(
          'SELECT count(*)::int AS n FROM effects WHERE run_id = $1 AND step = $2',
          [runId, step],
        );
        const done = rows[0].n > 0;
        return {
          summary: `record ${step}`,
          changes: done ? [] : [{ target, field: 'row', before: null, after: step }],
          params: { step },
        };
      },
      async apply() {
        await jitter();
        await effects.query('INSERT INTO effects (run_id, step, pid) VALUES ($1, $2, $3)', [
          runId,
          step,
          process.pid,
        ]);
        await jitter(); // widen the window between the effect and its record
        return { pid: process.pid };
      },
      async verify() {
        const { rows } = await effects.query(
          'SELECT count(*)::int AS n FROM effects WHERE run_id = $1 AND step = $2',
          [runId, step],
        );
        return finding(rows[0].n > 0 ? 'ok' : 'fail', `${rows[0].n} effect row(s)`, rows[0].n);
      },
    });
  }

  const probe = (name: string) =>
    defineCheck({
      kind: 'test.probe',
      async run() {
        await jitter();
        return finding('ok', `${name} fine`, { name });
      },
    });

  return defineRunbook({
    id: 'effects',
    title: 'Multi-step runbook with effects',
    severity: 'P3',
    input: z.object({ label: z.string() }),
    async run({ step, runId }) {
      await step.check('probe-1', probe('first'));
      await step.act('act-1', recordEffect(runId, 'act-1'));
      await step.check('probe-2', probe('second'));
      await step.act('act-2', recordEffect(runId, 'act-2'));
      await step.sleep('settle', 5);
      await step.act('act-3', recordEffect(runId, 'act-3'));
      return step.done('all effects recorded');
    },
  });
}

/** A PostgreSQL store in its own schema with the `effects` table, and an engine that only enqueues. */
export interface EffectsLab {
  schema: string;
  store: StoreUnderTest['store'];
  /** Enqueues; the worker processes (`startWorker`) execute. */
  engine: Engine;
  dispose(): Promise<void>;
}

/** Sets up an {@link EffectsLab} for a multi-process test. */
export async function openEffectsLab(prefix: string): Promise<EffectsLab> {
  const schema = uniqueSchema(prefix);
  const sut = await postgresStore(schema);
  await sut.store.driver.query(
    'CREATE TABLE effects (run_id text NOT NULL, step text NOT NULL, pid integer NOT NULL)',
  );
  const pool = new Pool({ connectionString: POSTGRES_URL, max: 1, options: `-c search_path=${schema}` });
  return {
    schema,
    store: sut.store,
    engine: new Engine({ store: sut.store, runbooks: [effectsRunbook(pool)] }),
    async dispose() {
      await pool.end();
      await sut.dispose();
    },
  };
}
