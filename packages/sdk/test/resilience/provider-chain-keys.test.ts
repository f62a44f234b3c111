import { describe, expect, it } from 'vitest';
import { apiKeyFingerprint } from '../../src/resilience/api-keys';
import { isProvidersUnavailableError } from '../../src/resilience/provider-errors';
import { ask, KEY_A, KEY_B, sample, useChainFixture } from './llm-fixture';

// 429s, Retry-After and API keys, against the OpenRouter double: the order of keys and the waits are read
// from the double's own request log.

const llm = useChainFixture({ retry: { maxAttempts: 3, maxRetryAfter: '5s', keyCooldown: '30s' } });
const chainFor = llm.chainFor;
const fp = apiKeyFingerprint;

describe('rate limits and API keys', () => {
  it('a 429 storm rotates the keys and honours Retry-After (delay-seconds)', async () => {
    const { chain, registry } = chainFor();
    llm.providers.openrouter.faults.inject({ kind: 'rateLimit', retryAfter: '1s', times: 2 });
    const result = await chain.chat(ask('storm'));
    expect(result.provider).toBe('openrouter');
    const log = llm.providers.openrouter.requests;
    // A gets a 429 and rests; B at once gets one too; both rest: the chain waits until A wakes, then A answers.
    expect(log.map((r) => [r.keyFingerprint, r.status])).toEqual([
      [fp(KEY_A), 429],
      [fp(KEY_B), 429],
      [fp(KEY_A), 200],
    ]);
    const [a, b, again] = log.map((r) => r.at) as [number, number, number];
    expect(b - a).toBeLessThan(500); // no backoff before another key
    expect(again - a).toBeGreaterThanOrEqual(990); // A's Retry-After: 1 s
    expect(again - a).toBeLessThan(2_000);
    expect(result.attempts.map((x) => [x.keyFingerprint, x.outcome])).toEqual([
      [fp(KEY_A), 'rate_limited'],
      [fp(KEY_B), 'rate_limited'],
      [fp(KEY_A), 'success'],
    ]);
    expect(result.attempts[2]?.waitedMs).toBeGreaterThan(800);
    const text = await registry.metrics();
    expect(sample(text, 'openrouter_api_rate_limit_errors')).toBe(2);
    expect(sample(text, 'openrouter_api_errors_total{type="rate_limited"}')).toBe(2);
    // 429s are not breaker failures: the API is up, only busy.
    expect(chain.health().circuit_breakers.openrouter).toMatchObject({ state: 'closed', up: true });
    expect(chain.health().circuit_breakers.openrouter?.window.failures).toBe(0);
  });

  it('honours Retry-After given as an HTTP date', async () => {
    const { chain } = chainFor({ keys: [KEY_A] });
    llm.providers.openrouter.faults.inject({
      kind: 'rateLimit',
      retryAfter: '2s',
      retryAfterFormat: 'http-date',
      times: 1,
    });
    const result = await chain.chat(ask('dated'));
    expect(result.provider).toBe('openrouter');
    const [limited, served] = llm.providers.openrouter.requests.map((r) => r.at) as [number, number];
    // An HTTP date has whole seconds: the double rounds the target up, so the wait is 2 to 3 s.
    expect(served - limited).toBeGreaterThanOrEqual(1_900);
    expect(served - limited).toBeLessThan(4_000);
  });

  it('a key that got a 429 rests for its Retry-After while the other keys serve', async () => {
    const { chain } = chainFor();
    llm.providers.openrouter.faults.inject({ kind: 'rateLimit', key: KEY_A, retryAfter: '30s' });
    for (let i = 0; i < 4; i++) expect((await chain.chat(ask(`q${i}`))).provider).toBe('openrouter');
    expect(llm.providers.openrouter.requests.map((r) => [r.keyFingerprint, r.status])).toEqual([
      [fp(KEY_A), 429],
      [fp(KEY_B), 200],
      [fp(KEY_B), 200],
      [fp(KEY_B), 200],
      [fp(KEY_B), 200],
    ]);
    const keys = chain.health().circuit_breakers.openrouter?.keys;
    expect(keys).toMatchObject({ total: 2, cooling: 1 });
    expect(keys?.nextFreeInMs).toBeGreaterThan(25_000);
  });

  it('a Retry-After beyond maxRetryAfter falls back at once; while every key rests, OpenRouter is skipped without a request', async () => {
    const { chain } = chainFor();
    llm.providers.openrouter.faults.inject({ kind: 'rateLimit', retryAfter: '60s' });
    const started = Date.now();
    const first = await chain.chat(ask('q1'));
    expect(Date.now() - started).toBeLessThan(2_000); // no 60 s wait
    expect(first.provider).toBe('ollama');
    expect(first.attempts.map((a) => [a.provider, a.outcome])).toEqual([
      ['openrouter', 'rate_limited'],
      ['openrouter', 'rate_limited'],
      ['openrouter', 'keys_cooling'],
      ['ollama', 'success'],
    ]);
    const second = await chain.chat(ask('q2'));
    expect(second.attempts.map((a) => [a.provider, a.outcome])).toEqual([
      ['openrouter', 'keys_cooling'],
      ['ollama', 'success'],
    ]);
    expect(llm.providers.openrouter.requests).toHaveLength(2);
    expect(chain.health()).toMatchObject({ status: 'degraded' });

    // With the fallback down too, the error says when the first key wakes.
    llm.providers.ollama.faults.inject({ kind: 'outage' });
    const error = await chain.chat(ask('q3')).catch((e) => e);
    expect(isProvidersUnavailableError(error)).toBe(true);
    expect(error.failures.map((f: { provider: string; reason: string }) => [f.provider, f.reason])).toEqual([
      ['openrouter', 'rate_limited'],
      ['ollama', 'network_error'],
    ]);
    expect(error.retryAfterMs).toBeGreaterThan(55_000);
    expect(error.retryAfterMs).toBeLessThanOrEqual(60_000);
  });

  it('the double’s own per-key rate limit: the chain spreads calls over the keys and stays within it', async () => {
    await llm.providers.openrouter.close();
    const { startOpenRouterDouble } = await import('../../src/testing');
    llm.providers.openrouter = await startOpenRouterDouble({
      keys: [KEY_A, KEY_B],
      rateLimit: { requests: 2, interval: '30s' },
    });
    const { chain } = chainFor();
    const answered = [];
    for (let i = 0; i < 4; i++) answered.push((await chain.chat(ask(`q${i}`))).provider);
    expect(answered).toEqual(['openrouter', 'openrouter', 'openrouter', 'openrouter']);
    expect(llm.providers.openrouter.requests.every((r) => r.status === 200)).toBe(true);
    // The fifth call finds both keys spent: 429s with a ~30 s Retry-After, beyond maxRetryAfter: Ollama answers.
    const fifth = await chain.chat(ask('q4'));
    expect(fifth.provider).toBe('ollama');
    expect(llm.providers.openrouter.requests.slice(4).map((r) => r.status)).toEqual([429, 429]);
  });

  it('a key the provider refuses (401) rests, and the next key serves; the key never shows', async () => {
    const revoked = 'sk-or-v1-revoked-0000000000000000000000000000000000000000000000000000';
    const { chain } = chainFor({ keys: [revoked, KEY_A] });
    const retries: unknown[] = [];
    chain.onRetry((e) => retries.push(e));
    const first = await chain.chat(ask('q1'));
    expect(first.provider).toBe('openrouter');
    expect(first.attempts.map((a) => [a.keyFingerprint, a.outcome, a.status])).toEqual([
      [fp(revoked), 'refused', 401],
      [fp(KEY_A), 'success', undefined],
    ]);
    await chain.chat(ask('q2'));
    expect(llm.providers.openrouter.requests.map((r) => [r.keyFingerprint, r.status])).toEqual([
      [fp(revoked), 401],
      [fp(KEY_A), 200],
      [fp(KEY_A), 200],
    ]);
    const shown = JSON.stringify([first, retries, chain.health()]);
    expect(shown).not.toContain(revoked);
    expect(shown).not.toContain(KEY_A);
  });
});
