import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { parseOptions } from '../../core/parse-options';
import { apiKeyFingerprint } from '../../resilience/api-keys';
import {
  type DoubleAnswer,
  type DoubleExchange,
  DoubleServerOptions,
  type LoggedRequest,
  lastUserText,
  readBody,
  sendJson,
  startDoubleServer,
  tokenCount,
} from './double-server';
import type { LlmFaults } from './llm-faults';

/** A per-key request limit: at most `requests` per `interval` (a fixed window from the window's first request). */
const KeyRateLimit = z.strictObject({
  requests: z.number().int().positive(),
  interval: Duration,
});

/** One API key the double accepts. */
const KeyConfig = z.strictObject({
  key: z.string().min(1),
  /** What `GET /api/v1/key` shows as `label`. @default the key masked as OpenRouter does: `sk-or-v1-abc...xyz` */
  label: z.string().optional(),
  /** Credit limit in USD; a key whose usage reaches it gets 402. `null`: unlimited. @default null */
  limit: z.number().nonnegative().nullable().default(null),
  /** This key's rate limit. @default the double's `rateLimit` */
  rateLimit: KeyRateLimit.optional(),
});

/** Options of {@link startOpenRouterDouble}. */
export const OpenRouterDoubleOptions = z.strictObject({
  /** The API keys it accepts (Bearer); any other gets 401. */
  keys: z.array(z.union([z.string().min(1), KeyConfig])).min(1, 'give at least one key'),
  /** The rate limit of every key without its own (429 with `Retry-After` beyond it). @default none */
  rateLimit: KeyRateLimit.optional(),
  /** The model ids it serves; another gets 400. @default any */
  models: z.array(z.string().min(1)).optional(),
  /** The model used when a request names none (OpenRouter uses the account's default). @default "openrouter/auto" */
  defaultModel: z.string().min(1).default('openrouter/auto'),
  /** USD per token added to a key's usage. @default 0.000001 */
  pricePerToken: z.number().nonnegative().default(0.000001),
  ...DoubleServerOptions,
});
/** {@link OpenRouterDoubleOptions} as written by tests. */
export type OpenRouterDoubleOptions = z.input<typeof OpenRouterDoubleOptions>;

/** A running OpenRouter double. */
export interface OpenRouterDouble {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** `url + '/api/v1'`: what `openRouterProvider({ baseUrl })` takes. */
  readonly baseUrl: string;
  /** Outage, latency, 429 and 5xx faults: `inject`, `clear`, `clearAll`, `list`. */
  readonly faults: LlmFaults;
  /** Every request received, oldest first (with key fingerprints, never keys). */
  readonly requests: readonly LoggedRequest[];
  clearRequests(): void;
  /** A key's usage so far (USD) and requests served. */
  usage(key: string): { usage: number; requests: number };
  close(): Promise<void>;
}

/** What OpenRouter accepts at `POST /chat/completions` (the fields it validates; unknown ones pass). */
const ChatCompletionBody = z.looseObject({
  model: z.string().min(1).optional(),
  messages: z
    .array(
      z.looseObject({
        role: z.enum(['system', 'user', 'assistant', 'tool', 'developer']),
        content: z.union([z.string(), z.array(z.looseObject({ type: z.string() }))]).nullable(),
        name: z.string().optional(),
      }),
    )
    .min(1),
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().gt(0).max(1).optional(),
  max_tokens: z.number().int().min(1).optional(),
  stop: z
    .union([z.string(), z.array(z.string()).max(4)])
    .nullable()
    .optional(),
  stream: z.boolean().optional(),
});

interface KeyState {
  fingerprint: string;
  label: string;
  limit: number | null;
  rateLimit: z.output<typeof KeyRateLimit> | undefined;
  usage: number;
  requests: number;
  windowStart: number;
  windowCount: number;
}

/**
 * Starts an OpenRouter-compatible HTTP server on 127.0.0.1 (a test double; the real API cannot run here):
 * `POST /api/v1/chat/completions` (OpenAI-compatible body and answer), `GET /api/v1/key` (the key's usage and
 * limits), `GET /api/v1/health`. Bearer keys are checked against `keys` (401 otherwise), each key has its rate
 * limit (429 with `Retry-After`) and credit limit (402); errors have OpenRouter's shape `{error:{code,message}}`.
 * Answers are deterministic (from the last user message), so a test can tell which provider answered.
 */
