import { isRunbookError, RunbookError } from '../core/errors';

/** Which ML service failed. */
export type MlService = 'mlflow' | 'airflow';

/**
 * A failed call to MLflow or Airflow. `code` is `MLFLOW_ERROR` / `AIRFLOW_ERROR` for an HTTP error answer
 * (`status`, and MLflow's `error_code` such as `RESOURCE_DOES_NOT_EXIST`), or `MLFLOW_UNREACHABLE` /
 * `AIRFLOW_UNREACHABLE` when no answer came (connection refused, timeout). Unreachable, 429 and 5xx are
 * retriable; other 4xx are not (retrying a bad request repeats it).
 */
export class MlServiceError extends RunbookError {
  readonly service: MlService;
  /** The HTTP status; 0 when there was no answer. */
  readonly status: number;
  /** MLflow's `error_code` (`INVALID_PARAMETER_VALUE`, …) or Airflow's problem title, when the answer had one. */
  readonly errorCode: string | null;
  constructor(
    service: MlService,
    status: number,
    errorCode: string | null,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    const prefix = service.toUpperCase();
    super(status === 0 ? `${prefix}_UNREACHABLE` : `${prefix}_ERROR`, message, {
      cause: options.cause,
      details: { service, status, errorCode },
      retriable: status === 0 || status === 429 || status >= 500,
    });
    this.service = service;
    this.status = status;
    this.errorCode = errorCode;
  }
}

/** True when `e` is an {@link MlServiceError} (of either service). */
export function isMlServiceError(e: unknown): e is MlServiceError {
  return isRunbookError(e) && /^(MLFLOW|AIRFLOW)_(ERROR|UNREACHABLE)$/.test(e.code);
}
