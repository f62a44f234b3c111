import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { apiKeyFingerprint, KeyRing } from '../../src/resilience/api-keys';
import { InFlight } from '../../src/resilience/coalesce';
import { ollamaProvider } from '../../src/resilience/ollama';
import { openRouterProvider } from '../../src/resilience/openrouter';
import { isProviderHttpError } from '../../src/resilience/provider-errors';
import { canonicalRequest, requestHash } from '../../src/resilience/provider-request';
import { backoffDelay, parseRetryAfter } from '../../src/resilience/retry-policy';

// The small pieces of the provider chain: Retry-After, backoff, the key ring, the canonical request,
// coalescing, and how the adapters read odd answers (from a plain HTTP server of this file).

describe('Retry-After', () => {
  const now = Date.parse('2026-03-01T10:00:00Z');
  it('reads delay-seconds and HTTP dates', () => {
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 1.5 ', now)).toBe(1_500);
    expect(parseRetryAfter('Sun, 01 Mar 2026 10:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Sun, 01 Mar 2026 09:00:00 GMT', now)).toBe(0);
    for (const bad of [null, undefined, '', 'soon', '-5']) expect(parseRetryAfter(bad, now)).toBeUndefined();
  });
});

describe('backoff', () => {
  it('is full jitter: uniform in [0, min(max, base · 2^(n-1))]', () => {
    expect(backoffDelay(1, 100, 2_000, () => 1)).toBe(100);
    expect(backoffDelay(3, 100, 2_000, () => 1)).toBe(400);
    expect(backoffDelay(10, 100, 2_000, () => 1)).toBe(2_000);
    expect(backoffDelay(3, 100, 2_000, () => 0)).toBe(0);
    expect(backoffDelay(3, 100, 2_000, () => 0.5)).toBe(200);
  });
});

describe('key ring', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('goes round-robin, skips resting keys, and says how long until one wakes', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(1_000_000);
    const ring = new KeyRing(['a', 'b', 'c']);
    expect([ring.next(), ring.next(), ring.next(), ring.next()]).toEqual([0, 1, 2, 0]);
    ring.coolDown(1, 5_000, Date.now());
    expect(ring.idle).toBe(false);
    expect([ring.pick().index, ring.pick().index, ring.pick().index]).toEqual([2, 0, 2]);
    ring.coolDown(0, 3_000, Date.now());
    ring.coolDown(2, 8_000, Date.now());
    expect(ring.pick()).toEqual({ index: -1, waitMs: 3_000 });
    expect(ring.cooling(Date.now())).toEqual({ count: 3, nextFreeInMs: 3_000 });
    vi.setSystemTime(1_003_000);
    expect(ring.pick()).toEqual({ index: 0, waitMs: 0 });
    vi.setSystemTime(1_010_000);
    expect(ring.cooling(Date.now())).toEqual({ count: 0 });
    expect([ring.pick().index, ring.pick().index]).toEqual([1, 2]);
    expect(ring.idle).toBe(true);
  });

  it('keeps a longer rest already in place; has one anonymous slot without keys; fingerprints, never keys', () => {
    const ring = new KeyRing(['secret-key-1']);
    ring.coolDown(0, 10_000, 0);
    ring.coolDown(0, 1_000, 0);
    expect(ring.cooling(0)).toEqual({ count: 1, nextFreeInMs: 10_000 });
    expect(new KeyRing(undefined).keys).toEqual([undefined]);
    expect(ring.fingerprints).toEqual([apiKeyFingerprint('secret-key-1')]);
    expect(apiKeyFingerprint('secret-key-1')).toMatch(/^sha256:[0-9a-f]{12}$/);
  });

  it('rests a key for one hour at most, whatever Retry-After asked', () => {
    const ring = new KeyRing(['a']);
    ring.coolDown(0, 30 * 86_400_000, 0);
    expect(ring.cooling(0)).toEqual({ count: 1, nextFreeInMs: 3_600_000 });
  });
});

