import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { NonRetriableError, RetryAfterError } from '../src/core/errors';
import { finding } from '../src/core/finding';
import { defineRunbook } from '../src/core/runbook';
import { defineCheck } from '../src/core/step';
import type { Notifier } from '../src/engine/events';
import { engineFixture } from './support/engine-fixture';
import { fixRunbook, setValue, valueIs, World } from './support/runbooks';
import { DRIVERS } from './support/stores';

const input = (key: string, value = 'on') => ({ key, value });

describe.each(Object.entries(DRIVERS))('engine on %s', (_name, open) => {
  const fx = engineFixture(open);
  const { engine, key } = fx;

  it('diagnoses and plans without changing anything, and executes exactly once', async () => {
    const world = new World();
    const e = engine([fixRunbook(world, 'fix')]);
    const k = key('modes');

    const diagnosed = await e.start('fix', input(k), { mode: 'diagnose', actor: 'alice' });
    expect(diagnosed.status).toBe('succeeded');
    expect(world.applies).toEqual([]);
    const dSteps = (await e.getRun(diagnosed.runId)).steps;
    expect(dSteps.map((s) => [s.name, s.status])).toEqual([
      ['inspect', 'succeeded'],
      ['fix', 'skipped'],
    ]);

    const planned = await e.start('fix', input(k), { mode: 'plan', actor: 'alice' });
    const pSteps = (await e.getRun(planned.runId)).steps;
    const plan = (pSteps[1]?.result as { plan: { changes: unknown[]; hash: string } } | undefined)?.plan;
    expect(plan?.changes).toEqual([{ target: `test:${k}`, field: 'value', before: null, after: 'on' }]);
    expect(plan?.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(world.applies).toEqual([]);

    const executed = await e.start('fix', input(k), { mode: 'execute', actor: 'alice' });
    expect(executed).toMatchObject({
      status: 'succeeded',
      outcome: { kind: 'done', summary: 'fix applied' },
    });
    expect(world.get(k)).toBe('on');
    expect(world.applies).toEqual([k]);

    // Already in the desired state: the check says ok, nothing is applied again.
    const again = await e.start('fix', input(k), { mode: 'execute', actor: 'alice' });
    expect(again.outcome).toEqual({ kind: 'done', summary: 'already fine' });
    expect(world.applies).toEqual([k]);
    expect((await e.verifyAudit()).ok).toBe(true);
  });

  it('refuses bad input with the field named, and creates no run', async () => {
    const e = engine([fixRunbook(new World(), 'fix')]);
    const before = (await fx.sut.store.listRuns({ limit: 1000 })).length;
    await expect(e.start('fix', { key: '', value: 3 }, { actor: 'alice' })).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      issues: [
        { path: 'key', message: expect.stringContaining('') },
        { path: 'value', message: expect.stringContaining('string') },
      ],
    });
    expect((await fx.sut.store.listRuns({ limit: 1000 })).length).toBe(before);
    await expect(e.start('nope', {}, { actor: 'a' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('fails a run that reuses a step name', async () => {
    const world = new World();
    const rb = defineRunbook({
      id: 'dup',
      title: 'dup',
      severity: 'P3',
      input: z.object({}),
      async run({ step }) {
        await step.check('same', valueIs(world, 'x', 1));
        await step.check('same', valueIs(world, 'x', 1));
      },
    });
    const result = await engine([rb]).start('dup', {}, { actor: 'a' });
    expect(result.status).toBe('failed');
    expect(result.error?.code).toBe('DUPLICATE_STEP');
  });

  describe('approvals', () => {
    it('needs a second person, binds the approval to the plan hash, and re-asks when the plan changes', async () => {
      const world = new World();
      const k = key('approve');
      const rb = fixRunbook(world, 'fix-destructive', { destructive: true });
      const e = engine([rb]);
      const requested: string[] = [];
      e.onApprovalRequested((ev) => requested.push(ev.plan.hash));

      const first = await e.start('fix-destructive', input(k, 'a'), { mode: 'execute', actor: 'alice' });
      expect(first.status).toBe('waiting_approval');
      expect(first.pendingApproval?.step).toBe('fix');
      expect(world.applies).toEqual([]);

      await expect(e.approve(first.runId, { actor: 'alice' })).rejects.toMatchObject({ code: 'FOUR_EYES' });
      await e.approve(first.runId, { actor: 'bob', reason: 'looks right' });

      // The world changes between approval and apply: the approved plan is void.
      world.values.set(k, 'something else');
      const resumed = await e.resume(first.runId);
      expect(resumed.status).toBe('waiting_approval');
      expect(requested).toHaveLength(2);
      expect(requested[0]).not.toBe(requested[1]);
      expect(world.applies).toEqual([]);
      const approvals = (await e.getRun(first.runId)).approvals;
      expect(approvals.map((a) => a.status)).toEqual(['approved', 'pending']);

      await e.approve(first.runId, { actor: 'carol' });
      const done = await e.resume(first.runId);
      expect(done.status).toBe('succeeded');
      expect(world.get(k)).toBe('a');
      expect(world.applies).toEqual([k]);

      const audit = (await fx.sut.store.readAudit()).map(
        (r) => JSON.parse(r.entry) as { kind: string; runId?: string },
      );
      const kinds = audit.filter((a) => a.runId === first.runId).map((a) => a.kind);
      expect(kinds).toEqual(
        expect.arrayContaining([
          'approval.requested',
          'approval.approved',
          'approval.re-requested',
          'action.applied',
        ]),
      );
    });

    it('allows break-glass only with a reason, and records it', async () => {
      const world = new World();
      const k = key('glass');
      const e = engine([fixRunbook(world, 'fix-high', { risk: 'high' })]);
      const run = await e.start('fix-high', input(k), { mode: 'execute', actor: 'alice' });
      expect(run.status).toBe('waiting_approval');
      await expect(e.approve(run.runId, { actor: 'alice', breakGlass: true })).rejects.toMatchObject({
        code: 'BREAK_GLASS_REASON_REQUIRED',
      });
      const approval = await e.approve(run.runId, {
        actor: 'alice',
        breakGlass: true,
        reason: 'sev0, nobody awake',
      });
      expect(approval).toMatchObject({ breakGlass: true, decidedBy: 'alice', reason: 'sev0, nobody awake' });
      expect((await e.resume(run.runId)).status).toBe('succeeded');
      const entries = (await fx.sut.store.readAudit()).map((r) => JSON.parse(r.entry));
      expect(entries).toContainEqual(
        expect.objectContaining({ kind: 'approval.break-glass', actor: 'alice', runId: run.runId }),
      );
    });

    it('rejection cancels the run; approvals expire', async () => {
      const world = new World();
      const e = engine([fixRunbook(world, 'fix-d', { destructive: true })], {
        approvals: { minRisk: 'high', destructive: true, ttl: '10m' },
      });
      const rejected = await e.start('fix-d', input(key('rej')), { mode: 'execute', actor: 'alice' });
      await e.reject(rejected.runId, { actor: 'bob', reason: 'not now' });
      expect((await e.getRun(rejected.runId)).run.status).toBe('cancelled');

      const waiting = await e.start('fix-d', input(key('exp')), { mode: 'execute', actor: 'alice' });
      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        vi.setSystemTime(Date.now() + 11 * 60_000);
        await expect(e.approve(waiting.runId, { actor: 'bob' })).rejects.toMatchObject({
          code: 'APPROVAL_EXPIRED',
        });
      } finally {
        vi.useRealTimers();
      }
      expect(world.applies).toEqual([]);
    });
  });

  describe('locks', () => {
    it('refuses a second run on a locked resource, naming the holder, and frees the lock after', async () => {
      const world = new World();
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      let entered!: () => void;
      const inApply = new Promise<void>((r) => {
        entered = r;
      });
      const slow = defineRunbook({
        id: 'slow',
        title: 'slow',
        severity: 'P3',
        input: z.object({}),
        async run({ step }) {
          const action = setValue(world, 'shared', 'slow');
          const original = action.apply.bind(action);
          action.apply = async (ctx, plan) => {
            entered();
            await gate;
            return original(ctx, plan);
          };
          await step.act('set', action);
        },
      });
      const fast = defineRunbook({
        id: 'fast',
        title: 'fast',
        severity: 'P3',
        input: z.object({}),
        async run({ step }) {
          await step.act('set', setValue(world, 'shared', 'fast'));
        },
      });
      const e = engine([slow, fast]);
      const slowRun = e.start('slow', {}, { mode: 'execute', actor: 'a' });
      await inApply;
      const lock = await fx.sut.store.getLock('test:shared');
      const second = await e.start('fast', {}, { mode: 'execute', actor: 'b' });
      expect(second.status).toBe('failed');
      expect(second.error?.code).toBe('RESOURCE_LOCKED');
      expect(second.error?.message).toContain(lock?.runId as string);
      release();
      expect((await slowRun).status).toBe('succeeded');
      expect(await fx.sut.store.getLock('test:shared')).toBeUndefined();
      expect((await e.start('fast', {}, { mode: 'execute', actor: 'b' })).status).toBe('succeeded');
      expect(world.applies).toEqual(['shared', 'shared']);
    });

    it("takes over a dead holder's expired lease", async () => {
      const world = new World();
      await fx.sut.store.tryLock(
        {
          resource: 'test:orphan',
          runId: 'run_dead',
          step: 'x',
          owner: 'dead-host',
          expiresAt: new Date(Date.now() - 1000),
        },
        new Date(Date.now() - 2000),
      );
      const result = await engine([fixRunbook(world, 'fix')]).start('fix', input('orphan'), {
        mode: 'execute',
        actor: 'a',
      });
      expect(result.status).toBe('succeeded');
      expect(world.get('orphan')).toBe('on');
    });
  });

  it('spends a persisted remediation budget shared by all runbooks, then escalates without applying', async () => {
    const world = new World();
    const k = key('budget');
    const notes: string[] = [];
    const notifier: Notifier = { notify: async (n) => void notes.push(`${n.kind}:${n.message}`) };
    const options = { budgets: [{ action: 'test.set', max: 2, per: '1h' }], notifier };
    const a = engine([fixRunbook(world, 'fix-a')], options);
    const b = engine([fixRunbook(world, 'fix-b')], options); // another runbook, another engine: same budget
    expect((await a.start('fix-a', input(k, '1'), { mode: 'execute', actor: 'x' })).status).toBe('succeeded');
    expect((await b.start('fix-b', input(k, '2'), { mode: 'execute', actor: 'x' })).status).toBe('succeeded');
    const third = await a.start('fix-a', input(k, '3'), { mode: 'execute', actor: 'x' });
    expect(third.status).toBe('escalated');
    expect(third.error?.code).toBe('BUDGET_EXHAUSTED');
    expect(world.get(k)).toBe('2');
    expect(world.applies).toEqual([k, k]);
    expect(notes.some((m) => m.startsWith('escalate:') && m.includes('budget'))).toBe(true);
    expect(await fx.sut.store.getLock(`test:${k}`)).toBeUndefined();
  });

  describe('verify and revert', () => {
    it('reverts when verification fails, and escalates when asked to', async () => {
      const world = new World();
      const k = key('verify');
      world.values.set(k, 'old');
      const rb = defineRunbook({
        id: 'verify-fails',
        title: 'v',
        severity: 'P2',
        input: z.object({}),
        async run({ step }) {
          await step.act('set', setValue(world, k, 'new', { verify: () => 'fail' }), {
            onGiveUp: step.escalate('page on-call', { to: 'pager' }),
          });
          return step.done('unreachable');
        },
      });
      const result = await engine([rb]).start('verify-fails', {}, { mode: 'execute', actor: 'a' });
      expect(result.status).toBe('escalated');
      expect(result.outcome).toMatchObject({ kind: 'escalate', reason: 'page on-call' });
      expect(result.error?.code).toBe('VERIFICATION_FAILED');
      expect(world.get(k)).toBe('old');
      expect(world.reverts).toEqual([k]);
      const step = (await fx.sut.store.getSteps(result.runId)).find((s) => s.name === 'set');
      expect(step).toMatchObject({ status: 'failed', result: { status: 'reverted' } });
    });

    it('reverts an expiring action when it expires, also from a new engine after a restart', async () => {
      const world = new World();
      const k = key('expiry');
      const rb = defineRunbook({
        id: 'block-ip',
        title: 'block',
        severity: 'P1',
        input: z.object({}),
        async run({ step }) {
          await step.act('block', setValue(world, k, 'blocked', { expiresAfter: '1h' }));
        },
      });
      const first = engine([rb]);
      const run = await first.start('block-ip', {}, { mode: 'execute', actor: 'sec' });
      expect(run.status).toBe('succeeded');
      expect(world.get(k)).toBe('blocked');
      expect(await first.revertExpired()).toBe(0);

      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        vi.setSystemTime(Date.now() + 61 * 60_000);
        const restarted = engine([rb]); // the process that applied it is gone
        const n = await restarted.revertExpired();
        expect(n).toBe(1);
        expect(await restarted.revertExpired()).toBe(0);
      } finally {
        vi.useRealTimers();
      }
      expect(world.get(k)).toBeNull();
      expect(world.reverts).toEqual([k]);
      const expiring = (await fx.sut.store.listExpiring()).find((x) => x.runId === run.runId);
      expect(expiring?.status).toBe('reverted');
    });
  });

  describe('retries, timeouts, cancellation', () => {
    it('retries with backoff, honours RetryAfterError, and never retries a NonRetriableError', async () => {
      const world = new World();
      const errors = [new Error('flaky'), new RetryAfterError('429', 30)];
      const rb = defineRunbook({
        id: 'flaky',
        title: 'f',
        severity: 'P3',
        input: z.object({ k: z.string() }),
        async run({ step, input: i }) {
          await step.act('set', setValue(world, i.k, 'v', { failApply: () => errors.shift() }), {
            retry: { maxAttempts: 3, minDelay: 10, maxDelay: 50 },
          });
        },
      });
      const e = engine([rb], { random: () => 1 });
      const retries: number[] = [];
      e.onRetry((ev) => retries.push(ev.delayMs));
      const k = key('flaky');
      expect((await e.start('flaky', { k }, { mode: 'execute', actor: 'a' })).status).toBe('succeeded');
      expect(retries).toEqual([10, 30]);
      expect(world.applies).toEqual([k]);

      errors.push(new NonRetriableError('bad credentials'));
      const failed = await e.start('flaky', { k: key('flaky') }, { mode: 'execute', actor: 'a' });
      expect(failed.status).toBe('failed');
      expect(failed.error?.message).toContain('bad credentials');
      expect(retries).toHaveLength(2);
    });

    it('times out a hanging step and a hanging run', async () => {
      const hang = defineCheck({ kind: 'hang', run: () => new Promise<never>(() => {}) });
      const stepTimeout = defineRunbook({
        id: 'hang-step',
        title: 'h',
        severity: 'P3',
        input: z.object({}),
        async run({ step }) {
          await step.check('hang', hang, { timeout: 50 });
        },
      });
      const runTimeout = defineRunbook({
        id: 'hang-run',
        title: 'h',
        severity: 'P3',
        input: z.object({}),
        timeout: 100,
        async run({ step }) {
          await step.check('hang', hang);
        },
      });
      const e = engine([stepTimeout, runTimeout]);
      const a = await e.start('hang-step', {}, { actor: 'a' });
      expect(a).toMatchObject({ status: 'failed', error: { code: 'TIMEOUT' } });
      expect((await fx.sut.store.getSteps(a.runId))[0]).toMatchObject({ name: 'hang', status: 'failed' });
      const b = await e.start('hang-run', {}, { actor: 'a' });
      expect(b).toMatchObject({ status: 'failed', error: { code: 'TIMEOUT' } });
    });

    it('cancels a running run through the store and a queued one at once', async () => {
      let started!: () => void;
      const running = new Promise<void>((r) => {
        started = r;
      });
      const waitForever = defineCheck({
        kind: 'wait',
        run: (ctx) =>
          new Promise<never>((_, reject) => {
            started();
            ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
          }),
      });
      const rb = defineRunbook({
        id: 'wait',
        title: 'w',
        severity: 'P3',
        input: z.object({}),
        async run({ step }) {
          await step.check('wait', waitForever);
        },
      });
      const e = engine([rb]);
      const pending = e.start('wait', {}, { actor: 'a' });
      await running;
      const runId = (await fx.sut.store.listRuns({ runbookId: 'wait', status: 'running' }))[0]?.id as string;
      expect(await e.cancel(runId, { actor: 'ops', reason: 'wrong target' })).toBe('requested');
      const result = await pending;
      expect(result.status).toBe('cancelled');
      expect(result.error?.message).toContain('wrong target');

      const queued = await e.enqueue('wait', {}, { actor: 'a' });
      expect(await e.cancel(queued, { actor: 'ops' })).toBe('cancelled');
      expect((await e.getRun(queued)).run.status).toBe('cancelled');
      await expect(e.cancel(queued, { actor: 'ops' })).rejects.toMatchObject({ code: 'INVALID_STATE' });
    });
  });

  it('replays completed steps on resume instead of running them again', async () => {
    const world = new World();
    let checks = 0;
    const rb = defineRunbook({
      id: 'replay',
      title: 'r',
      severity: 'P2',
      input: z.object({ k: z.string() }),
      async run({ step, input: i }) {
        await step.check(
          'count',
          defineCheck({ kind: 'count', run: async () => finding('ok', `run ${++checks}`, { checks }) }),
        );
        await step.act('set', setValue(world, i.k, 'v', { destructive: true }));
      },
    });
    const e = engine([rb]);
    const first = await e.start('replay', { k: key('replay') }, { mode: 'execute', actor: 'a' });
    expect(first.status).toBe('waiting_approval');
    await e.approve(first.runId, { actor: 'b' });
    const replayed: string[] = [];
    e.onStepEnd((ev) => ev.replayed && replayed.push(ev.step));
    expect((await e.resume(first.runId)).status).toBe('succeeded');
    expect(checks).toBe(1);
    expect(replayed).toEqual(['count']);
  });

  it('after losing an apply mid-flight, re-plans and does not apply again', async () => {
    const world = new World();
    const k = key('lost');
    const rb = defineRunbook({
      id: 'lost',
      title: 'l',
      severity: 'P2',
      input: z.object({}),
      async run({ step }) {
        const action = setValue(world, k, 'v', { verify: (w) => (w.get(k) === 'v' ? 'ok' : 'fail') });
        const apply = action.apply.bind(action);
        action.apply = async (ctx, plan) => {
          const out = await apply(ctx, plan);
          // The process "stalls" right after applying: another process takes the run's lease.
          await fx.sut.store.driver.query(
            `UPDATE runs SET lease_owner = 'someone-else', lease_expires_at = now() - interval '1 minute' WHERE id = $1`,
            [ctx.runId],
          );
          return out;
        };
        await step.act('set', action);
      },
    });
    const e = engine([rb]);
    const first = await e.start('lost', {}, { mode: 'execute', actor: 'a' });
    expect(first.status).toBe('running'); // this process stopped; the run is not finished
    expect((await fx.sut.store.getSteps(first.runId)).find((s) => s.name === 'set')?.status).toBe('applying');

    const resumed = await engine([rb]).resume(first.runId);
    expect(resumed.status).toBe('succeeded');
    expect(world.applies).toEqual([k]);
    const step = (await fx.sut.store.getSteps(first.runId)).find((s) => s.name === 'set');
    expect(step?.result).toMatchObject({
      status: 'applied',
      applied: { recovered: true },
      verification: { status: 'ok' },
    });
  });

  it('keeps secrets out of the store and the audit log', async () => {
    const rb = defineRunbook({
      id: 'secretive',
      title: 's',
      severity: 'P3',
      input: z.object({ apiToken: z.string(), db: z.string() }),
      async run({ step, input: i }) {
        await step.check(
          'leaky',
          defineCheck({
            kind: 'leaky',
            run: async () =>
              finding('warn', `called with Bearer ${i.apiToken}`, { password: 'hunter22' }, [
                { kind: 'log', title: 'log', lines: [`connecting to ${i.db}`, 'vault says s3cr3t-value-42'] },
              ]),
          }),
        );
      },
    });
    const e = engine([rb], { secrets: ['s3cr3t-value-42'] });
    const result = await e.start(
      'secretive',
      { apiToken: 'tok_abcdefghijklmnop', db: 'postgres://app:pa55word@db:5432/x' },
      { actor: 'a' },
    );
    const { run, steps } = await e.getRun(result.runId);
    const audit = (await fx.sut.store.readAudit()).map((r) => r.entry).join('\n');
    const stored = JSON.stringify({ run, steps }) + audit;
    for (const secret of ['tok_abcdefghijklmnop', 'pa55word', 'hunter22', 's3cr3t-value-42']) {
      expect(stored).not.toContain(secret);
    }
    expect(stored).toContain('[REDACTED]');
  });
});
