import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Engine } from '../../src';
import { type RedisRunbooks, redis } from '../../src/redis';
import { expectDocsShowTested } from '../support/docs-drift';
import { startTestRedis, type TestRedis } from '../support/redis-server';
import { postgresStore, type StoreUnderTest, uniqueSchema } from '../support/stores';
import { agentCache } from './docs-example-runbook';

// Keeps REDIS.md honest. docs-example-runbook.ts holds the runbook of its end-to-end section (shown there as
// `agent-cache.ts`); here it runs through the real Engine (its store in a PostgreSQL schema of its own) against
// a private redis-server of this file's own.
// The last describe block checks that the docs still show exactly the tested code.

let server: TestRedis;
let store: StoreUnderTest;
let engine: Engine;
let cache: RedisRunbooks;

beforeAll(async () => {
  [server, store] = await Promise.all([startTestRedis(), postgresStore(uniqueSchema('redis_docs'))]);
  cache = redis({ url: server.url, name: 'cache' });
  engine = new Engine({ store: store.store, runbooks: [agentCache(cache)] });
});

afterAll(async () => {
  await store?.dispose();
  await cache?.close();
  await server?.stop();
});

beforeEach(async () => {
  await server.admin.flushall();
  for (const agent of ['generation', 'requirements']) {
    for (let i = 0; i < 25; i++) await server.admin.set(`agent:${agent}:cache:${i}`, 'an answer', 'EX', 3600);
  }
  await server.admin.rpush('agent:requests:queue', 'r1', 'r2', 'r3');
});

describe('agent-cache (REDIS.md)', () => {
  it('snapshots, then deletes only the generation agent’s cache', async () => {
    const run = await engine.start(
      'agent-cache',
      { agent: 'generation' },
      { mode: 'execute', actor: 'alertmanager' },
    );
    expect(run.status).toBe('succeeded');
    expect(run.outcome).toEqual({ kind: 'done', summary: 'generation cache: 25 keys deleted' });
    const { steps } = await engine.getRun(run.runId);
    expect(steps.map((s) => [s.name, s.status, (s.result as { status: string }).status])).toEqual([
      ['redis-ping', 'succeeded', 'ok'],
      ['request-queue', 'succeeded', 'ok'],
      ['snapshot', 'succeeded', 'applied'],
      ['clear-cache', 'succeeded', 'applied'],
    ]);
    expect(await server.admin.keys('agent:generation:cache:*')).toEqual([]);
    expect(await server.admin.keys('agent:requirements:cache:*')).toHaveLength(25);
    expect(await server.admin.llen('agent:requests:queue')).toBe(3);
    // The snapshot was taken before the delete: it still holds the generation agent's keys.
    expect((await stat(join(server.dir, 'dump.rdb'))).size).toBeGreaterThan(1_000);
  });

  it('escalates, and deletes nothing, when the request queue is full', async () => {
    await server.admin.rpush('agent:requests:queue', ...Array.from({ length: 1_000 }, (_, i) => `r${i}`));
    const run = await engine.start('agent-cache', {}, { mode: 'execute', actor: 'alertmanager' });
    expect(run.status).toBe('escalated');
    expect(run.outcome).toMatchObject({
      kind: 'escalate',
      reason: `the request queue is full: Queue length on 127.0.0.1:${server.port}/0: agent:requests:queue: 1,003 entries (list) (fail at 1000)`,
    });
    expect(await server.admin.keys('agent:generation:cache:*')).toHaveLength(25);
  });

  it('in plan mode plans the snapshot and the delete, and changes nothing', async () => {
    const run = await engine.start('agent-cache', { agent: 'generation' }, { mode: 'plan', actor: 'alice' });
    expect(run.status).toBe('succeeded');
    expect(run.outcome).toEqual({ kind: 'done', summary: 'generation cache: planned' });
    expect(await server.admin.keys('agent:generation:cache:*')).toHaveLength(25);
  });
});

describe('the docs show exactly the code tested here', () => {
  it('REDIS.md shows agent-cache.ts as tested', () => {
    expectDocsShowTested(
      new URL('../../REDIS.md', import.meta.url),
      new URL('./docs-example-runbook.ts', import.meta.url),
      'agent-cache.ts',
    );
  });
});
