import { createServer, type Server, Socket } from 'node:net';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { defineRunbook } from '../../src/core/runbook';
import { Engine } from '../../src/engine/engine';
import { connectRedis } from '../../src/redis/connection';
import { blockIps } from '../../src/security/block-ips';
import { blocklistHook, ipBlocklist } from '../../src/security/ip-blocklist';
import { SHARED_REDIS_URL } from '../support/redis-server';
import { postgresStore, type StoreUnderTest, uniqueSchema } from '../support/stores';
import { execute } from './support';

// The blocklist on the real Redis, database 12 (no other test file uses it), under this file's own key.

const redis = connectRedis({ url: `${SHARED_REDIS_URL.replace(/\/\d*$/, '')}/12`, name: 'sec' });
const key = `sec_test:blocklist:${process.pid}:${Date.now().toString(36)}`;
const members = async () => redis.client.zrangebyscore(key, '-inf', '+inf', 'WITHSCORES');

beforeEach(async () => {
  await redis.client.del(key);
});
afterAll(async () => {
  await redis.client.del(key);
  await redis.close();
});

describe('blockIps', () => {
  it('adds each address with its end, verifies, and reverts only what it added', async () => {
    const longer = Date.now() + 5 * 3_600_000;
    await redis.client.zadd(key, longer, '192.0.2.1'); // someone's 5 h block: must stay as it is
    const run = await execute(
      blockIps(redis, { key, ips: ['203.0.113.9', '198.51.100.0/24', '192.0.2.1'], duration: '1h' }),
    );
    expect(run.plan.changes).toEqual([
      { target: `redis:sec/${key}`, field: 'blocklist[203.0.113.9]', before: null, after: { for: '1h' } },
      { target: `redis:sec/${key}`, field: 'blocklist[198.51.100.0/24]', before: null, after: { for: '1h' } },
      {
        target: `redis:sec/${key}`,
        field: 'blocklist[192.0.2.1]',
        before: { until: new Date(longer).toISOString() },
        after: { for: '1h' },
      },
    ]);
    expect(run.verification?.status).toBe('ok');
    const until = run.data.until;
    expect(until - Date.now()).toBeGreaterThan(3_590_000);
    expect(await members()).toEqual([
      '198.51.100.0/24',
      String(until),
      '203.0.113.9',
      String(until),
      '192.0.2.1',
      String(longer),
    ]);
    // The set lives as long as its longest block, not shorter.
    expect(await redis.client.pttl(key)).toBeGreaterThan(longer - Date.now() - 10_000);

    // Someone else extends one of ours meanwhile: revert leaves that one.
    await redis.client.zadd(key, until + 60_000, '203.0.113.9');
    await run.revert();
    expect(await members()).toEqual(['203.0.113.9', String(until + 60_000), '192.0.2.1', String(longer)]);
  });

  it('validates every address with zod, naming the bad one', () => {
    expect(() => blockIps(redis, { key, ips: ['203.0.113.9', '300.1.1.1'] })).toThrow(
      /ips\[1\]: expected an IPv4\/IPv6 address or CIDR block .* got "300.1.1.1"/,
    );
    expect(() => blockIps(redis, { key, ips: ['10.0.0.0/33'] })).toThrow(/ips\[0\]/);
    expect(() => blockIps(redis, { key, ips: [] })).toThrow(/give at least one address/);
    expect(blockIps(redis, { key, ips: ['2001:db8::/48', '2001:db8::1'] }).expiresAfter).toBe(3_600_000);
  });

  it('refuses blocks wider than /16 (IPv4) or /48 (IPv6), and needs approval for those wider than /24 or /64', () => {
    expect(() => blockIps(redis, { key, ips: ['203.0.113.9', '0.0.0.0/0'] })).toThrow(
      /ips\[1\]: "0.0.0.0\/0" is too wide to block: IPv4 blocks may be at most \/16/,
    );
    expect(() => blockIps(redis, { key, ips: ['::/0'] })).toThrow(
      /ips\[0\]: "::\/0" is too wide .* IPv6 blocks may be at most \/48/,
    );
    expect(() => blockIps(redis, { key, ips: ['10.0.0.0/15'] })).toThrow(/too wide/);
    expect(() => blockIps(redis, { key, ips: ['2001:db8::/47'] })).toThrow(/too wide/);
    expect(blockIps(redis, { key, ips: ['203.0.113.9', '198.51.100.0/24', '2001:db8:1:2::/64'] }).risk).toBe(
      'medium',
    );
    expect(blockIps(redis, { key, ips: ['203.0.113.9', '10.1.0.0/16'] }).risk).toBe('high');
    expect(blockIps(redis, { key, ips: ['198.51.100.0/23'] }).risk).toBe('high');
    expect(blockIps(redis, { key, ips: ['2001:db8::/48'] }).risk).toBe('high');
  });
});

