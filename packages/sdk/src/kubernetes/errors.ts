import { isRunbookError, RunbookError } from '../core/errors';

/**
 * A Kubernetes API call failed. `code` is `K8S_` plus the Status `reason` in upper snake case
 * (`K8S_NOT_FOUND`, `K8S_CONFLICT`, `K8S_FORBIDDEN`, …), `K8S_UNREACHABLE` when no answer came,
 * `K8S_TIMEOUT`, or `K8S_CLIENT_ERROR` when the client refused to send the request. Conflicts, throttling, server errors and network failures are retriable; the rest are not.
 */
export class KubernetesApiError extends RunbookError {
  /** The Status `reason` (`NotFound`, `Conflict`, …), or `Unreachable` / `Timeout` when no Status came back. */
  readonly reason: string;
  /** The HTTP status code; 0 when no answer came. */
  readonly status: number;

  constructor(
    reason: string,
    status: number,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown>; retriable?: boolean } = {},
  ) {
    super(`K8S_${reason.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}`, message, {
      ...options,
      details: { reason, status, ...options.details },
      retriable: options.retriable ?? (status === 0 || status === 409 || status === 429 || status >= 500),
    });
    this.reason = reason;
    this.status = status;
  }
}

/** True when `e` is a {@link KubernetesApiError} (by shape, so it works across copies of the package). */
export function isKubernetesApiError(e: unknown): e is KubernetesApiError {
  return isRunbookError(e) && e.code.startsWith('K8S_') && e.code !== 'K8S_REFUSED' && 'reason' in e;
}

/** An action or check was refused by a guard rail (wrong context, namespace not allowed) before any call. */
export class KubernetesGuardError extends RunbookError {
  constructor(message: string, details: Record<string, unknown>) {
    super('K8S_REFUSED', message, { retriable: false, details });
  }
}

/** True when `e` is a {@link KubernetesGuardError}. */
export function isKubernetesGuardError(e: unknown): e is KubernetesGuardError {
  return isRunbookError(e) && e.code === 'K8S_REFUSED';
}

interface StatusBody {
  reason?: string;
  message?: string;
  code?: number;
}

const REASON_BY_STATUS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

/**
 * Turns whatever the client threw into a {@link KubernetesApiError} naming the call and carrying the
 * Kubernetes `reason` from the `Status` body. Errors that already are runbook errors pass through.
 */
export function toKubernetesError(e: unknown, what: string, context: string): RunbookError {
  if (isRunbookError(e)) return e;
  const err = e as { code?: unknown; body?: unknown; name?: string; message?: string; cause?: unknown };
  if (typeof err?.code === 'number' && err.code >= 300) {
    const status = err.code;
    const body = parseStatus(err.body);
    const reason = body?.reason || REASON_BY_STATUS[status] || 'Unknown';
    const detail = body?.message ?? `HTTP ${status}`;
    return new KubernetesApiError(
      reason,
      status,
      `Kubernetes ${what} failed: ${detail} (${reason}, HTTP ${status}).`,
      {
        cause: e,
      },
    );
  }
  if (err?.name === 'TimeoutError' || err?.name === 'AbortError') {
    return new KubernetesApiError(
      err.name === 'TimeoutError' ? 'Timeout' : 'Aborted',
      0,
      `Kubernetes ${what} ${err.name === 'TimeoutError' ? 'timed out' : 'was aborted'} (context "${context}").`,
      { cause: e },
    );
  }
  const cause = (err?.cause as { code?: string; message?: string } | undefined) ?? undefined;
  if (isNetworkFailure(err, cause)) {
    return new KubernetesApiError(
      'Unreachable',
      0,
      `Kubernetes ${what} failed: the API server of context "${context}" did not answer (${cause?.code ?? cause?.message ?? err?.message ?? String(e)}). Check the cluster address and network.`,
      { cause: e },
    );
  }
  // The client refused before sending (an unknown kind, a missing parameter): retrying cannot help.
  return new KubernetesApiError(
    'ClientError',
    0,
    `Kubernetes ${what} failed in the client: ${err?.message ?? String(e)}`,
    { cause: e, retriable: false },
  );
}

/** fetch's "fetch failed" and socket errors (`ECONNREFUSED`, `UND_ERR_SOCKET`, …): the request did not get an answer. */
function isNetworkFailure(
  err: { message?: string } | undefined,
  cause: { code?: string } | undefined,
): boolean {
  return (
    err?.message === 'fetch failed' ||
    /^(E[A-Z]+|UND_ERR_[A-Z_]+)$/.test(cause?.code ?? '') ||
    /^(E[A-Z]+|UND_ERR_[A-Z_]+)$/.test((err as { code?: string } | undefined)?.code ?? '')
  );
}

function parseStatus(body: unknown): StatusBody | undefined {
  if (typeof body === 'object' && body !== null) return body as StatusBody;
  if (typeof body !== 'string' || body === '') return undefined;
  try {
    return JSON.parse(body) as StatusBody;
  } catch {
    return undefined;
  }
}
