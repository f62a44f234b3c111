import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInputValidationError, isRunbookError } from '../../src/core/errors';
import { type Plan, sealPlan } from '../../src/core/plan';
import type { Action, Applied, StepContext } from '../../src/core/step';
import { createRateLimiter, type RateLimiter } from '../../src/resilience/rate-limiter';
import {
  disableStrictMode,
  type EnableStrictModeOptionsInput,
  enableStrictMode,
  readStrictMode,
} from '../../src/resilience/strict-mode';
import { uniquePrefix } from '../support/redis-server';
import { connect, deleteKeys } from './support/limiter-redis';

// Strict mode in one process against a real Redis: the actions' plan / apply / verify / revert (driven here
// by hand, as the engine drives them), the guards against overwriting someone else's change, expiry, and
// limiters honouring the switch. The multi-process proof is in strict-mode-processes.test.ts; the engine
// runs the actions in rate-limiter-docs.test.ts.

let redis: Redis;
const prefix = uniquePrefix('strict');
let services = 0;
const limiters: RateLimiter[] = [];

beforeAll(() => {
  redis = connect();
});
afterAll(async () => {
  for (const l of limiters) l.close();
  await deleteKeys(redis, prefix);
  redis.disconnect();
});

const logs: string[] = [];
function context(step: string, runId = 'run-1'): StepContext {
  return {
    runId,
    runbookId: 'security-breach',
    step,
    mode: 'execute',
    attempt: 1,
    actor: 'alice',
    signal: new AbortController().signal,
    log: (message) => logs.push(message),
  };
}

/** Plans, seals and applies as the engine does; returns what verify and revert get. */
async function applyAction<P, A>(action: Action<P, A>, ctx: StepContext): Promise<Applied<P, A>> {
  const plan = sealPlan(action, await action.plan(ctx)) as Plan<P>;
  const data = await action.apply(ctx, plan);
  return { plan, data, appliedAt: new Date().toISOString(), recovered: false };
}

function newService(): string {
  return `svc${++services}`;
}

function limiter(service: string, limit = 100): RateLimiter {
  const l = createRateLimiter(redis, {
    prefix,
    service,
    name: 'api',
    limit,
    period: '1m',
    strictMode: { pollInterval: '20ms' },
  });
  limiters.push(l);
  return l;
}

const enable = (service: string, options: Omit<EnableStrictModeOptionsInput, 'prefix' | 'service'>) =>
  enableStrictMode(redis, { prefix, service, ...options });
const stateKey = (service: string) => `${prefix}:strict-mode:${service}`;
/** The shared Redis server, as resource references name it. */
const server = () => `redis://${redis.options.host}:${redis.options.port}/${redis.options.db ?? 0}`;
const code = (e: unknown) => (isRunbookError(e) ? e.code : e);

