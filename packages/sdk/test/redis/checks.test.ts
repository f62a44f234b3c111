import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { isInputValidationError } from '../../src/core/errors';
import { keyCount, memory, ping, queueLength, snapshotStatus } from '../../src/redis/checks';
import { connectRedis, type RedisInstance } from '../../src/redis/connection';
import { createRequestQueue } from '../../src/resilience/request-queue';
import { stepContext } from '../support/kubernetes';
import { freePort } from '../support/postgres-cluster';
import {
  type LatencyProxy,
  SHARED_REDIS_URL,
  startLatencyProxy,
  startSilentServer,
  startTestRedis,
  type TestRedis,
  uniquePrefix,
} from '../support/redis-server';

// Every check's ok, warn and fail paths against real Redis 7.0: the shared server on 6379 for reads under
// unique key prefixes, private servers for anything that changes configuration (maxmemory, persistence).

const ctx = () => stepContext();

/** The issues of the validation error `build` throws, as `field: message`; anything else thrown is rethrown. */
function fieldIssues(build: () => unknown): string[] {
  try {
    build();
  } catch (e) {
    if (isInputValidationError(e)) return e.issues.map((i) => `${i.path}: ${i.message}`);
    throw e;
  }
  return [];
}
const shared = connectRedis({ url: SHARED_REDIS_URL });
const prefix = uniquePrefix('checks');
let server: TestRedis;
let local: RedisInstance;

beforeAll(async () => {
  server = await startTestRedis({ args: ['--enable-protected-configs', 'yes'] });
  local = connectRedis({ url: server.url, name: 'private' });
});

afterAll(async () => {
  // The request queue's other keys are `{<key>}:…`.
  const escaped = prefix.replace(/[*?[\]\\]/g, '\\$&');
  const keys = [
    ...(await shared.client.keysBuffer(`${escaped}*`)),
    ...(await shared.client.keysBuffer(`\\{${escaped}*`)),
  ];
  if (keys.length) await shared.client.del(...keys);
  await shared.close();
  await local?.close();
  await server?.stop();
});

describe('ping', () => {
  it('ok: connects, times each PING, reads the version', async () => {
    const f = await ping(shared, { count: 3, warnAfter: '500ms', failAfter: '2s' }).run(ctx());
    expect(f.status).toBe('ok');
    expect(f.data).toMatchObject({ reachable: true, version: expect.stringMatching(/^7\./), error: null });
    expect(f.data.latenciesMs).toHaveLength(3);
    expect(f.data.maxMs).toBeGreaterThanOrEqual(f.data.p50Ms ?? 0);
    expect(f.summary).toMatch(/^Redis 7\.\d+\.\d+ at 127\.0\.0\.1:6379\/0: 3 PINGs, p50 /);
    expect(f.evidence.map((e) => e.kind)).toEqual(['table', 'series']);
  });

  describe('over a slow network (60 ms each way)', () => {
    let proxy: LatencyProxy;
    let slow: RedisInstance;
    beforeAll(async () => {
      proxy = await startLatencyProxy(server.port, 60);
      slow = connectRedis({ url: proxy.url });
    });
    afterAll(async () => {
      await slow.close();
      await proxy.close();
    });

    it('warn at or above warnAfter, fail at or above failAfter', async () => {
      const warn = await ping(slow, { count: 2, warnAfter: '100ms', failAfter: '10s' }).run(ctx());
      expect(warn.status).toBe('warn');
      expect(warn.data.p50Ms).toBeGreaterThanOrEqual(120);
      expect(warn.summary).toMatch(/: p50 at or above 100ms$/);
      const fail = await ping(slow, { count: 2, judge: 'max', warnAfter: '50ms', failAfter: '100ms' }).run(
        ctx(),
      );
      expect(fail.status).toBe('fail');
      expect(fail.summary).toMatch(/: max at or above 100ms$/);
    });
  });

  it('fail, not a throw, when nothing listens', async () => {
    const port = await freePort();
    const down = connectRedis({ host: '127.0.0.1', port });
    const f = await ping(down, {}).run(ctx());
    expect(f.status).toBe('fail');
    expect(f.data).toMatchObject({ reachable: false, connectMs: null, latenciesMs: [] });
    expect(f.summary).toBe(`Redis 127.0.0.1:${port}/0 unreachable: connect ECONNREFUSED 127.0.0.1:${port}`);
    await down.close();
  });

  it('fail when the server accepts but never answers, after the timeout', async () => {
    const silent = await startSilentServer();
    const hung = connectRedis({ host: '127.0.0.1', port: silent.port });
    const started = Date.now();
    const f = await ping(hung, { timeout: '400ms' }).run(ctx());
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(f.status).toBe('fail');
    expect(f.data.error).toMatch(/^no answer within 400ms/);
    await hung.close();
    await silent.close();
  });

  it('throws when the step is cancelled', async () => {
    const controller = new AbortController();
    controller.abort(new Error('cancelled'));
    await expect(ping(shared).run(stepContext({ signal: controller.signal }))).rejects.toThrow('cancelled');
  });

  it('refuses warnAfter above failAfter when it is built', () => {
    expect(() => ping(shared, { warnAfter: '1s', failAfter: '10ms' })).toThrow(
      /warnAfter: warnAfter must not exceed failAfter/,
    );
  });

  it('names a malformed duration as a validation issue, not a RangeError of the ordering rule', () => {
    expect(fieldIssues(() => ping(shared, { warnAfter: '20 ms', failAfter: '1s' }))).toEqual([
      'warnAfter: expected a duration such as "500ms", "30s", "5m", "1h" or "2d"',
    ]);
    expect(fieldIssues(() => ping(shared, { failAfter: 'soon' }))).toEqual([
      'failAfter: expected a duration such as "500ms", "30s", "5m", "1h" or "2d"',
    ]);
  });
});

