import { z } from 'zod';
import { durationBetween } from '../core/duration';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** The opossum circuit breaker in front of each provider. Defaults are sized for LLM calls, not for opossum's. */
export const BreakerOptions = z.strictObject({
  /**
   * A call that takes longer fails as a timeout (its request is aborted) and counts against the breaker; 1 ms to
   * 1 h (0 would mean "no timeout" to opossum but "at once" to a forced-closed breaker, so it is refused).
   * @default "30s"
   */
  timeout: durationBetween(1, HOUR, 'expected a duration from 1ms to 1h').default('30s'),
  /** Failures in the rolling window, in percent of calls, above which the breaker opens. @default 50 */
  errorThresholdPercentage: z.number().min(1).max(100).default(50),
  /** How long an open breaker stays open before it lets one probe call through (half-open). @default "30s" */
  resetTimeout: durationBetween(1, DAY, 'expected a duration from 1ms to 1d').default('30s'),
  /** Calls in the rolling window before the breaker may open at all: one early failure does not open it. @default 5 */
  volumeThreshold: z.number().int().min(0).default(5),
  /** Length of the rolling window the error percentage is computed over. @default "10s" */
  rollingCountTimeout: durationBetween(100, DAY, 'expected a duration from 100ms to 1d').default('10s'),
  /** Buckets the rolling window is divided into (`rollingCountTimeout` must divide evenly by it). @default 10 */
  rollingCountBuckets: z.number().int().min(1).max(1000).default(10),
});
/** Parsed {@link BreakerOptions}. */
export type BreakerOptions = z.output<typeof BreakerOptions>;
/** {@link BreakerOptions} as written by users: every field optional. */
export type BreakerOptionsInput = z.input<typeof BreakerOptions>;