describe('enableStrictMode', () => {
  it('plans each limit before → after, applies, verifies, and every limiter of the service honours it', async () => {
    const service = newService();
    const api = limiter(service);
    const other = limiter(newService());
    await api.ready();
    const action = enable(service, {
      limit: 10,
      reason: 'credential stuffing from many IPs',
      limiters: [api],
    });
    expect(action).toMatchObject({
      kind: 'resilience.enable-strict-mode',
      risk: 'medium',
      destructive: false,
    });
    // The reference names the Redis server, so that two servers' strict modes never share a lock or budget.
    expect(action.target).toBe(`${server()}/strict-mode/${encodeURIComponent(prefix)}/${service}`);

    const ctx = context('strict-mode');
    const draft = await action.plan(ctx);
    expect(draft.changes).toEqual([
      {
        target: action.target,
        field: 'strictMode',
        before: null,
        after: {
          id: 'run-1/strict-mode',
          limit: 10,
          factor: null,
          expiresAfter: null,
          reason: 'credential stuffing from many IPs',
        },
      },
      {
        target: `${server()}/rate-limiter/${encodeURIComponent(prefix)}/api`,
        field: 'limit',
        before: { limit: 100, period: '1m', burst: 100 },
        after: { limit: 10, period: '1m', burst: 10 },
      },
    ]);

    const applied = await applyAction(action, ctx);
    const verdict = await action.verify?.(ctx, applied as Applied<never, never>);
    expect(verdict).toMatchObject({
      status: 'ok',
      summary: expect.stringMatching(/is on \(limits capped at 10\)/),
    });
    expect(verdict?.evidence[0]).toMatchObject({ kind: 'table', rows: [['api', '100/1m', '10/1m']] });

    await expect.poll(() => api.limitsFor('k').limit).toBe(10);
    const decisions = await Promise.all(Array.from({ length: 12 }, () => api.take('k')));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(10);
    expect(decisions[0]?.limit).toBe(10);
    // Another service is not affected.
    expect(other.limitsFor('k').limit).toBe(100);

    // Re-planned by the same step (a run resumed after a crash) it is done; another step would write its own
    // state (the limits it leaves are the same, so only that change is listed).
    expect((await action.plan(ctx)).changes).toEqual([]);
    expect((await action.plan(context('again'))).changes.map((c) => c.field)).toEqual(['strictMode']);

    await action.revert?.(ctx, applied as Applied<never, never>);
    expect(await redis.exists(stateKey(service))).toBe(0);
    await expect.poll(() => api.limitsFor('k').limit).toBe(100);
  });

  it('scales by a factor, ends by itself after expiresAfter (Redis TTL), and then a revert has nothing to do', async () => {
    const service = newService();
    const api = limiter(service, 50);
    const action = enable(service, { factor: 0.1, expiresAfter: '1s' });
    const ctx = context('strict-mode');
    const applied = await applyAction(action, ctx);
    const state = await readStrictMode(redis, { prefix, service });
    expect(state).toMatchObject({ factor: 0.1, limit: null, expiresAfter: 1000, id: 'run-1/strict-mode' });
    expect((state?.expiresAt ?? 0) - (state?.enabledAt ?? 0)).toBe(1000);
    const ttl = await redis.pttl(stateKey(service));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1000);
    await expect.poll(() => api.limitsFor('k')).toEqual({ limit: 5, periodMs: 60_000, burst: 5 });

    await expect.poll(() => api.strictMode, { timeout: 3_000 }).toBe(null);
    expect(api.limitsFor('k').limit).toBe(50);
    logs.length = 0;
    await action.revert?.(ctx, applied as Applied<never, never>);
    expect(logs).toEqual([`strict mode of service ${service} had already ended; nothing to revert`]);
    expect(await redis.exists(stateKey(service))).toBe(0);
  });

  it('on revert, gives a replaced state back with what was left of its lifetime', async () => {
    const service = newService();
    // An operator's own strict mode, set with redis-cli, for a minute.
    await redis.set(stateKey(service), '{"factor":0.5}', 'PX', 60_000);
    const api = limiter(service);
    await expect.poll(() => api.limitsFor('k').limit).toBe(50);

    const action = enable(service, { limit: 10, limiters: [api] });
    const ctx = context('tighter');
    const draft = await action.plan(ctx);
    expect(draft.changes[0]?.before).toEqual({
      id: 'manual',
      limit: null,
      factor: 0.5,
      expiresAfter: null,
      reason: null,
    });
    expect(draft.changes[1]).toMatchObject({ before: { limit: 50 }, after: { limit: 10 } });
    const applied = await applyAction(action, ctx);
    await expect.poll(() => api.limitsFor('k').limit).toBe(10);

    await action.revert?.(ctx, applied as Applied<never, never>);
    expect(await redis.get(stateKey(service))).toBe('{"factor":0.5}');
    const ttl = await redis.pttl(stateKey(service));
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    await expect.poll(() => api.limitsFor('k').limit).toBe(50);
  });

  it('refuses to revert over a state someone set since, and to apply over one set since the plan', async () => {
    const service = newService();
    const action = enable(service, { limit: 10 });
    const ctx = context('strict-mode');
    const applied = await applyAction(action, ctx);
    await redis.set(stateKey(service), '{"limit":3,"id":"bob"}');
    const error = await action.revert?.(ctx, applied as Applied<never, never>).catch((e: unknown) => e);
    expect(isRunbookError(error) && error.code).toBe('STRICT_MODE_CHANGED');
    expect(isRunbookError(error) && error.retriable).toBe(false);
    expect((error as Error).message).toMatch(/now set by bob: limits capped at 3\). Refusing to restore/);
    expect(await redis.get(stateKey(service))).toBe('{"limit":3,"id":"bob"}');

    const late = enable(service, { limit: 20 });
    const plan = sealPlan(late, await late.plan(context('late')));
    await redis.set(stateKey(service), '{"limit":4,"id":"carol"}');
    await expect(late.apply(context('late'), plan)).rejects.toThrow(
      /changed since the plan \(now set by carol\)/,
    );
    expect(await redis.get(stateKey(service))).toBe('{"limit":4,"id":"carol"}');
  });

  it('names each bad option', () => {
    const message = (options: unknown) => {
      try {
        enableStrictMode(redis, options as EnableStrictModeOptionsInput);
      } catch (e) {
        expect(isInputValidationError(e)).toBe(true);
        return (e as Error).message;
      }
      throw new Error('expected the options to be rejected');
    };
    expect(message({})).toMatch(/limit: give a limit, a factor, or both/);
    expect(message({ factor: 2 })).toMatch(/factor:/);
    expect(message({ limit: 0 })).toMatch(/limit:/);
    expect(message({ limit: 10, service: 'back end' })).toMatch(/service:/);
    expect(message({ limit: 10, expiresAfter: 'an hour' })).toMatch(/expiresAfter:/);
    // Bounded: at least a second, at most a week (a lifetime Redis and the stored JSON keep exactly).
    expect(message({ limit: 10, expiresAfter: '500ms' })).toMatch(/expiresAfter: expected between 1s and 7d/);
    expect(message({ limit: 10, expiresAfter: '8d' })).toMatch(/expiresAfter: expected between 1s and 7d/);
    expect(message({ limit: 10, expiresAfter: Number.MAX_SAFE_INTEGER })).toMatch(/expiresAfter:/);
    expect(message({ limit: 10, limiters: [{ name: 'api', limit: 10, periodMs: 60_000 }] })).toMatch(
      /limiters\[0\]\.period:/,
    );
    expect(message({ limit: 10, limiters: [{ name: 'api' }] })).toMatch(/limiters\[0\]\.limit:/);
  });
});

