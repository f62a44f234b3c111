import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineRunbook } from '../../src/core/runbook';
import { clearCache, flushDb } from '../../src/redis/actions';
import { keyCount } from '../../src/redis/checks';
import { connectRedis, type RedisInstance } from '../../src/redis/connection';
import { engineFixture } from '../support/engine-fixture';
import { startTestRedis, type TestRedis } from '../support/redis-server';
import { postgresStore, uniqueSchema } from '../support/stores';

// The manual's "clear agent cache" (Runbook 2, step 2) as a runbook on the real Engine against a private
// Redis: the scoped clear runs without approval (not destructive), FLUSHDB waits for a second person. The run
// store is a PostgreSQL store in a schema of its own.

let server: TestRedis;
let redis: RedisInstance;

beforeAll(async () => {
  server = await startTestRedis();
  redis = connectRedis({ url: server.url, name: 'cache' });
});

afterAll(async () => {
  await redis?.close();
  await server?.stop();
});

const agentCache = defineRunbook({
  id: 'agent-cache',
  title: 'Generation agent: clear its cache',
  severity: 'P2',
  input: z.object({ prefix: z.string(), flushDb: z.number().int().optional() }),
  async run({ input, step }) {
    const found = await step.check('cached-keys', keyCount(redis, { prefix: input.prefix }));
    if (found.data.keys > 0) await step.act('clear-cache', clearCache(redis, { prefix: input.prefix }));
    if (input.flushDb !== undefined)
      await step.act('flush-scratch-db', flushDb(redis, { db: input.flushDb }));
    return step.done(`cleared ${found.data.keys} cached keys`);
  },
});

describe('clearing the agent cache through the engine', () => {
  const fx = engineFixture(() => postgresStore(uniqueSchema('redis')));

  it('clears the prefix at once, and flushes a database only after a second person approves', async () => {
    const scratch = server.admin.duplicate({ db: 5 });
    for (let i = 0; i < 40; i++)
      await server.admin.set(`agent:generation:cache:${i}`, 'stale answer', 'EX', 600);
    await server.admin.rpush('agent:requests:queue', 'r1', 'r2');
    for (let i = 0; i < 12; i++) await scratch.set(`tmp:${i}`, 'x');

    const engine = fx.engine([agentCache]);
    const started = await engine.start(
      'agent-cache',
      { prefix: 'agent:generation:cache:', flushDb: 5 },
      { mode: 'execute', actor: 'alice' },
    );
    expect(started.status).toBe('waiting_approval');
    expect(started.pendingApproval?.plan).toMatchObject({
      action: 'redis.flush-db',
      target: 'redis:cache/db/5',
      risk: 'high',
      destructive: true,
      summary: expect.stringMatching(/^FLUSHDB ASYNC db 5 of 127\.0\.0\.1:\d+: 12 keys will be lost/),
      changes: [{ target: 'redis:cache/db/5', field: 'keys', before: '10 to 99 keys', after: 'no keys' }],
    });
    // The scoped clear needed nobody: it is done, the queue untouched; the flush waits.
    expect(await server.admin.keys('agent:generation:cache:*')).toEqual([]);
    expect(await server.admin.llen('agent:requests:queue')).toBe(2);
    expect(await scratch.dbsize()).toBe(12);

    await expect(engine.approve(started.runId, { actor: 'alice' })).rejects.toMatchObject({
      code: 'FOUR_EYES',
    });
    // Live traffic writes while the approval waits: the count changes, its order of magnitude does not.
    await scratch.set('tmp:late', 'x');
    await engine.approve(started.runId, { actor: 'bob' });
    const resumed = await engine.resume(started.runId);
    expect(resumed.status).toBe('succeeded');
    expect(resumed.outcome).toEqual({ kind: 'done', summary: 'cleared 40 cached keys' });

    const { steps } = await engine.getRun(started.runId);
    expect(steps.map((s) => [s.name, s.status])).toEqual([
      ['cached-keys', 'succeeded'],
      ['clear-cache', 'succeeded'],
      ['flush-scratch-db', 'succeeded'],
    ]);
    expect(steps[1]?.result).toMatchObject({
      status: 'applied',
      plan: { action: 'redis.clear-cache', destructive: false },
      verification: { status: 'ok' },
    });
    expect(steps[2]?.result).toMatchObject({
      status: 'applied',
      applied: { data: { dbsizeAfter: 0 } },
      verification: { status: 'ok' },
    });
    expect(await scratch.dbsize()).toBe(0);
    expect(await server.admin.llen('agent:requests:queue')).toBe(2);
    expect((await engine.verifyAudit()).ok).toBe(true);
    scratch.disconnect();
  });
});
