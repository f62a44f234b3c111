import { z } from 'zod';
import { Duration } from './duration';

/** How a step is retried when it throws. A `NonRetriableError` is never retried; a `RetryAfterError` sets the delay. */
export const RetryOptions = z.object({
  /** Total attempts including the first. @default 1 */
  maxAttempts: z.number().int().min(1).max(100).default(1),
  /** Backoff growth per attempt. @default 2 */
  factor: z.number().min(1).max(10).default(2),
  /** Delay before the second attempt. @default "1s" */
  minDelay: Duration.default('1s'),
  /** Upper bound of any single delay. @default "30s" */
  maxDelay: Duration.default('30s'),
  /** Randomize each delay within [delay/2, delay] so that retries from many runs do not align. @default true */
  jitter: z.boolean().default(true),
});
/** Parsed {@link RetryOptions}. */
export type RetryOptions = z.infer<typeof RetryOptions>;
/** {@link RetryOptions} as written by users: every field optional. */
export type RetryOptionsInput = z.input<typeof RetryOptions>;

/** Options every step takes. */
export const StepOptions = z.object({
  /** Retry policy for the step. @default one attempt */
  retry: RetryOptions.partial().optional(),
  /** Abort the step (each attempt) after this long. @default no limit beyond the run's */
  timeout: Duration.optional(),
});
/** Options every step takes. */
export type StepOptions = z.input<typeof StepOptions>;
