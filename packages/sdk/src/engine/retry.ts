import { toMillis } from '../core/duration';
import { isNonRetriableError, isRetryAfterError, TimeoutError } from '../core/errors';
import { RetryOptions, type RetryOptionsInput } from '../core/options';

const SINGLE_ATTEMPT: RetryOptions = Object.freeze(RetryOptions.parse({}));

/** Parses user retry options, filling defaults (one attempt). Steps without options skip the parse. */
export function retryPolicy(input: RetryOptionsInput | undefined): RetryOptions {
  return input === undefined ? SINGLE_ATTEMPT : RetryOptions.parse(input);
}

/**
 * Delay before attempt `failedAttempt + 1`: exponential from `minDelay` by `factor`, capped at `maxDelay`,
 * with "equal jitter" (uniform in [d/2, d]) so that many runs retrying the same outage spread out.
 */
export function backoffDelay(
  failedAttempt: number,
  policy: RetryOptions,
  random: () => number = Math.random,
): number {
  const ceiling = toMillis(policy.maxDelay);
  const exponential = Math.min(ceiling, toMillis(policy.minDelay) * policy.factor ** (failedAttempt - 1));
  return policy.jitter ? Math.round(exponential / 2 + (random() * exponential) / 2) : Math.round(exponential);
}

/** Whether another attempt may follow `error` after `attempt` attempts, and after how long. */
export function nextRetry(
  error: unknown,
  attempt: number,
  policy: RetryOptions,
  random?: () => number,
): { retry: false } | { retry: true; delayMs: number } {
  if (attempt >= policy.maxAttempts || isNonRetriableError(error)) return { retry: false };
  if (isRetryAfterError(error)) return { retry: true, delayMs: error.retryAfterMs };
  return { retry: true, delayMs: backoffDelay(attempt, policy, random) };
}

/**
 * Runs `work` with a signal that aborts when `parent` aborts or `timeoutMs` passes. Rejects with the
 * parent's reason or a {@link TimeoutError} as soon as that happens, even if `work` ignores its signal.
 */
export async function withDeadline<T>(
  what: string,
  timeoutMs: number | undefined,
  parent: AbortSignal,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  if (parent.aborted) throw parent.reason;
  // Without a timeout of its own, the work gets the parent's signal: no controller or timer per step.
  const controller = timeoutMs === undefined ? undefined : new AbortController();
  const signal = controller?.signal ?? parent;
  const abort = () => controller?.abort(parent.reason);
  if (controller) parent.addEventListener('abort', abort, { once: true });
  const timer =
    controller && setTimeout(() => controller.abort(new TimeoutError(what, timeoutMs as number)), timeoutMs);
  let onAbort = () => {};
  try {
    return await Promise.race([
      work(signal),
      new Promise<never>((_, reject) => {
        onAbort = () => reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
  } finally {
    signal.removeEventListener('abort', onAbort);
    if (controller) {
      clearTimeout(timer);
      parent.removeEventListener('abort', abort);
      if (!controller.signal.aborted) controller.abort(new Error('step finished'));
    }
  }
}

/**
 * Runs work that must not be abandoned once started (an apply, a verify, a revert): on `parent` abort or
 * after `timeoutMs` its signal aborts, but the work is still awaited, so nothing reports the step over,
 * or releases its lock, while the change may be in flight. Work that ignores its signal keeps its lock
 * until it returns.
 */
export async function untilSettled<T>(
  what: string,
  timeoutMs: number | undefined,
  parent: AbortSignal,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const abort = () => controller.abort(parent.reason);
  if (parent.aborted) abort();
  else parent.addEventListener('abort', abort, { once: true });
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(() => controller.abort(new TimeoutError(what, timeoutMs)), timeoutMs);
  try {
    return await work(controller.signal);
  } finally {
    clearTimeout(timer);
    parent.removeEventListener('abort', abort);
  }
}
