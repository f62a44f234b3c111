import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { finding } from '../../src/core/finding';
import { defineRunbook } from '../../src/core/runbook';
import { defineAction, defineCheck } from '../../src/core/step';
import { Engine } from '../../src/engine/engine';
import { fixtureFromRun, parseFixture, recordRun } from '../../src/replay/fixture';
import { replayRun } from '../../src/replay/replay';
import { openStore } from '../../src/store/open-store';
import type { RunStore } from '../../src/store/run-store';
import { POSTGRES_URL, uniqueSchema } from '../support/stores';

// A queue-depth runbook over a real PostgreSQL table: a replayable check (read the depth, judge it against
// a threshold) and an action. Recorded runs are replayed against changed versions of it.

const table = uniqueSchema('replay_jobs');
let db: pg.Pool;
let store: RunStore;
let intakeOpen = true;
let applies = 0;

/** A replayable check, as the authoring guide teaches: read returns data, judge is pure. */
const queueDepth = (max: number) =>
  defineCheck({
    kind: 'test.queue-depth',
    read: async () => {
      const { rows } = await db.query<{ depth: number }>(`SELECT count(*)::int AS depth FROM ${table}`);
      return { depth: rows[0]?.depth ?? 0 };
    },
    judge: ({ depth }) =>
      depth > max
        ? finding('fail', `${depth} jobs waiting, more than ${max}`, { depth })
        : finding('ok', `${depth} jobs waiting`, { depth }),
  });

const pauseIntake = defineAction({
  kind: 'test.pause-intake',
  target: 'queue:jobs',
  risk: 'low',
  destructive: false,
  plan: async () => ({
    summary: 'pause the intake of new jobs',
    changes: [{ target: 'queue:jobs', field: 'intake', before: intakeOpen, after: false }],
    params: null,
  }),
  apply: async () => {
    applies++;
    intakeOpen = false;
    return null;
  },
});

/**
 * The runbook; `codeThreshold` is its threshold in the code, the optional `maxDepth` input overrides it. (A zod
 * default would be recorded with the input: a replay runs with the recorded input, so a changed default in the
 * code would not show. Thresholds meant to change in code stay out of the input's defaults.)
 */
const queueRunbook = (codeThreshold: number, extraStep = false) =>
  defineRunbook({
    id: 'queue-backlog',
    title: 'Queue backlog',
    severity: 'P3',
    input: z.object({ maxDepth: z.number().int().optional(), apiToken: z.string().optional() }),
    async run({ input, step }) {
      const depth = await step.check('depth', queueDepth(input.maxDepth ?? codeThreshold));
      if (depth.status === 'ok') return step.done('queue fine');
      await step.act('pause-intake', pauseIntake);
      if (extraStep) await step.notify('tell-team', { channel: 'slack:#jobs', message: 'intake paused' });
      return step.done('intake paused');
    },
  });

async function record(runbook: ReturnType<typeof queueRunbook>, input: Record<string, unknown>) {
  const engine = new Engine({ store, runbooks: [runbook] });
  const result = await engine.start(runbook.id, input, { mode: 'execute', actor: 'alice' });
  return recordRun(store, result.runId);
}

async function runRecord(id: string) {
  const run = await store.getRun(id);
  if (!run) throw new Error(`run ${id} not stored`);
  return run;
}

beforeAll(async () => {
  db = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
  await db.query(`CREATE TABLE ${table} (id int)`);
  await db.query(`INSERT INTO ${table} SELECT generate_series(1, 40)`);
  store = await openStore({ dataDir: ':memory:' });
});
afterAll(async () => {
  await db.query(`DROP TABLE IF EXISTS ${table}`);
  await db.end();
  await store.close();
});

describe('record', () => {
  it('keeps each step with the observation of a replayable check, and the outcome', async () => {
    const fixture = await record(queueRunbook(50), {});
    expect(fixture).toMatchObject({
      format: 'runbook-fixture/v1',
      runbook: 'queue-backlog',
      run: { mode: 'execute', status: 'succeeded', input: {} },
    });
    expect(fixture.steps).toEqual([
      expect.objectContaining({
        seq: 1,
        name: 'depth',
        kind: 'check',
        status: 'succeeded',
        result: expect.objectContaining({ status: 'ok', observation: { depth: 40 } }),
      }),
    ]);
    // What the JSON file holds parses back to the same fixture.
    expect(parseFixture(JSON.parse(JSON.stringify(fixture)))).toEqual(fixture);
  });

  it('redacts secrets: secret-named input fields and the exact values given', async () => {
    const fixture = await record(queueRunbook(50), { apiToken: 'tok-6f1d2a9c' });
    const text = JSON.stringify(
      fixtureFromRun(
        { ...(await runRecord(fixture.run.id)), outcome: { kind: 'done', summary: 'used s3cr3t-value' } },
        await store.getSteps(fixture.run.id),
        { secrets: ['s3cr3t-value'] },
      ),
    );
    expect(text).not.toContain('tok-6f1d2a9c');
    expect(text).not.toContain('s3cr3t-value');
    expect(text).toContain('[REDACTED]');
  });

  it('refuses an unknown run, naming it', async () => {
    await expect(recordRun(store, 'no-such-run')).rejects.toThrow(/Run "no-such-run" not found/);
  });

  it('refuses a malformed fixture file, naming the field', () => {
    expect(() =>
      parseFixture(
        { format: 'runbook-fixture/v1', runbook: 'x', recordedAt: 'now', run: {}, steps: [{}] },
        'old.json',
      ),
    ).toThrow(/Invalid old\.json: run\.id: .*steps\[0\]\.seq/);
    expect(() => parseFixture({ format: 'v0' }, 'old.json')).toThrow(
      /format: format must be "runbook-fixture\/v1"/,
    );
  });
});

