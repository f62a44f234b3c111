import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { isInputValidationError } from '../../src/core/errors';
import type { Action, Applied } from '../../src/core/step';
import { bgsave, clearCache, flushDb } from '../../src/redis/actions';
import { keyCount } from '../../src/redis/checks';
import { connectRedis, type RedisInstance } from '../../src/redis/connection';
import { parseInfo } from '../../src/redis/info';
import { SDK_KEY_NAMESPACES } from '../../src/redis/sdk-key-namespaces';
import { breakerKeys, DEFAULT_BREAKER_PREFIX } from '../../src/resilience/breaker-control-keys';
import { RateLimiterOptions } from '../../src/resilience/rate-limiter';
import { RequestQueueOptions } from '../../src/resilience/request-queue';
import { DisableStrictModeOptions } from '../../src/resilience/strict-mode';
import { strictModeKey } from '../../src/resilience/strict-mode-state';
import { sealAsEngine, stepContext } from '../support/kubernetes';
import { SHARED_REDIS_URL, startTestRedis, type TestRedis, uniquePrefix } from '../support/redis-server';

// Every action against real Redis 7.0, as the engine drives it (plan → sealed plan → apply → verify): the
// cache clear on the shared server under unique prefixes, FLUSHDB and BGSAVE on a private server of this file.

const ctx = () => stepContext();
const shared = connectRedis({ url: SHARED_REDIS_URL, name: 'shared' });
const root = uniquePrefix('actions');
let server: TestRedis;
let local: RedisInstance;

beforeAll(async () => {
  server = await startTestRedis({ args: ['--enable-protected-configs', 'yes'] });
  local = connectRedis({ url: server.url, name: 'private' });
  // A key outside every prefix below: even alone on the shared server, no prefix covers the whole database.
  await shared.client.set(`${root}neighbour`, '1', 'EX', 600);
});

afterAll(async () => {
  const keys = await shared.client.keysBuffer(`${root.replace(/[*?[\]\\]/g, '\\$&')}*`);
  for (let i = 0; i < keys.length; i += 1_000) await shared.client.del(...keys.slice(i, i + 1_000));
  await shared.close();
  await local?.close();
  await server?.stop();
});

/** plan → seal (redacted, as stored) → apply → verify, as the engine drives them. */
async function execute<P, A>(action: Action<P, A>) {
  const c = ctx();
  const plan = sealAsEngine(action, await action.plan(c));
  const data = await action.apply(c, plan);
  const applied: Applied<P, A> = { plan, data, appliedAt: new Date().toISOString(), recovered: false };
  const verification = action.verify ? await action.verify(c, applied) : undefined;
  return { plan, applied, data, verification };
}

async function setMany(client: RedisInstance['client'], keys: string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 1_000) {
    const pipeline = client.pipeline();
    for (const k of keys.slice(i, i + 1_000)) pipeline.set(k, 'cached', 'EX', 600);
    await pipeline.exec();
  }
}

const count = async (r: RedisInstance, prefix: string) =>
  (await keyCount(r, { prefix }).run(ctx())).data.keys;

