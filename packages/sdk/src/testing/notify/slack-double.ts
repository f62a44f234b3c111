import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { DoubleListenOptions, type InjectedFailureInput, sendText, startHttpDouble } from './http-double';

/** Options of {@link startSlackDouble}. */
export const SlackDoubleOptions = z.object({
  ...DoubleListenOptions,
  /** The channels that get an incoming webhook. @default ["#incidents"] */
  channels: z
    .array(z.string().regex(/^#[a-z0-9_-]+$/, 'expected a channel such as "#incidents"'))
    .default(['#incidents']),
});
export type SlackDoubleOptions = z.infer<typeof SlackDoubleOptions>;
/** {@link SlackDoubleOptions} as written by users. */
export type SlackDoubleOptionsInput = z.input<typeof SlackDoubleOptions>;

/** A message a webhook received (or refused), without the webhook URL. */
export interface SlackLoggedMessage {
  at: number;
  /** The channel whose webhook was called; undefined for an unknown webhook. */
  channel?: string;
  text?: string;
  blocks?: unknown[];
  status: number;
  /** Slack's error text (`no_text`, `invalid_payload`, `channel_is_archived`, `no_service`). */
  error?: string;
}

/** A running Slack incoming-webhook double. */
export interface SlackDouble {
  readonly url: string;
  /** The incoming webhook URL of a channel (a secret in real life: only tests see it). */
  webhookUrl(channel: string): string;
  /** Every message received, oldest first. */
  readonly messages: readonly SlackLoggedMessage[];
  /** The accepted messages of one channel. */
  posted(channel: string): SlackLoggedMessage[];
  /** Makes a channel answer 410 `channel_is_archived`. */
  archive(channel: string): void;
  fail(failure: InjectedFailureInput): void;
  clear(): void;
  close(): Promise<void>;
}

/**
 * Starts a Slack incoming-webhook double on 127.0.0.1: one webhook per channel (`POST /services/T…/B…/…` with
 * `{text, blocks?}`), answering `200 ok`, or Slack's plain-text errors (400 `invalid_payload` / `no_text`,
 * 404 `no_service`, 410 `channel_is_archived`) and injected 429/5xx.
 */
export async function startSlackDouble(options: SlackDoubleOptionsInput = {}): Promise<SlackDouble> {
  const config = SlackDoubleOptions.parse(options);
  const paths = new Map<string, string>();
  for (const channel of config.channels) {
    paths.set(
      `/services/T00000000/B${randomBytes(4).toString('hex').toUpperCase()}/${randomBytes(12).toString('hex')}`,
      channel,
    );
  }
  const archived = new Set<string>();
  const messages: SlackLoggedMessage[] = [];

  const http = await startHttpDouble(
    config.host,
    config.port,
    ({ method, path, body, res }) => {
      const channel = paths.get(path);
      const answer = (status: number, text: string, extra: Partial<SlackLoggedMessage> = {}) => {
        messages.push({ at: Date.now(), ...(channel ? { channel } : {}), status, ...extra });
        sendText(res, status, text);
      };
      if (method !== 'POST' || !channel) return answer(404, 'no_service', { error: 'no_service' });
      if (archived.has(channel)) return answer(410, 'channel_is_archived', { error: 'channel_is_archived' });
      let parsed: { text?: unknown; blocks?: unknown };
      try {
        parsed = JSON.parse(body) as { text?: unknown; blocks?: unknown };
        if (typeof parsed !== 'object' || parsed === null) throw new Error('not an object');
      } catch {
        return answer(400, 'invalid_payload', { error: 'invalid_payload' });
      }
      if (parsed.blocks !== undefined && !Array.isArray(parsed.blocks)) {
        return answer(400, 'invalid_blocks', { error: 'invalid_blocks' });
      }
      const text = typeof parsed.text === 'string' ? parsed.text : undefined;
      if (!text && !(Array.isArray(parsed.blocks) && parsed.blocks.length)) {
        return answer(400, 'no_text', { error: 'no_text' });
      }
      return answer(200, 'ok', {
        ...(text !== undefined ? { text } : {}),
        ...(Array.isArray(parsed.blocks) ? { blocks: parsed.blocks } : {}),
      });
    },
    (exchange, status) => {
      const channel = paths.get(exchange.path);
      messages.push({ at: Date.now(), ...(channel ? { channel } : {}), status });
    },
  );

  return {
    url: http.url,
    webhookUrl(channel) {
      for (const [path, c] of paths) if (c === channel) return `${http.url}${path}`;
      throw new TypeError(`The Slack double has no webhook for ${channel}: add it to the channels option.`);
    },
    messages,
    posted: (channel) => messages.filter((m) => m.channel === channel && m.status === 200),
    archive(channel) {
      archived.add(channel);
    },
    fail: http.fail,
    clear() {
      messages.length = 0;
    },
    close: http.close,
  };
}
