import { isRunbookError, RunbookError } from '../core/errors';

/**
 * Breaker control could not reach Redis (`BREAKER_CONTROL_UNAVAILABLE`, retriable) or a forced state changed
 * under a guarded write (`BREAKER_CHANGED`, retriable: plan again).
 */
export class BreakerControlError extends RunbookError {
  constructor(
    code: 'BREAKER_CONTROL_UNAVAILABLE' | 'BREAKER_CHANGED',
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, { ...options, retriable: true });
  }
}

/** True when `e` is a {@link BreakerControlError}. */
export function isBreakerControlError(e: unknown): e is BreakerControlError {
  return isRunbookError(e) && (e.code === 'BREAKER_CONTROL_UNAVAILABLE' || e.code === 'BREAKER_CHANGED');
}