describe('clearCache', () => {
  it('deletes 5,000 keys of a prefix in batches, and nothing else', async () => {
    const p = `${root}agent:cache:`;
    await setMany(
      shared.client,
      Array.from({ length: 5_000 }, (_, i) => `${p}${i}`),
    );
    const neighbours = [
      `${root}agent:cache`,
      `${root}agent:cachex:1`,
      `${root}agent:queue`,
      `${root}other:1`,
    ];
    await setMany(shared.client, neighbours);

    const action = clearCache(shared, { prefix: p, batchSize: 500 });
    expect(action).toMatchObject({ kind: 'redis.clear-cache', risk: 'medium', destructive: false });
    expect(action.target).toBe(`redis:shared/db/0/keys/${encodeURIComponent(p)}`);
    const { plan, data, verification } = await execute(action);
    expect(plan.summary).toMatch(
      new RegExp(
        `^UNLINK 5,000 keys starting with "${p}" on 127\\.0\\.0\\.1:6379/0 \\(strings with a TTL; at most 10,000\\), e\\.g\\. .*\\. Not revertable: deleted keys are gone`,
      ),
    );
    expect(plan.changes).toEqual([
      {
        target: action.target,
        field: `keys "${p}*" (strings with a TTL)`,
        before: '1,000 to 9,999 keys',
        after: 'no keys',
      },
    ]);
    expect(plan.params).toMatchObject({ prefix: p, keysAtPlan: 5_000, db: 0, batchSize: 500 });
    expect(plan.params.sample).toHaveLength(10);
    expect(plan.params.sample.every((k) => /…\(\d+\)$/.test(k))).toBe(true);
    expect(data).toEqual({ deleted: 5_000, skipped: 0, batches: 10 });
    expect(verification).toMatchObject({
      status: 'ok',
      summary: `No keys starting with "${p}" on 127.0.0.1:6379/0 left (5,000 keys at plan time)`,
    });
    expect(await count(shared, p)).toBe(0);
    expect(await shared.client.exists(...neighbours)).toBe(neighbours.length);
  });

  it('treats glob characters in the prefix literally', async () => {
    const p = `${root}c*[1]?\\:`;
    const mine = [`${p}a`, `${p}b`];
    // Each would match if the prefix were a pattern: * as anything, [1] as "1", ? as any one character, \\: as ":".
    const decoys = [`${root}cX1Y\\:a`, `${root}c*1Z:b`, `${root}c[1]?\\:`.slice(0, -1), `${root}c*[1]?:c`];
    await setMany(shared.client, [...mine, ...decoys]);
    const { plan, data } = await execute(clearCache(shared, { prefix: p }));
    expect(plan.params.pattern).toBe(`${root}c\\*\\[1\\]\\?\\\\:*`);
    expect(data.deleted).toBe(2);
    expect(await shared.client.exists(...mine)).toBe(0);
    expect(await shared.client.exists(...decoys)).toBe(decoys.length);
  });

  it('refuses an empty prefix, or one of glob characters only, when it is built', () => {
    const issues = (prefix: string) => {
      try {
        clearCache(shared, { prefix });
      } catch (e) {
        if (isInputValidationError(e)) return e.issues.map((i) => `${i.path}: ${i.message}`);
      }
      return [];
    };
    expect(issues('')).toEqual([
      'prefix: give the prefix of the keys to delete; to empty a whole database, use flushDb',
    ]);
    expect(issues('*')).toEqual([expect.stringMatching(/^prefix: the prefix is matched literally/)]);
    expect(issues('[*] ')).toHaveLength(1);
  });

  it('has nothing to do when no key matches, and refuses a prefix wider than maxKeys', async () => {
    const none = await clearCache(shared, { prefix: `${root}none:` }).plan(ctx());
    expect(none.changes).toEqual([]);
    const p = `${root}wide:`;
    await setMany(
      shared.client,
      Array.from({ length: 30 }, (_, i) => `${p}${i}`),
    );
    await expect(
      clearCache(shared, { prefix: p, maxKeys: 20, scanCount: 10 }).plan(ctx()),
    ).rejects.toMatchObject({
      code: 'REDIS_TOO_MANY_KEYS',
      retriable: false,
    });
    expect(await count(shared, p)).toBe(30);
  });

  it('leaves what is not a cache under the prefix: the request queue (a list), keys without a TTL, other types', async () => {
    const p = `${root}svc:agent:`;
    const token = 'sk-or-v1-0123456789abcdef0123';
    const cached = [`${p}cache:1`, `${p}cache:2`, `${p}cache:session:${token}`];
    await setMany(shared.client, cached);
    await shared.client.rpush(`${p}requests:queue`, 'r1', 'r2');
    await shared.client.set(`${p}config`, 'kept: no TTL');
    await shared.client.hset(`${p}cache:h`, 'a', '1');
    await shared.client.expire(`${p}cache:h`, 600);

    const action = clearCache(shared, { prefix: p });
    const { plan, data, verification } = await execute(action);
    expect(plan.params).toMatchObject({
      keysAtPlan: 3,
      matchedAtPlan: 6,
      skippedAtPlan: { persistent: 1, otherType: 2 },
      types: ['string'],
      includePersistent: false,
    });
    expect(plan.summary).toContain(
      '; leaves 3 other keys with the prefix: 1 without a TTL, 2 of another type (hash, list), e.g. ',
    );
    // Key names are masked after the prefix and its namespace words: the session token is not shown.
    expect(plan.params.sample).toContain(`${p}cache:session:…(${token.length})`);
    expect(JSON.stringify(plan)).not.toContain(token.slice(3));
    expect(data).toEqual({ deleted: 3, skipped: 3, batches: 1 });
    expect(verification).toMatchObject({
      status: 'ok',
      summary: expect.stringMatching(/\(3 other keys left: not strings, or without a TTL\)$/),
      data: { remaining: 0, skipped: 3 },
    });
    expect(await shared.client.exists(...cached)).toBe(0);
    expect(await shared.client.llen(`${p}requests:queue`)).toBe(2);
    expect(await shared.client.exists(`${p}config`, `${p}cache:h`)).toBe(2);

    // Asked for explicitly: hashes, and keys without a TTL; the queue (a list) still stays.
    const wider = await execute(
      clearCache(shared, { prefix: p, types: ['string', 'hash'], includePersistent: true }),
    );
    expect(wider.data).toEqual({ deleted: 2, skipped: 1, batches: 1 });
    expect(await shared.client.llen(`${p}requests:queue`)).toBe(2);

    // Nothing but the queue left: nothing to do.
    const queueOnly = await clearCache(shared, { prefix: p }).plan(ctx());
    expect(queueOnly.changes).toEqual([]);
    expect(queueOnly.summary).toMatch(
      /: nothing to do; leaves 1 other key with the prefix: 1 of another type \(list\)/,
    );
  });

  it('apply never deletes more than the plan allows: maxGrowth times the planned count, and maxKeys', async () => {
    const p = `${root}grow:`;
    const keys = (from: number, n: number) => Array.from({ length: n }, (_, i) => `${p}${from + i}`);
    await setMany(shared.client, keys(0, 10));
    const action = clearCache(shared, { prefix: p });
    const plan = sealAsEngine(action, await action.plan(ctx()));
    expect(plan.params).toMatchObject({ keysAtPlan: 10, maxDelete: 110 });
    expect(plan.summary).toContain('(strings with a TTL; at most 110)');
    // Between plan and apply the prefix came to cover 300 more keys.
    await setMany(shared.client, keys(10, 300));
    await expect(action.apply(ctx(), plan)).rejects.toMatchObject({
      code: 'REDIS_TOO_MANY_KEYS',
      retriable: false,
      details: { maxDelete: 110, keysAtPlan: 10, deleted: 110 },
    });
    expect(await count(shared, p)).toBe(200);

    // maxKeys bounds the apply too: 200 planned, growth allows 400, maxKeys 250.
    const capped = clearCache(shared, { prefix: p, maxKeys: 250, batchSize: 50 });
    const cappedPlan = sealAsEngine(capped, await capped.plan(ctx()));
    expect(cappedPlan.params).toMatchObject({ keysAtPlan: 200, maxDelete: 250 });
    await setMany(shared.client, keys(1_000, 100));
    await expect(capped.apply(ctx(), cappedPlan)).rejects.toMatchObject({
      code: 'REDIS_TOO_MANY_KEYS',
      details: { maxDelete: 250, deleted: 250 },
    });
    expect(await count(shared, p)).toBe(50);
  });

  it('refuses a prefix every key of the database starts with: that is flushDb, with its approval', async () => {
    await server.admin.flushall();
    await setMany(server.admin, ['agent:cache:1', 'agent:cache:2', 'agent:requests:queue:marker']);
    await expect(clearCache(local, { prefix: 'agent:' }).plan(ctx())).rejects.toMatchObject({
      code: 'REDIS_PREFIX_COVERS_DB',
      retriable: false,
      message: expect.stringMatching(/^Every key of db 0 on .* \(3 keys\) starts with "agent:": refusing/),
    });
    const narrower = await clearCache(local, { prefix: 'agent:cache:' }).plan(ctx());
    expect(narrower.params.keysAtPlan).toBe(2);
    await server.admin.flushall();
  });

  it('leaves the SDK’s own state under its default prefixes, though some of it is strings with a TTL, unless the prefix names it', async () => {
    await server.admin.flushall();
    const sdkState = [
      'aiwebtest:breaker:{backend}:replica:pod-1', // a breaker control heartbeat
      'ratelimit:login:gcra:203.0.113.7', // GCRA limiter state
      'ratelimit:strict-mode:backend', // strict mode with expiresAfter
      '{agent:requests:queue}:rate', // the request queue's drain rate
    ];
    const caches = ['agent:cache:1', 'agent:cache:2', 'ai:cache:1', 'rcache:1', '{agent}:cache:1'];
    await setMany(server.admin, [...sdkState, ...caches, 'zzz:outside']);
    await server.admin.rpush('agent:requests:queue', 'r1');

    const wide = await execute(clearCache(local, { prefix: 'a' }));
    expect(wide.plan.params).toMatchObject({
      keysAtPlan: 3,
      matchedAtPlan: 5,
      skippedAtPlan: { sdkState: 2, persistent: 0, otherType: 0 },
      sdkNamespaces: ['aiwebtest:breaker', 'agent:requests:queue'],
    });
    expect(wide.plan.summary).toContain(
      "; leaves 2 other keys with the prefix: 2 of the SDK's own state (breaker control, the request queue), e.g. ",
    );
    expect(wide.data).toEqual({ deleted: 3, skipped: 2, batches: 1 });
    expect(wide.verification).toMatchObject({
      status: 'ok',
      summary: expect.stringMatching(/\(2 other keys left: 2 of the SDK's own state\)$/),
      data: { remaining: 0, skipped: 0, sdkState: 2 },
    });

    const r = await execute(clearCache(local, { prefix: 'r' }));
    expect(r.data).toEqual({ deleted: 1, skipped: 2, batches: 1 });
    const brace = await execute(clearCache(local, { prefix: '{' }));
    expect(brace.data).toEqual({ deleted: 1, skipped: 1, batches: 1 });
    expect(await server.admin.exists(...sdkState)).toBe(sdkState.length);
    expect(await server.admin.llen('agent:requests:queue')).toBe(1);
    expect(await server.admin.exists(...caches)).toBe(0);

    // A prefix that starts with a namespace asks for its keys by name.
    const named = await execute(clearCache(local, { prefix: 'ratelimit:login:' }));
    expect(named.plan.params.sdkNamespaces).toEqual([]);
    expect(named.data.deleted).toBe(1);
    expect(await server.admin.exists('ratelimit:login:gcra:203.0.113.7')).toBe(0);
    expect((await execute(clearCache(local, { prefix: 'ratelimit' }))).data.deleted).toBe(1);
    expect(await server.admin.exists('ratelimit:strict-mode:backend')).toBe(0);
    await server.admin.flushall();
  });

  it('the SDK namespaces it leaves are the defaults of breaker control, the limiters, strict mode and the queue', () => {
    const limiter = RateLimiterOptions.parse({ name: 'login', limit: 5, period: '1m' });
    const queueKey = RequestQueueOptions.parse({}).key;
    expect(SDK_KEY_NAMESPACES.map((n) => n.root)).toEqual([
      DEFAULT_BREAKER_PREFIX,
      limiter.prefix,
      queueKey,
      `{${queueKey}}`,
    ]);
    expect(DisableStrictModeOptions.parse({}).prefix).toBe(limiter.prefix);
    // Each namespace's keys are `<root>` and `<root>:…`: the ones the components write.
    expect(strictModeKey(limiter.prefix, 'backend').startsWith(`${limiter.prefix}:`)).toBe(true);
    expect(breakerKeys(DEFAULT_BREAKER_PREFIX, 'backend').replica('pod-1')).toMatch(/^aiwebtest:breaker:/);
  });

  it('counts each key once before refusing a prefix that covers the database; wholeDatabase allows one', async () => {
    await server.admin.flushall();
    await setMany(server.admin, ['agent:cache:1', 'agent:cache:2', 'agent:cache:3', 'other']);
    // SCAN may return a key more than once (while Redis resizes its table); this instance's SCAN replies repeat
    // every key, as such a scan would. Everything else is the real server.
    const repeating = new Proxy(local, {
      get(target, property) {
        if (property === 'run') {
          return async (
            what: string,
            work: (c: RedisInstance['client']) => Promise<unknown>,
            signal?: AbortSignal,
          ) => {
            const reply = await target.run(what, work, signal);
            if (what !== 'SCAN') return reply;
            const [cursor, keys] = reply as [string, Buffer[]];
            return [cursor, [...keys, ...keys]];
          };
        }
        const value = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const plan = await clearCache(repeating, { prefix: 'agent:cache:' }).plan(ctx());
    expect(plan.params).toMatchObject({ keysAtPlan: 3, matchedAtPlan: 3 });

    // A database that holds nothing but the cache: refused unless asked for.
    await server.admin.del('other');
    await expect(clearCache(repeating, { prefix: 'agent:cache:' }).plan(ctx())).rejects.toMatchObject({
      code: 'REDIS_PREFIX_COVERS_DB',
      message: expect.stringContaining('set wholeDatabase: true'),
    });
    const whole = await execute(clearCache(local, { prefix: 'agent:cache:', wholeDatabase: true }));
    expect(whole.plan.params).toMatchObject({ keysAtPlan: 3, wholeDatabase: true });
    expect(whole.data.deleted).toBe(3);
    expect(await server.admin.dbsize()).toBe(0);
  });

  it('runs its delete script by EVALSHA (cached on the server), falling back to EVAL after a SCRIPT FLUSH', async () => {
    await server.admin.flushall();
    await server.admin.script('FLUSH');
    await server.admin.config('RESETSTAT');
    for (let round = 0; round < 2; round++) {
      await setMany(server.admin, ['sha:1', 'sha:2', 'other']);
      expect((await execute(clearCache(local, { prefix: 'sha:' }))).data.deleted).toBe(2);
    }
    const stats = parseInfo(await server.admin.info('commandstats'));
    // First apply: EVALSHA answers NOSCRIPT, EVAL runs and caches the script; the second runs it by its SHA.
    expect(stats.cmdstat_evalsha).toMatch(/^calls=2,/);
    expect(stats.cmdstat_eval).toMatch(/^calls=1,/);
    await server.admin.flushall();
  });

  it('verify: keys written after the plan by live traffic pass; a key untouched since before the plan fails', async () => {
    const p = `${root}live:`;
    await setMany(
      shared.client,
      Array.from({ length: 20 }, (_, i) => `${p}${i}`),
    );
    const action = clearCache(shared, { prefix: p });
    const { applied, verification } = await execute(action);
    expect(verification?.status).toBe('ok');

    // Live traffic refills the cache, one value a small integer (Redis shares one object per such number).
    await shared.client.set(`${p}fresh`, 'recomputed answer', 'EX', 600);
    await shared.client.set(`${p}flag`, '1', 'EX', 600);
    const refilled = await action.verify?.(ctx(), applied);
    expect(refilled).toMatchObject({
      status: 'ok',
      summary: expect.stringMatching(
        new RegExp(
          `^No keys starting with "${p}" on .* from plan time left; 2 keys written since \\(\\d+ms\\) by live traffic \\(1 of them holds a shared small integer, whose age Redis does not keep per key\\)$`,
        ),
      ),
      data: { remaining: 2, leftOver: 0, sharedValues: 1 },
    });

    // A key last touched 1000 s ago (RESTORE … IDLETIME) cannot have been written since the plan.
    const payload = await shared.client.dumpBuffer(`${p}fresh`);
    await shared.client.restore(`${p}stale`, 600_000, payload as Buffer, 'IDLETIME', 1000);
    const stale = await action.verify?.(ctx(), applied);
    expect(stale).toMatchObject({
      status: 'fail',
      summary: expect.stringMatching(
        new RegExp(
          `^1 key starting with "${p}" last touched before the plan \\(\\d+ms ago\\) survived the delete, e\\.g\\. ${p}…\\(5\\)$`,
        ),
      ),
      data: { remaining: 3, leftOver: 1 },
    });
  });

  it('verify warns when an LFU policy hides how old the remaining keys are', async () => {
    await server.admin.flushall();
    await setMany(server.admin, ['lfu:1', 'lfu:2', 'other']);
    const action = clearCache(local, { prefix: 'lfu:' });
    const { applied } = await execute(action);
    await server.admin.set('lfu:3', '1', 'EX', 600);
    await server.admin.config('SET', 'maxmemory-policy', 'allkeys-lfu');
    try {
      const f = await action.verify?.(ctx(), applied);
      expect(f).toMatchObject({ status: 'warn', data: { remaining: 1, idleTracked: false } });
    } finally {
      await server.admin.config('SET', 'maxmemory-policy', 'noeviction');
    }
  });
});

describe('flushDb', () => {
  beforeEach(async () => {
    await server.admin.flushall();
  });

  it('plans the keys that will be lost, flushes exactly that database, verifies DBSIZE dropped', async () => {
    await setMany(server.admin, ['keep:1', 'keep:2']); // db 0, the instance's
    const db2 = server.admin.duplicate({ db: 2 });
    await setMany(
      db2,
      Array.from({ length: 30 }, (_, i) => `agent:cache:${i}`),
    );

    const action = flushDb(local, { db: 2 });
    expect(action).toMatchObject({
      kind: 'redis.flush-db',
      risk: 'high',
      destructive: true,
      target: 'redis:private/db/2',
    });
    const { plan, data, verification } = await execute(action);
    expect(plan.summary).toMatch(
      new RegExp(
        `^FLUSHDB ASYNC db 2 of 127\\.0\\.0\\.1:${server.port}: 30 keys will be lost, e\\.g\\. agent:cache:…\\(\\d\\), .*\\. Not revertable$`,
      ),
    );
    expect(plan.changes).toEqual([
      { target: 'redis:private/db/2', field: 'keys', before: '10 to 99 keys', after: 'no keys' },
    ]);
    expect(plan.params).toMatchObject({ db: 2, keysAtPlan: 30 });
    expect(data).toEqual({ dbsizeAfter: 0 });
    expect(verification).toMatchObject({
      status: 'ok',
      summary: `db 2 of 127.0.0.1:${server.port} is empty (30 keys flushed)`,
    });
    expect(await db2.dbsize()).toBe(0);
    expect(await server.admin.dbsize()).toBe(2);
    db2.disconnect();
  });

  it('on the instance’s own database; an empty one has nothing to do; verify fails when the keys are still there', async () => {
    const action = flushDb(local, { db: 0 });
    expect((await action.plan(ctx())).changes).toEqual([]);
    await setMany(server.admin, ['a', 'b', 'c']);
    const plan = sealAsEngine(action, await action.plan(ctx()));
    expect(plan.params.keysAtPlan).toBe(3);
    const notApplied = await action.verify?.(ctx(), {
      plan,
      data: null,
      appliedAt: new Date().toISOString(),
      recovered: true,
    });
    expect(notApplied).toMatchObject({
      status: 'fail',
      summary: expect.stringMatching(/still has 3 keys \(3 keys at plan time\)/),
    });
    await action.apply(ctx(), plan);
    expect(await server.admin.dbsize()).toBe(0);
    await server.admin.set('written-since', '1');
    const since = await action.verify?.(ctx(), {
      plan,
      data: { dbsizeAfter: 0 },
      appliedAt: new Date().toISOString(),
      recovered: false,
    });
    expect(since).toMatchObject({
      status: 'ok',
      summary: expect.stringMatching(/flushed \(3 keys\); 1 key written since by live traffic$/),
    });
  });
});

describe('bgsave', () => {
  const dumpFile = () => join(server.dir, 'dump.rdb');
  const saves = async () => Number(/rdb_saves:(\d+)/.exec(await server.admin.info('persistence'))?.[1]);

  it('writes a newer dump that holds the latest write', async () => {
    await server.admin.flushall();
    await server.admin.set('before-bgsave', '1');
    const before = await stat(dumpFile()).catch(() => null);
    await new Promise((r) => setTimeout(r, 20)); // a newer mtime than any earlier dump
    const action = bgsave(local);
    expect(action).toMatchObject({
      kind: 'redis.bgsave',
      risk: 'low',
      destructive: false,
      target: 'redis:private/rdb',
    });
    const { plan, data, verification } = await execute(action);
    expect(plan.summary).toMatch(
      /^BGSAVE on 127\.0\.0\.1:\d+\/0: a new snapshot \(last .* ago, ok; \d+ changes? since\)$/,
    );
    expect(plan.changes).toEqual([
      {
        target: 'redis:private/rdb',
        field: 'rdb_last_save_time',
        before: expect.any(String),
        after: 'a newer snapshot',
      },
    ]);
    expect(data.waitedForRunningSave).toBe(false);
    expect(verification).toMatchObject({
      status: 'ok',
      summary: expect.stringMatching(/^New snapshot of .* written at /),
    });
    const after = await stat(dumpFile());
    if (before) expect(after.mtimeMs).toBeGreaterThan(before.mtimeMs);
    const { readFile } = await import('node:fs/promises');
    expect((await readFile(dumpFile())).includes(Buffer.from('before-bgsave'))).toBe(true);
  });

  it('waits for a save that is already running, then saves again', async () => {
    await server.admin.flushall();
    await setMany(server.admin, ['s1', 's2', 's3', 's4']);
    await server.admin.config('SET', 'rdb-key-save-delay', '150000'); // 0.15 s per key: a save of about 0.6 s
    try {
      const start = await saves();
      await server.admin.bgsave();
      const c = ctx();
      const action = bgsave(local, { pollInterval: '50ms' });
      const plan = sealAsEngine(action, await action.plan(c));
      expect(plan.params.pollMs).toBe(50);
      expect(plan.summary).toMatch(/a save is running now, BGSAVE waits for it and saves again$/);
      const data = await action.apply(c, plan);
      expect(data.waitedForRunningSave).toBe(true);
      const f = await action.verify?.(c, {
        plan,
        data,
        appliedAt: new Date().toISOString(),
        recovered: false,
      });
      expect(f?.status).toBe('ok');
      expect(await saves()).toBe(start + 2);
    } finally {
      await server.admin.config('SET', 'rdb-key-save-delay', '0');
    }
  });

  it('verify stops waiting at once when the step is cancelled', async () => {
    await server.admin.flushall();
    await setMany(server.admin, ['s1', 's2', 's3', 's4', 's5']);
    await server.admin.config('SET', 'rdb-key-save-delay', '400000');
    try {
      const action = bgsave(local, { pollInterval: '50ms' });
      const plan = sealAsEngine(action, await action.plan(ctx()));
      const data = await action.apply(ctx(), plan);
      const controller = new AbortController();
      const waiting = action.verify?.(stepContext({ signal: controller.signal }), {
        plan,
        data,
        appliedAt: new Date().toISOString(),
        recovered: false,
      });
      setTimeout(() => controller.abort(new Error('step cancelled')), 150);
      const started = Date.now();
      await expect(waiting).rejects.toThrow('step cancelled');
      expect(Date.now() - started).toBeLessThan(1_000);
    } finally {
      await server.admin.config('SET', 'rdb-key-save-delay', '0');
      await vi.waitFor(
        async () => expect(await server.admin.info('persistence')).toContain('rdb_bgsave_in_progress:0'),
        {
          timeout: 5_000,
          interval: 50,
        },
      );
    }
  });

  it('verify fails when the save fails', async () => {
    const gone = join(server.dir, 'gone');
    await mkdir(gone);
    await server.admin.config('SET', 'dir', gone);
    await rm(gone, { recursive: true });
    try {
      const { verification } = await execute(bgsave(local, { pollInterval: '50ms' }));
      expect(verification).toMatchObject({
        status: 'fail',
        summary: expect.stringMatching(/failed \(rdb_last_bgsave_status:err\)/),
      });
    } finally {
      await server.admin.config('SET', 'dir', server.dir);
    }
  });
});
