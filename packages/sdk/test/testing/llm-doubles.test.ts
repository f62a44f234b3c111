import { afterEach, describe, expect, it } from 'vitest';
import { apiKeyFingerprint } from '../../src/resilience/api-keys';
import {
  type OllamaDouble,
  type OpenRouterDouble,
  startOllamaDouble,
  startOpenRouterDouble,
} from '../../src/testing';

// The OpenRouter and Ollama test doubles, spoken to with plain fetch: the wire formats, auth, validation,
// per-key limits, the injectable faults and the request log.

const KEY_A = 'sk-or-v1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const KEY_B = 'sk-or-v1-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';

const doubles: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const d of doubles.splice(0)) await d.close();
});

async function openRouter(
  options: Partial<Parameters<typeof startOpenRouterDouble>[0]> = {},
): Promise<OpenRouterDouble> {
  const double = await startOpenRouterDouble({ keys: [KEY_A, KEY_B], ...options });
  doubles.push(double);
  return double;
}
async function ollama(): Promise<OllamaDouble> {
  const double = await startOllamaDouble({ models: ['llama3.1:8b', 'mistral'] });
  doubles.push(double);
  return double;
}

/** A response's JSON body, read loosely. */
// biome-ignore lint/suspicious/noExplicitAny: tests read the JSON documents loosely
const json = async (res: Response): Promise<any> => res.json();

const chatBody = (content: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: 'anthropic/claude-3.5-sonnet', messages: [{ role: 'user', content }], ...extra });

