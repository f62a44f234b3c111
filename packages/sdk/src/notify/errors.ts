import { isRunbookError, RunbookError } from '../core/errors';

/**
 * A notification could not be delivered (PagerDuty, Slack, status page). `retriable` is false when the service
 * rejected the request itself (a 400: retrying the same event cannot help). The message names the service and
 * the channel, never the routing key, webhook URL or API key.
 */
export class NotificationError extends RunbookError {
  /** The HTTP status the service answered, or 0 when it could not be reached. */
  readonly status: number;
  constructor(
    message: string,
    options: { status: number; retriable: boolean; service: string; cause?: unknown; errors?: string[] },
  ) {
    super(options.retriable ? 'NOTIFICATION_FAILED' : 'NOTIFICATION_REJECTED', message, {
      retriable: options.retriable,
      details: {
        service: options.service,
        status: options.status,
        ...(options.errors ? { errors: options.errors } : {}),
      },
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    });
    this.status = options.status;
  }
}

/** True when `e` is a {@link NotificationError}. */
export function isNotificationError(e: unknown): e is NotificationError {
  return isRunbookError(e) && (e.code === 'NOTIFICATION_FAILED' || e.code === 'NOTIFICATION_REJECTED');
}

/** A notification named a channel no configured sink serves (`slack:#nowhere`, `fax`). */
export class UnknownChannelError extends RunbookError {
  constructor(channel: string, known: readonly string[]) {
    super(
      'UNKNOWN_CHANNEL',
      `No notification sink for channel "${channel}": configured channels are ${known.length ? known.map((k) => `"${k}"`).join(', ') : '(none)'}. ` +
        'Use one of them in step.notify, or configure the channel (pager teams, Slack webhooks, status page) in the notifier options.',
      { retriable: false, details: { channel, known: [...known] } },
    );
  }
}

/** True when `e` is an {@link UnknownChannelError}. */
export function isUnknownChannelError(e: unknown): e is UnknownChannelError {
  return isRunbookError(e) && e.code === 'UNKNOWN_CHANNEL';
}