describe('canonical request', () => {
  it('is the same for the same request written differently, different when anything that matters differs', () => {
    const base = { messages: [{ role: 'user' as const, content: 'q' }], temperature: 0.2, stop: ['b', 'a'] };
    const same = canonicalRequest(
      { stop: ['a', 'b'], temperature: 0.2, messages: [{ content: 'q', role: 'user' }] },
      'm',
    );
    expect(canonicalRequest(base, 'm')).toBe(same);
    expect(canonicalRequest({ ...base, temperature: 0.3 }, 'm')).not.toBe(same);
    expect(canonicalRequest({ ...base, maxTokens: 10 }, 'm')).not.toBe(same);
    expect(canonicalRequest(base, 'other models')).not.toBe(same);
    expect(requestHash(same)).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('in-flight coalescing', () => {
  it('shares one start between callers of a key and forgets it once settled', async () => {
    const inFlight = new InFlight<number>();
    let starts = 0;
    let release!: (n: number) => void;
    const start = () => {
      starts++;
      return new Promise<number>((r) => {
        release = r;
      });
    };
    const a = inFlight.join('k', undefined, start);
    const b = inFlight.join('k', undefined, start);
    expect([a.joined, b.joined, starts, inFlight.size]).toEqual([false, true, 1, 1]);
    release(42);
    expect(await Promise.all([a.promise, b.promise])).toEqual([42, 42]);
    expect(inFlight.size).toBe(0);
    const failing = inFlight.join('k', undefined, () => Promise.reject(new Error('no')));
    await expect(failing.promise).rejects.toThrow('no');
    expect(inFlight.size).toBe(0);
  });
});

describe('adapters reading odd answers', () => {
  let server: Server;
  let url: string;
  let next: { status: number; body: string; headers?: Record<string, string> } = { status: 200, body: '{}' };
  const seen: { url?: string; headers: Record<string, unknown>; body: string }[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        seen.push({ url: req.url, headers: req.headers, body });
        res.writeHead(next.status, { 'content-type': 'application/json', ...next.headers });
        res.end(next.body);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });
  const context = { signal: new AbortController().signal, apiKey: 'sk-or-v1-adapter-test-key-000000000000' };
  const request = {
    messages: [{ role: 'user' as const, content: 'q' }],
    temperature: 0.5,
    maxTokens: 9,
    stop: ['x'],
  };

  it('OpenRouter: sends the OpenAI body with the key and headers; maps usage and finish reason', async () => {
    const provider = openRouterProvider({
      baseUrl: `${url}/api/v1/`,
      apiKeys: ['unused'],
      model: 'm',
      headers: { 'X-Title': 'AI-Web-Test' },
    });
    next = {
      status: 200,
      body: JSON.stringify({
        id: 'gen-1',
        model: 'm',
        choices: [{ message: { content: 'hi' }, finish_reason: 'length' }],
        usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
      }),
    };
    expect(await provider.call(request, context)).toEqual({
      content: 'hi',
      model: 'm',
      id: 'gen-1',
      finishReason: 'length',
      usage: { promptTokens: 1, completionTokens: 2, totalTokens: 3 },
    });
    const sent = seen.at(-1);
    expect(sent?.url).toBe('/api/v1/chat/completions');
    expect(sent?.headers.authorization).toBe(`Bearer ${context.apiKey}`);
    expect(sent?.headers['x-title']).toBe('AI-Web-Test');
    expect(JSON.parse(sent?.body ?? '')).toEqual({
      model: 'm',
      messages: request.messages,
      temperature: 0.5,
      max_tokens: 9,
      stop: ['x'],
    });
  });

  it('OpenRouter: an error object in a 200, a body that is not JSON, no content; the key is scrubbed from upstream text', async () => {
    const provider = openRouterProvider({ baseUrl: url, apiKeys: ['k'], model: 'm' });
    next = { status: 200, body: JSON.stringify({ error: { code: 503, message: 'upstream model failed' } }) };
    await expect(provider.call(request, context)).rejects.toMatchObject({
      status: 503,
      code: 'PROVIDER_HTTP_ERROR',
    });
    next = { status: 200, body: '<html>gateway</html>' };
    await expect(provider.call(request, context)).rejects.toMatchObject({ status: 502 });
    next = { status: 200, body: JSON.stringify({ choices: [{ message: {} }] }) };
    await expect(provider.call(request, context)).rejects.toMatchObject({ code: 'PROVIDER_BAD_RESPONSE' });
    next = {
      status: 401,
      body: JSON.stringify({ error: { code: 401, message: `key ${context.apiKey} is invalid` } }),
    };
    const error = await provider.call(request, context).catch((e) => e);
    expect(isProviderHttpError(error)).toBe(true);
    expect(error.message).not.toContain(context.apiKey);
    expect(error.message).toContain('[REDACTED]');
    next = { status: 429, body: 'slow down', headers: { 'retry-after': '7' } };
    await expect(provider.call(request, context)).rejects.toMatchObject({ status: 429, retryAfterMs: 7_000 });
  });

  it('OpenRouter: the error object of a 200 is upstream text like any other: key scrubbed, shortened', async () => {
    const provider = openRouterProvider({ baseUrl: url, apiKeys: ['k'], model: 'm' });
    const long = `model failed for ${context.apiKey}: ${'x'.repeat(5_000)}`;
    next = { status: 200, body: JSON.stringify({ error: { code: 502, message: long } }) };
    const error = await provider.call(request, context).catch((e) => e);
    expect(error).toMatchObject({ status: 502, code: 'PROVIDER_HTTP_ERROR' });
    expect(error.message).not.toContain(context.apiKey);
    expect(error.message).toContain('[REDACTED]');
    expect(error.message.length).toBeLessThan(500);
    // A key that the 300-character limit would cut in two is redacted whole, before the cut.
    next = {
      status: 200,
      body: JSON.stringify({ error: { message: `${'y'.repeat(285)} ${context.apiKey}` } }),
    };
    const cut = await provider.call(request, context).catch((e) => e);
    expect(cut.message).not.toContain(context.apiKey.slice(0, 12));
    // A code that is no HTTP error status, a message that is no text: a 502 with a message of its own.
    next = { status: 200, body: JSON.stringify({ error: { code: 99_999, message: { nested: true } } }) };
    const odd = await provider.call(request, context).catch((e) => e);
    expect(odd).toMatchObject({ status: 502 });
    expect(odd.message).toContain('an error object in a 200 answer');
  });

  it('both adapters send exactly what the cache key covers: role and content of each message', async () => {
    // A request from outside is not parsed per call: its messages may carry more (names, tool calls…).
    const loose = {
      ...request,
      messages: [{ role: 'user', content: 'q', name: 'alice', tool_calls: [{ id: 't1' }] }],
    } as unknown as typeof request;
    next = { status: 200, body: JSON.stringify({ choices: [{ message: { content: 'hi' } }] }) };
    await openRouterProvider({ baseUrl: url, apiKeys: ['k'], model: 'm' }).call(loose, context);
    expect(JSON.parse(seen.at(-1)?.body ?? '').messages).toEqual([{ role: 'user', content: 'q' }]);
    next = { status: 200, body: JSON.stringify({ message: { role: 'assistant', content: 'local' } }) };
    await ollamaProvider({ baseUrl: url, model: 'llama3.1:8b' }).call(loose, { signal: context.signal });
    expect(JSON.parse(seen.at(-1)?.body ?? '').messages).toEqual([{ role: 'user', content: 'q' }]);
    expect(canonicalRequest(loose, 'm')).toBe(canonicalRequest(request, 'm'));
  });

  it('Ollama: sends stream:false with sampling in options, reads message and counts', async () => {
    const provider = ollamaProvider({ baseUrl: url, model: 'llama3.1:8b', keepAlive: '10m' });
    next = {
      status: 200,
      body: JSON.stringify({
        model: 'llama3.1:8b',
        message: { role: 'assistant', content: 'local' },
        done: true,
        done_reason: 'stop',
        prompt_eval_count: 4,
        eval_count: 5,
      }),
    };
    expect(await provider.call(request, { signal: context.signal })).toEqual({
      content: 'local',
      model: 'llama3.1:8b',
      finishReason: 'stop',
      usage: { promptTokens: 4, completionTokens: 5, totalTokens: 9 },
    });
    expect(JSON.parse(seen.at(-1)?.body ?? '')).toEqual({
      model: 'llama3.1:8b',
      messages: request.messages,
      stream: false,
      options: { temperature: 0.5, num_predict: 9, stop: ['x'] },
      keep_alive: '10m',
    });
    expect(seen.at(-1)?.url).toBe('/api/chat');
  });
});
