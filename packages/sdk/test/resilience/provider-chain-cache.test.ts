import { randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ask, KEY_A, KEY_B, sample, useChainFixture } from './llm-fixture';

// The response cache against a real Redis (keys under a random prefix of this file, deleted afterwards), and
// request coalescing against the doubles.

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `test:llm-cache:${randomUUID()}:`;

let redis: Redis;
const llm = useChainFixture();
const chainFor = llm.chainFor;

beforeAll(() => {
  redis = new Redis(REDIS_URL);
});
afterAll(async () => {
  const keys = await redis.keys(`${PREFIX}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});
/** A cache prefix of one test. */
const prefixOf = () => `${PREFIX}${randomUUID().slice(0, 8)}:`;

describe('response cache (Redis)', () => {
  it('misses, stores the answer under the request’s hash with the TTL, then serves it without calling anyone', async () => {
    const prefix = prefixOf();
    const { chain, registry } = chainFor({ cache: { redis, prefix, ttl: '5m' } });
    const first = await chain.chat(ask('What is the p95 latency?'));
    expect(first).toMatchObject({ provider: 'openrouter', cached: false });
    const keys = await redis.keys(`${prefix}*`);
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(new RegExp(`^${prefix}[0-9a-f]{64}$`));
    const ttl = await redis.pttl(keys[0] as string);
    expect(ttl).toBeGreaterThan(290_000);
    expect(ttl).toBeLessThanOrEqual(300_000);
    const stored = (await redis.get(keys[0] as string)) as string;
    expect(JSON.parse(stored)).toMatchObject({ content: first.content, provider: 'openrouter' });
    for (const key of [KEY_A, KEY_B]) expect(stored).not.toContain(key);

    const second = await chain.chat(ask('What is the p95 latency?'));
    expect(second).toMatchObject({
      content: first.content,
      provider: 'openrouter',
      cached: true,
      attempts: [],
    });
    expect(llm.providers.openrouter.requests).toHaveLength(1);
    const text = await registry.metrics();
    expect(sample(text, 'llm_cache_hits_total{service="llm"}')).toBe(1);
    expect(sample(text, 'llm_cache_misses_total{service="llm"}')).toBe(1);
    expect(sample(text, 'llm_requests_total{service="llm",provider="openrouter",source="cache"}')).toBe(1);
  });

  it('the key is the normalized request (messages, settings, models), never the API key', async () => {
    const prefix = prefixOf();
    const { chain } = chainFor({ cache: { redis, prefix } });
    await chain.chat({ ...ask('q'), temperature: 0.2, stop: ['b', 'a'] });
    // The same request with stop sequences in another order: the same key.
    expect((await chain.chat({ ...ask('q'), temperature: 0.2, stop: ['a', 'b'] })).cached).toBe(true);
    // Another temperature: another key.
    expect((await chain.chat({ ...ask('q'), temperature: 0.3 })).cached).toBe(false);
    // Another chain with other API keys but the same providers and models shares the cache.
    const { chain: other } = chainFor({ cache: { redis, prefix }, keys: [KEY_B] });
    expect((await other.chat({ ...ask('q'), temperature: 0.2, stop: ['a', 'b'] })).cached).toBe(true);
    // `cache: false` neither reads nor writes.
    expect((await chain.chat(ask('fresh'), { cache: false })).cached).toBe(false);
    expect((await chain.chat(ask('fresh'))).cached).toBe(false);
  });

  it('an answer expires with its TTL', async () => {
    const prefix = prefixOf();
    const { chain } = chainFor({ cache: { redis, prefix, ttl: '1s' } });
    await chain.chat(ask('q'));
    expect((await chain.chat(ask('q'))).cached).toBe(true);
    await new Promise((r) => setTimeout(r, 1_300));
    expect((await chain.chat(ask('q'))).cached).toBe(false);
    expect(llm.providers.openrouter.requests).toHaveLength(2);
  });

  it('only successful answers are stored', async () => {
    const prefix = prefixOf();
    const { chain } = chainFor({ cache: { redis, prefix } });
    await expect(chain.chat({ ...ask('bad'), temperature: 9 })).rejects.toThrow(/HTTP 400/);
    llm.providers.openrouter.faults.inject({ kind: 'serverError' });
    llm.providers.ollama.faults.inject({ kind: 'serverError' });
    await expect(chain.chat(ask('down'))).rejects.toThrow(/No LLM provider/);
    expect(await redis.keys(`${prefix}*`)).toEqual([]);
    // A fallback's answer is a successful answer: stored, with the provider that gave it.
    llm.providers.openrouter.faults.clearAll();
    llm.providers.openrouter.faults.inject({ kind: 'outage' });
    llm.providers.ollama.faults.clearAll();
    expect((await chain.chat(ask('fallback'))).provider).toBe('ollama');
    expect(await chain.chat(ask('fallback'))).toMatchObject({ provider: 'ollama', cached: true });
  });

  it('cache errors never fail a call: an unreachable Redis, a Redis that does not answer, a value that is not ours', async () => {
    // Nothing listens on this port (a server is opened to reserve one, then closed).
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const unreachable = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    unreachable.on('error', () => {});
    // A server that accepts connections and never answers: ioredis waits, the cache's timeout does not.
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const mute = new Redis({
      port: (silent.address() as { port: number }).port,
      host: '127.0.0.1',
      maxRetriesPerRequest: 1,
      retryStrategy: () => null,
    });
    mute.on('error', () => {});
    try {
      for (const client of [unreachable, mute]) {
        const { chain, registry } = chainFor({ cache: { redis: client, timeout: 200 } });
        const errors: unknown[] = [];
        chain.onCacheError((e) => errors.push(e));
        const started = Date.now();
        const result = await chain.chat(ask('q'));
        expect(result).toMatchObject({ provider: 'openrouter', cached: false });
        expect(Date.now() - started).toBeLessThan(1_500);
        expect(errors.length).toBeGreaterThanOrEqual(1);
        expect(errors[0]).toMatchObject({ code: 'RESPONSE_CACHE_ERROR' });
        expect(
          sample(await registry.metrics(), 'llm_cache_errors_total{service="llm"}'),
        ).toBeGreaterThanOrEqual(1);
      }
      // A value under the key that is not a cached answer: reported, treated as a miss, then overwritten.
      const prefix = prefixOf();
      const { chain } = chainFor({ cache: { redis, prefix } });
      await chain.chat(ask('q'));
      const [key] = await redis.keys(`${prefix}*`);
      await redis.set(key as string, 'not json');
      const errors: unknown[] = [];
      chain.onCacheError((e) => errors.push(e));
      expect((await chain.chat(ask('q'))).cached).toBe(false);
      expect(errors).toHaveLength(1);
      expect((await chain.chat(ask('q'))).cached).toBe(true);
    } finally {
      unreachable.disconnect();
      mute.disconnect();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });
});

describe('request coalescing', () => {
  it('N identical concurrent calls make one upstream request and share its answer', async () => {
    const { chain, registry } = chainFor({ coalesce: true });
    llm.providers.openrouter.faults.inject({ kind: 'latency', delay: 200, times: 1 });
    const results = await Promise.all(Array.from({ length: 10 }, () => chain.chat(ask('same question'))));
    expect(llm.providers.openrouter.requests).toHaveLength(1);
    expect(new Set(results.map((r) => r.content)).size).toBe(1);
    expect(results.filter((r) => !r.coalesced)).toHaveLength(1);
    expect(results.filter((r) => r.coalesced)).toHaveLength(9);
    const text = await registry.metrics();
    expect(sample(text, 'llm_coalesced_requests_total{service="llm"}')).toBe(9);
    expect(sample(text, 'llm_requests_total{service="llm",provider="openrouter",source="coalesced"}')).toBe(
      9,
    );
    expect(sample(text, 'llm_requests_total{service="llm",provider="openrouter",source="upstream"}')).toBe(1);
    // Once it settled, the next identical call goes upstream again.
    await chain.chat(ask('same question'));
    expect(llm.providers.openrouter.requests).toHaveLength(2);
  });

  it('different requests are not coalesced; off by default', async () => {
    const { chain } = chainFor({ coalesce: true });
    await Promise.all([
      chain.chat(ask('a')),
      chain.chat(ask('b')),
      chain.chat({ ...ask('a'), temperature: 1 }),
    ]);
    expect(llm.providers.openrouter.requests).toHaveLength(3);
    const { chain: plain } = chainFor();
    await Promise.all([plain.chat(ask('a')), plain.chat(ask('a'))]);
    expect(llm.providers.openrouter.requests).toHaveLength(5);
  });

  it('a waiter’s abort ends only its wait; the upstream call is aborted when every waiter has gone', async () => {
    const { chain } = chainFor({ coalesce: true });
    llm.providers.openrouter.faults.inject({ kind: 'latency', delay: 400, times: 1 });
    const leader = new AbortController();
    const first = chain.chat(ask('q'), { signal: leader.signal });
    const second = chain.chat(ask('q'));
    await new Promise((r) => setTimeout(r, 50));
    leader.abort(new Error('leader left'));
    await expect(first).rejects.toThrow('leader left');
    expect(await second).toMatchObject({ provider: 'openrouter', coalesced: true });
    expect(llm.providers.openrouter.requests).toHaveLength(1);

    llm.providers.openrouter.faults.inject({ kind: 'latency', delay: '10s', times: 1 });
    const a = new AbortController();
    const b = new AbortController();
    const both = [chain.chat(ask('r'), { signal: a.signal }), chain.chat(ask('r'), { signal: b.signal })];
    await new Promise((r) => setTimeout(r, 50));
    a.abort(new Error('a left'));
    b.abort(new Error('b left'));
    await expect(both[0]).rejects.toThrow('a left');
    await expect(both[1]).rejects.toThrow('b left');
    // The shared upstream request was aborted, and nothing fell back to Ollama.
    await new Promise((r) => setTimeout(r, 50));
    expect(llm.providers.openrouter.requests.at(-1)).toMatchObject({ status: 0, abandoned: true });
    expect(llm.providers.ollama.requests).toHaveLength(0);
    // A new identical call starts afresh.
    expect((await chain.chat(ask('r'))).coalesced).toBe(false);
  });

  it('with the cache: a call with cache:false does not join one that may answer from the cache', async () => {
    const prefix = prefixOf();
    const { chain } = chainFor({ coalesce: true, cache: { redis, prefix } });
    await chain.chat(ask('q')); // now cached
    // Both start in the same tick: the second would join the first while it reads the cache.
    const [cached, fresh] = await Promise.all([chain.chat(ask('q')), chain.chat(ask('q'), { cache: false })]);
    expect(cached).toMatchObject({ cached: true, coalesced: false });
    expect(fresh).toMatchObject({ cached: false, coalesced: false, provider: 'openrouter' });
    expect(llm.providers.openrouter.requests).toHaveLength(2);
    // Calls that skip the cache still coalesce among themselves.
    llm.providers.openrouter.faults.inject({ kind: 'latency', delay: 100, times: 1 });
    const both = await Promise.all([
      chain.chat(ask('q'), { cache: false }),
      chain.chat(ask('q'), { cache: false }),
    ]);
    expect(both.map((r) => [r.cached, r.coalesced])).toEqual([
      [false, false],
      [false, true],
    ]);
    expect(llm.providers.openrouter.requests).toHaveLength(3);
  });

  it('with the cache: concurrent identical misses make one upstream call and one cache write', async () => {
    const prefix = prefixOf();
    const { chain } = chainFor({ coalesce: true, cache: { redis, prefix } });
    llm.providers.openrouter.faults.inject({ kind: 'latency', delay: 100, times: 1 });
    const results = await Promise.all(Array.from({ length: 5 }, () => chain.chat(ask('cached and shared'))));
    expect(llm.providers.openrouter.requests).toHaveLength(1);
    expect(results.map((r) => r.coalesced).sort()).toEqual([false, true, true, true, true]);
    expect(await redis.keys(`${prefix}*`)).toHaveLength(1);
    expect((await chain.chat(ask('cached and shared'))).cached).toBe(true);
  });
});
