import { describe, expect, it, vi } from 'vitest';
import { isInputValidationError } from '../../src/core/errors';
import { apiKeyFingerprint } from '../../src/resilience/api-keys';
import type { BreakerState } from '../../src/resilience/breaker-switch';
import { localBreakerSwitch } from '../../src/resilience/breaker-switch';
import { ollamaProvider } from '../../src/resilience/ollama';
import { openRouterProvider } from '../../src/resilience/openrouter';
import { createProviderChain } from '../../src/resilience/provider-chain';
import {
  isProviderHttpError,
  isProvidersUnavailableError,
  ProviderHttpError,
} from '../../src/resilience/provider-errors';
import { ask, KEY_A, KEY_B, OLLAMA_MODEL, OPENROUTER_MODEL, useChainFixture } from './llm-fixture';

// The provider chain against real HTTP test doubles of OpenRouter and Ollama (the real APIs cannot run here):
// answers, retries, fallback, the breaker opening and closing again, 4xx, timeouts, aborts, exhaustion.

const llm = useChainFixture();
const chainFor = llm.chainFor;

describe('provider chain', () => {
  it('answers from the first provider, says which, and uses its keys round-robin', async () => {
    const { chain } = chainFor();
    const first = await chain.chat(ask('How many agents are down?'));
    expect(first).toMatchObject({
      content: `[openrouter ${OPENROUTER_MODEL}] How many agents are down?`,
      provider: 'openrouter',
      model: OPENROUTER_MODEL,
      id: 'gen-000001',
      finishReason: 'stop',
      cached: false,
      coalesced: false,
      usage: { promptTokens: expect.any(Number), completionTokens: expect.any(Number) },
    });
    expect(first.attempts).toEqual([
      expect.objectContaining({
        provider: 'openrouter',
        outcome: 'success',
        keyFingerprint: apiKeyFingerprint(KEY_A),
      }),
    ]);
    await chain.chat(ask('2'));
    await chain.chat(ask('3'));
    expect(llm.providers.openrouter.requests.map((r) => r.keyFingerprint)).toEqual(
      [KEY_A, KEY_B, KEY_A].map(apiKeyFingerprint),
    );
    expect(llm.providers.ollama.requests).toHaveLength(0);
    expect(chain.health()).toMatchObject({ service: 'llm', status: 'ok' });
  });

  it('OpenRouter down: Ollama answers within the timeout, the breaker opens, then half-open → closed when it is back', async () => {
    const control = localBreakerSwitch();
    const { chain } = chainFor({ control });
    const states: BreakerState[] = [];
    chain.onBreakerStateChange(({ provider, state }) => provider === 'openrouter' && states.push(state));
    llm.providers.openrouter.faults.inject({ kind: 'outage' });

    // Two attempts on OpenRouter (a reset connection, retried after a short backoff), then Ollama.
    const started = Date.now();
    const first = await chain.chat(ask('Is the database up?'));
    expect(Date.now() - started).toBeLessThan(2_000); // the breaker's timeout
    expect(first.provider).toBe('ollama');
    expect(first.content).toBe(`[ollama ${OLLAMA_MODEL}] Is the database up?`);
    expect(first.attempts.map((a) => [a.provider, a.outcome])).toEqual([
      ['openrouter', 'network_error'],
      ['openrouter', 'network_error'],
      ['ollama', 'success'],
    ]);
    // The third failure in the window (volumeThreshold 3, all failed) opens the breaker.
    const second = await chain.chat(ask('again'));
    expect(second.provider).toBe('ollama');
    expect(chain.health().circuit_breakers.openrouter).toMatchObject({
      state: 'open',
      forced: 'auto',
      up: false,
    });
    expect(chain.health().status).toBe('degraded');
    expect(control.reported.get('openrouter')).toBe('open');

    // While open, OpenRouter gets no request at all.
    const seen = llm.providers.openrouter.requests.length;
    const third = await chain.chat(ask('once more'));
    expect(third.attempts.map((a) => [a.provider, a.outcome])).toEqual([
      ['openrouter', 'breaker_open'],
      ['ollama', 'success'],
    ]);
    expect(llm.providers.openrouter.requests).toHaveLength(seen);

    // OpenRouter recovers; after resetTimeout the breaker lets one probe through, which closes it.
    llm.providers.openrouter.faults.clearAll();
    await new Promise<void>((resolve) => {
      const listening = chain.onBreakerStateChange(({ state }) => {
        if (state === 'halfOpen') {
          listening.dispose();
          resolve();
        }
      });
    });
    expect(chain.health().circuit_breakers.openrouter?.state).toBe('halfOpen');
    const probe = await chain.chat(ask('are you back?'));
    expect(probe.provider).toBe('openrouter');
    expect(chain.health().circuit_breakers.openrouter).toMatchObject({ state: 'closed', up: true });
    expect(states).toEqual(['open', 'halfOpen', 'closed']);
    expect(control.reported.get('openrouter')).toBe('closed');
  });

  it('a half-open probe closes the breaker only with an answer: aborted by the caller or a 429, it opens again', async () => {
    let mode: 'down' | 'hang' | 'busy' | 'up' = 'down';
    const chain = createProviderChain({
      providers: [
        {
          name: 'flaky',
          call: (_request, { signal }) => {
            if (mode === 'down') return Promise.reject(new ProviderHttpError('flaky', 503, 'down'));
            if (mode === 'busy') return Promise.reject(new ProviderHttpError('flaky', 429, 'busy'));
            if (mode === 'up') return Promise.resolve({ content: 'flaky' });
            return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
          },
        },
        { name: 'spare', call: async () => ({ content: 'spare' }) },
      ],
      breaker: { volumeThreshold: 1, resetTimeout: 200 },
      retry: { maxAttempts: 1, keyCooldown: 0 },
      metrics: false,
    });
    llm.closeAfter(chain);
    const states: BreakerState[] = [];
    chain.onBreakerStateChange(({ provider, state }) => provider === 'flaky' && states.push(state));
    const next = (state: BreakerState) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          listening.dispose();
          reject(new Error(`the breaker did not go ${state} within 3s`));
        }, 3_000);
        const listening = chain.onBreakerStateChange((e) => {
          if (e.provider === 'flaky' && e.state === state) {
            clearTimeout(timer);
            listening.dispose();
            resolve();
          }
        });
      });
    const state = () => chain.health().circuit_breakers.flaky?.state;

    let opened = next('open');
    expect((await chain.chat(ask('x'))).provider).toBe('spare');
    await opened;

    // The probe hangs and its caller gives up: nothing was learnt, so the breaker opens again.
    await next('halfOpen');
    mode = 'hang';
    opened = next('open');
    const caller = new AbortController();
    const probe = chain.chat(ask('x'), { signal: caller.signal });
    setTimeout(() => caller.abort(new Error('caller left')), 20);
    await expect(probe).rejects.toThrow('caller left');
    await vi.waitFor(() => expect(state()).toBe('open'), { timeout: 2_000 });
    await opened;

    // The next probe gets a 429: the API is alive but does not serve us. Open again; the spare answers.
    await next('halfOpen');
    mode = 'busy';
    opened = next('open');
    expect((await chain.chat(ask('x'))).provider).toBe('spare');
    expect(state()).toBe('open');
    await opened;

    // An answer closes it.
    await next('halfOpen');
    mode = 'up';
    expect((await chain.chat(ask('x'))).provider).toBe('flaky');
    expect(state()).toBe('closed');
    expect(states).toEqual(['open', 'halfOpen', 'open', 'halfOpen', 'open', 'halfOpen', 'closed']);
  });

  it('concurrent backoff waits without a signal add no abort listener anywhere (none piles up)', async () => {
    let calls = 0;
    const chain = createProviderChain({
      providers: [
        {
          name: 'busy',
          call: async () => {
            if (++calls <= 30) throw new ProviderHttpError('busy', 503, 'busy', 100);
            return { content: 'ok' };
          },
        },
      ],
      breaker: { volumeThreshold: 1_000 },
      metrics: false,
    });
    llm.closeAfter(chain);
    // Node 24 no longer warns about many listeners on one AbortSignal, so count them where they are added.
    const added = vi.spyOn(EventTarget.prototype, 'addEventListener');
    try {
      // 30 calls wait for a Retry-After at once (a shared signal would collect 30 abort listeners), then succeed.
      const results = await Promise.all(Array.from({ length: 30 }, () => chain.chat(ask('x'))));
      expect(results.every((r) => r.content === 'ok' && r.attempts.length === 2)).toBe(true);
      const onSignals = added.mock.calls.filter(
        ([type], i) => type === 'abort' && added.mock.contexts[i] instanceof AbortSignal,
      );
      expect(onSignals).toHaveLength(0);
    } finally {
      added.mockRestore();
    }
  });

  it('a Retry-After of days rests the key for an hour at most', async () => {
    const chain = createProviderChain({
      providers: [
        {
          name: 'stingy',
          apiKeys: ['stingy-key'],
          call: async () => {
            throw new ProviderHttpError('stingy', 429, 'come back next year', 365 * 86_400_000);
          },
        },
        { name: 'spare', call: async () => ({ content: 'spare' }) },
      ],
      metrics: false,
    });
    llm.closeAfter(chain);
    expect((await chain.chat(ask('x'))).provider).toBe('spare');
    const { keys } = chain.health().circuit_breakers.stingy ?? {};
    expect(keys?.nextFreeInMs).toBeGreaterThan(3_500_000);
    expect(keys?.nextFreeInMs).toBeLessThanOrEqual(3_600_000);
  });

  it('a timeout falls back at once (no retry on the same provider) and aborts the upstream request', async () => {
    const { chain } = chainFor({ breaker: { timeout: 300 } });
    llm.providers.openrouter.faults.inject({ kind: 'latency', delay: '10s' });
    const started = Date.now();
    const result = await chain.chat(ask('slow?'));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(result.provider).toBe('ollama');
    expect(result.attempts.map((a) => a.outcome)).toEqual(['timeout', 'success']);
    expect(llm.providers.openrouter.requests).toHaveLength(1);
    // The chain aborted its fetch at the timeout: the double saw the client go before it answered.
    await new Promise((r) => setTimeout(r, 50));
    expect(llm.providers.openrouter.requests[0]).toMatchObject({ status: 0, abandoned: true });
    expect(chain.health().circuit_breakers.openrouter?.lastFailure).toMatchObject({ reason: 'timeout' });
  });

  it('retries a 5xx with backoff, honouring its Retry-After', async () => {
    const { chain } = chainFor();
    llm.providers.openrouter.faults.inject({ kind: 'serverError', status: 503, retryAfter: '1s', times: 1 });
    const retries: number[] = [];
    chain.onRetry((e) => retries.push(e.delayMs));
    const result = await chain.chat(ask('busy?'));
    expect(result.provider).toBe('openrouter');
    expect(result.attempts.map((a) => [a.outcome, a.status])).toEqual([
      ['server_error', 503],
      ['success', undefined],
    ]);
    expect(retries).toEqual([1_000]);
    expect(result.attempts[1]?.waitedMs).toBe(1_000);
    const [failedAt, servedAt] = llm.providers.openrouter.requests.map((r) => r.at) as [number, number];
    expect(servedAt - failedAt).toBeGreaterThanOrEqual(990);
  });

  it('falls back after the retries when 5xx persist', async () => {
    const { chain } = chainFor();
    const fallbacks: unknown[] = [];
    chain.onFallback((e) => fallbacks.push(e));
    llm.providers.openrouter.faults.inject({ kind: 'serverError', status: 500 });
    const result = await chain.chat(ask('x'));
    expect(result.provider).toBe('ollama');
    expect(result.attempts.map((a) => a.outcome)).toEqual(['server_error', 'server_error', 'success']);
    expect(result.attempts[1]?.waitedMs).toBeLessThanOrEqual(50); // full jitter within maxDelay
    expect(fallbacks).toEqual([{ from: 'openrouter', to: 'ollama', reason: 'server_error' }]);
  });

  it('a 4xx other than 401/402/403/408/429 is the caller’s: rejected at once, no fallback, no breaker failure', async () => {
    const { chain } = chainFor();
    const error = await chain
      .chat({ messages: [{ role: 'user', content: 'x' }], temperature: 7 })
      .catch((e) => e);
    expect(isProviderHttpError(error)).toBe(true);
    expect(error).toMatchObject({ status: 400, provider: 'openrouter', retriable: false });
    expect(error.message).toMatch(/temperature/);
    expect(llm.providers.openrouter.requests).toHaveLength(1);
    expect(llm.providers.ollama.requests).toHaveLength(0);
    expect(chain.health().circuit_breakers.openrouter?.window.failures).toBe(0);
  });

  it('when every provider fails: ProvidersUnavailableError with each provider’s reason and no key', async () => {
    const { chain } = chainFor();
    llm.providers.openrouter.faults.inject({ kind: 'serverError', status: 502 });
    llm.providers.ollama.faults.inject({ kind: 'outage', mode: 'refuse' });
    const error = await chain.chat(ask('anyone?')).catch((e) => e);
    expect(isProvidersUnavailableError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'PROVIDERS_UNAVAILABLE', retriable: true });
    expect(error.failures).toEqual([
      {
        provider: 'openrouter',
        reason: 'server_error',
        status: 502,
        message: expect.stringContaining('HTTP 502'),
      },
      { provider: 'ollama', reason: 'network_error', message: expect.stringContaining('ECONNREFUSED') },
    ]);
    const text = `${error.message} ${JSON.stringify(error.toInfo())}`;
    for (const key of [KEY_A, KEY_B]) expect(text).not.toContain(key);
    expect(chain.health().status).toBe('ok'); // breakers still closed: 2 failures each, below volumeThreshold
  });

  it('aborts: the call rejects with the signal’s reason at once, the upstream request is aborted, nothing falls back', async () => {
    const { chain } = chainFor();
    llm.providers.openrouter.faults.inject({ kind: 'latency', delay: '10s' });
    const controller = new AbortController();
    const pending = chain.chat(ask('never mind'), { signal: controller.signal });
    await new Promise((r) => setTimeout(r, 100));
    const reason = new Error('user went away');
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    await new Promise((r) => setTimeout(r, 50));
    expect(llm.providers.openrouter.requests[0]).toMatchObject({ status: 0, abandoned: true });
    expect(llm.providers.ollama.requests).toHaveLength(0);
    expect(chain.health().circuit_breakers.openrouter?.window.failures).toBe(0);
    // Aborting during a backoff wait ends the wait too.
    llm.providers.openrouter.faults.clearAll();
    llm.providers.openrouter.faults.inject({ kind: 'serverError', retryAfter: '5s' });
    const late = new AbortController();
    const waiting = chain.chat(ask('x'), { signal: late.signal });
    setTimeout(() => late.abort(new Error('gave up')), 200);
    const started = Date.now();
    await expect(waiting).rejects.toThrow('gave up');
    expect(Date.now() - started).toBeLessThan(1_000);
    // An already aborted signal never calls anything.
    const before = llm.providers.openrouter.requests.length;
    await expect(chain.chat(ask('x'), { signal: AbortSignal.abort(new Error('no')) })).rejects.toThrow('no');
    expect(llm.providers.openrouter.requests).toHaveLength(before);
  });

  it('an abort ends the call at once even when the provider ignores its signal', async () => {
    let calls = 0;
    const chain = createProviderChain({
      providers: [
        {
          name: 'deaf',
          call: () => {
            calls++;
            return new Promise((_, reject) => setTimeout(() => reject(new Error('late failure')), 600));
          },
        },
        { name: 'spare', call: async () => ({ content: 'spare' }) },
      ],
      metrics: false,
    });
    llm.closeAfter(chain);
    const started = Date.now();
    const error = await chain.chat(ask('x'), { signal: AbortSignal.timeout(100) }).catch((e) => e);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect((error as Error).name).toBe('TimeoutError'); // AbortSignal.timeout's reason
    expect(calls).toBe(1);
    // Its late failure is dropped: the breaker does not count a call the caller abandoned against the provider.
    await new Promise((r) => setTimeout(r, 700));
    expect(chain.health().circuit_breakers.deaf?.window).toMatchObject({ fires: 1, failures: 0 });
  });

  it('custom providers: a thrown 429 ProviderHttpError rests the provider, any other error falls back', async () => {
    let calls = 0;
    const chain = createProviderChain({
      providers: [
        {
          name: 'flaky',
          call: async () => {
            calls++;
            throw new ProviderHttpError('flaky', 429, 'slow down', 60_000);
          },
        },
        {
          name: 'broken',
          call: async () => {
            throw new Error('socket hang up');
          },
        },
        {
          name: 'steady',
          model: 'm1',
          call: async (request) => ({ content: `steady: ${request.messages.length}` }),
        },
      ],
      retry: { maxAttempts: 1 },
      metrics: false,
    });
    llm.closeAfter(chain);
    const first = await chain.chat(ask('x'));
    expect(first).toMatchObject({ provider: 'steady', content: 'steady: 1' });
    expect(first.attempts.map((a) => [a.provider, a.outcome])).toEqual([
      ['flaky', 'rate_limited'],
      ['broken', 'error'],
      ['steady', 'success'],
    ]);
    const second = await chain.chat(ask('x'));
    expect(second.attempts.map((a) => [a.provider, a.outcome])).toEqual([
      ['flaky', 'keys_cooling'],
      ['broken', 'error'],
      ['steady', 'success'],
    ]);
    expect(calls).toBe(1);
  });

  it('validates its options with the field named', () => {
    const provider = ollamaProvider({ model: OLLAMA_MODEL });
    // Shaped like an ioredis client (only GET and SET are checked): validation fails before it is used.
    const fakeRedis = { get: () => {}, set: () => {} };
    const bad: [unknown, RegExp][] = [
      [{ providers: [] }, /providers: give at least one provider/],
      [{ providers: [provider, provider] }, /providers\[1\]\.name: "ollama" is used twice/],
      [{ providers: [{ name: 'Open Router', call: async () => ({ content: '' }) }] }, /providers\[0\]\.name/],
      [{ providers: [provider], breaker: { timeout: '30 seconds' } }, /breaker\.timeout/],
      [{ providers: [provider], retry: { maxAttempts: 0 } }, /retry\.maxAttempts/],
      [
        { providers: [provider], overrides: { ollama: { breaker: { resetTimeout: -1 } } } },
        /overrides\.ollama\.breaker\.resetTimeout/,
      ],
      [{ providers: [provider], cache: { redis: {} } }, /cache\.redis: expected an ioredis client/],
      // Zero and huge durations, where they would break: SET PX 0, a timeout that fires at once, setTimeout's
      // 24.8-day limit.
      [
        { providers: [provider], breaker: { timeout: 0 } },
        /breaker\.timeout: expected a duration from 1ms to 1h/,
      ],
      [{ providers: [provider], breaker: { resetTimeout: '2d' } }, /breaker\.resetTimeout/],
      [{ providers: [provider], breaker: { rollingCountTimeout: 0 } }, /breaker\.rollingCountTimeout/],
      [{ providers: [provider], retry: { maxRetryAfter: '30d' } }, /retry\.maxRetryAfter: expected .* to 1h/],
      [{ providers: [provider], retry: { keyCooldown: '2h' } }, /retry\.keyCooldown/],
      [
        { providers: [provider], cache: { redis: fakeRedis, ttl: 0 } },
        /cache\.ttl: expected a duration from 1s to 30d/,
      ],
      [{ providers: [provider], cache: { redis: fakeRedis, ttl: '500ms' } }, /cache\.ttl/],
      [{ providers: [provider], cache: { redis: fakeRedis, timeout: 0 } }, /cache\.timeout: expected .* 1ms/],
      [{ providers: [provider], service: 'llm:backend' }, /service: expected letters, digits/],
      [
        { providers: [provider], overrides: { olama: { retry: { maxAttempts: 1 } } } },
        /overrides\.olama: no provider is named "olama"/,
      ],
    ];
    for (const [options, message] of bad) {
      let error: unknown;
      try {
        createProviderChain(options as never);
      } catch (e) {
        error = e;
      }
      expect(isInputValidationError(error), String(message)).toBe(true);
      expect((error as Error).message).toMatch(message);
    }
    expect(() => openRouterProvider({ apiKeys: [], model: 'm' })).toThrow(
      /apiKeys: give at least one API key/,
    );
    expect(() =>
      openRouterProvider({ apiKeys: ['k'], model: 'm', headers: { Authorization: 'Bearer k' } }),
    ).toThrow(/headers: put the API key in apiKeys/);
  });

  it('a closed chain refuses calls; providers never show their keys when logged', async () => {
    const { chain } = chainFor();
    await chain.close();
    await expect(chain.chat(ask('x'))).rejects.toThrow(/closed/);
    const provider = openRouterProvider({ apiKeys: [KEY_A], model: OPENROUTER_MODEL });
    expect(JSON.stringify(provider)).not.toContain(KEY_A);
    expect(Object.keys(provider)).not.toContain('apiKeys');
    expect(provider.apiKeys).toEqual([KEY_A]);
  });
});