describe('disableStrictMode', () => {
  it('plans, deletes only what it planned, verifies, and its revert turns the same state back on', async () => {
    const service = newService();
    const api = limiter(service);
    const enabled = await applyAction(enable(service, { limit: 10, expiresAfter: '1h' }), context('enable'));
    const written = (enabled.data as { written: string }).written;
    await expect.poll(() => api.limitsFor('k').limit).toBe(10);

    const action = disableStrictMode(redis, { prefix, service, limiters: [api] });
    const ctx = context('disable', 'run-2');
    const draft = await action.plan(ctx);
    expect(draft.changes).toEqual([
      {
        target: action.target,
        field: 'strictMode',
        before: { id: 'run-1/enable', limit: 10, factor: null, expiresAfter: 3_600_000, reason: null },
        after: null,
      },
      {
        target: `${server()}/rate-limiter/${encodeURIComponent(prefix)}/api`,
        field: 'limit',
        before: { limit: 10, period: '1m', burst: 10 },
        after: { limit: 100, period: '1m', burst: 100 },
      },
    ]);
    const applied = await applyAction(action, ctx);
    expect(await action.verify?.(ctx, applied as Applied<never, never>)).toMatchObject({ status: 'ok' });
    await expect.poll(() => api.limitsFor('k').limit).toBe(100);
    expect((await action.plan(ctx)).changes).toEqual([]);

    await action.revert?.(ctx, applied as Applied<never, never>);
    expect(await redis.get(stateKey(service))).toBe(written);
    const ttl = await redis.pttl(stateKey(service));
    expect(ttl).toBeGreaterThan(3_500_000);
    await expect.poll(() => api.limitsFor('k').limit).toBe(10);

    // Nothing to do when it is off; and a revert while strict mode is on again (someone enabled it meanwhile)
    // is refused.
    await redis.del(stateKey(service));
    expect((await disableStrictMode(redis, { prefix, service }).plan(context('disable-2'))).changes).toEqual(
      [],
    );
    await redis.set(stateKey(service), '{"limit":2}');
    await expect(action.revert?.(ctx, applied as Applied<never, never>)).rejects.toThrow(
      /Refusing to turn it back on/,
    );
  });

  it("leaves an off marker, so its revert refuses after someone else's enable and disable since", async () => {
    const service = newService();
    const api = limiter(service);
    const operator = '{"limit":5,"id":"operator"}';
    await redis.set(stateKey(service), operator);
    const action = disableStrictMode(redis, { prefix, service });
    const ctx = context('lift', 'run-2');
    const applied = await applyAction(action, ctx);
    // Off for every limiter, and named after the step that turned it off.
    expect(JSON.parse((await redis.get(stateKey(service))) ?? 'null')).toEqual({
      off: true,
      id: 'run-2/lift',
    });
    expect(await redis.pttl(stateKey(service))).toBe(-1);
    expect(await readStrictMode(redis, { prefix, service })).toBe(null);
    await expect.poll(() => api.limitsFor('k').limit).toBe(100);
    expect(await action.verify?.(ctx, applied as Applied<never, never>)).toMatchObject({ status: 'ok' });
    expect((await action.plan(ctx)).summary).toMatch(/already off \(by this step\)/);

    // Someone else's whole cycle since: enabled, then disabled again. Off again, but not by this step.
    const othersEnable = enable(service, { limit: 50 });
    const othersApplied = await applyAction(othersEnable, context('enable', 'run-3'));
    await applyAction(disableStrictMode(redis, { prefix, service }), context('lift', 'run-3'));
    // Their enable, reverted now, finds it turned off since: nothing to undo, and the off marker stays.
    logs.length = 0;
    await othersEnable.revert?.(context('enable', 'run-3'), othersApplied as Applied<never, never>);
    expect(logs).toEqual([
      `strict mode of service ${service} was turned off since, by run-3/lift; nothing to revert`,
    ]);
    const error = await action.revert?.(ctx, applied as Applied<never, never>).catch((e: unknown) => e);
    expect(code(error)).toBe('STRICT_MODE_CHANGED');
    expect((error as Error).message).toMatch(
      /now off, turned off by run-3\/lift\)\. Refusing to turn it back on/,
    );
    expect(await readStrictMode(redis, { prefix, service })).toBe(null);

    // Deleted by hand since: refused too (nobody can tell what happened in between).
    await redis.del(stateKey(service));
    await expect(action.revert?.(ctx, applied as Applied<never, never>)).rejects.toThrow(/now off\)/);
    expect(await redis.exists(stateKey(service))).toBe(0);
  });
});