export async function startOpenRouterDouble(options: OpenRouterDoubleOptions): Promise<OpenRouterDouble> {
  const o = parseOptions('startOpenRouterDouble', OpenRouterDoubleOptions, options);
  const keys = new Map<string, KeyState>();
  for (const entry of o.keys) {
    const config = typeof entry === 'string' ? KeyConfig.parse({ key: entry }) : entry;
    keys.set(config.key, {
      fingerprint: apiKeyFingerprint(config.key),
      label: config.label ?? maskKey(config.key),
      limit: config.limit,
      rateLimit: config.rateLimit ?? o.rateLimit,
      usage: 0,
      requests: 0,
      windowStart: 0,
      windowCount: 0,
    });
  }
  const answer: DoubleAnswer =
    o.answer ?? (({ model, messages }) => `[openrouter ${model}] ${lastUserText(messages)}`);
  let generation = 0;

  const server = await startDoubleServer(o.host, o.port, true, async (x) => {
    if (x.path === '/api/v1/health') {
      if (x.method !== 'GET' && x.method !== 'HEAD') return error(x, 405, 'Method Not Allowed');
      return sendJson(x.res, 200, { status: 'ok' });
    }
    if (x.path !== '/api/v1/chat/completions' && x.path !== '/api/v1/key')
      return error(x, 404, `Not Found: ${x.path}`);
    const key = authenticate(x);
    if (!key) return;
    if (x.path === '/api/v1/key') {
      if (x.method !== 'GET') return error(x, 405, 'Method Not Allowed');
      return sendJson(x.res, 200, {
        data: {
          label: key.label,
          limit: key.limit,
          usage: round(key.usage),
          limit_remaining: key.limit === null ? null : round(Math.max(0, key.limit - key.usage)),
          is_free_tier: false,
          is_provisioning_key: false,
          rate_limit: key.rateLimit
            ? { requests: key.rateLimit.requests, interval: `${toMillis(key.rateLimit.interval) / 1000}s` }
            : { requests: -1, interval: '10s' },
        },
      });
    }
    if (x.method !== 'POST') return error(x, 405, 'Method Not Allowed');
    await chatCompletion(x, key);
  });

  function authenticate(x: DoubleExchange): KeyState | undefined {
    const header = x.req.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) {
      error(x, 401, 'No auth credentials found');
      return undefined;
    }
    const key = keys.get(match[1] as string);
    x.entry.keyFingerprint = apiKeyFingerprint(match[1] as string);
    if (!key) {
      error(x, 401, 'User not found.');
      return undefined;
    }
    return key;
  }

  async function chatCompletion(x: DoubleExchange, key: KeyState): Promise<void> {
    const text = await readBody(x.req);
    let json: unknown;
    try {
      json = text === undefined ? undefined : JSON.parse(text);
    } catch {
      return error(x, 400, 'Invalid JSON in request body');
    }
    const model = (json as { model?: unknown } | null)?.model;
    if (typeof model === 'string') x.entry.model = model;
    const effect = server.faults.take(key.fingerprint);
    if (effect.delayMs > 0) {
      x.entry.fault = 'latency';
      await x.wait(effect.delayMs);
    }
    if (effect.error) {
      x.entry.fault = effect.error.kind;
      const message =
        effect.error.kind === 'rateLimit'
          ? 'Rate limit exceeded: too many requests. Retry after the Retry-After delay.'
          : 'Provider returned error (injected fault)';
      return error(x, effect.error.status, message, effect.error.headers);
    }
    const now = Date.now();
    if (key.rateLimit) {
      const interval = toMillis(key.rateLimit.interval);
      if (now - key.windowStart >= interval) {
        key.windowStart = now;
        key.windowCount = 0;
      }
      const reset = key.windowStart + interval;
      if (key.windowCount >= key.rateLimit.requests) {
        return error(
          x,
          429,
          `Rate limit exceeded: ${key.rateLimit.requests} requests per ${interval / 1000}s.`,
          {
            'retry-after': String(Math.max(1, Math.ceil((reset - now) / 1000))),
            'x-ratelimit-limit': String(key.rateLimit.requests),
            'x-ratelimit-remaining': '0',
            'x-ratelimit-reset': String(reset),
          },
        );
      }
      key.windowCount++;
    }
    const parsed = ChatCompletionBody.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return error(
        x,
        400,
        `Invalid request: ${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`,
      );
    }
    const body = parsed.data;
    if (body.stream) return error(x, 400, 'stream: true is not supported by this test double');
    const modelId = body.model ?? o.defaultModel;
    if (o.models && !o.models.includes(modelId)) return error(x, 400, `${modelId} is not a valid model ID`);
    if (key.limit !== null && key.usage >= key.limit)
      return error(
        x,
        402,
        'This request requires more credits, or fewer max_tokens. Add credits to continue.',
      );

    let content = answer({ model: modelId, messages: body.messages });
    let finishReason = 'stop';
    const stops = body.stop === undefined || body.stop === null ? [] : [body.stop].flat();
    for (const stop of stops) {
      const at = content.indexOf(stop);
      if (at >= 0) content = content.slice(0, at);
    }
    if (body.max_tokens !== undefined && tokenCount(content) > body.max_tokens) {
      content = content.slice(0, body.max_tokens * 4);
      finishReason = 'length';
    }
    const promptTokens = body.messages.reduce(
      (sum, m) =>
        sum + tokenCount(typeof m.content === 'string' ? m.content : JSON.stringify(m.content ?? '')),
      0,
    );
    const completionTokens = tokenCount(content);
    key.usage += (promptTokens + completionTokens) * o.pricePerToken;
    key.requests++;
    generation++;
    sendJson(x.res, 200, {
      id: `gen-${String(generation).padStart(6, '0')}`,
      provider: 'TestDouble',
      model: modelId,
      object: 'chat.completion',
      created: Math.floor(now / 1000),
      choices: [
        {
          index: 0,
          logprobs: null,
          finish_reason: finishReason,
          native_finish_reason: finishReason,
          message: { role: 'assistant', content, refusal: null },
        },
      ],
      usage: {
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
        total_tokens: promptTokens + completionTokens,
      },
    });
  }

  function error(
    x: DoubleExchange,
    code: number,
    message: string,
    headers: Record<string, string> = {},
  ): void {
    sendJson(x.res, code, { error: { code, message } }, headers);
  }

  return {
    url: server.url,
    baseUrl: `${server.url}/api/v1`,
    faults: server.faults,
    requests: server.requests,
    clearRequests: () => server.clearRequests(),
    usage(key) {
      const state = keys.get(key);
      return { usage: round(state?.usage ?? 0), requests: state?.requests ?? 0 };
    },
    close: () => server.close(),
  };
}

/** OpenRouter's label of a key: its start and end with `...` between (`sk-or-v1-abc...xyz`). */
function maskKey(key: string): string {
  return key.length <= 14 ? `${key.slice(0, 3)}...` : `${key.slice(0, 11)}...${key.slice(-3)}`;
}

function round(usd: number): number {
  return Math.round(usd * 1e10) / 1e10;
}
