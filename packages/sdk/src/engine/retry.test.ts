import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { NonRetriableError, RetryAfterError, TimeoutError } from '../core/errors';
import { sleep } from '../core/sleep';
import { backoffDelay, nextRetry, retryPolicy, withDeadline } from './retry';

describe('retry policy', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('grows exponentially up to maxDelay, with jitter within [d/2, d]', () => {
    const policy = retryPolicy({ maxAttempts: 6, minDelay: '1s', factor: 2, maxDelay: '5s', jitter: false });
    expect([1, 2, 3, 4, 5].map((a) => backoffDelay(a, policy))).toEqual([1000, 2000, 4000, 5000, 5000]);
    const jittered = retryPolicy({ minDelay: 1000, jitter: true });
    expect(backoffDelay(1, jittered, () => 0)).toBe(500);
    expect(backoffDelay(1, jittered, () => 1)).toBe(1000);
  });

  it('defaults to a single attempt and validates options', () => {
    expect(retryPolicy(undefined).maxAttempts).toBe(1);
    expect(() => retryPolicy({ maxAttempts: 0 })).toThrow();
    expect(() => retryPolicy({ minDelay: 'soon' as never })).toThrow(/duration/);
  });

  it('stops on NonRetriableError and when attempts are spent; RetryAfterError sets the delay', () => {
    const policy = retryPolicy({ maxAttempts: 3, minDelay: 100, jitter: false });
    expect(nextRetry(new Error('x'), 1, policy)).toEqual({ retry: true, delayMs: 100 });
    expect(nextRetry(new Error('x'), 3, policy)).toEqual({ retry: false });
    expect(nextRetry(new NonRetriableError('no'), 1, policy)).toEqual({ retry: false });
    expect(nextRetry(new RetryAfterError('429', 7_000), 1, policy)).toEqual({ retry: true, delayMs: 7_000 });
  });

  it('sleeps on the clock and aborts early', async () => {
    const done = vi.fn();
    void sleep(1_000, new AbortController().signal).then(done);
    await vi.advanceTimersByTimeAsync(999);
    expect(done).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toHaveBeenCalled();

    const controller = new AbortController();
    const pending = sleep(60_000, controller.signal);
    controller.abort(new Error('stop'));
    await expect(pending).rejects.toThrow('stop');
  });

  it('times out work that ignores its signal, and passes the abort to work that listens', async () => {
    let seen: unknown;
    const pending = withDeadline('Step "x"', 500, new AbortController().signal, (signal) => {
      signal.addEventListener('abort', () => {
        seen = signal.reason;
      });
      return new Promise<never>(() => {});
    });
    const assertion = expect(pending).rejects.toBeInstanceOf(TimeoutError);
    await vi.advanceTimersByTimeAsync(500);
    await assertion;
    expect(seen).toBeInstanceOf(TimeoutError);
  });
});
