import { createHash } from 'node:crypto';
import { z } from 'zod';

/** One message of a chat: OpenAI's roles, text content. */
export const ChatMessage = z.strictObject({
  role: z.enum(['system', 'user', 'assistant', 'tool']),
  content: z.string(),
});
/** One message of a chat. */
export type ChatMessage = z.infer<typeof ChatMessage>;

/**
 * What a provider chain is asked: the chat and the sampling settings. The model is not part of it: each
 * provider has its own (`openrouter` some hosted model, `ollama` a local one). The chain does not parse
 * requests on every call (that would cost more than the breaker): parse untrusted input with `ChatRequest.parse`.
 */
export const ChatRequest = z.strictObject({
  /** The conversation, oldest first. */
  messages: z.array(ChatMessage).min(1, 'a chat needs at least one message'),
  /** Sampling temperature, 0–2. @default the provider's */
  temperature: z.number().min(0).max(2).optional(),
  /** Upper bound of tokens in the answer. @default the provider's */
  maxTokens: z.number().int().min(1).optional(),
  /** Nucleus sampling, (0, 1]. @default the provider's */
  topP: z.number().gt(0).max(1).optional(),
  /** Sequences that end the answer. @default none */
  stop: z.array(z.string()).max(4).optional(),
});
/** What a provider chain is asked. */
export type ChatRequest = z.infer<typeof ChatRequest>;

/** Token counts as the provider reported them. */
export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

/** What a provider answers. */
export interface ChatAnswer {
  /** The assistant's text. */
  content: string;
  /** The model that answered, as the provider names it. */
  model?: string;
  /** The provider's id of the generation (`gen-…` at OpenRouter). */
  id?: string;
  /** Why generation stopped (`stop`, `length`, …). */
  finishReason?: string;
  usage?: TokenUsage;
}

/** What a provider's `call` gets besides the request. */
export interface ProviderCallContext {
  /** Aborts when the caller gives up or the breaker's timeout passes: pass it to `fetch`. */
  signal: AbortSignal;
  /** The API key to use for this call (round-robin among the provider's keys), if it has keys. */
  apiKey?: string;
}

/**
 * An LLM provider as the chain sees it. {@link openRouterProvider} and {@link ollamaProvider} are built in; any
 * object of this shape works. To report a rate limit throw a `ProviderHttpError` with status 429 (and
 * `retryAfterMs`); a 5xx, a timeout or a network error makes the chain retry and fall back.
 */
export interface ChatProvider {
  /** Its name in metrics (`<name>_api_up`…), health and errors: lower case letters, digits, `_`. */
  readonly name: string;
  /** The model it asks: part of the cache key, so that changing it does not serve old answers. */
  readonly model?: string;
  /** Its API keys, used round-robin with a cool-down after a 429. Never logged: events show fingerprints. */
  readonly apiKeys?: readonly string[];
  call(request: ChatRequest, context: ProviderCallContext): Promise<ChatAnswer>;
}

/**
 * The messages as a provider sends them: role and content only, exactly what the chain's cache and coalescing
 * key covers. A request is not parsed on every call, so a message may carry more members
 * (`name`, `tool_calls`…); sending those would let two requests that differ upstream share one cached answer.
 */
export function wireMessages(request: ChatRequest): ChatMessage[] {
  return request.messages.map((m) => ({ role: m.role, content: m.content }));
}

/**
 * The request in one canonical form: members in a fixed order, absent settings left out, `stop` sorted (its
 * order means nothing), and the models the chain would ask. Identical requests give identical text: what
 * coalescing and the cache key are made of. Never holds an API key.
 */
export function canonicalRequest(request: ChatRequest, models: string): string {
  const messages = request.messages.map((m) => [m.role, m.content]);
  return JSON.stringify([
    models,
    messages,
    request.temperature ?? null,
    request.maxTokens ?? null,
    request.topP ?? null,
    request.stop ? [...request.stop].sort() : null,
  ]);
}

/** The cache key of a canonical request: its SHA-256, so keys have a fixed length whatever the chat's size. */
export function requestHash(canonical: string): string {
  return createHash('sha256').update(canonical).digest('hex');
}
