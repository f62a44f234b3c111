import { getBackendSrv } from '@grafana/runtime';
import { lastValueFrom } from 'rxjs';
import type {
  AlertsPage,
  ApprovalView,
  AuditPage,
  AuditVerification,
  RunbookView,
  RunDetailView,
  RunEventsPage,
  RunMode,
  RunStatus,
  RunsPage,
  RunView,
  StartedRun,
} from './types';

/** The app's id; Grafana's plugin proxy serves its routes under `/api/plugin-proxy/<id>/`. */
export const PLUGIN_ID = 'aiwebtest-runbooks-app';
/** Where the runbook service's API is reached through Grafana's plugin proxy (plugin.json `routes`). */
export const API_BASE = `/api/plugin-proxy/${PLUGIN_ID}/api/v1`;

/** An error answer of the runbook service (`{ error: { code, message, details } }`), or a transport failure. */
export class ServiceError extends Error {
  override readonly name = 'ServiceError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** Where a run comes from, as the service's `context` takes it. */
export interface RunContextInput {
  source?: string;
  dashboard?: { uid: string; title?: string; url?: string };
  panel?: { id: number | string; title?: string };
  alert?: { fingerprint?: string; labels?: Record<string, string>; startsAt?: string };
  timeRange?: { from: string; to: string };
  labels?: Record<string, string>;
  variables?: Record<string, string | string[]>;
}

/** `path` may be a function, so that an invalid id rejects the returned promise instead of throwing. */
async function call<T>(method: 'GET' | 'POST', path: string | (() => string), data?: unknown): Promise<T> {
  try {
    const response = await lastValueFrom(
      getBackendSrv().fetch<T>({
        url: `${API_BASE}${typeof path === 'function' ? path() : path}`,
        method,
        ...(data === undefined ? {} : { data }),
        // The app shows the service's own message where the action was taken, not a global toast.
        showErrorAlert: false,
        showSuccessAlert: false,
      }),
    );
    return response.data;
  } catch (e) {
    throw toServiceError(e);
  }
}

/**
 * The service's own error (`{ error: { code, message, details } }`) when it answered; otherwise what
 * Grafana answered itself: its plugin proxy refusing the user's role (403) or finding no route (404), both
 * as `{ message }`, or a bad gateway (502/504, empty) when the service cannot be reached.
 */
export function toServiceError(e: unknown): ServiceError {
  if (e instanceof ServiceError) return e;
  const failure = (typeof e === 'object' && e !== null ? e : {}) as {
    status?: number;
    statusText?: string;
    data?: { error?: { code?: unknown; message?: unknown; details?: unknown }; message?: unknown };
  };
  const status = typeof failure.status === 'number' ? failure.status : 0;
  const body = failure.data?.error;
  if (typeof body?.code === 'string' && typeof body.message === 'string') {
    return new ServiceError(status, body.code, body.message, body.details);
  }
  const grafanaMessage = typeof failure.data?.message === 'string' ? failure.data.message : undefined;
  if (status === 403 && grafanaMessage) {
    return new ServiceError(
      status,
      'GRAFANA_FORBIDDEN',
      `Grafana refused the request: your role in this organization does not allow it (${grafanaMessage}).`,
    );
  }
  if (status === 404 && grafanaMessage) {
    return new ServiceError(
      status,
      'GRAFANA_NO_ROUTE',
      `Grafana has no proxy route for this request (${grafanaMessage}): the plugin's plugin.json and its client disagree.`,
    );
  }
  if (status === 0 || status === 502 || status === 504) {
    return new ServiceError(
      status,
      'UNREACHABLE',
      'The runbook service could not be reached through Grafana: check the service URL on the Configuration page.',
    );
  }
  return new ServiceError(
    status,
    'HTTP_ERROR',
    `The runbook service answered ${status}${failure.statusText ? ` ${failure.statusText}` : ''}${grafanaMessage ? `: ${grafanaMessage}` : ''}.`,
  );
}

const query = (params: Record<string, string | number | undefined>): string => {
  const entries = Object.entries(params).filter(
    (e): e is [string, string | number] => e[1] !== undefined && e[1] !== '',
  );
  return entries.length === 0
    ? ''
    : `?${new URLSearchParams(entries.map(([k, v]) => [k, String(v)])).toString()}`;
};
/** What a run or runbook id may be: the service's ids (`scale-agent`, `run_mf3k2x9a…`) all are. */
const ID = /^[A-Za-z0-9._:-]{1,200}$/;

/**
 * An id as a path segment, or a ServiceError `INVALID_ID` before anything is sent. Encoding is not
 * enough: Grafana's proxy URL-decodes the path its `*` route captured before it forwards it, so an
 * encoded `/` (`%2F`) would reach the service as a separator, i.e. another route; `.` and `..` would be
 * resolved away by the browser. Cursors and other values travel in the query string (URLSearchParams).
 */
const id = (value: string, what: 'run' | 'runbook'): string => {
  if (!ID.test(value) || /^\.+$/.test(value)) {
    throw new ServiceError(
      0,
      'INVALID_ID',
      `${JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)} is not a valid ${what} id: expected 1 to 200 letters, digits, ".", "_", ":" or "-" (not only dots).`,
    );
  }
  return value;
};

/** The runbook service's API, through Grafana's plugin proxy. Every function throws a {@link ServiceError}. */
export const api = {
  listRunbooks: () => call<{ runbooks: RunbookView[] }>('GET', '/runbooks').then((r) => r.runbooks),
  getRunbook: (runbookId: string) => call<RunbookView>('GET', () => `/runbooks/${id(runbookId, 'runbook')}`),
  diagnose: (runbookId: string, input: Record<string, unknown>, context?: RunContextInput) =>
    call<RunDetailView>('POST', () => `/runbooks/${id(runbookId, 'runbook')}/diagnose`, {
      input,
      ...(context ? { context } : {}),
    }),
  /** diagnose and plan answer with the run; execute answers with its id (queued). */
  startRun: (request: {
    runbookId: string;
    input: Record<string, unknown>;
    mode: RunMode;
    context?: RunContextInput;
    idempotencyKey?: string;
  }) => call<StartedRun>('POST', '/runs', request),
  /**
   * Queues an execute-mode run of a plan the user has seen. `idempotencyKey` belongs to that plan: sending it
   * again after a lost answer finds the first run (`replayed: true`) instead of executing twice.
   */
  execute: (request: {
    runbookId: string;
    input: Record<string, unknown>;
    context?: RunContextInput;
    idempotencyKey: string;
  }) =>
    // An execute-mode run is always queued: the service answers 202 with its id.
    call<{ runId: string; replayed: boolean }>('POST', '/runs', { ...request, mode: 'execute' }),
  listRuns: (filter: { status?: RunStatus; runbookId?: string; limit?: number; cursor?: string } = {}) =>
    call<RunsPage>('GET', `/runs${query(filter)}`),
  getRun: (runId: string) => call<RunDetailView>('GET', () => `/runs/${id(runId, 'run')}`),
  /** A page of a run's events after `after` (JSON polling: Grafana's proxy does not promise streaming). */
  runEvents: (runId: string, after = 0) =>
    call<RunEventsPage>('GET', () => `/runs/${id(runId, 'run')}/events${query({ after, format: 'json' })}`),
  approve: (runId: string, body: { reason?: string; breakGlass?: boolean } = {}) =>
    call<{ approval: ApprovalView }>('POST', () => `/approvals/${id(runId, 'run')}/approve`, body),
  reject: (runId: string, body: { reason?: string } = {}) =>
    call<{ approval: ApprovalView }>('POST', () => `/approvals/${id(runId, 'run')}/reject`, body),
  cancel: (runId: string, body: { reason?: string } = {}) =>
    call<{ runId: string; result: 'cancelled' | 'requested' }>(
      'POST',
      () => `/runs/${id(runId, 'run')}/cancel`,
      body,
    ),
  listAudit: (filter: { after?: number; limit?: number; runId?: string } = {}) =>
    call<AuditPage>('GET', `/audit${query(filter)}`),
  verifyAudit: () => call<AuditVerification>('GET', '/audit/verify'),
  listAlerts: (filter: { limit?: number; status?: 'firing' | 'resolved' } = {}) =>
    call<AlertsPage>('GET', `/alerts${query(filter)}`),
};

export type { RunView };
