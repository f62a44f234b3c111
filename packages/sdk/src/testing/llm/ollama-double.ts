import { z } from 'zod';
import { parseOptions } from '../../core/parse-options';
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

/** Options of {@link startOllamaDouble}. */
export const OllamaDoubleOptions = z.strictObject({
  /** The models it has pulled (`name:tag`; a name without tag means `:latest`). Others get 404. @default ["llama3.1:8b"] */
  models: z.array(z.string().min(1)).min(1).default(['llama3.1:8b']),
  ...DoubleServerOptions,
});
/** {@link OllamaDoubleOptions} as written by tests. */
export type OllamaDoubleOptions = z.input<typeof OllamaDoubleOptions>;

/** A running Ollama double. */
export interface OllamaDouble {
  /** `http://127.0.0.1:<port>`: what `ollamaProvider({ baseUrl })` takes (the manual's `OLLAMA_URL`). */
  readonly url: string;
  /** Outage, latency, 429 and 5xx faults (no per-key faults: Ollama has no keys). */
  readonly faults: LlmFaults;
  /** Every request received, oldest first. */
  readonly requests: readonly LoggedRequest[];
  clearRequests(): void;
  close(): Promise<void>;
}

/** What Ollama accepts at `POST /api/chat`. */
const ChatBody = z.looseObject({
  model: z.string().min(1, 'model is required'),
  messages: z
    .array(
      z.looseObject({
        role: z.enum(['system', 'user', 'assistant', 'tool']),
        content: z.string(),
        images: z.array(z.string()).optional(),
      }),
    )
    .optional(),
  stream: z.boolean().optional(),
  format: z.unknown().optional(),
  options: z.record(z.string(), z.unknown()).optional(),
  keep_alive: z.union([z.string(), z.number()]).optional(),
});

const withTag = (name: string) => (name.includes(':') ? name : `${name}:latest`);

/**
 * Starts an Ollama-compatible HTTP server on 127.0.0.1 (a test double): `POST /api/chat` (`stream: false`
 * answers one JSON object; otherwise NDJSON chunks ending with `done: true`, as Ollama streams by default),
 * `GET /api/tags`, `GET /api/version`, `GET /` ("Ollama is running"). Errors have Ollama's shape `{error:"…"}`;
 * an unknown model is a 404. Answers are deterministic (from the last user message).
 */
export async function startOllamaDouble(options: OllamaDoubleOptions = {}): Promise<OllamaDouble> {
  const o = parseOptions('startOllamaDouble', OllamaDoubleOptions, options);
  const models = new Set(o.models.map(withTag));
  const answer: DoubleAnswer =
    o.answer ?? (({ model, messages }) => `[ollama ${model}] ${lastUserText(messages)}`);

  const server = await startDoubleServer(o.host, o.port, false, async (x) => {
    if (x.path === '/' && (x.method === 'GET' || x.method === 'HEAD')) {
      x.res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      x.res.end('Ollama is running');
      return;
    }
    if (x.path === '/api/version' && x.method === 'GET') return sendJson(x.res, 200, { version: '0.6.2' });
    if (x.path === '/api/tags' && x.method === 'GET') {
      return sendJson(x.res, 200, {
        models: [...models].map((name, i) => ({
          name,
          model: name,
          modified_at: '2025-01-31T00:00:00Z',
          size: 4_920_753_328,
          digest: `${String(i).padStart(2, '0')}${'a'.repeat(62)}`,
          details: { format: 'gguf', family: 'llama', parameter_size: '8.0B', quantization_level: 'Q4_K_M' },
        })),
      });
    }
    if (x.path === '/api/chat') {
      if (x.method !== 'POST') return error(x, 405, 'method not allowed');
      return chat(x);
    }
    error(x, 404, '404 page not found');
  });

  async function chat(x: DoubleExchange): Promise<void> {
    const text = await readBody(x.req);
    let json: unknown;
    try {
      json = text === undefined ? undefined : JSON.parse(text);
    } catch {
      return error(x, 400, 'invalid character in request body');
    }
    const requested = (json as { model?: unknown } | null)?.model;
    if (typeof requested === 'string') x.entry.model = requested;
    const effect = server.faults.take(undefined);
    if (effect.delayMs > 0) {
      x.entry.fault = 'latency';
      await x.wait(effect.delayMs);
    }
    if (effect.error) {
      x.entry.fault = effect.error.kind;
      const message =
        effect.error.kind === 'rateLimit' ? 'too many requests' : 'server busy, please try again';
      return error(x, effect.error.status, message, effect.error.headers);
    }
    const parsed = ChatBody.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return error(x, 400, `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`);
    }
    const body = parsed.data;
    const model = withTag(body.model);
    if (!models.has(model)) return error(x, 404, `model "${body.model}" not found, try pulling it first`);
    const messages = body.messages ?? [];
    const content = answer({ model: body.model, messages });
    const createdAt = new Date().toISOString();
    const promptEvalCount = messages.reduce((sum, m) => sum + tokenCount(m.content), 0);
    const done = {
      model: body.model,
      created_at: createdAt,
      message: { role: 'assistant', content },
      done_reason: 'stop',
      done: true,
      total_duration: 1_200_000_000,
      load_duration: 50_000_000,
      prompt_eval_count: promptEvalCount,
      prompt_eval_duration: 200_000_000,
      eval_count: tokenCount(content),
      eval_duration: 900_000_000,
    };
    if (body.stream === false) return sendJson(x.res, 200, done);
    // Ollama streams by default: NDJSON chunks, the last one `done: true` with an empty message.
    x.res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    x.res.write(
      `${JSON.stringify({ model: body.model, created_at: createdAt, message: { role: 'assistant', content }, done: false })}\n`,
    );
    x.res.end(`${JSON.stringify({ ...done, message: { role: 'assistant', content: '' } })}\n`);
  }

  function error(
    x: DoubleExchange,
    status: number,
    message: string,
    headers: Record<string, string> = {},
  ): void {
    sendJson(x.res, status, { error: message }, headers);
  }

  return {
    url: server.url,
    faults: server.faults,
    requests: server.requests,
    clearRequests: () => server.clearRequests(),
    close: () => server.close(),
  };
}
