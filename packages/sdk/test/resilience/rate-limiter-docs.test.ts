import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/engine';
import { createRateLimiter, type RateLimiter } from '../../src/resilience/rate-limiter';
import { readStrictMode } from '../../src/resilience/strict-mode';
import { openStore } from '../../src/store/open-store';
import type { RunStore } from '../../src/store/run-store';
import { expectDocsShowTested } from '../support/docs-drift';
import { uniquePrefix } from '../support/redis-server';
import {
  type AgentRequest,
  agentRequestQueue,
  agentRequestsRoute,
  loginRoute,
  securityContainment,
  sendQueuedRequests,
} from './support/limiter-docs-example';
import { standInFastify } from './support/limiter-fastify';
import { connect, deleteKeys } from './support/limiter-redis';

// Keeps RATE-LIMITS.md honest: its examples (support/limiter-docs-example.ts) run here against a real Redis,
// the routes over real HTTP, the runbook on the real Engine; the last block checks that the docs still show
// exactly this code (import lines aside).

const prefix = uniquePrefix('docs');
let redis: Redis;
let store: RunStore;
let app: ReturnType<typeof standInFastify>;
let url: string;
let login: RateLimiter;
const queue = () => agentRequestQueue(redis, `${prefix}:agent:requests:queue`);

beforeAll(async () => {
  redis = connect();
  store = await openStore({ dataDir: ':memory:' });
  app = standInFastify();
  login = loginRoute(app, redis, prefix);
  agentRequestsRoute(app, queue());
  url = await app.listen();
}, 60_000);

afterAll(async () => {
  login?.close();
  await app?.close();
  await store?.close();
  await deleteKeys(redis, prefix);
  redis.disconnect();
});

const post = (path: string, body: unknown) =>
  fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

describe('login-route.ts', () => {
  it('allows a burst of 5 attempts, then answers 429 with Retry-After', async () => {
    const statuses: [number, string | null][] = [];
    for (let i = 0; i < 6; i++) {
      const res = await post('/login', { user: 'alice' });
      statuses.push([res.status, res.headers.get('ratelimit-remaining')]);
      if (res.status === 429) {
        // One attempt every 3 s (20 a minute).
        expect(res.headers.get('retry-after')).toBe('3');
        expect(await res.json()).toMatchObject({ error: { code: 'RATE_LIMITED' } });
      }
    }
    expect(statuses).toEqual([
      [200, '4'],
      [200, '3'],
      [200, '2'],
      [200, '1'],
      [200, '0'],
      [429, '0'],
    ]);
    expect(login.limitsFor('10.20.0.1')).toEqual({ limit: 600, periodMs: 60_000, burst: 50 });
  });
});

describe('agent-requests.ts', () => {
  it('queues with 202, answers 429 with Retry-After when 1000 are queued, and drains to the handler', async () => {
    const q = queue();
    const accepted = await post('/agent-requests', { agent: 'requirements', prompt: 'first' });
    expect(accepted.status).toBe(202);
    const { id } = (await accepted.json()) as { id: string };
    for (let i = 1; i < 1000; i++) await q.enqueue({ agent: 'requirements', prompt: `#${i}` });
    expect(await redis.llen(`${prefix}:agent:requests:queue`)).toBe(1000);

    const full = await post('/agent-requests', { agent: 'requirements', prompt: 'one too many' });
    expect(full.status).toBe(429);
    // 50 a minute: a slot frees about every 1.2 s.
    expect(full.headers.get('retry-after')).toBe('2');
    expect(await full.json()).toMatchObject({ error: { code: 'QUEUE_FULL' } });

    const sent: AgentRequest[] = [];
    const stop = new AbortController();
    const running = sendQueuedRequests(
      q,
      async (request) => {
        sent.push(request);
        stop.abort();
      },
      stop.signal,
    );
    await running;
    expect(sent).toEqual([{ agent: 'requirements', prompt: 'first' }]);
    expect(await q.length()).toBe(999);
    expect((await post('/agent-requests', { agent: 'requirements', prompt: 'room again' })).status).toBe(202);
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('security-containment.ts', () => {
  it('on the engine: plans the login limit 20 → 10, applies, verifies, and the login route tightens', async () => {
    const engine = new Engine({ store, runbooks: [securityContainment(redis, prefix)] });
    const planned = await engine.start('security-containment', {}, { mode: 'plan', actor: 'alice' });
    expect(planned.status).toBe('succeeded');
    const { steps } = await engine.getRun(planned.runId);
    expect(steps[0]?.result).toMatchObject({
      status: 'planned',
      plan: {
        action: 'resilience.enable-strict-mode',
        risk: 'medium',
        changes: [
          { field: 'strictMode', before: null, after: { limit: 10, expiresAfter: 3_600_000 } },
          {
            field: 'limit',
            before: { limit: 20, period: '1m', burst: 5 },
            after: { limit: 10, period: '1m', burst: 5 },
          },
        ],
      },
    });
    expect(await readStrictMode(redis, { prefix, service: 'backend' })).toBe(null);

    const run = await engine.start('security-containment', {}, { mode: 'execute', actor: 'alice' });
    expect(run.status).toBe('succeeded');
    expect(run.outcome).toEqual({ kind: 'done', summary: 'strict rate limiting on for 1h' });
    expect(await readStrictMode(redis, { prefix, service: 'backend' })).toMatchObject({
      id: `${run.runId}/strict-mode`,
      limit: 10,
      reason: 'Runbook 12: security breach',
    });
    expect(await redis.pttl(`${prefix}:strict-mode:backend`)).toBeGreaterThan(3_590_000);
    await expect.poll(() => login.limitsFor('127.0.0.1').limit, { timeout: 1_000 }).toBe(10);
    await redis.del(`${prefix}:strict-mode:backend`);
  });
});

describe('the docs show exactly the code tested here', () => {
  const doc = new URL('../../RATE-LIMITS.md', import.meta.url);
  const file = new URL('./support/limiter-docs-example.ts', import.meta.url);
  it.each(['gcra', 'sliding-window'] as const)(
    'RATE-LIMITS.md names the Redis key of the %s limiter',
    (algorithm) => {
      const l = createRateLimiter(redis, {
        prefix: 'PREFIX',
        name: 'NAME',
        algorithm,
        limit: 1,
        period: '1s',
        strictMode: false,
      });
      const key = l
        .redisKey('KEY')
        .replace('PREFIX', '<prefix>')
        .replace('NAME', '<name>')
        .replace('KEY', '<key>');
      l.close();
      const text = readFileSync(doc, 'utf8');
      // In the prose of the Keys section and in the table of every key.
      expect(text.split(`\`${key}\``).length - 1).toBeGreaterThanOrEqual(2);
    },
  );

  it.each(['login-route.ts', 'agent-requests.ts', 'security-containment.ts'])(
    'RATE-LIMITS.md shows %s',
    (name) => {
      expectDocsShowTested(doc, file, name);
    },
  );
});
