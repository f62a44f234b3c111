import { z } from 'zod';
import { Duration, toMillis } from '../core/duration';
import { createRedactor } from '../core/redact';
import { NotificationError } from './errors';

/** How a notification client retries 429 and 5xx answers and network failures (400s are never retried). */
export const DeliveryRetryOptions = z.object({
  /** Attempts in all, the first included. @default 4 */
  maxAttempts: z.number().int().min(1).max(10).default(4),
  /** Backoff ceiling of the first retry; doubles each retry, with full jitter. @default 500 */
  baseDelay: Duration.default(500),
  /** Largest wait between attempts, also the cap on a `Retry-After` the service asks for. @default "30s" */
  maxDelay: Duration.default('30s'),
  /** Time limit of one HTTP attempt. @default "10s" */
  timeout: Duration.default('10s'),
});
export type DeliveryRetryOptions = z.infer<typeof DeliveryRetryOptions>;
/** {@link DeliveryRetryOptions} as written by users: every field optional. */
export type DeliveryRetryOptionsInput = z.input<typeof DeliveryRetryOptions>;

/** One HTTP request of a notification client. */
export interface DeliveryRequest {
  /** Who is called, for messages: `PagerDuty (team "security")`, `Slack webhook for #incidents`. Never a secret. */
  service: string;
  method: 'POST' | 'PATCH' | 'GET';
  url: string;
  headers?: Record<string, string>;
  body?: unknown;
  /** Values to scrub from any text kept from the answer (the routing key, the webhook URL, the API key). */
  secrets: readonly string[];
  /** Reads the service's error text from an error body. */
  errorText?: (body: unknown, text: string) => { message: string; errors?: string[] };
}

/** What a delivered request answered. */
export interface Delivered {
  status: number;
  /** The parsed JSON answer, or the text when it was not JSON. */
  body: unknown;
}

/**
 * Sends a request, retrying 429, 5xx and network failures with exponential backoff and full jitter and honouring
 * `Retry-After` (capped at `maxDelay`). A 4xx other than 429 fails at once with a non-retriable
 * {@link NotificationError}. Errors name the service, never the URL (a Slack webhook URL is its secret).
 */
export async function deliver(
  request: DeliveryRequest,
  retry: DeliveryRetryOptions,
  random: () => number = Math.random,
): Promise<Delivered> {
  const scrub = createRedactor(request.secrets).redactText;
  const maxDelay = toMillis(retry.maxDelay);
  const base = toMillis(retry.baseDelay);
  let lastError: NotificationError | undefined;
  for (let attempt = 1; attempt <= retry.maxAttempts; attempt++) {
    let wait: number | undefined;
    try {
      const response = await fetch(request.url, {
        method: request.method,
        headers: {
          accept: 'application/json',
          ...(request.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...request.headers,
        },
        ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
        signal: AbortSignal.timeout(toMillis(retry.timeout)),
      });
      const text = await response.text();
      const body = parseBody(text);
      if (response.ok) return { status: response.status, body };
      const described = request.errorText?.(body, text) ?? { message: shortText(text) };
      const message = scrub(described.message);
      const errors = described.errors?.map(scrub);
      const retriable = response.status === 429 || response.status >= 500;
      lastError = new NotificationError(
        `${request.service} answered ${response.status}: ${message}${errors?.length ? ` (${errors.join('; ')})` : ''}. ` +
          (retriable
            ? `Gave up after ${attempt} attempt(s); the service is rate limiting or failing, try again later.`
            : 'The request was rejected and is not retried: fix the event or the configuration.'),
        { status: response.status, retriable, service: request.service, ...(errors ? { errors } : {}) },
      );
      if (!retriable) throw lastError;
      wait = parseRetryAfter(response.headers.get('retry-after'));
    } catch (e) {
      if (e instanceof NotificationError && !e.retriable) throw e;
      if (!(e instanceof NotificationError)) {
        lastError = new NotificationError(
          `${request.service} could not be reached (${scrub(e instanceof Error ? e.message : String(e))}). ` +
            `Gave up after ${attempt} attempt(s): check that the service URL is right and reachable.`,
          { status: 0, retriable: true, service: request.service },
        );
      }
    }
    if (attempt === retry.maxAttempts) break;
    const jittered = Math.round(random() * Math.min(maxDelay, base * 2 ** (attempt - 1)));
    await new Promise((resolve) => setTimeout(resolve, Math.min(maxDelay, wait ?? jittered)));
  }
  throw (
    lastError ??
    new NotificationError(`${request.service} failed`, {
      status: 0,
      retriable: true,
      service: request.service,
    })
  );
}

function parseBody(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function shortText(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  if (oneLine === '') return 'no message';
  return oneLine.length > 300 ? `${oneLine.slice(0, 300)}…` : oneLine;
}

/** Milliseconds a `Retry-After` header asks for (seconds or an HTTP date); undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  if (!/[A-Za-z]{3}/.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
