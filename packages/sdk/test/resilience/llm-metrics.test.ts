import { spawnSync } from 'node:child_process';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { localBreakerSwitch } from '../../src/resilience/breaker-switch';
import { createProviderChain, type ProviderChain } from '../../src/resilience/provider-chain';
import { ProviderHttpError } from '../../src/resilience/provider-errors';
import { ask, KEY_A, KEY_B, sample, useChainFixture } from './llm-fixture';

// The prom-client metrics of a chain after a scenario against the doubles: the manual's names for OpenRouter
// (and the same for Ollama), breaker states, fallbacks; `promtool check metrics` accepts them; no API key
// appears in metrics, errors, events, results or health.

const llm = useChainFixture();
const chainFor = llm.chainFor;
afterEach(() => {
  vi.useRealTimers();
});

/** The scenario: two answers from OpenRouter, then an outage that opens its breaker; Ollama takes over. */
async function outageScenario(chain: ProviderChain) {
  await chain.chat(ask('1'));
  await chain.chat(ask('2'));
  llm.providers.openrouter.faults.inject({ kind: 'outage' });
  await chain.chat(ask('3')); // 2 network errors, fallback
  await chain.chat(ask('4')); // a 3rd network error opens the breaker, fallback
  await chain.chat(ask('5')); // breaker open, fallback without a request
}