function complete(double: OpenRouterDouble, key: string | undefined, body: string) {
  return fetch(`${double.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body,
  });
}

describe('OpenRouter double', () => {
  it('answers a chat completion in the OpenAI-compatible shape, deterministically from the last user message', async () => {
    const double = await openRouter();
    const res = await complete(double, KEY_A, chatBody('How many agents are down?'));
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toMatchObject({
      id: 'gen-000001',
      model: 'anthropic/claude-3.5-sonnet',
      object: 'chat.completion',
      choices: [
        {
          index: 0,
          finish_reason: 'stop',
          message: {
            role: 'assistant',
            content: '[openrouter anthropic/claude-3.5-sonnet] How many agents are down?',
          },
        },
      ],
      usage: { prompt_tokens: expect.any(Number), completion_tokens: expect.any(Number) },
    });
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
    // max_tokens cuts the answer and says so.
    const short = await json(await complete(double, KEY_A, chatBody('x'.repeat(200), { max_tokens: 2 })));
    expect(short.choices[0].finish_reason).toBe('length');
    expect(short.choices[0].message.content).toHaveLength(8);
  });

  it('refuses a missing or unknown key with 401 in OpenRouter’s error shape, and logs fingerprints only', async () => {
    const double = await openRouter();
    const missing = await complete(double, undefined, chatBody('hi'));
    expect(missing.status).toBe(401);
    expect(await json(missing)).toEqual({ error: { code: 401, message: 'No auth credentials found' } });
    const unknown = await complete(double, 'sk-or-v1-not-a-key-of-this-double', chatBody('hi'));
    expect(unknown.status).toBe(401);
    expect((await json(unknown)).error.code).toBe(401);
    await complete(double, KEY_B, chatBody('hi'));
    expect(double.requests.map((r) => [r.status, r.keyFingerprint])).toEqual([
      [401, undefined],
      [401, apiKeyFingerprint('sk-or-v1-not-a-key-of-this-double')],
      [200, apiKeyFingerprint(KEY_B)],
    ]);
    expect(JSON.stringify(double.requests)).not.toContain('sk-or-v1-');
  });

  it('rejects bodies the real API rejects with 400 (zod-validated), and unknown models when a list is given', async () => {
    const double = await openRouter({ models: ['anthropic/claude-3.5-sonnet'] });
    const cases: [string, RegExp][] = [
      ['{not json', /Invalid JSON/],
      [JSON.stringify({ model: 'anthropic/claude-3.5-sonnet', messages: [] }), /messages/],
      [JSON.stringify({ messages: [{ role: 'wizard', content: 'x' }] }), /messages\.0\.role/],
      [chatBody('x', { temperature: 3 }), /temperature/],
      [
        JSON.stringify({ model: 'openai/gpt-nope', messages: [{ role: 'user', content: 'x' }] }),
        /not a valid model ID/,
      ],
    ];
    for (const [body, message] of cases) {
      const res = await complete(double, KEY_A, body);
      expect(res.status, body).toBe(400);
      const answer = await json(res);
      expect(answer.error.code).toBe(400);
      expect(answer.error.message).toMatch(message);
    }
  });

  it('reports a key’s usage and limits at GET /api/v1/key, and refuses a key over its credit limit with 402', async () => {
    const double = await openRouter({
      keys: [{ key: KEY_A, limit: 0.0001, rateLimit: { requests: 50, interval: '10s' } }],
      pricePerToken: 0.00001,
    });
    const before = await json(
      await fetch(`${double.baseUrl}/key`, { headers: { authorization: `Bearer ${KEY_A}` } }),
    );
    expect(before).toEqual({
      data: {
        label: 'sk-or-v1-aa...aaa',
        limit: 0.0001,
        usage: 0,
        limit_remaining: 0.0001,
        is_free_tier: false,
        is_provisioning_key: false,
        rate_limit: { requests: 50, interval: '10s' },
      },
    });
    expect((await complete(double, KEY_A, chatBody('a long enough question to cost something'))).status).toBe(
      200,
    );
    const after = await json(
      await fetch(`${double.baseUrl}/key`, { headers: { authorization: `Bearer ${KEY_A}` } }),
    );
    expect(after.data.usage).toBeGreaterThan(0);
    expect(double.usage(KEY_A)).toEqual({ usage: after.data.usage, requests: 1 });
    const broke = await complete(double, KEY_A, chatBody('again'));
    expect(broke.status).toBe(402);
    expect((await json(broke)).error.code).toBe(402);
  });

  it('enforces per-key rate limits with 429 and Retry-After, each key on its own', async () => {
    const double = await openRouter({ rateLimit: { requests: 2, interval: '30s' } });
    expect((await complete(double, KEY_A, chatBody('1'))).status).toBe(200);
    expect((await complete(double, KEY_A, chatBody('2'))).status).toBe(200);
    const limited = await complete(double, KEY_A, chatBody('3'));
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(29);
    expect(limited.headers.get('x-ratelimit-remaining')).toBe('0');
    expect((await json(limited)).error).toMatchObject({ code: 429 });
    // Key B has its own window.
    expect((await complete(double, KEY_B, chatBody('1'))).status).toBe(200);
  });

  it('answers GET /api/v1/health (what the manual curls) and 404 for unknown paths', async () => {
    const double = await openRouter();
    const health = await fetch(`${double.baseUrl}/health`, { method: 'HEAD' });
    expect(health.status).toBe(200);
    expect((await fetch(`${double.baseUrl}/nope`)).status).toBe(404);
  });

  it('injects 429s for one key, N times, in seconds or as an HTTP date', async () => {
    const double = await openRouter();
    double.faults.inject({ kind: 'rateLimit', key: KEY_A, retryAfter: '3s', times: 2 });
    expect(double.faults.list()).toEqual([
      expect.objectContaining({ kind: 'rateLimit', keyFingerprint: apiKeyFingerprint(KEY_A), hits: 0 }),
    ]);
    expect(JSON.stringify(double.faults.list())).not.toContain(KEY_A);
    const first = await complete(double, KEY_A, chatBody('x'));
    expect([first.status, first.headers.get('retry-after')]).toEqual([429, '3']);
    expect((await complete(double, KEY_B, chatBody('x'))).status).toBe(200);
    expect((await complete(double, KEY_A, chatBody('x'))).status).toBe(429);
    expect((await complete(double, KEY_A, chatBody('x'))).status).toBe(200);
    expect(double.faults.list()).toEqual([]);

    double.faults.inject({ kind: 'rateLimit', retryAfter: '120s', retryAfterFormat: 'http-date', times: 1 });
    const dated = await complete(double, KEY_B, chatBody('x'));
    const at = Date.parse(dated.headers.get('retry-after') ?? '');
    expect(at - Date.now()).toBeGreaterThan(115_000);
    expect(at - Date.now()).toBeLessThan(125_000);
    expect(double.requests.map((r) => r.fault)).toEqual([
      'rateLimit',
      undefined,
      'rateLimit',
      undefined,
      'rateLimit',
    ]);
  });

  it('injects 5xx, latency, and outages that reset or refuse connections', async () => {
    const double = await openRouter();
    const fault = double.faults.inject({ kind: 'serverError', status: 502 });
    expect((await complete(double, KEY_A, chatBody('x'))).status).toBe(502);
    expect((await complete(double, KEY_A, chatBody('x'))).status).toBe(502);
    fault.clear();

    double.faults.inject({ kind: 'latency', delay: 300, times: 1 });
    const started = Date.now();
    expect((await complete(double, KEY_A, chatBody('x'))).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);

    const reset = double.faults.inject({ kind: 'outage' });
    const resetError = await complete(double, KEY_A, chatBody('x')).catch((e: unknown) => e);
    expect(resetError).toBeInstanceOf(TypeError);
    expect(double.requests.at(-1)).toMatchObject({ status: 0, fault: 'outage' });
    reset.clear();
    expect((await complete(double, KEY_A, chatBody('x'))).status).toBe(200);

    const refuse = double.faults.inject({ kind: 'outage', mode: 'refuse' });
    const refused = (await complete(double, KEY_A, chatBody('x')).catch((e: unknown) => e)) as TypeError;
    expect(refused).toBeInstanceOf(TypeError);
    expect(JSON.stringify((refused.cause as { code?: string }).code)).toContain('ECONNREFUSED');
    refuse.clear();
    // Listening again on the same port takes effect at once.
    expect((await complete(double, KEY_A, chatBody('x'))).status).toBe(200);
  });

  it('refuses malformed faults with the field named', async () => {
    const double = await openRouter();
    expect(() => double.faults.inject({ kind: 'serverError', status: 404 } as never)).toThrow(/status/);
    expect(() => double.faults.inject({ kind: 'latency' } as never)).toThrow(/delay/);
  });
});

describe('Ollama double', () => {
  it('answers POST /api/chat with stream:false as one object, and streams NDJSON by default', async () => {
    const double = await ollama();
    const res = await fetch(`${double.url}/api/chat`, {
      method: 'POST',
      body: JSON.stringify({
        model: 'llama3.1:8b',
        messages: [{ role: 'user', content: 'Is Redis up?' }],
        stream: false,
      }),
    });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({
      model: 'llama3.1:8b',
      created_at: expect.any(String),
      message: { role: 'assistant', content: '[ollama llama3.1:8b] Is Redis up?' },
      done: true,
      done_reason: 'stop',
      eval_count: expect.any(Number),
    });
    const streamed = await fetch(`${double.url}/api/chat`, {
      method: 'POST',
      body: JSON.stringify({ model: 'mistral', messages: [{ role: 'user', content: 'hi' }] }),
    });
    const lines = (await streamed.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.done)).toEqual([false, true]);
    expect(lines[0].message.content).toBe('[ollama mistral] hi');
  });

  it('lists models at /api/tags, says "Ollama is running" at /, 404s an unknown model, 400s a bad body', async () => {
    const double = await ollama();
    expect(await (await fetch(`${double.url}/`)).text()).toBe('Ollama is running');
    const tags = await json(await fetch(`${double.url}/api/tags`));
    expect(tags.models.map((m: { name: string }) => m.name)).toEqual(['llama3.1:8b', 'mistral:latest']);
    const missing = await fetch(`${double.url}/api/chat`, {
      method: 'POST',
      body: JSON.stringify({ model: 'llama2', messages: [], stream: false }),
    });
    expect(missing.status).toBe(404);
    expect(await json(missing)).toEqual({ error: 'model "llama2" not found, try pulling it first' });
    const bad = await fetch(`${double.url}/api/chat`, {
      method: 'POST',
      body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(bad.status).toBe(400);
    expect((await json(bad)).error).toMatch(/model/);
  });

  it('has the same faults (but no per-key ones) and a request log', async () => {
    const double = await ollama();
    double.faults.inject({ kind: 'serverError', times: 1 });
    const body = JSON.stringify({
      model: 'llama3.1:8b',
      messages: [{ role: 'user', content: 'x' }],
      stream: false,
    });
    const busy = await fetch(`${double.url}/api/chat`, { method: 'POST', body });
    expect(busy.status).toBe(503);
    expect((await json(busy)).error).toBe('server busy, please try again');
    expect((await fetch(`${double.url}/api/chat`, { method: 'POST', body })).status).toBe(200);
    expect(() => double.faults.inject({ kind: 'rateLimit', key: 'k' })).toThrow(/no API keys/);
    expect(double.requests.map((r) => [r.path, r.model, r.status, r.fault])).toEqual([
      ['/api/chat', 'llama3.1:8b', 503, 'serverError'],
      ['/api/chat', 'llama3.1:8b', 200, undefined],
    ]);
  });
});
