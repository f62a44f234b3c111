import { isRunbookError, RunbookError } from '../core/errors';

/**
 * The request queue holds its bound of items: the request was not queued. Answer the caller with HTTP 429 and
 * `Retry-After` (see {@link QueueFullError.retryAfterSeconds}).
 */
export class QueueFullError extends RunbookError {
  /** The HTTP status to answer with. */
  readonly httpStatus = 429;
  /** When a slot should be free again, from the drain rate: one drain interval (ms, rounded up). */
  readonly retryAfterMs: number;

  constructor(key: string, length: number, bound: number, retryAfterMs: number) {
    super(
      'QUEUE_FULL',
      `Request queue ${key} is full (${length} of ${bound} items waiting or in processing). The request was not queued: answer it with HTTP 429 and Retry-After: ${Math.max(1, Math.ceil(retryAfterMs / 1000))}, or retry after ${retryAfterMs}ms.`,
      { details: { key, length, bound, retryAfterMs } },
    );
    this.retryAfterMs = retryAfterMs;
  }

  /** The `Retry-After` header value: whole seconds, at least 1. */
  get retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.retryAfterMs / 1000));
  }
}

/** True when `e` is a {@link QueueFullError} (works across copies of the package). */
export function isQueueFullError(e: unknown): e is QueueFullError {
  return isRunbookError(e) && e.code === 'QUEUE_FULL';
}
