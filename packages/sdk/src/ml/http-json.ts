import { createRedactor } from '../core/redact';
import { type MlService, MlServiceError } from './errors';

const MAX_MESSAGE = 300;

/** One JSON call to an ML service. */
export interface JsonRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** Full URL; query values already encoded by the caller (`URLSearchParams`). */
  url: string;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  timeoutMs: number;
}

/** An answer: the status and the parsed JSON body (`null` for an empty body). */
export interface JsonAnswer {
  status: number;
  body: unknown;
}

/**
 * Sends one request with the global `fetch`, bounded by `timeoutMs` and the caller's signal. Any HTTP status
 * is returned (the caller decides what a 404 means); no answer at all becomes an unreachable
 * {@link MlServiceError} naming only the origin (a path or query could carry a token). An abort by the
 * caller rethrows the signal's reason.
 */
export async function sendJson(service: MlService, request: JsonRequest): Promise<JsonAnswer> {
  const timeout = AbortSignal.timeout(request.timeoutMs);
  const signal = request.signal ? AbortSignal.any([request.signal, timeout]) : timeout;
  let response: Response;
  let text: string;
  try {
    response = await fetch(request.url, {
      method: request.method,
      headers: {
        accept: 'application/json',
        ...(request.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...request.headers,
      },
      ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
      signal,
    });
    text = await response.text();
  } catch (e) {
    if (request.signal?.aborted) throw request.signal.reason;
    const why = timeout.aborted ? `no answer within ${request.timeoutMs} ms` : errorText(e);
    throw new MlServiceError(
      service,
      0,
      null,
      `${serviceName(service)} at ${originOf(request.url)} is unreachable (${why}). Check the URL and that the service is up.`,
      { cause: e },
    );
  }
  if (text.trim() === '') return { status: response.status, body: null };
  try {
    return { status: response.status, body: JSON.parse(text) };
  } catch {
    return { status: response.status, body: { message: text } };
  }
}

/** The human name of a service, for messages. */
export function serviceName(service: MlService): string {
  return service === 'mlflow' ? 'MLflow' : 'Airflow';
}

/** An error answer's text as messages may keep it: short, anything credential-like redacted. */
export function upstreamText(text: string, secrets: readonly string[]): string {
  const clean = createRedactor(secrets).redactText(text);
  return clean.length > MAX_MESSAGE ? `${clean.slice(0, MAX_MESSAGE)}…` : clean;
}

/** The URL's origin only. */
export function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'the configured URL';
  }
}

function errorText(e: unknown): string {
  const cause = (e as { cause?: { code?: unknown; message?: unknown } })?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  return e instanceof Error ? e.message : String(e);
}
