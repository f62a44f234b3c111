import { z } from 'zod';
import { durationBetween } from '../core/duration';

/**
 * The longest rest of an API key, whatever `Retry-After` asks (a buggy or hostile `Retry-After: 99999999` must
 * not take a key out for days), and the upper bound of every retry duration: 1 hour.
 */
export const MAX_KEY_REST_MS = 3_600_000;
const UpToAnHour = durationBetween(0, MAX_KEY_REST_MS, 'expected a duration from 0 to 1h');

/** How a provider chain retries one provider before it falls back to the next. */
export const ProviderRetryOptions = z.strictObject({
  /**
   * Calls to one provider per chain call, the first included; a call with another API key after a 429 counts
   * too. A timeout is never retried on the same provider (the next provider is the better bet). @default 3
   */
  maxAttempts: z.number().int().min(1).max(20).default(3),
  /** Backoff before the second attempt; each further one doubles it (full jitter: uniform in [0, delay]). @default "100ms" */
  baseDelay: UpToAnHour.default('100ms'),
  /** Upper bound of one backoff delay. @default "2s" */
  maxDelay: UpToAnHour.default('2s'),
  /**
   * The longest `Retry-After` (of a 429, or of a 5xx that sends one) the chain waits for, also when every API
   * key of a provider is cooling down. A longer one makes the chain fall back to the next provider at once.
   * @default "10s"
   */
  maxRetryAfter: UpToAnHour.default('10s'),
  /**
   * How long an API key rests after a 429 without `Retry-After`, or after a 401/402/403. A `Retry-After` sets
   * the rest instead, up to 1 hour. @default "60s"
   */
  keyCooldown: UpToAnHour.default('60s'),
});
/** Parsed {@link ProviderRetryOptions}. */
export type ProviderRetryOptions = z.output<typeof ProviderRetryOptions>;
/** {@link ProviderRetryOptions} as written by users: every field optional. */
export type ProviderRetryOptionsInput = z.input<typeof ProviderRetryOptions>;

/**
 * Backoff before attempt `failedAttempt + 1`: "full jitter" (uniform in [0, min(maxDelay, base · 2^(n-1))]), so
 * that many replicas retrying the same outage do not hit the provider in waves.
 */
export function backoffDelay(
  failedAttempt: number,
  baseDelayMs: number,
  maxDelayMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (failedAttempt - 1));
  return Math.round(random() * ceiling);
}

/**
 * Milliseconds a `Retry-After` header asks to wait: delay-seconds (`"120"`, fractions tolerated) or an HTTP
 * date (`"Wed, 21 Oct 2015 07:28:00 GMT"`, a date in the past means 0). `undefined` for a missing or
 * unreadable value.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  now: number = Date.now(),
): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  // Every HTTP date form names a month; without one, Date.parse reads "-5" as the year -5.
  if (!/[A-Za-z]{3}/.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
