import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localBreakerSwitch } from '../../src/resilience/breaker-switch';
import { ollamaProvider } from '../../src/resilience/ollama';
import { openRouterProvider } from '../../src/resilience/openrouter';
import { createProviderChain, type ProviderChain } from '../../src/resilience/provider-chain';
import { isProvidersUnavailableError } from '../../src/resilience/provider-errors';
import {
  type OllamaDouble,
  type OpenRouterDouble,
  startOllamaDouble,
  startOpenRouterDouble,
} from '../../src/testing';
import { expectDocsShowTested } from '../support/docs-drift';
import { adminServer, llmChain } from './llm-docs-examples';

// Keeps RESILIENCE.md honest: its examples are the `docs:` regions of llm-docs-examples.ts and of this file,
// run here against the doubles and a real Redis (the cache's keys under a random ioredis keyPrefix, deleted
// afterwards). The last block checks that the docs still show exactly this code.

const KEYS = [
  'sk-or-v1-docs-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  'sk-or-v1-docs-bbbbbbbbbbbbbbbbbbbb',
];
const PREFIX = `test:llm-docs:${randomUUID()}:`;
let redis: Redis;
let openrouter: OpenRouterDouble;
let ollama: OllamaDouble;

beforeAll(async () => {
  redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { keyPrefix: PREFIX });
  [openrouter, ollama] = await Promise.all([
    startOpenRouterDouble({ keys: KEYS }),
    startOllamaDouble({ models: ['llama3.1:8b'] }),
  ]);
  process.env.OPENROUTER_URL = openrouter.baseUrl;
  process.env.OPENROUTER_API_KEYS = KEYS.join(',');
  process.env.OLLAMA_URL = ollama.url;
});
afterAll(async () => {
  const keys = await redis.keys(`${PREFIX}*`);
  if (keys.length > 0) await redis.del(...keys.map((k) => k.slice(PREFIX.length)));
  await redis.quit();
  await Promise.all([openrouter.close(), ollama.close()]);
  for (const name of ['OPENROUTER_URL', 'OPENROUTER_API_KEYS', 'OLLAMA_URL']) delete process.env[name];
});

describe('RESILIENCE.md examples', () => {
  it('llm-chain: OpenRouter answers, the cache serves a repeat, Ollama takes over in an outage', async () => {
    const chain = llmChain(redis);
    try {
      const request = { messages: [{ role: 'user' as const, content: 'Plan a login test' }], temperature: 0 };
      expect(await chain.chat(request)).toMatchObject({ provider: 'openrouter', cached: false });
      expect(await chain.chat(request)).toMatchObject({ provider: 'openrouter', cached: true });
      // ioredis does not prefix KEYS patterns: the full names, all under this file's prefix.
      expect(await redis.keys(`${PREFIX}*`)).toHaveLength(1);
      openrouter.faults.inject({ kind: 'outage', mode: 'refuse' });
      expect((await chain.chat({ messages: [{ role: 'user', content: 'Another one' }] })).provider).toBe(
        'ollama',
      );
      openrouter.faults.clearAll();
    } finally {
      await chain.close();
    }
  });

  it('admin-endpoints: health as the manual reads it, force open / close / auto, Prometheus metrics', async () => {
    const control = localBreakerSwitch();
    const chain = llmChain(redis, control);
    const server = adminServer(chain, control);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const health = async () =>
      (await (await fetch(`${base}/api/v1/health`)).json()) as ReturnType<ProviderChain['health']>;
    try {
      // curl http://backend:8000/api/v1/health | jq '.circuit_breakers.openrouter'
      expect((await health()).circuit_breakers.openrouter).toMatchObject({
        state: 'closed',
        forced: 'auto',
        up: true,
      });
      // curl -X POST http://backend:8000/api/v1/admin/circuit-breaker/openrouter/open
      const opened = await fetch(`${base}/api/v1/admin/circuit-breaker/openrouter/open`, { method: 'POST' });
      expect(await opened.json()).toMatchObject({ state: 'open', forced: 'open' });
      expect((await chain.chat({ messages: [{ role: 'user', content: 'while open' }] })).provider).toBe(
        'ollama',
      );
      expect(await health()).toMatchObject({ status: 'degraded' });
      await fetch(`${base}/api/v1/admin/circuit-breaker/openrouter/close`, { method: 'POST' });
      expect((await health()).circuit_breakers.openrouter).toMatchObject({
        state: 'closed',
        forced: 'closed',
      });
      await fetch(`${base}/api/v1/admin/circuit-breaker/openrouter/auto`, { method: 'POST' });
      expect((await health()).circuit_breakers.openrouter?.forced).toBe('auto');
      expect((await fetch(`${base}/api/v1/admin/circuit-breaker/nope/open`, { method: 'POST' })).status).toBe(
        404,
      );
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toContain('openrouter_api_up 1');
      expect(metrics).toContain(
        'circuit_breaker_state{service="backend",provider="openrouter",state="closed"} 1',
      );
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      await chain.close();
    }
  });

  it('testing-with-doubles: the example test runs', async () => {
    // docs:begin testing-with-doubles
    const keys = ['sk-or-v1-test-a', 'sk-or-v1-test-b'];
    const openRouterDouble = await startOpenRouterDouble({ keys });
    const ollamaDouble = await startOllamaDouble({ models: ['llama3.1:8b'] });
    const chain = createProviderChain({
      providers: [
        openRouterProvider({
          baseUrl: openRouterDouble.baseUrl,
          apiKeys: keys,
          model: 'anthropic/claude-3.5-sonnet',
        }),
        ollamaProvider({ baseUrl: ollamaDouble.url, model: 'llama3.1:8b' }),
      ],
      breaker: { volumeThreshold: 2, resetTimeout: '500ms' },
      retry: { maxAttempts: 1, maxRetryAfter: '2s' },
      metrics: { registry: new Registry() },
    });
    try {
      openRouterDouble.faults.inject({ kind: 'outage' });
      const answer = await chain.chat({ messages: [{ role: 'user', content: 'ping' }] });
      expect(answer.provider).toBe('ollama');
      expect(answer.content).toBe('[ollama llama3.1:8b] ping');
      await chain.chat({ messages: [{ role: 'user', content: 'ping' }] });
      expect(chain.health().circuit_breakers.openrouter?.state).toBe('open');

      openRouterDouble.faults.clearAll();
      ollamaDouble.faults.inject({ kind: 'serverError', status: 503 });
      const failed = await chain.chat({ messages: [{ role: 'user', content: 'ping' }] }).catch((e) => e);
      expect(isProvidersUnavailableError(failed)).toBe(true);
      expect(openRouterDouble.requests.map((r) => r.status)).toEqual([0, 0]);
    } finally {
      await chain.close();
      await openRouterDouble.close();
      await ollamaDouble.close();
    }
    // docs:end testing-with-doubles
  });

  it('RESILIENCE.md shows exactly the tested code', () => {
    const doc = new URL('../../RESILIENCE.md', import.meta.url);
    const examples = new URL('./llm-docs-examples.ts', import.meta.url);
    expectDocsShowTested(doc, examples, 'llm-chain');
    expectDocsShowTested(doc, examples, 'admin-endpoints');
    expectDocsShowTested(doc, new URL(import.meta.url), 'testing-with-doubles');
  });
});