describe('memory', () => {
  const admin = () => server.admin;
  const reset = async (maxmemory: string, policy: string) => {
    await admin().flushall();
    await admin().config('SET', 'maxmemory', maxmemory);
    await admin().config('SET', 'maxmemory-policy', policy);
    await admin().config('RESETSTAT');
  };
  /** Writes 16 kB values until used_memory reaches `share` of maxmemory, or a write is refused (OOM). */
  const fillTo = async (share: number) => {
    const max = Number((await admin().config('GET', 'maxmemory'))[1]);
    const value = 'x'.repeat(16 * 1024);
    for (let i = 0; i < 10_000; i += 10) {
      const used = Number(/used_memory:(\d+)/.exec(await admin().info('memory'))?.[1]);
      if (used >= share * max) return;
      const pipeline = admin().pipeline();
      for (let j = i; j < i + 10; j++) pipeline.set(`fill:${j}`, value);
      const results = (await pipeline.exec()) ?? [];
      if (results.some(([error]) => error)) return;
    }
    throw new Error(`could not fill to ${share} of maxmemory`);
  };

  it('ok without maxmemory: usage reported against the host, not judged', async () => {
    await reset('0', 'noeviction');
    const f = await memory(local).run(ctx());
    expect(f.status).toBe('ok');
    expect(f.data).toMatchObject({ maxmemoryBytes: null, ratio: null, policy: 'noeviction', evictedKeys: 0 });
    expect(f.summary).toMatch(/^Redis memory: [\d.]+[KM] used, no maxmemory \(host has /);
  });

  it('warn on fragmentation once there is enough data to judge it (a nearly empty server is all overhead)', async () => {
    await reset('0', 'noeviction');
    const f = await memory(local, { fragmentationMinUsed: 0 }).run(ctx());
    expect(f.data.fragmentationRatio).toBeGreaterThan(1.5);
    expect(f.status).toBe('warn');
    expect(f.data.reasons).toEqual([expect.stringMatching(/^fragmentation ratio [\d.]+ \(RSS /)]);
  });

  it('warn at 80% of maxmemory under noeviction, saying writes will be refused', async () => {
    await reset('8mb', 'noeviction');
    await fillTo(0.82);
    const f = await memory(local).run(ctx());
    expect(f.data.ratio).toBeGreaterThanOrEqual(0.8);
    expect(f.data.ratio).toBeLessThan(0.95);
    expect(f.status).toBe('warn');
    expect(f.summary).toMatch(/\(warn at 80%\); policy noeviction: at the limit writes are refused \(OOM\)/);
  });

  it('fail when full and writes are refused with OOM during the sample window', async () => {
    await reset('8mb', 'noeviction');
    await fillTo(1.1);
    const check = memory(local, { sampleWindow: '400ms' }).run(ctx());
    await new Promise((r) => setTimeout(r, 100));
    await expect(admin().set('one-more', 'x'.repeat(64 * 1024))).rejects.toThrow(/OOM/);
    const f = await check;
    expect(f.status).toBe('fail');
    expect(f.data.oomInWindow).toBe(1);
    expect(f.data.reasons).toContain('1 write refused with OOM in 400ms');
    // Read once, the same refusal is history: a warn that says how to see whether it still happens.
    await admin().config('SET', 'maxmemory', '64mb');
    const once = await memory(local).run(ctx());
    expect(once.status).toBe('warn');
    expect(once.data.reasons).toEqual([
      expect.stringMatching(
        /^[\d,]+ writes? refused with OOM since the server started \(give sampleWindow to see whether it still happens\)$/,
      ),
    ]);
  });

  it('warn when keys are evicted during the window, and for a volatile policy with no TTLs', async () => {
    await reset('8mb', 'allkeys-lru');
    await fillTo(0.9);
    const check = memory(local, { sampleWindow: '500ms' }).run(ctx());
    await new Promise((r) => setTimeout(r, 100));
    const value = 'y'.repeat(16 * 1024);
    const pipeline = admin().pipeline();
    for (let i = 0; i < 200; i++) pipeline.set(`more:${i}`, value);
    await pipeline.exec();
    // Room again before the window ends: what remains to judge is that keys were evicted in it.
    await admin().config('SET', 'maxmemory', '64mb');
    const f = await check;
    expect(f.data.evictedInWindow).toBeGreaterThan(0);
    expect(f.status).toBe('warn');
    expect(f.summary).toMatch(
      /keys evicted in 500ms under allkeys-lru: the data set does not fit in maxmemory/,
    );

    await admin().config('SET', 'maxmemory-policy', 'volatile-lru');
    const volatile = await memory(local, { warnAt: 0.1 }).run(ctx());
    expect(volatile.summary).toMatch(/policy volatile-lru but no key has a TTL: nothing can be evicted/);
    await reset('0', 'noeviction');
  });
});

describe('queueLength', () => {
  const key = (name: string) => `${prefix}${name}`;
  const push = async (name: string, n: number) => {
    const items = Array.from({ length: n }, (_, i) => `r${i}`);
    for (let i = 0; i < items.length; i += 500)
      await shared.client.rpush(key(name), ...items.slice(i, i + 500));
  };

  it('ok, warn at 800 and fail at 1000 entries of a list (the manual’s LLEN)', async () => {
    await push('small', 5);
    await push('busy', 850);
    await push('full', 1000);
    const ok = await queueLength(shared, { key: key('small') }).run(ctx());
    expect(ok.status).toBe('ok');
    expect(ok.data.queues).toEqual([
      { key: key('small'), type: 'list', waiting: 5, processing: null, length: 5, status: 'ok' },
    ]);
    const warn = await queueLength(shared, { key: key('busy') }).run(ctx());
    expect(warn.status).toBe('warn');
    expect(warn.summary).toContain(`${key('busy')}: 850 entries (list) (warn at 800)`);
    const fail = await queueLength(shared, { key: key('full') }).run(ctx());
    expect(fail.status).toBe('fail');
    expect(fail.summary).toContain(`${key('full')}: 1,000 entries (list) (fail at 1000)`);
    const all = await queueLength(shared, { key: [key('small'), key('busy')], warnAt: 10, failAt: 900 }).run(
      ctx(),
    );
    expect(all.status).toBe('warn');
  });

  it('reads streams (XLEN) and sorted sets (ZCARD); a missing key is an empty queue', async () => {
    for (let i = 0; i < 3; i++) await shared.client.xadd(key('stream'), '*', 'n', String(i));
    await shared.client.zadd(key('delayed'), 1, 'a', 2, 'b');
    const f = await queueLength(shared, { key: [key('stream'), key('delayed'), key('missing')] }).run(ctx());
    expect(f.status).toBe('ok');
    expect(f.data.queues.map((q) => [q.type, q.length])).toEqual([
      ['stream', 3],
      ['zset', 2],
      ['none', 0],
    ]);
  });

  it('counts the SDK request queue as its bound does: waiting items plus those in {key}:processing', async () => {
    const queueKey = key('agent:requests:queue');
    const queue = createRequestQueue<number>(shared.client, {
      key: queueKey,
      maxLength: 10,
      rate: { limit: 1_000, period: '1s', burst: 10 },
    });
    for (let i = 0; i < 10; i++) await queue.enqueue(i);
    await expect(queue.enqueue(10)).rejects.toMatchObject({ code: 'QUEUE_FULL' });
    // Four items delivered and held by their handlers: they leave the list, not the queue.
    const controller = new AbortController();
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const processing = queue.process(() => held, { concurrency: 4, signal: controller.signal });
    try {
      await vi.waitFor(async () => expect(await shared.client.zcard(`{${queueKey}}:processing`)).toBe(4), {
        timeout: 10_000,
        interval: 20,
      });
      expect(await shared.client.llen(queueKey)).toBe(6);
      const f = await queueLength(shared, { key: queueKey, warnAt: 8, failAt: 10 }).run(ctx());
      expect(f.status).toBe('fail');
      expect(f.data.queues).toEqual([
        { key: queueKey, type: 'list', waiting: 6, processing: 4, length: 10, status: 'fail' },
      ]);
      expect(f.summary).toContain(`${queueKey}: 10 entries (6 waiting, 4 processing) (fail at 10)`);
    } finally {
      controller.abort();
      release();
      await processing;
    }
  });

  it('a drained list with items still in processing is not an empty queue', async () => {
    const queueKey = key('drained');
    await shared.client.zadd(`{${queueKey}}:processing`, 1, 'a', 2, 'b', 3, 'c');
    const f = await queueLength(shared, { key: queueKey, warnAt: 2, failAt: 5 }).run(ctx());
    expect(f.status).toBe('warn');
    expect(f.data.queues).toEqual([
      { key: queueKey, type: 'none', waiting: 0, processing: 3, length: 3, status: 'warn' },
    ]);
    // A sorted set of that name beside a stream is not the request queue's: not counted.
    await shared.client.xadd(key('events'), '*', 'n', '1');
    await shared.client.zadd(`{${key('events')}}:processing`, 1, 'x');
    const stream = await queueLength(shared, { key: key('events') }).run(ctx());
    expect(stream.data.queues[0]).toMatchObject({ type: 'stream', waiting: 1, processing: null, length: 1 });
  });

  it('throws REDIS_WRONG_TYPE for a key that is not a queue', async () => {
    await shared.client.set(key('string'), 'x');
    await expect(queueLength(shared, { key: key('string') }).run(ctx())).rejects.toMatchObject({
      code: 'REDIS_WRONG_TYPE',
      retriable: false,
    });
  });
});

describe('keyCount', () => {
  it('counts keys by prefix, with a sample, and judges thresholds', async () => {
    const p = `${prefix}kc:`;
    const pipeline = shared.client.pipeline();
    for (let i = 0; i < 30; i++) pipeline.set(`${p}${i}`, '1');
    pipeline.set(`${prefix}kcx`, '1'); // shares all but the last character of the prefix
    await pipeline.exec();
    const ok = await keyCount(shared, { prefix: p, sample: 3 }).run(ctx());
    expect(ok.status).toBe('ok');
    expect(ok.data).toMatchObject({ keys: 30, complete: true, estimate: null });
    expect(ok.data.sample).toHaveLength(3);
    expect(ok.data.sample.every((k) => k.startsWith(p))).toBe(true);
    expect(ok.summary).toBe(`30 keys starting with ${JSON.stringify(p)} on 127.0.0.1:6379/0`);
    expect((await keyCount(shared, { prefix: p, warnAt: 20 }).run(ctx())).status).toBe('warn');
    const fail = await keyCount(shared, { prefix: p, warnAt: 20, failAt: 30 }).run(ctx());
    expect(fail.status).toBe('fail');
    expect(fail.summary).toMatch(/ \(fail at 30\)$/);
  });

  it('matches glob characters in the prefix literally', async () => {
    const literal = `${prefix}a*b?[c]\\d:`;
    const keys = [
      `${literal}1`,
      `${literal}2`,
      `${prefix}aXb?[c]\\d:3`,
      `${prefix}a*bZc\\d:4`,
      `${prefix}a*b?c\\d:5`,
    ];
    for (const k of keys) await shared.client.set(k, '1');
    const f = await keyCount(shared, { prefix: literal }).run(ctx());
    expect(f.data.keys).toBe(2);
    expect(f.data.pattern).toBe(`${prefix}a\\*b\\?\\[c\\]\\\\d:*`);
    expect(f.data.sample).toEqual([`${literal}…(1)`, `${literal}…(1)`]);
  });

  it('masks key names after the prefix and its namespace words: tokens and addresses never reach a finding', async () => {
    const p = `${prefix}mask:`;
    const token = 'sk-or-v1-0123456789abcdef0123';
    await shared.client.set(`${p}session:${token}`, '1');
    await shared.client.set(`${p}user:profile:alice@example.com`, '1');
    await shared.client.set(Buffer.concat([Buffer.from(`${p}bin:`), Buffer.from([0xff, 0x41])]), '1');
    const f = await keyCount(shared, { prefix: p }).run(ctx());
    expect([...f.data.sample].sort()).toEqual([
      `${p}bin:…(2)`,
      `${p}session:…(${token.length})`,
      `${p}user:profile:…(17)`,
    ]);
    const everything = JSON.stringify(f);
    expect(everything).not.toContain(token.slice(3));
    expect(everything).not.toContain('alice');
    // Without the prefix (counting every key), the namespace words still show what kind of key it is.
    await server.admin.flushall();
    await server.admin.set(`agent:generation:cache:${token}`, '1');
    const all = await keyCount(local, { prefix: '' }).run(ctx());
    expect(all.data.sample).toEqual([`agent:generation:cache:…(${token.length})`]);
    await server.admin.flushall();
  });

  it('stops after maxScanned and reports "at least N": unknown below a threshold, fail above it', async () => {
    await server.admin.flushall();
    for (let i = 0; i < 5_000; i += 500) {
      const pipeline = server.admin.pipeline();
      for (let j = i; j < i + 500; j++) pipeline.set(j % 2 ? `odd:${j}` : `even:${j}`, '1');
      await pipeline.exec();
    }
    const complete = await keyCount(local, { prefix: 'odd:' }).run(ctx());
    expect(complete.data).toMatchObject({ keys: 2_500, complete: true, dbsize: 5_000, scanned: 5_000 });

    const capped = await keyCount(local, {
      prefix: 'odd:',
      maxScanned: 1_000,
      scanCount: 200,
      warnAt: 4_000,
    }).run(ctx());
    expect(capped.data.complete).toBe(false);
    expect(capped.data.keys).toBeGreaterThan(0);
    expect(capped.data.keys).toBeLessThan(2_500);
    expect(capped.data.estimate).toBeGreaterThan(capped.data.keys);
    expect(capped.status).toBe('unknown');
    expect(capped.summary).toMatch(
      /^at least [\d,]+ keys starting with "odd:" on .*\(scan stopped after about 1,000 of 5,000 keys; about [\d,]+ in all\): raise maxScanned to judge against 4000$/,
    );
    const failing = await keyCount(local, {
      prefix: 'odd:',
      maxScanned: 1_000,
      scanCount: 200,
      failAt: 10,
    }).run(ctx());
    expect(failing.status).toBe('fail');
    await server.admin.flushall();
  });
});

describe('snapshotStatus', () => {
  it('refuses warnAfter above failAfter, and names a malformed duration, when it is built', () => {
    expect(fieldIssues(() => snapshotStatus(local, { warnAfter: '2h', failAfter: '1h' }))).toEqual([
      'warnAfter: warnAfter must not exceed failAfter',
    ]);
    expect(fieldIssues(() => snapshotStatus(local, { warnAfter: '1 hour' }))).toEqual([
      'warnAfter: expected a duration such as "500ms", "30s", "5m", "1h" or "2d"',
    ]);
  });

  it('warn when nothing is persisted (no save points, no AOF)', async () => {
    const f = await snapshotStatus(local).run(ctx());
    expect(f.status).toBe('warn');
    expect(f.data).toMatchObject({ savePoints: '', aofEnabled: false, lastBgsaveStatus: 'ok' });
    expect(f.data.reasons).toEqual([
      'no persistence configured (save "" and appendonly no): a restart loses every key',
    ]);
    expect((await snapshotStatus(local, { requirePersistence: false }).run(ctx())).status).toBe('ok');
  });

  it('ok right after a save; warn, then fail, as unsaved changes age', async () => {
    await server.admin.config('SET', 'save', '3600 1');
    await server.admin.save();
    const fresh = await snapshotStatus(local).run(ctx());
    expect(fresh.status).toBe('ok');
    expect(fresh.data).toMatchObject({
      changesSinceLastSave: 0,
      savePoints: '3600 1',
      bgsaveInProgress: false,
    });
    expect(fresh.summary).toMatch(/^Last RDB save \d+ms ago \(ok\), 0 changes since; AOF off$/);

    await server.admin.set('unsaved', '1');
    await vi.waitFor(
      async () => {
        const [now] = await server.admin.time();
        const last = Number(/rdb_last_save_time:(\d+)/.exec(await server.admin.info('persistence'))?.[1]);
        expect(Number(now) - last).toBeGreaterThanOrEqual(3);
      },
      { timeout: 6_000, interval: 200 },
    );
    const warn = await snapshotStatus(local, { warnAfter: '2s', failAfter: '1h' }).run(ctx());
    expect(warn.status).toBe('warn');
    expect(warn.summary).toMatch(/: unsaved changes for [\d.]+s \(warn after 2s\): a crash now loses them$/);
    const fail = await snapshotStatus(local, { warnAfter: '1s', failAfter: '2s' }).run(ctx());
    expect(fail.status).toBe('fail');
    await server.admin.config('SET', 'save', '');
  });

  it('fail when the last background save failed', async () => {
    const gone = join(server.dir, 'gone');
    await mkdir(gone);
    await server.admin.config('SET', 'dir', gone);
    await rm(gone, { recursive: true });
    await server.admin.bgsave();
    await vi.waitFor(
      async () => expect(await server.admin.info('persistence')).toContain('rdb_last_bgsave_status:err'),
      {
        timeout: 5_000,
        interval: 50,
      },
    );
    const f = await snapshotStatus(local).run(ctx());
    expect(f.status).toBe('fail');
    expect(f.data.reasons[0]).toMatch(/^the last background save failed/);
    await server.admin.config('SET', 'dir', server.dir);
    await server.admin.bgsave();
    await vi.waitFor(
      async () => expect(await server.admin.info('persistence')).toContain('rdb_last_bgsave_status:ok'),
      {
        timeout: 5_000,
        interval: 50,
      },
    );
  });

  it('reads AOF status: with AOF on, nothing is lost to an old RDB save', async () => {
    const aof = await startTestRedis({ args: ['--appendonly', 'yes'] });
    const r = connectRedis({ url: aof.url });
    try {
      await aof.admin.set('k', 'v');
      const f = await snapshotStatus(r, { warnAfter: 0, failAfter: 0 }).run(ctx());
      expect(f.data).toMatchObject({ aofEnabled: true, aofLastWriteStatus: 'ok', changesSinceLastSave: 1 });
      expect(f.status).toBe('ok');
      expect(f.summary).toMatch(/; AOF on \(last write ok\)$/);
    } finally {
      await r.close();
      await aof.stop();
    }
  });
});