describe('strict mode that would outlive the one enabled', () => {
  it('is not replaced by a timed one: the plan refuses, and the state in force stays', async () => {
    const service = newService();
    const operator = '{"factor":0.5,"id":"operator"}';
    await redis.set(stateKey(service), operator);
    const timed = enable(service, { limit: 10, expiresAfter: '1h' });
    const error = await timed.plan(context('timed')).catch((e: unknown) => e);
    expect(code(error)).toBe('STRICT_MODE_OUTLIVES');
    expect(isRunbookError(error) && error.retriable).toBe(false);
    expect((error as Error).message).toMatch(
      /already on until disabled \(set by operator: limits × 0\.5\)\. A strict mode for 1h over it would end it too/,
    );

    // Nor a timed one ending later than the new one.
    await redis.set(stateKey(service), operator, 'PX', 7_200_000);
    await expect(timed.plan(context('timed'))).rejects.toThrow(/already on for another 2h/);
    expect(await redis.get(stateKey(service))).toBe(operator);

    // One lasting longer, or until disabled, replaces it (and its revert gives it back).
    const longer = enable(service, { limit: 10, expiresAfter: '3h' });
    expect((await longer.plan(context('longer'))).changes[0]?.before).toMatchObject({ id: 'operator' });
    const open = enable(service, { limit: 10 });
    const applied = await applyAction(open, context('open'));
    await open.revert?.(context('open'), applied as Applied<never, never>);
    expect(await redis.get(stateKey(service))).toBe(operator);
    expect(await redis.pttl(stateKey(service))).toBeGreaterThan(7_000_000);
  });

  it('is refused at apply too, when the state in force lost its expiry since the plan', async () => {
    const service = newService();
    const operator = '{"limit":20,"id":"operator"}';
    await redis.set(stateKey(service), operator, 'PX', 60_000);
    const action = enable(service, { limit: 10, expiresAfter: '1h' });
    const plan = sealPlan(action, await action.plan(context('timed')));
    await redis.persist(stateKey(service));
    const error = await action.apply(context('timed'), plan).catch((e: unknown) => e);
    expect(code(error)).toBe('STRICT_MODE_OUTLIVES');
    expect(await redis.get(stateKey(service))).toBe(operator);

    // An off marker or an unreadable value is no strict mode in force: a timed one may replace it.
    await redis.set(stateKey(service), '{"off":true,"id":"someone"}');
    const overOff = enable(service, { limit: 10, expiresAfter: '1h' });
    await applyAction(overOff, context('over-off'));
    expect(await readStrictMode(redis, { prefix, service })).toMatchObject({
      limit: 10,
      expiresAfter: 3_600_000,
    });
  });
});