describe('ipBlocklist (enforcement)', () => {
  it('answers per address and range, ignores ended blocks, and caches reads', async () => {
    const now = Date.now();
    await redis.client.zadd(
      key,
      now + 60_000,
      '203.0.113.9',
      now + 60_000,
      '198.51.100.0/24',
      now + 60_000,
      '2001:db8::/32',
      now - 1,
      '192.0.2.7',
    );
    const list = ipBlocklist(redis.client, { key, cacheTtl: '1m' });
    expect(await list.isBlocked('203.0.113.9')).toBe(true);
    expect(await list.isBlocked('::ffff:203.0.113.9')).toBe(true);
    expect(await list.isBlocked('198.51.100.200')).toBe(true);
    expect(await list.isBlocked('2001:db8:1::5')).toBe(true);
    expect(await list.isBlocked('192.0.2.7')).toBe(false); // its block ended
    expect(await list.isBlocked('203.0.113.10')).toBe(false);
    expect(await list.isBlocked('not an address')).toBe(false);
    // Cached for a minute: a new block shows after invalidate (or the TTL).
    await redis.client.zadd(key, now + 60_000, '203.0.113.10');
    expect(await list.isBlocked('203.0.113.10')).toBe(false);
    list.invalidate();
    expect(await list.isBlocked('203.0.113.10')).toBe(true);
    expect((await list.entries()).map((e) => e.block).sort()).toEqual([
      '198.51.100.0/24',
      '2001:db8::/32',
      '203.0.113.10',
      '203.0.113.9',
    ]);
  });

  it('answers within readTimeout while Redis stalls: from the cache without ended blocks, else by onError', async () => {
    const now = Date.now();
    await redis.client.zadd(key, now + 60_000, '203.0.113.9', now + 600_000, '198.51.100.0/24');
    const proxy = await redisProxy();
    const client = new Redis({ host: '127.0.0.1', port: proxy.port, db: 12, maxRetriesPerRequest: null });
    const fresh = new Redis({ host: '127.0.0.1', port: proxy.port, db: 12, maxRetriesPerRequest: null });
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const list = ipBlocklist(client, { key, cacheTtl: '1s', readTimeout: '100ms' });
      expect(await list.isBlocked('203.0.113.9')).toBe(true);

      // Redis stops answering (the connection stays open, as in a network partition) and 2 minutes pass.
      proxy.stall();
      vi.setSystemTime(now + 120_000);
      const started = performance.now();
      expect(await list.isBlocked('203.0.113.9')).toBe(false); // its block ended during the outage
      expect(await list.isBlocked('198.51.100.7')).toBe(true); // still on: 10 minutes
      expect(performance.now() - started).toBeLessThan(1_000);

      // Nothing cached: onError decides, also within the timeout.
      const app = Fastify();
      app.addHook('onRequest', blocklistHook(ipBlocklist(fresh, { key, readTimeout: 100, onError: 'deny' })));
      app.get('/api/health', async () => ({ ok: true }));
      try {
        const t = performance.now();
        const denied = await app.inject({ method: 'GET', url: '/api/health', remoteAddress: '192.0.2.1' });
        expect(denied.statusCode).toBe(403);
        expect(performance.now() - t).toBeLessThan(1_000);
      } finally {
        await app.close();
      }
      expect(await ipBlocklist(fresh, { key, readTimeout: 100 }).isBlocked('192.0.2.1')).toBe(false);
    } finally {
      vi.useRealTimers();
      client.disconnect();
      fresh.disconnect();
      await proxy.close();
    }
  });

  it('the Fastify hook answers 403 to a blocked client and lets others through', async () => {
    await redis.client.zadd(key, Date.now() + 60_000, '203.0.113.9');
    const app = Fastify();
    app.addHook('onRequest', blocklistHook(ipBlocklist(redis.client, { key })));
    app.get('/api/health', async () => ({ ok: true }));
    try {
      const blocked = await app.inject({ method: 'GET', url: '/api/health', remoteAddress: '203.0.113.9' });
      expect(blocked.statusCode).toBe(403);
      expect(blocked.json()).toEqual({
        error: { code: 'IP_BLOCKED', message: 'Requests from 203.0.113.9 are blocked.' },
      });
      const other = await app.inject({ method: 'GET', url: '/api/health', remoteAddress: '203.0.113.77' });
      expect(other.statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});

describe('engine: an expired IP block is reverted', () => {
  let sut: StoreUnderTest;
  beforeAll(async () => {
    sut = await postgresStore(uniqueSchema('sec_test'));
  });
  afterAll(async () => {
    await sut?.dispose();
  });

  it('reverts the block when its duration passes, by a new engine', async () => {
    const runbook = defineRunbook({
      id: 'block-attackers',
      title: 'Block attackers',
      severity: 'P1',
      input: z.object({ ips: z.array(z.string()) }),
      async run({ step, input }) {
        await step.act('block', blockIps(redis, { key, ips: input.ips, duration: '1h' }));
      },
    });
    const store = sut.store;
    const engine = new Engine({ store, runbooks: [runbook], leaseTtl: '5s' });
    const run = await engine.start(
      'block-attackers',
      { ips: ['203.0.113.9'] },
      { mode: 'execute', actor: 'sec' },
    );
    expect(run.status).toBe('succeeded');
    const list = ipBlocklist(redis.client, { key, cacheTtl: 0 });
    expect(await list.isBlocked('203.0.113.9')).toBe(true);
    expect(await engine.revertExpired()).toBe(0);

    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 61 * 60_000);
      const later = new Engine({ store, runbooks: [runbook], leaseTtl: '5s' });
      expect(await later.revertExpired()).toBe(1);
    } finally {
      vi.useRealTimers();
    }
    expect(await members()).toEqual([]);
    expect((await store.listExpiring()).find((x) => x.runId === run.runId)?.status).toBe('reverted');
  });
});

/**
 * A TCP proxy to the test Redis that can stall: after `stall()` it keeps every connection open and forwards
 * nothing, as a partitioned or hung Redis looks to a client (ioredis then waits, it gets no error).
 */
async function redisProxy(): Promise<{ port: number; stall(): void; close(): Promise<void> }> {
  const upstream = new URL(SHARED_REDIS_URL);
  let stalled = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const up = new Socket();
    up.connect(Number(upstream.port || 6379), upstream.hostname);
    for (const s of [client, up]) {
      sockets.add(s);
      s.on('error', () => s.destroy());
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (chunk) => {
      if (!stalled) up.write(chunk);
    });
    up.on('data', (chunk) => {
      if (!stalled) client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    port: address.port,
    stall() {
      stalled = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
