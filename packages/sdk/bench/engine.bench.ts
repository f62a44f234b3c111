/**
 * Engine overhead per step on the PostgreSQL store, as a multiple of a bare single-row INSERT + COMMIT
 * measured in the same run against the same server.
 *
 *   pnpm bench                      (RUNBOOK_BENCH_DATABASE_URL overrides postgres://postgres@127.0.0.1:5432/test)
 *
 * Targets (issue #2): check step ≤ 1.5×, action step ≤ 2.5×.
 */
import pg from 'pg';
import { z } from 'zod';
import { finding } from '../src/core/finding';
import { resourceRef } from '../src/core/resource';
import { defineRunbook } from '../src/core/runbook';
import { defineAction, defineCheck } from '../src/core/step';
import { Engine } from '../src/engine/engine';
import { openStore } from '../src/store/open-store';

const URL = process.env.RUNBOOK_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const STEPS = Number(process.env.BENCH_STEPS ?? 1000);
const REPEATS = 5;
const schema = `bench_${process.pid}`;

const noopCheck = defineCheck({ kind: 'bench.noop', run: async () => finding('ok', 'fine', null) });
const noopAction = (i: number) => {
  const target = resourceRef('bench', 'thing', String(i));
  return defineAction({
    kind: 'bench.set',
    target,
    risk: 'low',
    destructive: false,
    plan: async () => ({
      summary: `set ${i}`,
      changes: [{ target, field: 'value', before: 0, after: 1 }],
      params: { i },
    }),
    apply: async () => null,
  });
};

const runbook = defineRunbook({
  id: 'bench',
  title: 'bench',
  severity: 'P3',
  input: z.object({ kind: z.enum(['check', 'act', 'mixed']), steps: z.number().int().min(0) }),
  timeout: '1h',
  async run({ input, step, runId }) {
    for (let i = 0; i < input.steps; i++) {
      if (input.kind === 'check' || (input.kind === 'mixed' && i % 2 === 0))
        await step.check(`c${i}`, noopCheck);
      else await step.act(`a${i}`, noopAction(Number.parseInt(runId.slice(-6), 36) * 100_000 + i));
    }
  },
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/**
 * The baseline, two ways. `autocommit`: one INSERT whose implicit commit makes it one round trip, the
 * cheapest durable write there is (the targets are judged against it). `transaction`: BEGIN, INSERT,
 * COMMIT, as application code that commits a row in a transaction does it.
 */
async function baseline(pool: pg.Pool, style: 'autocommit' | 'transaction'): Promise<number> {
  await pool.query(
    'CREATE TABLE IF NOT EXISTS baseline (id bigserial PRIMARY KEY, run_id text, payload jsonb)',
  );
  const client = await pool.connect();
  const insert = () =>
    client.query('INSERT INTO baseline (run_id, payload) VALUES ($1, $2)', ['run', '{"status":"ok"}']);
  try {
    for (let i = 0; i < 200; i++) await insert();
    const started = performance.now();
    for (let i = 0; i < STEPS; i++) {
      if (style === 'autocommit') await insert();
      else {
        await client.query('BEGIN');
        await insert();
        await client.query('COMMIT');
      }
    }
    return ((performance.now() - started) * 1000) / STEPS;
  } finally {
    client.release();
  }
}

/**
 * The least any durable action can cost with this store: one synchronous write before the apply (the lock,
 * budget and marker) and one relaxed write after it (the record). Printed for context, not as a target.
 */
async function twoWriteFloor(pool: pg.Pool, relaxed: pg.Pool): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < STEPS; i++) {
    await pool.query('INSERT INTO baseline (run_id, payload) VALUES ($1, $2)', [
      'run',
      '{"status":"applying"}',
    ]);
    await relaxed.query('INSERT INTO baseline (run_id, payload) VALUES ($1, $2)', ['run', '{"status":"ok"}']);
  }
  return ((performance.now() - started) * 1000) / STEPS;
}

async function perStep(engine: Engine, kind: 'check' | 'act'): Promise<number> {
  const timed = async (steps: number) => {
    const started = performance.now();
    const result = await engine.start('bench', { kind, steps }, { actor: 'bench', mode: 'execute' });
    if (result.status !== 'succeeded')
      throw new Error(`bench run ${result.status}: ${result.error?.message}`);
    return performance.now() - started;
  };
  // Subtract an empty run so that run creation and completion are not counted as step overhead.
  const empty = await timed(0);
  return (((await timed(STEPS)) - empty) * 1000) / STEPS;
}

