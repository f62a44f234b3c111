import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyCount, memory, ping, queueLength, snapshotStatus } from '../../src/redis/checks';
import { connectRedis, type RedisInstance } from '../../src/redis/connection';
import { startTestRedis, type TestRedis } from '../support/redis-server';
import { observe, rejudge } from './replayable';

// The Redis checks whose verdict a runbook tunes, run once against a private Redis (10 MB maxmemory, no
// persistence), then judged again from their observation: by the same check (the live finding, exactly)
// and by one with another threshold.

let server: TestRedis;
let redis: RedisInstance;

beforeAll(async () => {
  server = await startTestRedis({ args: ['--maxmemory', '10mb'] });
  redis = connectRedis({ url: server.url, name: 'replay' });
  await server.admin.set('cache:user:1', 'a');
  await server.admin.set('cache:user:2', 'b');
  await server.admin.set('cache:user:3', 'c');
  await server.admin.rpush('jobs', '1', '2', '3', '4', '5');
});

afterAll(async () => {
  await redis?.close();
  await server?.stop();
});

describe('Redis checks judge their observation again', () => {
  it('ping: the recorded round trips, against other latency limits', async () => {
    const check = (warnAfter: number) => ping(redis, { count: 3, warnAfter, failAfter: 2000 });
    const live = await observe(check(1000));
    expect(live.finding.status).toBe('ok');
    expect(live.observation.latenciesMs).toHaveLength(3);
    expect(live.observation.repliedAt).toHaveLength(3);
    const replayed = rejudge(live, check(1000), check(0), 'warn');
    expect(replayed.summary).toMatch(/: p50 at or above 0ms$/);
  });

  it('memory: the recorded usage, against other shares of maxmemory', async () => {
    const check = (failAt?: number) =>
      memory(redis, failAt === undefined ? {} : { warnAt: failAt / 2, failAt });
    const live = await observe(check());
    expect(live.finding.status).toBe('ok');
    expect(live.observation.maxmemoryBytes).toBe(10 * 1024 * 1024);
    const replayed = rejudge(live, check(), check(0.02), 'fail');
    expect(replayed.data.reasons[0]).toMatch(/of maxmemory used \(fail at 2%\)/);
  });

  it('keyCount: the recorded count, against a lower limit', async () => {
    const check = (warnAt: number) => keyCount(redis, { prefix: 'cache:user:', warnAt });
    const live = await observe(check(10));
    expect(live.finding.status).toBe('ok');
    expect(live.observation).toMatchObject({ keys: 3, complete: true });
    rejudge(live, check(10), check(3), 'warn');
  });

  it('queueLength: the recorded length, against other limits', async () => {
    const check = (failAt: number) => queueLength(redis, { key: 'jobs', warnAt: failAt - 1, failAt });
    const live = await observe(check(100));
    expect(live.finding.status).toBe('ok');
    expect(live.observation.queues).toEqual([{ key: 'jobs', type: 'list', waiting: 5, processing: null }]);
    const replayed = rejudge(live, check(100), check(5), 'fail');
    expect(replayed.summary).toBe(`Queue length on ${redis.display}: jobs: 5 entries (list) (fail at 5)`);
  });

  it('snapshotStatus: the recorded persistence, with and without requiring it', async () => {
    const check = (requirePersistence: boolean) => snapshotStatus(redis, { requirePersistence });
    const live = await observe(check(true));
    expect(live.finding.status).toBe('warn');
    expect(live.observation).toMatchObject({ savePoints: '', aofEnabled: false });
    rejudge(live, check(true), check(false), 'ok');
  });
});
