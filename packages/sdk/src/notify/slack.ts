import { z } from 'zod';
import { parseOptions } from '../core/parse-options';
import { DeliveryRetryOptions, deliver } from './delivery';

/** Options of {@link slackWebhook}. */
export const SlackWebhookOptions = z.object({
  /** The incoming webhook URL. It is the secret: never logged, never in errors. */
  url: z.url('expected the Slack incoming webhook URL (https://hooks.slack.com/services/…)'),
  /** The channel it posts to, for messages (`#incidents`). @default "the webhook's channel" */
  channel: z.string().min(1).default("the webhook's channel"),
  /** Retries of 429, 5xx and network failures. @default see {@link DeliveryRetryOptions} */
  retry: DeliveryRetryOptions.default(DeliveryRetryOptions.parse({})),
});
export type SlackWebhookOptions = z.infer<typeof SlackWebhookOptions>;
/** {@link SlackWebhookOptions} as written by users. */
export type SlackWebhookOptionsInput = z.input<typeof SlackWebhookOptions>;

/** A Slack message: `text` is required (it is the notification text); `blocks` are Block Kit blocks. */
export interface SlackMessage {
  text: string;
  blocks?: Record<string, unknown>[];
}

/** A Slack incoming webhook. */
export interface SlackWebhook {
  readonly channel: string;
  post(message: SlackMessage): Promise<void>;
}

/** Slack's limit on a message's `text`. */
const SLACK_TEXT_LIMIT = 40_000;

/** A Slack incoming-webhook client: `POST <url>` with `{text, blocks?}`; Slack answers `200 ok`. */
export function slackWebhook(options: SlackWebhookOptionsInput): SlackWebhook {
  const config = parseOptions('slackWebhook', SlackWebhookOptions, options);
  return {
    channel: config.channel,
    async post(message) {
      if (message.text.trim() === '') throw new TypeError('A Slack message needs a non-empty text.');
      await deliver(
        {
          service: `Slack webhook for ${config.channel}`,
          method: 'POST',
          url: config.url,
          body: {
            text: message.text.slice(0, SLACK_TEXT_LIMIT),
            ...(message.blocks ? { blocks: message.blocks } : {}),
          },
          secrets: [config.url, new URL(config.url).pathname],
          // Slack answers errors as plain text: `invalid_payload`, `no_text`, `channel_is_archived`.
          errorText: (_body, text) => ({ message: text.trim() || 'no message' }),
        },
        config.retry,
      );
    },
  };
}