describe('limiters and the stored state', () => {
  it('honour a state an operator wrote by hand, and ignore one they cannot read', async () => {
    const service = newService();
    const api = limiter(service);
    await redis.set(stateKey(service), '{"factor":0.1}');
    await expect.poll(() => api.limitsFor('k').limit).toBe(10);
    const changes: (number | null | 'off')[] = [];
    api.onStrictModeChange((s) => changes.push(s ? (s.factor ?? s.limit) : 'off'));
    await redis.set(stateKey(service), 'strict please');
    await expect.poll(() => api.strictMode).toBe(null);
    expect(api.limitsFor('k').limit).toBe(100);
    // Another value that leaves strict mode off (an off marker) is no change.
    await redis.set(stateKey(service), '{"off":true,"id":"x"}');
    await redis.set(stateKey(service), '{"limit":7}');
    await expect.poll(() => api.limitsFor('k').limit).toBe(7);
    expect(changes).toEqual(['off', 7]);
  });

  it('read the lifetime of a state written before `expiresIn` was renamed `expiresAfter`', async () => {
    const service = newService();
    const old = { id: 'run-0/strict', limit: 3, factor: null, reason: null, expiresIn: 3_600_000 };
    await redis.set(
      stateKey(service),
      JSON.stringify({ ...old, enabledAt: 1, expiresAt: 3_600_001 }),
      'PX',
      60_000,
    );
    expect(await readStrictMode(redis, { prefix, service })).toMatchObject({
      limit: 3,
      expiresAfter: 3_600_000,
    });
    // The new name wins when a value has both.
    await redis.set(stateKey(service), JSON.stringify({ ...old, expiresAfter: 60_000 }), 'PX', 60_000);
    expect(await readStrictMode(redis, { prefix, service })).toMatchObject({ expiresAfter: 60_000 });
  });

  it('wait for the first read before deciding, so a restarted replica starts strict', async () => {
    const service = newService();
    await redis.set(stateKey(service), '{"limit":1}');
    const fresh = limiter(service);
    const decisions = await Promise.all([fresh.take('restarted'), fresh.take('restarted')]);
    expect(decisions.map((d) => d.allowed).sort()).toEqual([false, true]);
    expect(decisions[0]?.limit).toBe(1);
  });

  it('can opt out', async () => {
    const service = newService();
    await redis.set(stateKey(service), '{"limit":1}');
    const free = createRateLimiter(redis, {
      prefix,
      service,
      name: 'free',
      limit: 5,
      period: '1m',
      strictMode: false,
    });
    expect((await free.take('k')).limit).toBe(5);
    expect(free.strictMode).toBe(null);
    free.close();
  });
});
