import { z } from 'zod';
import { parseOptions } from '../core/parse-options';
import { ProviderName } from './names';
import { ProviderHttpError, ProviderResponseError } from './provider-errors';
import { postJson, scrubUpstreamText } from './provider-http';
import {
  type ChatAnswer,
  type ChatProvider,
  type ChatRequest,
  type ProviderCallContext,
  wireMessages,
} from './provider-request';

/** Options of {@link openRouterProvider}. */
export const OpenRouterProviderOptions = z.strictObject({
  /** Its name in metrics and health (`openrouter_api_*`). @default "openrouter" */
  name: ProviderName.default('openrouter'),
  /** The API base, up to and including `/api/v1`. @default "https://openrouter.ai/api/v1" */
  baseUrl: z.url({ protocol: /^https?$/ }).default('https://openrouter.ai/api/v1'),
  /** API keys (`sk-or-v1-…`), used round-robin; a key that gets a 429 rests (see `retry.keyCooldown`). */
  apiKeys: z.array(z.string().min(1, 'an API key must not be empty')).min(1, 'give at least one API key'),
  /** The model to ask, e.g. `"anthropic/claude-3.5-sonnet"`. */
  model: z.string().min(1),
  /**
   * Extra headers, e.g. OpenRouter's app attribution `HTTP-Referer` and `X-Title`. Not `Authorization`: the
   * key goes in `apiKeys`, so that it is rotated and never shown. @default none
   */
  headers: z
    .record(z.string(), z.string())
    .refine((h) => !Object.keys(h).some((name) => name.toLowerCase() === 'authorization'), {
      message: 'put the API key in apiKeys, not in an Authorization header',
    })
    .optional(),
});
/** {@link OpenRouterProviderOptions} as written by users. */
export type OpenRouterProviderOptions = z.input<typeof OpenRouterProviderOptions>;

/** OpenRouter's (OpenAI-compatible) answer, as far as the adapter reads it. */
const ChatCompletion = z.object({
  id: z.string().optional(),
  model: z.string().optional(),
  choices: z
    .array(
      z.object({
        message: z.object({ content: z.string().nullable().optional() }).optional(),
        finish_reason: z.string().nullable().optional(),
      }),
    )
    .min(1),
  usage: z
    .object({ prompt_tokens: z.number(), completion_tokens: z.number(), total_tokens: z.number() })
    .optional(),
});

/**
 * The OpenRouter provider: `POST {baseUrl}/chat/completions` with `Authorization: Bearer <key>` and an
 * OpenAI-compatible body, through the global `fetch` with the call's `AbortSignal`. Errors: HTTP errors as
 * `ProviderHttpError` (429 with its `Retry-After`), network failures as `ProviderUnreachableError`.
 */
export function openRouterProvider(options: OpenRouterProviderOptions): ChatProvider {
  const o = parseOptions('openRouterProvider', OpenRouterProviderOptions, options);
  const url = `${o.baseUrl.replace(/\/+$/, '')}/chat/completions`;
  const extraHeaders = o.headers ?? {};
  const call = async (request: ChatRequest, { signal, apiKey }: ProviderCallContext): Promise<ChatAnswer> => {
    const key = apiKey ?? (o.apiKeys[0] as string);
    const json = await postJson(
      o.name,
      url,
      {
        model: o.model,
        messages: wireMessages(request),
        ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
        ...(request.maxTokens === undefined ? {} : { max_tokens: request.maxTokens }),
        ...(request.topP === undefined ? {} : { top_p: request.topP }),
        ...(request.stop === undefined ? {} : { stop: request.stop }),
      },
      { ...extraHeaders, authorization: `Bearer ${key}` },
      signal,
      [key],
    );
    // OpenRouter may answer 200 with an error object (an upstream model failed after the response began). Its
    // text is upstream text like any error body's: shortened, the key scrubbed.
    const error = (json as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    if (error) {
      const code = error.code;
      const status =
        typeof code === 'number' && Number.isInteger(code) && code >= 400 && code <= 599 ? code : 502;
      const message = typeof error.message === 'string' ? error.message : 'an error object in a 200 answer';
      throw new ProviderHttpError(o.name, status, scrubUpstreamText(message, [key]));
    }
    const parsed = ChatCompletion.safeParse(json);
    const choice = parsed.success ? parsed.data.choices[0] : undefined;
    const content = choice?.message?.content;
    if (!parsed.success || typeof content !== 'string')
      throw new ProviderResponseError(o.name, 'no choices[0].message.content');
    const usage = parsed.data.usage;
    return {
      content,
      model: parsed.data.model ?? o.model,
      ...(parsed.data.id ? { id: parsed.data.id } : {}),
      ...(choice?.finish_reason ? { finishReason: choice.finish_reason } : {}),
      ...(usage
        ? {
            usage: {
              promptTokens: usage.prompt_tokens,
              completionTokens: usage.completion_tokens,
              totalTokens: usage.total_tokens,
            },
          }
        : {}),
    };
  };
  return withHiddenKeys({ name: o.name, model: o.model, call }, o.apiKeys);
}

/** Adds `apiKeys` as a non-enumerable member, so that logging or serializing the provider does not show them. */
export function withHiddenKeys<P extends Omit<ChatProvider, 'apiKeys'>>(
  provider: P,
  keys: readonly string[],
): P {
  Object.defineProperty(provider, 'apiKeys', { value: Object.freeze([...keys]), enumerable: false });
  return provider;
}
