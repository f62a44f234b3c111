import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { finding } from '../../src/core/finding';
import { defineRunbook, type Runbook } from '../../src/core/runbook';
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
      summaryChanged: false,
    });
    expect(report.notRejudged).toEqual([]);
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
        replayed: 'new',
        note: 'new step: would plan test.pause-intake on queue:jobs; a replay cannot plan, so it stops here',
      });
      // It cannot know what the plan would have said: it stops instead of guessing.
      expect(report.outcome.replayed).toEqual({
        status: 'incomplete',
        summary: 'act step "pause-intake" is not in the recording',
      });
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

// The review's cases: where a replay could say "same" for a changed decision, or "different" for none.
describe('replay, where it could mislead', () => {
  /** A one-off runbook; `run` gets the step tools. */
  const book = (run: Parameters<typeof defineRunbook>[0]['run'], input = z.object({}).passthrough()) =>
    defineRunbook({ id: 'edge', title: 'Edge cases', severity: 'P3', input, run });
  const startAndRecord = async (
    runbook: Runbook,
    options: {
      input?: Record<string, unknown>;
      engine?: Partial<ConstructorParameters<typeof Engine>[0]>;
    } = {},
  ) => {
    const engine = new Engine({ store, runbooks: [runbook], ...options.engine });
    const result = await engine.start(runbook.id, options.input ?? {}, { mode: 'execute', actor: 'alice' });
    return { engine, result, fixture: async () => recordRun(store, result.runId) };
  };
  const secretCheck = defineCheck({
    kind: 'test.secret-line',
    read: async () => ({ line: 'connect postgres://app:hunter22@db/app' }),
    judge: ({ line }) =>
      line.includes('hunter22') ? finding('fail', 'saw it', null) : finding('ok', 'redacted', null),
  });

  it('keeps an observation only when its redacted copy gives the same verdict; a replay then takes the finding', async () => {
    const runbook = book(async ({ step }) => step.done((await step.check('line', secretCheck)).summary));
    const { fixture } = await startAndRecord(runbook);
    const recorded = await fixture();
    expect(JSON.stringify(recorded)).not.toContain('hunter22');
    // Judged live on what was read (fail); the redacted copy would judge ok, so it is not kept.
    expect(recorded.steps[0]?.result).toMatchObject({
      status: 'fail',
      check: 'test.secret-line',
      observationDropped: 'redacting it changes the verdict',
    });
    const report = await replayRun(runbook, recorded);
    expect(report).toMatchObject({ same: true, notRejudged: ['line'] });
    expect(report.steps[0]?.note).toBe(
      'recorded finding (its observation was not kept: redacting it changes the verdict)',
    );
  });

  it('gives judge a copy, live and in a replay, so a judge that changes it changes nothing stored', async () => {
    const shifty = defineCheck({
      kind: 'test.shifty',
      read: async () => ({ items: [1, 9] }),
      judge: (o: { items: number[] }) => {
        const first = o.items.shift();
        return finding(first === 1 ? 'ok' : 'fail', `first ${first}`, null);
      },
    });
    const runbook = book(async ({ step }) => step.done((await step.check('shift', shifty)).summary));
    const { fixture } = await startAndRecord(runbook);
    const recorded = await fixture();
    expect(recorded.steps[0]?.result).toMatchObject({ status: 'ok', observation: { items: [1, 9] } });
    expect((await replayRun(runbook, recorded)).same).toBe(true);
    expect((await replayRun(runbook, recorded)).same).toBe(true); // the fixture was not changed by the first
  });

  it('does not keep an observation over 256 KiB, and says so', async () => {
    const big = defineCheck({
      kind: 'test.big',
      read: async () => ({ lines: Array.from({ length: 3000 }, (_, i) => `line ${i} ${'x'.repeat(100)}`) }),
      judge: (o: { lines: string[] }) => finding('ok', `${o.lines.length} lines`, null),
    });
    const runbook = book(async ({ step }) => step.done((await step.check('big', big)).summary));
    const { fixture } = await startAndRecord(runbook);
    const recorded = await fixture();
    expect(recorded.steps[0]?.result).toMatchObject({
      status: 'ok',
      observationDropped: expect.stringMatching(/bytes, over the 262144 kept$/),
    });
    expect(recorded.steps[0]?.result).not.toHaveProperty('observation');
    expect((await replayRun(runbook, recorded)).notRejudged).toEqual(['big']);
  });

  it('replays a plan-mode action that failed as the engine ended it, not as a give-up', async () => {
    const broken = defineAction({
      ...pauseIntake,
      kind: 'test.broken-plan',
      plan: async () => {
        throw new Error('cannot plan');
      },
    });
    const runbook = book(async ({ step }) => {
      await step.act('broken', broken, { onGiveUp: step.escalate('gave up', { to: 'ops' }) });
      return step.done('planned');
    });
    const engine = new Engine({ store, runbooks: [runbook] });
    const result = await engine.start(runbook.id, {}, { mode: 'plan', actor: 'alice' });
    expect(result.status).toBe('failed');
    const report = await replayRun(runbook, await recordRun(store, result.runId));
    expect(report.outcome).toMatchObject({
      recorded: { status: 'failed' },
      replayed: { status: 'failed' },
      same: true,
    });
  });

  it('compares where a notification goes', async () => {
    const notifying = (channel: string) =>
      book(async ({ step }) => {
        await step.notify('tell', { channel, message: 'hello' });
        return step.done('told');
      });
    const { fixture } = await startAndRecord(notifying('slack:#ops'));
    const recorded = await fixture();
    expect((await replayRun(notifying('slack:#ops'), recorded)).same).toBe(true);
    const moved = await replayRun(notifying('slack:#dev'), recorded);
    expect(moved.steps[0]).toMatchObject({ same: false, note: 'recorded to slack:#ops, now to slack:#dev' });
  });

  it('a run waiting for approval, or cancelled by a rejection, replays the same when nothing changed', async () => {
    const risky = defineAction({
      ...pauseIntake,
      kind: 'test.risky',
      risk: 'high',
      plan: async () => ({
        summary: 'risky',
        changes: [{ target: 'queue:jobs', field: 'x', before: 1, after: 2 }],
        params: null,
      }),
      apply: async () => null,
    });
    const runbook = book(async ({ step }) => {
      await step.act('risky', risky);
      return step.done('done');
    });
    const { engine, result, fixture } = await startAndRecord(runbook);
    expect(result.status).toBe('waiting_approval');
    const waiting = await replayRun(runbook, await fixture());
    expect(waiting).toMatchObject({ same: true, outcome: { replayed: { status: 'waiting_approval' } } });
    expect(waiting.steps[0]).toMatchObject({
      name: 'risky',
      same: true,
      note: 'the recorded run stopped here',
    });

    // Approved but not resumed yet: the run is queued again, its step still waits; so does the replay.
    const second = await engine.start(runbook.id, {}, { mode: 'execute', actor: 'alice' });
    await engine.approve(second.runId, { actor: 'bob' });
    const approved = await replayRun(runbook, await recordRun(store, second.runId));
    expect(approved.outcome).toMatchObject({
      recorded: { status: 'queued' },
      replayed: { status: 'queued' },
    });
    expect(approved.same).toBe(true);

    await engine.reject(result.runId, { actor: 'bob', reason: 'not now' });
    const rejected = await replayRun(runbook, await fixture());
    expect(rejected.outcome).toMatchObject({
      recorded: { status: 'cancelled' },
      replayed: { status: 'cancelled' },
    });
    expect(rejected.same).toBe(true);
  });

  it('ends where a run stopped from outside ended, instead of inventing the steps after', async () => {
    const slow = defineCheck({
      kind: 'test.slow',
      run: (ctx) =>
        new Promise<never>((_, reject) =>
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)),
        ),
    });
    const runbook = defineRunbook({
      id: 'edge',
      title: 'Edge cases',
      severity: 'P3',
      timeout: '300ms',
      input: z.object({}),
      async run({ step }) {
        await step.check('quick', secretCheck);
        await step.check('slow', slow);
        return step.done('never');
      },
    });
    const { result, fixture } = await startAndRecord(runbook);
    expect(result.status).toBe('failed');
    const report = await replayRun(runbook, await fixture());
    expect(report.outcome).toMatchObject({
      recorded: { status: 'failed' },
      replayed: { status: 'failed', summary: 'the recording ends here' },
    });
    expect(report.steps.map((s) => s.name)).toEqual(['quick']);
    expect(report.same).toBe(true);
  });

  it('compares where an escalation goes', async () => {
    const to = (team: string) => book(async ({ step }) => step.escalate('page someone', { to: team }));
    const { fixture } = await startAndRecord(to('team-a'));
    const report = await replayRun(to('team-b'), await fixture());
    expect(report.outcome).toMatchObject({
      recorded: { to: 'team-a' },
      replayed: { to: 'team-b' },
      same: false,
    });
    expect(report.same).toBe(false);
  });

  it('marks a re-judged finding that changed while its status did not', async () => {
    const fixture = await record(queueRunbook(10), {}); // 40 > 10: fail, and the intake is paused
    intakeOpen = true;
    const report = await replayRun(queueRunbook(20), fixture);
    expect(report.steps[0]).toMatchObject({
      name: 'depth',
      recorded: 'fail',
      replayed: 'fail',
      same: false,
      note: 'still fail, but the finding changed: 40 jobs waiting, more than 20',
    });
    expect(report.steps[1]?.note).toBe(
      'recorded result of test.pause-intake on queue:jobs (not re-planned, though an earlier finding changed)',
    );
  });

  it('does not feed an observation to another kind of check, and reports a judge that throws', async () => {
    const fixture = await record(queueRunbook(50), {});
    const other = defineCheck({
      kind: 'test.other',
      read: async () => 1,
      judge: () => finding('fail', 'other', null),
    });
    const swapped = defineRunbook({
      ...queueRunbook(50),
      async run({ step }) {
        await step.check('depth', other);
        return step.done('queue fine');
      },
    });
    const report = await replayRun(swapped, fixture);
    expect(report.steps[0]).toMatchObject({ recorded: 'ok', replayed: 'ok', same: false });
    expect(report.steps[0]?.note).toBe(
      'recorded check test.queue-depth, now test.other: recorded finding, not re-judged',
    );
    expect(report.notRejudged).toEqual(['depth']);

    const broken = defineCheck({
      kind: 'test.queue-depth',
      read: async () => ({ depth: 0 }),
      judge: (): never => {
        throw new Error('judge bug');
      },
    });
    const throwing = defineRunbook({
      ...queueRunbook(50),
      async run({ step }) {
        await step.check('depth', broken);
        return step.done('queue fine');
      },
    });
    const failed = await replayRun(throwing, fixture);
    expect(failed.steps[0]).toMatchObject({ replayed: 'error', same: false, note: 'judge threw: judge bug' });
    expect(failed.outcome.replayed).toMatchObject({ status: 'failed', summary: 'judge bug' });
  });

  it('lets a runbook swallow an escalation of onGiveUp, as the engine does', async () => {
    const failing = defineAction({
      ...pauseIntake,
      kind: 'test.failing',
      apply: async () => {
        throw new Error('apply failed');
      },
    });
    const runbook = book(async ({ step }) => {
      try {
        await step.act('fail', failing, { onGiveUp: step.escalate('gave up', { to: 'ops' }) });
      } catch {
        // swallowed
      }
      return step.done('fine');
    });
    const { result, fixture } = await startAndRecord(runbook);
    expect(result.status).toBe('succeeded');
    const report = await replayRun(runbook, await fixture());
    expect(report.steps[0]).toMatchObject({ name: 'fail', recorded: 'error ERROR', same: true });
    expect(report.outcome.replayed).toEqual({ status: 'succeeded', summary: 'fine' });
    expect(report.same).toBe(true);
  });

  it('redacts its logs, and merges nested input changes', async () => {
    const nested = defineRunbook({
      id: 'edge',
      title: 'Edge cases',
      severity: 'P3',
      input: z.object({ limits: z.object({ max: z.number(), min: z.number() }) }),
      async run({ input, step, log }) {
        log('connecting to postgres://app:hunter22@db/app');
        return step.done(`max ${input.limits.max}, min ${input.limits.min}`);
      },
    });
    const { fixture } = await startAndRecord(nested, { input: { limits: { max: 5, min: 1 } } });
    const report = await replayRun(nested, await fixture(), { input: { limits: { max: 9 } } });
    expect(report.logs.join()).not.toContain('hunter22');
    expect(report.outcome.replayed.summary).toBe('max 9, min 1');
  });

  it('refuses a fixture with a step name twice', () => {
    const step = { seq: 1, name: 'a', kind: 'check', status: 'succeeded', result: null, error: null };
    const run = {
      id: 'r',
      mode: 'execute',
      input: {},
      status: 'succeeded',
      outcome: null,
      error: null,
      startedAt: null,
      endedAt: null,
    };
    expect(() =>
      parseFixture({
        format: 'runbook-fixture/v1',
        runbook: 'x',
        recordedAt: 'now',
        run,
        steps: [step, { ...step, seq: 2 }],
      }),
    ).toThrow(/steps\[1\]\.name: step name "a" appears twice/);
  });
});