describe('replay', () => {
  it('the same runbook decides the same: every step and the outcome match', async () => {
    const fixture = await record(queueRunbook(50), {});
    const report = await replayRun(queueRunbook(50), fixture);
    expect(report.same).toBe(true);
    expect(report.firstDifference).toBeUndefined();
    expect(report.steps).toEqual([
      expect.objectContaining({
        name: 'depth',
        recorded: 'ok',
        replayed: 'ok',
        same: true,
        note: 're-judged from the recorded observation',
      }),
    ]);
    expect(report.outcome).toEqual({
      recorded: { status: 'succeeded', summary: 'queue fine' },
      replayed: { status: 'succeeded', summary: 'queue fine' },
      same: true,
    });
  });

  it('a lower threshold in the code turns the recorded "ok" into "fail" at the depth step, and the new path shows', async () => {
    const fixture = await record(queueRunbook(50), {});
    // The world changed since (100 jobs now): a replay never reads it, it judges the recorded 40.
    await db.query(`INSERT INTO ${table} SELECT generate_series(41, 100)`);
    try {
      const report = await replayRun(queueRunbook(30), fixture);
      expect(report.same).toBe(false);
      expect(report.firstDifference).toMatchObject({
        name: 'depth',
        recordedSeq: 1,
        recorded: 'ok',
        replayed: 'fail',
        note: 'ok → fail: 40 jobs waiting, more than 30',
      });
      expect(report.steps[1]).toMatchObject({
        name: 'pause-intake',
        kind: 'act',
        recordedSeq: null,
        recorded: null,
        replayed: 'skipped',
        note: 'new step: not in the recording (would plan test.pause-intake on queue:jobs)',
      });
      expect(report.outcome.replayed).toEqual({ status: 'succeeded', summary: 'intake paused' });
      expect(applies).toBe(0); // nothing was applied by the replay
    } finally {
      await db.query(`DELETE FROM ${table} WHERE id > 40`);
    }
  });

  it('a changed threshold as input backtests without editing the runbook', async () => {
    const fixture = await record(queueRunbook(50), {});
    const report = await replayRun(queueRunbook(50), fixture, { input: { maxDepth: 39 } });
    expect(report.input).toMatchObject({ maxDepth: 39 });
    expect(report.firstDifference).toMatchObject({ name: 'depth', recorded: 'ok', replayed: 'fail' });
    await expect(replayRun(queueRunbook(50), fixture, { input: { maxDepth: 'many' } })).rejects.toThrow(
      /Invalid input of runbook queue-backlog: maxDepth: /,
    );
  });

  it('answers actions from the recording without applying them, and reports steps no longer reached', async () => {
    const fixture = await record(queueRunbook(10), {}); // 40 > 10: the intake is paused for real
    expect(applies).toBe(1);
    expect(intakeOpen).toBe(false);
    intakeOpen = true;

    const same = await replayRun(queueRunbook(10, true), fixture);
    expect(applies).toBe(1);
    expect(same.steps.map((s) => [s.name, s.recorded, s.replayed])).toEqual([
      ['depth', 'fail', 'fail'],
      ['pause-intake', 'applied', 'applied'],
      ['tell-team', null, 'sent'],
    ]);
    expect(same.firstDifference?.name).toBe('tell-team');

    const relaxed = await replayRun(queueRunbook(100), fixture);
    expect(relaxed.steps.map((s) => [s.name, s.recorded, s.replayed, s.replayedSeq])).toEqual([
      ['depth', 'fail', 'ok', 1],
      ['pause-intake', 'applied', null, null],
    ]);
    expect(relaxed.steps[1]?.note).toBe('not reached by the runbook as it is now');
  });

  it('gives a check that is not replayable its recorded finding, and says so', async () => {
    const fixture = await record(queueRunbook(50), {});
    const plain = defineRunbook({
      id: 'queue-backlog',
      title: 'Queue backlog',
      severity: 'P3',
      input: z.object({}),
      async run({ step }) {
        const f = await step.check('depth', {
          kind: 'plain',
          run: async () => finding('fail', 'never called', null),
        });
        return step.done(f.summary);
      },
    });
    const report = await replayRun(plain, fixture);
    expect(report.steps[0]).toMatchObject({
      recorded: 'ok',
      replayed: 'ok',
      note: 'recorded finding (the check is not replayable)',
    });
    expect(report.steps[0]?.finding).toEqual({
      status: 'ok',
      summary: '40 jobs waiting',
      evidence: [],
      data: { depth: 40 },
    });
  });

  it('refuses a fixture of another runbook', async () => {
    const fixture = await record(queueRunbook(50), {});
    const other = defineRunbook({
      id: 'other',
      title: 'o',
      severity: 'P3',
      input: z.object({}),
      async run() {},
    });
    await expect(replayRun(other, fixture)).rejects.toThrow(/records runbook "queue-backlog", not "other"/);
  });
});
