import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { finding } from '../src/core/finding';
import { resourceRef } from '../src/core/resource';
import { defineRunbook } from '../src/core/runbook';
import { defineAction, defineCheck } from '../src/core/step';
import { engineFixture } from './support/engine-fixture';
import { setValue, World } from './support/runbooks';
import { DRIVERS } from './support/stores';

/** A promise with its resolve, to hold an apply open while a test acts. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => {
    open = r;
  });
  return { open, opened };
}

// The engine's safety rules under the failure modes a reviewer would try first.
describe.each(Object.entries(DRIVERS))('engine safety on %s', (_name, openStore) => {
  const fx = engineFixture(openStore);
  const { engine, key } = fx;

  /** A runbook whose single action is held open inside apply until `release` is called. */
  function heldApply(world: World, k: string, options: Parameters<typeof setValue>[3] = {}) {
    const entered = gate();
    const release = gate();
    const runbook = defineRunbook({
      id: `held-${k}`,
      title: 'held',
      severity: 'P3',
      input: z.object({}),
      async run({ step }) {
        const action = setValue(world, k, 'on', options);
        const apply = action.apply.bind(action);
        action.apply = async (ctx, plan) => {
          entered.open();
          await release.opened;
          return apply(ctx, plan);
        };
        await step.act('set', action);
        await step.check(
          'after',
          defineCheck({ kind: 'noop', run: async () => finding('ok', 'fine', null) }),
        );
      },
    });
    return { runbook, entered: entered.opened, release: release.open };
  }

  it('lets one claim execute a run: a second resume, even from an engine with the same identity, is refused', async () => {
    const world = new World();
    const k = key('twice');
    const held = heldApply(world, k);
    const a = engine([held.runbook], { owner: 'replica' });
    const b = engine([held.runbook], { owner: 'replica' });
    const first = a.start(held.runbook.id, {}, { mode: 'execute', actor: 'alice' });
    await held.entered;
    const runId = (await fx.sut.store.listRuns({ runbookId: held.runbook.id }))[0]?.id as string;
    await expect(a.resume(runId)).rejects.toMatchObject({ code: 'INVALID_STATE' });
    await expect(b.resume(runId)).rejects.toMatchObject({ code: 'INVALID_STATE' });
    held.release();
    expect((await first).status).toBe('succeeded');
    expect(world.applies).toEqual([k]);
  });

  it('does not let the expiry reaper take a lock a live run holds', async () => {
    const world = new World();
    const k = key('reaper');
    const block = defineRunbook({
      id: `block-${k}`,
      title: 'block',
      severity: 'P2',
      input: z.object({}),
      async run({ step }) {
        await step.act('block', setValue(world, k, 'blocked', { expiresAfter: '1h' }));
      },
    });
    const e = engine([block]);
    expect((await e.start(block.id, {}, { mode: 'execute', actor: 'sec' })).status).toBe('succeeded');
    world.values.delete(k); // someone unblocked by hand; a new run blocks again and is held mid-apply
    const held = heldApply(world, k);
    const e2 = engine([block, held.runbook]);
    const live = e2.start(held.runbook.id, {}, { mode: 'execute', actor: 'sec' });
    await held.entered;
    // The first block's hour is up (moved in the store, so that the live run's lease stays live).
    await fx.sut.store.driver.query(
      `UPDATE expiring_actions SET revert_at = now() - interval '1 minute' WHERE resource = $1`,
      [`test:${k}`],
    );
    expect(await e2.revertExpired()).toBe(0);
    expect(world.reverts).toEqual([]);
    expect((await fx.sut.store.getLock(`test:${k}`))?.runId).not.toBe(undefined);
    held.release();
    expect((await live).status).toBe('succeeded');
  });

  it('sees an apply through when the run is cancelled mid-apply, records it and schedules its expiry', async () => {
    const world = new World();
    const k = key('cancel');
    const held = heldApply(world, k, { expiresAfter: '1h' });
    const e = engine([held.runbook]);
    const pending = e.start(held.runbook.id, {}, { mode: 'execute', actor: 'alice' });
    await held.entered;
    const runId = (await fx.sut.store.listRuns({ runbookId: held.runbook.id }))[0]?.id as string;
    await e.cancel(runId, { actor: 'ops', reason: 'stop' });
    // The lock is still held while the apply is in flight.
    expect((await fx.sut.store.getLock(`test:${k}`))?.runId).toBe(runId);
    held.release();
    const result = await pending;
    expect(result.status).toBe('cancelled');
    expect(world.get(k)).toBe('on');
    const step = (await fx.sut.store.getSteps(runId)).find((s) => s.name === 'set');
    expect({ status: step?.status, error: step?.error }).toEqual({ status: 'succeeded', error: null });
    expect(step?.result).toMatchObject({ status: 'applied' });
    expect((await fx.sut.store.listExpiring()).some((x) => x.runId === runId && x.status === 'pending')).toBe(
      true,
    );
    expect(await fx.sut.store.getLock(`test:${k}`)).toBeUndefined();
  });

  it('recognises an interrupted restart (a plan that never converges) and does not restart twice', async () => {
    let restartedAt: string | null = null;
    let restarts = 0;
    const target = resourceRef('k8s', 'aiwebtest', 'deployment', key('agent'));
    const restart = defineAction({
      kind: 'test.rollout-restart',
      target,
      risk: 'low',
      destructive: false,
      async plan() {
        const at = new Date(Date.now() + restarts * 1000 + Math.random()).toISOString();
        return {
          summary: 'restart',
          changes: [{ target, field: 'restartedAt', before: restartedAt, after: at }],
          params: { at },
        };
      },
      async apply(ctx, plan) {
        restartedAt = plan.params.at;
        restarts++;
        // The process stalls right after the restart: another process takes the run over.
        await fx.sut.store.driver.query(
          `UPDATE runs SET lease_owner = 'gone', lease_expires_at = now() - interval '1 minute' WHERE id = $1`,
          [ctx.runId],
        );
        return null;
      },
    });
    const rb = defineRunbook({
      id: `restart-${fx.count}`,
      title: 'r',
      severity: 'P1',
      input: z.object({}),
      async run({ step }) {
        await step.act('restart', restart);
      },
    });
    const first = await engine([rb]).start(rb.id, {}, { mode: 'execute', actor: 'a' });
    expect(first.status).toBe('running');
    const resumed = await engine([rb]).resume(first.runId);
    expect(resumed.status).toBe('succeeded');
    expect(restarts).toBe(1);
    const step = (await fx.sut.store.getSteps(first.runId))[0];
    expect(step?.result).toMatchObject({ status: 'applied', applied: { recovered: true } });
  });

  it('gives the runbook what it stores, so a replay sees the same plan and an approval holds', async () => {
    const world = new World();
    const k = key('replay');
    const rb = defineRunbook({
      id: `replay-${k}`,
      title: 'r',
      severity: 'P2',
      input: z.object({}),
      async run({ step }) {
        const seen = await step.check(
          'conn',
          defineCheck({
            kind: 'conn',
            run: async () => finding('ok', 'found', { url: 'redis://default:hunter22@cache:6379' }),
          }),
        );
        await step.act(
          'point',
          setValue(world, k, (seen.data as { url: string }).url, { destructive: true }),
        );
      },
    });
    const e = engine([rb]);
    const requested: unknown[] = [];
    e.onApprovalRequested((ev) => requested.push(ev.plan.params));
    const run = await e.start(rb.id, {}, { mode: 'execute', actor: 'alice' });
    expect(run.status).toBe('waiting_approval');
    expect(JSON.stringify(requested)).not.toContain('hunter22');
    await e.approve(run.runId, { actor: 'bob' });
    expect((await e.resume(run.runId)).status).toBe('succeeded');
    expect(requested).toHaveLength(1); // the same plan on replay: no second request
    expect(world.get(k)).toBe('redis://default:[REDACTED]@cache:6379');
  });

  it('redacts the before and after of a change to a secret-named field', async () => {
    const k = key('secret-field');
    const target = resourceRef('vault', 'db', k);
    const rotate = defineAction({
      kind: 'test.rotate',
      target,
      risk: 'high',
      destructive: false,
      plan: async () => ({
        summary: 'rotate',
        changes: [{ target, field: 'DB_PASSWORD', before: 'old-pass-1', after: 'new-pass-2' }],
        params: null,
      }),
      apply: async () => null,
    });
    const rb = defineRunbook({
      id: `rotate-${k}`,
      title: 'r',
      severity: 'P2',
      input: z.object({}),
      async run({ step }) {
        await step.act('rotate', rotate);
      },
    });
    const result = await engine([rb]).start(rb.id, {}, { mode: 'execute', actor: 'alice' });
    const stored = JSON.stringify([
      result,
      await fx.sut.store.listApprovals(result.runId),
      await fx.sut.store.getSteps(result.runId),
    ]);
    expect(stored).not.toContain('old-pass-1');
    expect(stored).not.toContain('new-pass-2');
    // A changed secret reads differently before and after, so that after a crash a fresh plan's `before`
    // ("[REDACTED]") never matches the interrupted plan's `after` and the change is applied again.
    const steps = await fx.sut.store.getSteps(result.runId);
    const rotated = steps[0]?.result as { plan?: { changes?: unknown[] } } | undefined;
    expect(rotated?.plan?.changes).toEqual([
      { target, field: 'DB_PASSWORD', before: '[REDACTED]', after: '[REDACTED: new value]' },
    ]);
  });

  it('does not count time waiting for approval against the run timeout', async () => {
    const world = new World();
    const k = key('wait');
    const rb = defineRunbook({
      id: `timeout-${fx.count}`,
      title: 't',
      severity: 'P2',
      input: z.object({}),
      timeout: 300,
      async run({ step }) {
        await step.act('set', setValue(world, k, 'v', { destructive: true }));
      },
    });
    const e = engine([rb]);
    const run = await e.start(rb.id, {}, { mode: 'execute', actor: 'alice' });
    await new Promise((r) => setTimeout(r, 400));
    await e.approve(run.runId, { actor: 'bob' });
    expect((await e.resume(run.runId)).status).toBe('succeeded');
  });

  it('keeps a runbook that swallows a suspension from acting before approval', async () => {
    const world = new World();
    const k = key('swallow');
    const rb = defineRunbook({
      id: `swallow-${k}`,
      title: 's',
      severity: 'P2',
      input: z.object({}),
      async run({ step }) {
        try {
          await step.approve('dba-ok', { summary: 'drop the index?' });
        } catch {
          // a careless runbook
        }
        await step.act('set', setValue(world, k, 'v'));
      },
    });
    const result = await engine([rb]).start(rb.id, {}, { mode: 'execute', actor: 'alice' });
    expect(result.status).toBe('waiting_approval');
    expect(world.applies).toEqual([]);
  });

  it('charges a step once however many attempts it takes, and then escalates the next run', async () => {
    const world = new World();
    const k = key('charge');
    const failures = [new Error('503 from the API')];
    const rb = defineRunbook({
      id: `charge-${k}`,
      title: 'c',
      severity: 'P2',
      input: z.object({ v: z.string() }),
      async run({ step, input }) {
        await step.act(
          'set',
          setValue(world, k, input.v, { budget: { max: 1, per: '1h' }, failApply: () => failures.shift() }),
          {
            retry: { maxAttempts: 2, minDelay: 1 },
          },
        );
      },
    });
    const e = engine([rb]);
    const first = await e.start(rb.id, { v: 'a' }, { mode: 'execute', actor: 'x' });
    expect(first.status).toBe('succeeded');
    const second = await e.start(rb.id, { v: 'b' }, { mode: 'execute', actor: 'x' });
    expect(second).toMatchObject({ status: 'escalated', error: { code: 'BUDGET_EXHAUSTED' } });
    expect(world.get(k)).toBe('a');
  });

  it('hands an apply whose verification cannot tell to a human instead of calling it done', async () => {
    const world = new World();
    const k = key('unknown');
    const action = setValue(world, k, 'v');
    action.verify = async () => {
      throw new Error('metrics backend unreachable');
    };
    const rb = defineRunbook({
      id: `unknown-${k}`,
      title: 'u',
      severity: 'P2',
      input: z.object({}),
      async run({ step }) {
        await step.act('set', action, { onGiveUp: step.escalate('check it by hand') });
      },
    });
    const result = await engine([rb]).start(rb.id, {}, { mode: 'execute', actor: 'x' });
    expect(result).toMatchObject({ status: 'escalated', error: { code: 'VERIFICATION_FAILED' } });
    expect(world.reverts).toEqual([]); // not reverted: it may well have worked
    expect(world.get(k)).toBe('v');
  });

  it('names the action when plan() returns something that is not a plan', async () => {
    const target = resourceRef('test', key('bad'));
    const bad = defineAction({
      kind: 'test.sloppy',
      target,
      risk: 'low',
      destructive: false,
      plan: async () => ({ summary: 'oops' }) as never,
      apply: async () => null,
    });
    const rb = defineRunbook({
      id: `sloppy-${fx.count}`,
      title: 's',
      severity: 'P3',
      input: z.object({}),
      async run({ step }) {
        await step.act('bad', bad);
      },
    });
    const result = await engine([rb]).start(rb.id, {}, { mode: 'execute', actor: 'x' });
    expect(result.error).toMatchObject({
      code: 'INVALID_PLAN',
      message: expect.stringContaining('test.sloppy'),
    });
    expect((await fx.sut.store.getSteps(result.runId))[0]?.status).toBe('failed');
    expect(() => defineRunbook({ ...rb, id: 'bad-timeout', timeout: '30 min' as never })).toThrow(
      /Invalid duration/,
    );
  });

  it('asks again when the world changes while the operator is confirming', async () => {
    const world = new World();
    const k = key('confirm');
    const asked: unknown[] = [];
    const e = engine(
      [
        defineRunbook({
          id: `confirm-${k}`,
          title: 'c',
          severity: 'P3',
          input: z.object({}),
          async run({ step }) {
            await step.act('set', setValue(world, k, 'mine'));
          },
        }),
      ],
      {
        confirm: async (plan) => {
          asked.push(plan.changes[0]?.before);
          if (asked.length === 1) world.values.set(k, 'someone else'); // changed during the prompt
          return true;
        },
      },
    );
    expect((await e.start(`confirm-${k}`, {}, { mode: 'execute', actor: 'x' })).status).toBe('succeeded');
    expect(asked).toEqual([null, 'someone else']);
    expect(world.applies).toEqual([k]);
  });

  /** A restart-like action: its plan picks a new timestamp each time, so no two plans hash alike. */
  function timestamped(
    state: { at: string | null; applied: string[] },
    target: ReturnType<typeof resourceRef>,
    risk: 'low' | 'high',
  ) {
    return defineAction({
      kind: 'test.stamp',
      target,
      risk,
      destructive: false,
      async plan() {
        const at = `${Date.now()}-${Math.random()}`;
        return {
          summary: 'stamp',
          changes: [{ target, field: 'restartedAt', before: state.at, after: at }],
          params: { at },
        };
      },
      async apply(_ctx, plan) {
        state.at = plan.params.at;
        state.applied.push(plan.params.at);
        return null;
      },
    });
  }

  it('applies the approved plan when the world has not changed, though a fresh plan would pick a new timestamp', async () => {
    const state = { at: null as string | null, applied: [] as string[] };
    const target = resourceRef('k8s', 'aiwebtest', 'deployment', key('stamp'));
    const rb = defineRunbook({
      id: `stamp-${fx.count}`,
      title: 's',
      severity: 'P1',
      input: z.object({}),
      async run({ step }) {
        await step.act('restart', timestamped(state, target, 'high'));
      },
    });
    const e = engine([rb]);
    const requests: string[] = [];
    e.onApprovalRequested((ev) => requests.push(String((ev.plan.params as { at: string }).at)));
    const run = await e.start(rb.id, {}, { mode: 'execute', actor: 'alice' });
    expect(run.status).toBe('waiting_approval');
    // Resuming before anyone approved keeps waiting on the same request.
    expect((await e.resume(run.runId)).status).toBe('waiting_approval');
    await e.approve(run.runId, { actor: 'bob' });
    expect((await e.resume(run.runId)).status).toBe('succeeded');
    expect(requests).toHaveLength(1);
    expect(state.applied).toEqual(requests); // exactly the timestamp bob approved
  });

  it('confirms a timestamped plan once and applies what the operator confirmed', async () => {
    const state = { at: null as string | null, applied: [] as string[] };
    const target = resourceRef('k8s', 'aiwebtest', 'deployment', key('confirm-stamp'));
    const confirmed: string[] = [];
    const e = engine(
      [
        defineRunbook({
          id: `confirm-stamp-${fx.count}`,
          title: 'c',
          severity: 'P3',
          input: z.object({}),
          async run({ step }) {
            await step.act('restart', timestamped(state, target, 'low'));
          },
        }),
      ],
      {
        confirm: async (plan) => {
          confirmed.push(String((plan.params as { at: string }).at));
          return true;
        },
      },
    );
    expect((await e.start(`confirm-stamp-${fx.count}`, {}, { mode: 'execute', actor: 'x' })).status).toBe(
      'succeeded',
    );
    expect(confirmed).toHaveLength(1);
    expect(state.applied).toEqual(confirmed);
  });

  it('ends a run cancelled, not escalated, when the operator declines the plan', async () => {
    const world = new World();
    const k = key('decline');
    const rb = defineRunbook({
      id: `decline-${k}`,
      title: 'd',
      severity: 'P2',
      input: z.object({}),
      async run({ step }) {
        await step.act('set', setValue(world, k, 'v'), { onGiveUp: step.escalate('page on-call') });
      },
    });
    const pages: string[] = [];
    const result = await engine([rb], {
      confirm: async () => false,
      notifier: { notify: async (n) => void pages.push(n.message) },
    }).start(rb.id, {}, { mode: 'execute', actor: 'x' });
    expect(result).toMatchObject({ status: 'cancelled', error: { code: 'CANCELLED' } });
    expect(pages).toEqual([]);
    expect(world.applies).toEqual([]);
  });

  it('cancels a run whose process died at once, instead of requesting it of nobody', async () => {
    const rb = defineRunbook({
      id: `dead-${fx.count}`,
      title: 'd',
      severity: 'P3',
      input: z.object({}),
      async run() {},
    });
    const e = engine([rb]);
    const runId = await e.enqueue(rb.id, {}, { actor: 'x' });
    await fx.sut.store.driver.query(
      `UPDATE runs SET status = 'running', lease_owner = 'gone', lease_expires_at = now() - interval '1 minute' WHERE id = $1`,
      [runId],
    );
    expect(await e.cancel(runId, { actor: 'ops' })).toBe('cancelled');
    expect((await e.getRun(runId)).run.status).toBe('cancelled');
  });

  it('refuses an input field the runbook does not take', async () => {
    const rb = defineRunbook({
      id: `strict-${fx.count}`,
      title: 's',
      severity: 'P3',
      input: z.object({ namespace: z.string().default('aiwebtest') }),
      async run() {},
    });
    await expect(engine([rb]).start(rb.id, { namspace: 'staging' }, { actor: 'x' })).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      issues: [{ path: 'namspace', message: 'unknown field; this runbook takes: namespace' }],
    });
  });

  it('compares identities without case for four eyes', async () => {
    const world = new World();
    const rb = defineRunbook({
      id: `eyes-${fx.count}`,
      title: 'e',
      severity: 'P2',
      input: z.object({}),
      async run({ step }) {
        await step.act('set', setValue(world, key('eyes'), 'v', { destructive: true }));
      },
    });
    const e = engine([rb]);
    const run = await e.start(rb.id, {}, { mode: 'execute', actor: 'alice' });
    await expect(e.approve(run.runId, { actor: ' Alice ' })).rejects.toMatchObject({ code: 'FOUR_EYES' });
  });
});
