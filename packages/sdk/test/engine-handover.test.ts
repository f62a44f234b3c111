import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { finding } from '../src/core/finding';
import type { Change } from '../src/core/plan';
import { resourceRef } from '../src/core/resource';
import { defineRunbook } from '../src/core/runbook';
import { defineAction, defineCheck } from '../src/core/step';
import { engineFixture } from './support/engine-fixture';
import { World } from './support/runbooks';
import { DRIVERS } from './support/stores';

/** A promise with its resolver, and a flag saying whether it was resolved. */
function latch() {
  let open = () => {};
  const opened = new Promise<void>((r) => {
    open = r;
  });
  return { open: () => open(), opened };
}

/**
 * `inspect` (a check that waits for `checkGate` the first time it runs, then answers at once) and `fix`
 * (sets `key` in the world; its apply waits for `applyGate` the first time). Counts check runs; the world
 * counts applies.
 */
function slowRunbook(world: World, id: string) {
  const check = { runs: 0, entered: latch(), gate: latch() };
  const apply = { entered: latch(), gate: latch(), signalAbortedAtEnd: [] as boolean[] };
  const runbook = defineRunbook({
    id,
    title: `Slow ${id}`,
    severity: 'P3',
    input: z.object({ key: z.string(), value: z.string(), blockApply: z.boolean() }),
    async run({ input, step }) {
      await step.check(
        'inspect',
        defineCheck({
          kind: 'test.slow',
          async run(ctx) {
            check.runs++;
            if (check.runs === 1 && !input.blockApply) {
              check.entered.open();
              // A well-behaved check: it stops when its signal aborts.
              await Promise.race([
                check.gate.opened,
                new Promise((_, reject) =>
                  ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)),
                ),
              ]);
            }
            return finding('fail', `${input.key} needs fixing`, null);
          },
        }),
      );
      const target = resourceRef('test', input.key);
      const result = await step.act(
        'fix',
        defineAction({
          kind: 'test.set',
          target,
          risk: 'low',
          destructive: false,
          async plan() {
            const before = world.get(input.key);
            const changes: Change[] =
              before === input.value ? [] : [{ target, field: 'value', before, after: input.value }];
            return { summary: `set ${input.key}`, changes, params: {} };
          },
          async apply(ctx) {
            if (input.blockApply && world.applies.length === 0) {
              apply.entered.open();
              await apply.gate.opened;
            }
            world.values.set(input.key, input.value);
            world.applies.push(input.key);
            apply.signalAbortedAtEnd.push(ctx.signal.aborted);
            return {};
          },
          async verify() {
            return finding(world.get(input.key) === input.value ? 'ok' : 'fail', 'checked', null);
          },
        }),
      );
      return step.done(`fix ${result.status}`);
    },
  });
  return { runbook, check, apply };
}

