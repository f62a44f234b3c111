import { z } from 'zod';
import { parseOptions } from '../core/parse-options';
import { ProviderName } from './names';
import { ProviderResponseError } from './provider-errors';
import { postJson } from './provider-http';
import {
  type ChatAnswer,
  type ChatProvider,
  type ChatRequest,
  type ProviderCallContext,
  wireMessages,
} from './provider-request';

/** Options of {@link ollamaProvider}. */
export const OllamaProviderOptions = z.strictObject({
  /** Its name in metrics and health (`ollama_api_*`). @default "ollama" */
  name: ProviderName.default('ollama'),
  /** Where Ollama listens (the manual's `OLLAMA_URL`). @default "http://127.0.0.1:11434" */
  baseUrl: z.url({ protocol: /^https?$/ }).default('http://127.0.0.1:11434'),
  /** The local model, e.g. `"llama3.1:8b"`; it must be pulled on the Ollama server. */
  model: z.string().min(1),
  /** How long Ollama keeps the model loaded after a call (Ollama's `keep_alive`). @default Ollama's (5m) */
  keepAlive: z.string().min(1).optional(),
});
/** {@link OllamaProviderOptions} as written by users. */
export type OllamaProviderOptions = z.input<typeof OllamaProviderOptions>;

const OllamaChat = z.object({
  model: z.string().optional(),
  message: z.object({ content: z.string() }),
  done_reason: z.string().optional(),
  prompt_eval_count: z.number().optional(),
  eval_count: z.number().optional(),
});

/**
 * The Ollama provider: `POST {baseUrl}/api/chat` with `stream: false`, sampling settings in `options`
 * (`temperature`, `num_predict`, `top_p`, `stop`), through the global `fetch` with the call's `AbortSignal`.
 * Ollama has no API keys.
 */
export function ollamaProvider(options: OllamaProviderOptions): ChatProvider {
  const o = parseOptions('ollamaProvider', OllamaProviderOptions, options);
  const url = `${o.baseUrl.replace(/\/+$/, '')}/api/chat`;
  const call = async (request: ChatRequest, { signal }: ProviderCallContext): Promise<ChatAnswer> => {
    const sampling = {
      ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
      ...(request.maxTokens === undefined ? {} : { num_predict: request.maxTokens }),
      ...(request.topP === undefined ? {} : { top_p: request.topP }),
      ...(request.stop === undefined ? {} : { stop: request.stop }),
    };
    const json = await postJson(
      o.name,
      url,
      {
        model: o.model,
        messages: wireMessages(request),
        stream: false,
        ...(Object.keys(sampling).length > 0 ? { options: sampling } : {}),
        ...(o.keepAlive ? { keep_alive: o.keepAlive } : {}),
      },
      {},
      signal,
      [],
    );
    const parsed = OllamaChat.safeParse(json);
    if (!parsed.success) throw new ProviderResponseError(o.name, 'no message.content');
    const { prompt_eval_count: prompt, eval_count: completion } = parsed.data;
    return {
      content: parsed.data.message.content,
      model: parsed.data.model ?? o.model,
      ...(parsed.data.done_reason ? { finishReason: parsed.data.done_reason } : {}),
      ...(prompt !== undefined && completion !== undefined
        ? { usage: { promptTokens: prompt, completionTokens: completion, totalTokens: prompt + completion } }
        : {}),
    };
  };
  return { name: o.name, model: o.model, call };
}
