import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sealPlan } from '../../src/core/plan';
import type { StepContext } from '../../src/core/step';
import { disableStrictMode, enableStrictMode } from '../../src/resilience/strict-mode';
import type { StrictModeState } from '../../src/resilience/strict-mode-state';
import { uniquePrefix } from '../support/redis-server';
import { type LimiterChild, startChild } from './support/limiter-processes';
import { connect, deleteKeys, REDIS_URL } from './support/limiter-redis';

// The proof for strict mode: enabled once, it reaches every limiter process within 1 s (they poll
// every 250 ms by default), and so does disabling it.

const prefix = uniquePrefix('strict-procs');
const service = 'backend';
let redis: Redis;
let children: LimiterChild[] = [];

beforeAll(async () => {
  redis = connect();
  children = Array.from({ length: 3 }, () =>
    startChild('./limiter-strict-watch.ts', { url: REDIS_URL, prefix, service }),
  );
  await Promise.all(children.map((c) => c.line<{ kind: string }>((l) => l.kind === 'ready')));
}, 30_000);

afterAll(async () => {
  for (const c of children) c.child.kill('SIGTERM');
  await Promise.allSettled(children.map((c) => c.exited));
  await deleteKeys(redis, prefix);
  redis.disconnect();
});

const ctx: StepContext = {
  runId: 'run-strict',
  runbookId: 'security-breach',
  step: 'strict-mode',
  mode: 'execute',
  attempt: 1,
  actor: 'alice',
  signal: new AbortController().signal,
  log: () => {},
};

type Seen = { kind: 'strict'; state: StrictModeState | null; seenAt: number; limit: number };

describe('strict mode across processes', () => {
  it('reaches every limiter process within 1 s when enabled, and again when disabled', async () => {
    expect(children.map((c) => (c.lines[0] as { limit: number }).limit)).toEqual([100, 100, 100]);

    const enable = enableStrictMode(redis, { prefix, service, limit: 10, reason: 'Runbook 12' });
    const plan = sealPlan(enable, await enable.plan(ctx));
    const enabledAt = Date.now();
    await enable.apply(ctx, plan);
    const on = await Promise.all(
      children.map((c) => c.line<Seen>((l) => l.kind === 'strict' && l.state !== null)),
    );
    for (const seen of on) {
      expect(seen.seenAt - enabledAt).toBeLessThan(1_000);
      expect(seen.state).toMatchObject({ limit: 10, id: 'run-strict/strict-mode', reason: 'Runbook 12' });
      expect(seen.limit).toBe(10);
    }

    const disable = disableStrictMode(redis, { prefix, service });
    const offPlan = sealPlan(disable, await disable.plan({ ...ctx, step: 'lift' }));
    const disabledAt = Date.now();
    await disable.apply({ ...ctx, step: 'lift' }, offPlan);
    const off = await Promise.all(
      children.map((c) => c.line<Seen>((l) => l.kind === 'strict' && l.state === null)),
    );
    for (const seen of off) {
      expect(seen.seenAt - disabledAt).toBeLessThan(1_000);
      expect(seen.limit).toBe(100);
    }
  }, 30_000);
});