describe.each(Object.entries(DRIVERS))('hand-over on %s', (_name, open) => {
  const fx = engineFixture(open);

  it('stops a run mid-check without cancelling it; another engine claims it at once and finishes it', async () => {
    const world = new World();
    const slow = slowRunbook(world, fx.key('slow'));
    // Long leases: the second engine can only get the run this fast if it was released.
    const a = fx.engine([slow.runbook], { leaseTtl: '5m', owner: 'engine-a' });
    const b = fx.engine([slow.runbook], { leaseTtl: '5m', owner: 'engine-b' });
    const runId = await a.enqueue(
      slow.runbook.id,
      { key: 'k1', value: 'v', blockApply: false },
      { actor: 'ops', mode: 'execute' },
    );
    const executing = a.runNext();
    await slow.check.entered.opened;

    expect(await a.handOver('test shutdown')).toBe(1);
    const result = await executing;
    expect(result).toMatchObject({ runId, status: 'queued', handedOver: true, error: null });
    const released = await fx.sut.store.getRun(runId);
    expect(released).toMatchObject({
      status: 'queued',
      leaseOwner: null,
      endedAt: null,
      cancelRequested: null,
    });
    expect((await fx.sut.store.getSteps(runId)).map((s) => s.name)).toEqual([]);

    const handedAt = Date.now();
    const finished = await b.runNext();
    expect(finished).toMatchObject({ runId, status: 'succeeded' });
    expect(Date.now() - handedAt).toBeLessThan(5_000); // not the 5-minute lease
    expect(slow.check.runs).toBe(2); // the interrupted check simply ran again
    expect(world.applies).toEqual(['k1']);
    const run = await fx.sut.store.getRun(runId);
    expect(run).toMatchObject({ status: 'succeeded', attempts: 2 });

    const audit = (await fx.sut.store.readRunAudit(runId)).map((r) => JSON.parse(r.entry));
    const handOver = audit.find((e) => e.kind === 'run.handed-over');
    expect(handOver?.data).toMatchObject({ reason: 'test shutdown' });
    expect(handOver?.data.from).toMatch(/^engine-a\//);
    expect(audit.map((e) => e.kind)).not.toContain('run.cancelled');
    expect(audit.at(-1)?.kind).toBe('run.succeeded');
    expect((await a.verifyAudit()).ok).toBe(true);
  });

  it('sees an apply in flight through, leaves it `applying`, and the next engine does not apply it again', async () => {
    const world = new World();
    const slow = slowRunbook(world, fx.key('slow-apply'));
    const a = fx.engine([slow.runbook], { leaseTtl: '5m', owner: 'engine-a' });
    const b = fx.engine([slow.runbook], { leaseTtl: '5m', owner: 'engine-b' });
    const runId = await a.enqueue(
      slow.runbook.id,
      { key: 'k2', value: 'v', blockApply: true },
      { actor: 'ops', mode: 'execute' },
    );
    const executing = a.runNext();
    await slow.apply.entered.opened;

    let handOverDone = false;
    const handOver = a.handOver('test shutdown').then((n) => {
      handOverDone = true;
      return n;
    });
    await new Promise((r) => setTimeout(r, 200));
    // The change is in flight: the run is not released under it.
    expect(handOverDone).toBe(false);
    expect((await fx.sut.store.getRun(runId))?.status).toBe('running');
    slow.apply.gate.open();
    expect(await handOver).toBe(1);
    expect(await executing).toMatchObject({ status: 'queued', handedOver: true });
    // The hand-over did not interrupt the apply itself.
    expect(slow.apply.signalAbortedAtEnd).toEqual([false]);
    expect(world.applies).toEqual(['k2']);
    const fix = (await fx.sut.store.getSteps(runId)).find((s) => s.name === 'fix');
    expect(fix?.status).toBe('applying');

    const finished = await b.runNext();
    expect(finished).toMatchObject({ runId, status: 'succeeded', outcome: { summary: 'fix applied' } });
    expect(world.applies).toEqual(['k2']); // applied once, in all
    const steps = await fx.sut.store.getSteps(runId);
    expect(steps.map((s) => [s.name, s.status])).toEqual([
      ['inspect', 'succeeded'],
      ['fix', 'succeeded'],
    ]);
    expect(steps[1]?.result).toMatchObject({ status: 'applied', applied: { recovered: true } });
    const kinds = (await fx.sut.store.readRunAudit(runId)).map((r) => JSON.parse(r.entry).kind);
    expect(kinds).toContain('run.handed-over');
    expect(kinds).toContain('action.recovered');
    expect(kinds).not.toContain('action.applied');
    // The lock taken for the apply is not left behind.
    expect((await fx.sut.store.listLocks()).filter((l) => l.runId === runId)).toEqual([]);
  });

  it('hands over nothing when nothing is executing, and a cancel after a hand-over still cancels', async () => {
    const world = new World();
    const slow = slowRunbook(world, fx.key('slow-cancel'));
    const a = fx.engine([slow.runbook], { leaseTtl: '5m' });
    expect(await a.handOver('idle')).toBe(0);

    const runId = await a.enqueue(
      slow.runbook.id,
      { key: 'k3', value: 'v', blockApply: false },
      { actor: 'ops', mode: 'execute' },
    );
    const executing = a.runNext();
    await slow.check.entered.opened;
    expect(await a.handOver('test shutdown')).toBe(1);
    await executing;
    expect(await a.cancel(runId, { actor: 'ops', reason: 'not needed' })).toBe('cancelled');
    expect(await a.runNext()).toBeUndefined();
    expect((await fx.sut.store.getRun(runId))?.status).toBe('cancelled');
    expect(world.applies).toEqual([]);
  });

  it('a cancel while a handed-over apply is still in flight aborts the apply signal; the run is released (queued, cancel pending), ends `cancelled` on the next engine, `fix` stays `applying`', async () => {
    const world = new World();
    const slow = slowRunbook(world, fx.key('slow-apply-cancel'));
    const a = fx.engine([slow.runbook], { leaseTtl: '5m', owner: 'engine-a' });
    const b = fx.engine([slow.runbook], { leaseTtl: '5m', owner: 'engine-b' });
    const runId = await a.enqueue(
      slow.runbook.id,
      { key: 'k4', value: 'v', blockApply: true },
      { actor: 'ops', mode: 'execute' },
    );
    const executing = a.runNext();
    await slow.apply.entered.opened;
    const handOver = a.handOver('test shutdown');
    // The run is still `running` (the apply is seen through), so the cancel is a request the executor hears.
    expect(await a.cancel(runId, { actor: 'ops', reason: 'stop it' })).toBe('requested');
    slow.apply.gate.open();
    expect(await handOver).toBe(1);
    // The hand-over stopped the run first, so it is released (not ended) by this engine...
    expect(await executing).toMatchObject({ runId, status: 'queued', handedOver: true });
    // ...but the cancel reached the apply in flight, which the hand-over alone leaves alone.
    expect(slow.apply.signalAbortedAtEnd).toEqual([true]);
    expect(world.applies).toEqual(['k4']);
    const released = await fx.sut.store.getRun(runId);
    expect(released?.status).toBe('queued');
    expect(released?.cancelRequested).toMatch(/stop it/);
    const fix = (await fx.sut.store.getSteps(runId)).find((s) => s.name === 'fix');
    expect(fix?.status).toBe('applying');

    // The next engine honours the pending cancel before anything runs: nothing is applied again.
    const finished = await b.runNext();
    expect(finished).toMatchObject({ runId, status: 'cancelled' });
    expect(world.applies).toEqual(['k4']);
    const run = await fx.sut.store.getRun(runId);
    expect(run?.status).toBe('cancelled');
    // The next engine stops before replaying `fix`: its record stays `applying` (the change was made, as the
    // world shows), and the lock of the apply is not left behind.
    const steps = await fx.sut.store.getSteps(runId);
    expect(steps.map((s) => [s.name, s.status])).toEqual([
      ['inspect', 'succeeded'],
      ['fix', 'applying'],
    ]);
    expect((await fx.sut.store.listLocks()).filter((l) => l.runId === runId)).toEqual([]);
    const kinds = (await fx.sut.store.readRunAudit(runId)).map((r) => JSON.parse(r.entry).kind);
    expect(kinds).toEqual([
      'run.created',
      'step.check',
      'action.applying',
      'run.cancel',
      'run.handed-over',
      'run.cancelled',
    ]);
    expect((await a.verifyAudit()).ok).toBe(true);
  });

  it('reports a hand-over whose release fails through onLog (run id and error), leaving the run to its lease', async () => {
    const world = new World();
    const slow = slowRunbook(world, fx.key('slow-release-fails'));
    const a = fx.engine([slow.runbook], { leaseTtl: '5m', owner: 'engine-a' });
    const logs: { runId: string; message: string; data?: Record<string, unknown> }[] = [];
    a.onLog((e) => logs.push(e));
    const runId = await a.enqueue(
      slow.runbook.id,
      { key: 'k5', value: 'v', blockApply: false },
      { actor: 'ops', mode: 'execute' },
    );
    const executing = a.runNext();
    await slow.check.entered.opened;
    // A real database failure of the release statement, for this run only.
    const driver = fx.sut.store.driver;
    const trigger = `refuse_release_${fx.count}`;
    await driver.query(
      `CREATE FUNCTION ${trigger}() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'release refused by the test'; END $$`,
    );
    await driver.query(
      `CREATE TRIGGER ${trigger} BEFORE UPDATE ON runs FOR EACH ROW
         WHEN (OLD.id = '${runId}' AND NEW.status = 'queued') EXECUTE FUNCTION ${trigger}()`,
    );
    try {
      expect(await a.handOver('test shutdown')).toBe(0);
      const result = await executing;
      expect(result).toMatchObject({ runId, status: 'running' });
      expect(result?.error?.message).toContain('release refused by the test');
    } finally {
      await driver.query(`DROP TRIGGER ${trigger} ON runs`);
      await driver.query(`DROP FUNCTION ${trigger}()`);
    }
    const report = logs.find((l) => l.message.includes('hand-over failed'));
    expect(report).toMatchObject({
      runId,
      data: { runId, error: expect.stringContaining('release refused') },
    });
    expect(report?.message).toContain(runId);
    expect(report?.message).toContain('no run.handed-over audit entry was written');
    const run = await fx.sut.store.getRun(runId);
    expect(run).toMatchObject({ status: 'running', endedAt: null });
    expect(run?.leaseOwner).toMatch(/^engine-a\//);
    const kinds = (await fx.sut.store.readRunAudit(runId)).map((r) => JSON.parse(r.entry).kind);
    expect(kinds).not.toContain('run.handed-over');
  });
});
