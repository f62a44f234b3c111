import { describe, expect, it } from 'vitest';
import {
  IdempotencyKeyReusedError,
  InvalidStateError,
  isIdempotencyKeyReusedError,
} from '../src/core/errors';
import { engineFixture } from './support/engine-fixture';
import { fixRunbook, World } from './support/runbooks';
import { DRIVERS } from './support/stores';

describe.each(Object.entries(DRIVERS))('engine idempotency and context on %s', (_name, open) => {
  const fx = engineFixture(open);
  const { engine, key } = fx;

  it('starts one run per actor and key, and answers a retry with the first run', async () => {
    const world = new World();
    const e = engine([fixRunbook(world, 'fix')]);
    const k = key('idem');
    const input = { key: k, value: 'on' };
    const context = { dashboard: 'agents', timeRange: { from: 'now-1h', to: 'now' } };

    const first = await e.start('fix', input, {
      mode: 'execute',
      actor: 'alice',
      idempotencyKey: k,
      context,
    });
    expect(first).toMatchObject({ status: 'succeeded' });
    expect(first.replayed).toBeUndefined();
    const again = await e.start('fix', input, {
      mode: 'execute',
      actor: 'alice',
      idempotencyKey: k,
      context,
    });
    expect(again).toMatchObject({ runId: first.runId, status: 'succeeded', replayed: true });
    // Applied once: the retry executed nothing.
    expect(world.applies).toHaveLength(1);

    const queued = await e.submit('fix', input, { mode: 'execute', actor: 'alice', idempotencyKey: k });
    expect(queued).toEqual({ runId: first.runId, created: false });

    const detail = await e.getRun(first.runId);
    expect(detail.run).toMatchObject({ context, idempotencyKey: k });
    const created = (await e.store.readRunAudit(first.runId)).map((r) => JSON.parse(r.entry));
    expect(created.filter((a) => a.kind === 'run.created')).toHaveLength(1);
    expect(created[0].data.context).toEqual(context);
  });

  it('refuses a key reused for another request, and keys are per actor', async () => {
    const world = new World();
    const e = engine([fixRunbook(world, 'fix')]);
    const k = key('reuse');
    const first = await e.submit(
      'fix',
      { key: k, value: 'on' },
      { mode: 'plan', actor: 'alice', idempotencyKey: k },
    );
    const runsBefore = (await e.store.listRuns({ limit: 1000 })).length;
    const otherInput = await e
      .submit('fix', { key: k, value: 'off' }, { mode: 'plan', actor: 'alice', idempotencyKey: k })
      .catch((err: unknown) => err);
    expect(otherInput).toBeInstanceOf(IdempotencyKeyReusedError);
    expect(otherInput).toBeInstanceOf(InvalidStateError); // still a refusal of the request's state (409)
    expect(isIdempotencyKeyReusedError(otherInput)).toBe(true);
    expect(otherInput).toMatchObject({ code: 'INVALID_STATE', runId: first.runId, idempotencyKey: k });
    expect((otherInput as Error).message).toMatch(/already used by alice .* with other parameters/);
    const otherMode = await e
      .start('fix', { key: k, value: 'on' }, { mode: 'execute', actor: 'alice', idempotencyKey: k })
      .catch((err: unknown) => err);
    expect(isIdempotencyKeyReusedError(otherMode)).toBe(true);
    expect(otherMode).toMatchObject({ runId: first.runId });
    expect((await e.store.listRuns({ limit: 1000 })).length).toBe(runsBefore);
    // Other invalid-state refusals are not mistaken for it.
    expect(isIdempotencyKeyReusedError(new InvalidStateError('Idempotency key in the message only'))).toBe(
      false,
    );
    const bob = await e.submit(
      'fix',
      { key: k, value: 'off' },
      { mode: 'plan', actor: 'bob', idempotencyKey: k },
    );
    expect(bob.created).toBe(true);
    await expect(
      e.submit('fix', { key: k, value: 'on' }, { mode: 'plan', actor: 'bob', idempotencyKey: '' }),
    ).rejects.toThrow(/idempotencyKey/);
  });

  it('asks a second person for every plan of a run started with approval "always", whatever its risk', async () => {
    const world = new World();
    const e = engine([fixRunbook(world, 'fix')]); // low risk: the policy alone would apply it at once
    const k = key('ask');
    const asked = await e.start(
      'fix',
      { key: k, value: 'on' },
      { mode: 'execute', actor: 'alertmanager', approval: 'always' },
    );
    expect(asked.status).toBe('waiting_approval');
    expect(world.applies).toEqual([]);
    expect((await e.getRun(asked.runId)).run.approval).toBe('always');
    await e.approve(asked.runId, { actor: 'ada' });
    expect((await e.resume(asked.runId)).status).toBe('succeeded');
    expect(world.applies).toHaveLength(1);

    const policy = await e.start(
      'fix',
      { key: `${k}-2`, value: 'on' },
      { mode: 'execute', actor: 'alertmanager' },
    );
    expect(policy.status).toBe('succeeded');
  });

  it('redacts secrets in the context like the input', async () => {
    const world = new World();
    const e = engine([fixRunbook(world, 'fix')], { secrets: ['hunter2-secret'] });
    const k = key('ctx');
    const r = await e.start(
      'fix',
      { key: k, value: 'on' },
      {
        mode: 'diagnose',
        actor: 'alice',
        context: { panel: 'login hunter2-secret' },
      },
    );
    const stored = JSON.stringify((await e.getRun(r.runId)).run.context);
    expect(stored).not.toContain('hunter2-secret');
  });
});