async function main() {
  const pool = new pg.Pool({ connectionString: URL, max: 4, options: `-c search_path=${schema}` });
  const relaxedPool = new pg.Pool({
    connectionString: URL,
    max: 2,
    options: `-c search_path=${schema} -c synchronous_commit=off`,
  });
  await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  // As shipped: redoable writes commit without waiting for the WAL flush. And fully synchronous, for comparison.
  const relaxedStore = await openStore({ url: URL, schema, poolSize: 8 });
  const syncStore = await openStore({
    url: URL,
    schema: `${schema}_sync`,
    poolSize: 8,
    relaxedCommits: false,
  });
  const relaxed = new Engine({ store: relaxedStore, runbooks: [runbook] });
  const sync = new Engine({ store: syncStore, runbooks: [runbook] });
  try {
    process.stderr.write(`warming up (${STEPS} steps per measurement, median of ${REPEATS})…\n`);
    for (const engine of [relaxed, sync]) {
      await perStep(engine, 'check');
      await perStep(engine, 'act');
    }
    const samples = {
      base: [] as number[],
      baseTx: [] as number[],
      floor: [] as number[],
      check: [] as number[],
      act: [] as number[],
      checkSync: [] as number[],
      actSync: [] as number[],
    };
    for (let r = 0; r < REPEATS; r++) {
      // Interleaved so that drift in the machine's load hits every figure alike.
      samples.base.push(await baseline(pool, 'autocommit'));
      samples.baseTx.push(await baseline(pool, 'transaction'));
      samples.floor.push(await twoWriteFloor(pool, relaxedPool));
      samples.check.push(await perStep(relaxed, 'check'));
      samples.act.push(await perStep(relaxed, 'act'));
      samples.checkSync.push(await perStep(sync, 'check'));
      samples.actSync.push(await perStep(sync, 'act'));
      process.stderr.write(`  round ${r + 1}/${REPEATS}\n`);
    }
    const b = median(samples.base);

    const concurrentSteps = 400;
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: 4 }, () =>
        relaxed.start(
          'bench',
          { kind: 'mixed', steps: concurrentSteps },
          { actor: 'bench', mode: 'execute' },
        ),
      ),
    );
    const seconds = (performance.now() - started) / 1000;
    if (results.some((r) => r.status !== 'succeeded')) throw new Error('a concurrent bench run failed');

    const bt = median(samples.baseTx);
    const line = (name: string, us: number, target?: number) =>
      `${name.padEnd(44)} ${us.toFixed(0).padStart(6)} µs  ${(us / b).toFixed(2).padStart(5)}×  ${(us / bt).toFixed(2).padStart(5)}×${target ? `  target ≤ ${target}×: ${verdict(us / b, target)} / ${verdict(us / bt, target)}` : ''}`;
    const verdict = (ratio: number, target: number) => (ratio <= target ? 'met' : 'MISSED');
    console.log(`engine overhead per step, PostgreSQL store, ${STEPS} steps, median of ${REPEATS}`);
    console.log(`${''.padEnd(44)}   time   vs autocommit INSERT  vs BEGIN/INSERT/COMMIT`);
    console.log(line('baseline: INSERT (autocommit)', b));
    console.log(line('baseline: BEGIN; INSERT; COMMIT', bt));
    console.log(line('check step', median(samples.check), 1.5));
    console.log(line('action step (plan, lock, apply, record)', median(samples.act), 2.5));
    console.log(line('  floor: 1 durable + 1 relaxed INSERT', median(samples.floor)));
    console.log(line('check step, relaxedCommits: false', median(samples.checkSync)));
    console.log(line('action step, relaxedCommits: false', median(samples.actSync)));
    console.log(
      `${'4 concurrent runs (half checks, half actions)'.padEnd(44)} ${((4 * concurrentSteps) / seconds).toFixed(0).padStart(6)} steps/s`,
    );
  } finally {
    for (const store of [relaxedStore, syncStore]) {
      await store.driver.query(`DROP SCHEMA ${store === syncStore ? `${schema}_sync` : schema} CASCADE`);
      await store.close();
    }
    await Promise.all([pool.end(), relaxedPool.end()]);
  }
}

await main();
