import { z } from 'zod';
import { parseOptions } from '../core/parse-options';
import type { Severity } from '../core/runbook';
import { type Delivered, DeliveryRetryOptions, deliver } from './delivery';
import { pagerDutySeverity } from './severity';

/** PagerDuty's limit on `payload.summary`; longer summaries are cut with an ellipsis. */
export const PAGERDUTY_SUMMARY_LIMIT = 1024;

/** Options of {@link pagerDuty}. */
export const PagerDutyOptions = z.object({
  /** Base URL of the Events API (`/v2/enqueue` is appended). @default "https://events.pagerduty.com" */
  url: z.url().default('https://events.pagerduty.com'),
  /**
   * Integration (routing) keys by team: `{ default: "…", security: "…" }`. Secrets: never logged, never in errors.
   * @default {}
   */
  routingKeys: z.record(z.string().min(1), z.string().min(1, 'a routing key must not be empty')).default({}),
  /** `payload.source` of triggers: the system the alert is about. @default "aiwebtest-runbooks" */
  source: z.string().min(1).default('aiwebtest-runbooks'),
  /** Retries of 429, 5xx and network failures. @default see {@link DeliveryRetryOptions} */
  retry: DeliveryRetryOptions.default(DeliveryRetryOptions.parse({})),
});
export type PagerDutyOptions = z.infer<typeof PagerDutyOptions>;
/** {@link PagerDutyOptions} as written by users. */
export type PagerDutyOptionsInput = z.input<typeof PagerDutyOptions>;

/** A trigger event. */
export interface PagerDutyTrigger {
  /** The team whose routing key to use. @default "default" */
  team?: string;
  /** Events with the same key update one PagerDuty incident instead of opening another. */
  dedupKey: string;
  summary: string;
  severity: Severity;
  component?: string;
  group?: string;
  class?: string;
  customDetails?: Record<string, unknown>;
  links?: { href: string; text?: string }[];
  /** @default now */
  timestamp?: Date;
}

/** What PagerDuty answered to an accepted event. */
export interface PagerDutyAccepted {
  status: string;
  message: string;
  dedupKey: string;
}

/** A PagerDuty Events API v2 client. */
export interface PagerDutyClient {
  /** The teams a routing key is configured for. */
  readonly teams: readonly string[];
  trigger(event: PagerDutyTrigger): Promise<PagerDutyAccepted>;
  acknowledge(event: { team?: string; dedupKey: string }): Promise<PagerDutyAccepted>;
  resolve(event: { team?: string; dedupKey: string }): Promise<PagerDutyAccepted>;
}

const ACCEPTED = z.object({
  status: z.string(),
  message: z.string(),
  dedup_key: z.string(),
});

const INVALID = z.object({
  message: z.string().optional(),
  errors: z.array(z.string()).optional(),
});

/**
 * A PagerDuty Events API v2 client over `fetch`: `POST /v2/enqueue` with `trigger`, `acknowledge` and `resolve`.
 * Severities map P0 → critical, P1 → error, P2 → warning, P3 → info; summaries longer than 1024 characters are cut.
 * A 400 ("invalid event") fails at once with a non-retriable `NotificationError`; 429 and 5xx are retried with
 * backoff and jitter, honouring `Retry-After`.
 */
export function pagerDuty(options: PagerDutyOptionsInput): PagerDutyClient {
  const config = parseOptions('pagerDuty', PagerDutyOptions, options);
  const endpoint = `${config.url.replace(/\/+$/, '')}/v2/enqueue`;
  const secrets = Object.values(config.routingKeys);

  const routingKey = (team: string): string => {
    const key = config.routingKeys[team];
    if (!key) {
      throw new TypeError(
        `No PagerDuty routing key for team "${team}": configured teams are ${
          Object.keys(config.routingKeys)
            .map((t) => `"${t}"`)
            .join(', ') || '(none)'
        }. Add routingKeys.${team}.`,
      );
    }
    return key;
  };

  const send = async (team: string, body: Record<string, unknown>): Promise<PagerDutyAccepted> => {
    const answer: Delivered = await deliver(
      {
        service: `PagerDuty (team "${team}")`,
        method: 'POST',
        url: endpoint,
        body: { routing_key: routingKey(team), ...body },
        secrets,
        errorText: (parsed, text) => {
          const invalid = INVALID.safeParse(parsed);
          return invalid.success && invalid.data.message
            ? {
                message: invalid.data.message,
                ...(invalid.data.errors ? { errors: invalid.data.errors } : {}),
              }
            : { message: text.slice(0, 300) || 'no message' };
        },
      },
      config.retry,
    );
    const accepted = ACCEPTED.safeParse(answer.body);
    if (!accepted.success) {
      return { status: 'success', message: 'Event processed', dedupKey: String(body.dedup_key ?? '') };
    }
    return {
      status: accepted.data.status,
      message: accepted.data.message,
      dedupKey: accepted.data.dedup_key,
    };
  };

  return {
    teams: Object.keys(config.routingKeys),
    trigger(event) {
      return send(event.team ?? 'default', {
        event_action: 'trigger',
        dedup_key: event.dedupKey,
        payload: {
          summary: truncate(event.summary, PAGERDUTY_SUMMARY_LIMIT),
          source: config.source,
          severity: pagerDutySeverity(event.severity),
          timestamp: (event.timestamp ?? new Date()).toISOString(),
          ...(event.component ? { component: event.component } : {}),
          ...(event.group ? { group: event.group } : {}),
          ...(event.class ? { class: event.class } : {}),
          ...(event.customDetails ? { custom_details: event.customDetails } : {}),
        },
        ...(event.links ? { links: event.links } : {}),
      });
    },
    acknowledge(event) {
      return send(event.team ?? 'default', { event_action: 'acknowledge', dedup_key: event.dedupKey });
    },
    resolve(event) {
      return send(event.team ?? 'default', { event_action: 'resolve', dedup_key: event.dedupKey });
    },
  };
}

/** `text` cut to `limit` characters, the last one an ellipsis when it was cut. */
export function truncate(text: string, limit: number): string {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}