describe('LLM metrics', () => {
  it('counts a scenario with the manual’s names, per provider prefix', async () => {
    const { chain, registry } = chainFor({ service: 'backend' });
    await outageScenario(chain);
    const text = await registry.metrics();
    const at = (series: string) => sample(text, series);

    expect(at('openrouter_api_up')).toBe(0);
    expect(at('ollama_api_up')).toBe(1);
    expect(at('openrouter_api_requests_total{outcome="success"}')).toBe(2);
    expect(at('openrouter_api_requests_total{outcome="network_error"}')).toBe(3);
    expect(at('openrouter_api_requests_total{outcome="rate_limited"}')).toBe(0);
    expect(at('openrouter_api_errors_total{type="network_error"}')).toBe(3);
    expect(at('openrouter_api_rate_limit_errors')).toBe(0);
    expect(at('openrouter_api_duration_seconds_count{outcome="success"}')).toBe(2);
    expect(at('openrouter_api_duration_seconds_count{outcome="error"}')).toBe(3);
    expect(at('openrouter_api_duration_seconds_bucket{le="+Inf",outcome="success"}')).toBe(2);
    expect(at('ollama_api_requests_total{outcome="success"}')).toBe(3);

    expect(at('circuit_breaker_state{service="backend",provider="openrouter",state="open"}')).toBe(1);
    expect(at('circuit_breaker_state{service="backend",provider="openrouter",state="closed"}')).toBe(0);
    expect(at('circuit_breaker_state{service="backend",provider="ollama",state="closed"}')).toBe(1);
    expect(at('circuit_breaker_forced_state{service="backend",provider="openrouter",state="auto"}')).toBe(1);
    // Call 4's failure opened the breaker: it falls back for that failure; call 5 finds the breaker open.
    expect(
      at('llm_fallbacks_total{service="backend",from="openrouter",to="ollama",reason="network_error"}'),
    ).toBe(2);
    expect(
      at('llm_fallbacks_total{service="backend",from="openrouter",to="ollama",reason="breaker_open"}'),
    ).toBe(1);
    expect(at('llm_requests_total{service="backend",provider="openrouter",source="upstream"}')).toBe(2);
    expect(at('llm_requests_total{service="backend",provider="ollama",source="upstream"}')).toBe(3);
    expect(at('llm_requests_total{service="backend",provider="none",source="unavailable"}')).toBe(0);
    expect(at('llm_provider_current{service="backend",provider="ollama"}')).toBe(1);
    expect(at('llm_provider_current{service="backend",provider="openrouter"}')).toBe(0);

    // Counters keep counting across scrapes (a scrape does not reset them).
    await chain.chat(ask('6'));
    expect(sample(await registry.metrics(), 'ollama_api_requests_total{outcome="success"}')).toBe(4);
  });

  it('the rate-limit gauge is the number of 429s in the last minute (the manual alerts above 10)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-03-01T10:00:00Z'));
    const registry = new Registry();
    const chain = createProviderChain({
      providers: [
        {
          name: 'openrouter',
          call: async () => {
            throw new ProviderHttpError('openrouter', 429, 'Rate limit exceeded', 1);
          },
        },
        { name: 'ollama', call: async () => ({ content: 'ok' }) },
      ],
      retry: { maxAttempts: 12, maxRetryAfter: 0, keyCooldown: 0 },
      metrics: { registry },
    });
    llm.closeAfter(chain);
    await chain.chat(ask('x')); // one 429, the key rests 1 ms (> maxRetryAfter 0): fallback
    for (let i = 0; i < 11; i++) {
      vi.setSystemTime(Date.now() + 1_000);
      await chain.chat(ask('x'));
    }
    // One 429 a second for 12 seconds: 12 in the last minute (the alert `> 10` fires).
    expect(sample(await registry.metrics(), 'openrouter_api_rate_limit_errors')).toBe(12);
    // 60 s after the first, it has left the window.
    vi.setSystemTime(Date.now() + 49_000);
    expect(sample(await registry.metrics(), 'openrouter_api_rate_limit_errors')).toBe(11);
    vi.setSystemTime(Date.now() + 11_000);
    expect(sample(await registry.metrics(), 'openrouter_api_rate_limit_errors')).toBe(0);
    expect(sample(await registry.metrics(), 'openrouter_api_errors_total{type="rate_limited"}')).toBe(12);
  });

  it('passes `promtool check metrics`', async () => {
    const { chain, registry } = chainFor({ service: 'backend' });
    await outageScenario(chain);
    const exposition = await registry.metrics();
    const checked = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
    // promtool is a requirement of this test (Debian package `prometheus`): missing, the test fails.
    expect(checked.error, 'promtool must be installed (apt-get install prometheus)').toBeUndefined();
    expect(`${checked.stdout}${checked.stderr}`.trim()).toBe('');
    expect(checked.status).toBe(0);
  });

  it('chains on one registry share the provider metrics; closing a chain removes its breaker series', async () => {
    const registry = new Registry();
    const first = chainFor({ service: 'backend', metrics: { registry } }).chain;
    const second = chainFor({ service: 'worker', metrics: { registry } }).chain;
    await first.chat(ask('a'));
    await second.chat(ask('b'));
    let text = await registry.metrics();
    expect(sample(text, 'openrouter_api_requests_total{outcome="success"}')).toBe(2);
    expect(sample(text, 'circuit_breaker_state{service="worker",provider="openrouter",state="closed"}')).toBe(
      1,
    );
    await second.close();
    text = await registry.metrics();
    expect(
      sample(text, 'circuit_breaker_state{service="worker",provider="openrouter",state="closed"}'),
    ).toBeUndefined();
    expect(
      sample(text, 'circuit_breaker_state{service="backend",provider="openrouter",state="closed"}'),
    ).toBe(1);
  });

  it('closing a chain hands its unscraped counts to the counters, which keep them (once)', async () => {
    const registry = new Registry();
    const chain = chainFor({ service: 'worker', metrics: { registry } }).chain;
    await chain.chat(ask('a'));
    llm.providers.openrouter.faults.inject({ kind: 'outage' });
    await chain.chat(ask('b')); // network errors on openrouter: ollama answers
    await chain.close(); // no scrape before
    for (let scrape = 0; scrape < 2; scrape++) {
      const text = await registry.metrics();
      expect(
        sample(text, 'llm_requests_total{service="worker",provider="openrouter",source="upstream"}'),
      ).toBe(1);
      expect(sample(text, 'llm_requests_total{service="worker",provider="ollama",source="upstream"}')).toBe(
        1,
      );
      expect(
        sample(
          text,
          'llm_fallbacks_total{service="worker",from="openrouter",to="ollama",reason="network_error"}',
        ),
      ).toBe(1);
      expect(
        sample(text, 'circuit_breaker_state{service="worker",provider="ollama",state="closed"}'),
      ).toBeUndefined();
    }
  });

  it('metrics: false registers nothing', async () => {
    const registry = new Registry();
    const chain = createProviderChain({
      providers: [{ name: 'solo', call: async () => ({ content: 'x' }) }],
      metrics: false,
    });
    llm.closeAfter(chain);
    await chain.chat(ask('x'));
    expect(await registry.metrics()).toBe('\n');
  });

  it('no API key in any metric, error, event, result or health report', async () => {
    const revoked = 'sk-or-v1-revoked-9999999999999999999999999999999999999999999999999999';
    const keys = [revoked, KEY_A, KEY_B];
    const control = localBreakerSwitch();
    const { chain, registry } = chainFor({ keys, control, retry: { maxAttempts: 4, maxRetryAfter: '5s' } });
    const seen: unknown[] = [];
    chain.onFallback((e) => seen.push(e));
    chain.onRetry((e) => seen.push(e));
    chain.onBreakerStateChange((e) => seen.push(e));
    chain.onCacheError((e) => seen.push(e));
    llm.providers.openrouter.faults.inject({ kind: 'rateLimit', key: KEY_A, retryAfter: '60s' });
    seen.push(await chain.chat(ask('401 then 429 then B')));
    llm.providers.openrouter.faults.inject({ kind: 'serverError', status: 500 });
    seen.push(await chain.chat(ask('500s')));
    llm.providers.ollama.faults.inject({ kind: 'outage' });
    const error = await chain.chat(ask('nothing works')).catch((e: unknown) => e);
    seen.push((error as Error).message, (error as { toInfo(): unknown }).toInfo(), chain.health(), [
      ...control.reported,
    ]);
    const everything = `${JSON.stringify(seen)}\n${await registry.metrics()}\n${JSON.stringify(llm.providers.openrouter.requests)}`;
    for (const key of keys) expect(everything).not.toContain(key);
    expect(everything).not.toContain('sk-or-v1-');
  });
});
