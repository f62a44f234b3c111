import { formatMillis } from '../core/duration';
import { isRunbookError, RunbookError } from '../core/errors';

/**
 * A provider answered with an HTTP error. Adapters throw it; custom providers may too (status 429 with
 * `retryAfterMs` reports a rate limit). Its message holds the provider's own error text, never the API key.
 * Retriable for 408, 429 and 5xx; a 4xx other than those is the caller's bug and is not.
 */
export class ProviderHttpError extends RunbookError {
  readonly provider: string;
  readonly status: number;
  /** What `Retry-After` asked for, in milliseconds. */
  readonly retryAfterMs: number | undefined;
  constructor(provider: string, status: number, upstreamMessage: string, retryAfterMs?: number) {
    const retriable = status === 408 || status === 429 || status >= 500;
    const wait = retryAfterMs === undefined ? '' : ` (Retry-After ${formatMillis(retryAfterMs)})`;
    const hint = retriable
      ? 'The chain retries it and falls back to the next provider.'
      : status === 401 || status === 402 || status === 403
        ? 'Check the API key and the account (credits, permissions) at the provider.'
        : 'The provider refused the request itself: fix the request (messages, parameters, model).';
    super('PROVIDER_HTTP_ERROR', `${provider} answered HTTP ${status}${wait}: ${upstreamMessage}. ${hint}`, {
      retriable,
      details: { provider, status, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
    });
    this.provider = provider;
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}
/** True when `e` is a {@link ProviderHttpError}. */
export function isProviderHttpError(e: unknown): e is ProviderHttpError {
  return isRunbookError(e) && e.code === 'PROVIDER_HTTP_ERROR';
}

/** A provider could not be reached (connection refused or reset, DNS, TLS): the chain retries and falls back. */
export class ProviderUnreachableError extends RunbookError {
  readonly provider: string;
  constructor(provider: string, url: string, cause: unknown) {
    const code = networkCode(cause);
    super('PROVIDER_UNREACHABLE', `${provider} is unreachable at ${url}${code ? ` (${code})` : ''}.`, {
      cause,
      details: { provider, ...(code ? { errno: code } : {}) },
    });
    this.provider = provider;
  }
}
/** True when `e` is a {@link ProviderUnreachableError}. */
export function isProviderUnreachableError(e: unknown): e is ProviderUnreachableError {
  return isRunbookError(e) && e.code === 'PROVIDER_UNREACHABLE';
}

/** A provider answered 2xx with something that is not an answer (no message content): treated like a 5xx. */
export class ProviderResponseError extends RunbookError {
  readonly provider: string;
  constructor(provider: string, what: string) {
    super('PROVIDER_BAD_RESPONSE', `${provider} answered without a usable message: ${what}.`, {
      details: { provider },
    });
    this.provider = provider;
  }
}

/** Why the chain moved past a provider. */
export type FallbackReason =
  | 'forced_open'
  | 'breaker_open'
  | 'rate_limited'
  | 'server_error'
  | 'timeout'
  | 'network_error'
  | 'refused'
  | 'bad_response';

/** One provider's part in a {@link ProvidersUnavailableError}. */
export interface ProviderFailure {
  provider: string;
  reason: FallbackReason;
  /** The HTTP status of its last answer, if it answered. */
  status?: number;
  /** The last error's message (API keys never appear in it). */
  message: string;
}

/**
 * Every provider of the chain failed (or was skipped: breaker open, forced open, keys cooling down). Retriable:
 * `retryAfterMs`, when set, is when the first rate-limited key wakes. `failures` says what happened to each.
 */
export class ProvidersUnavailableError extends RunbookError {
  readonly failures: readonly ProviderFailure[];
  readonly retryAfterMs: number | undefined;
  constructor(failures: ProviderFailure[], retryAfterMs?: number) {
    const list = failures.map((f) => `${f.provider}: ${f.reason}${f.status ? ` (HTTP ${f.status})` : ''}`);
    super(
      'PROVIDERS_UNAVAILABLE',
      `No LLM provider could answer (${list.join('; ')}). Retry later${
        retryAfterMs === undefined ? '' : ` (in ${formatMillis(retryAfterMs)} at the earliest)`
      }, queue the request, or check the providers' health (chain.health()).`,
      {
        retriable: true,
        details: { failures, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
      },
    );
    this.failures = failures;
    this.retryAfterMs = retryAfterMs;
  }
}
/** True when `e` is a {@link ProvidersUnavailableError}. */
export function isProvidersUnavailableError(e: unknown): e is ProvidersUnavailableError {
  return isRunbookError(e) && e.code === 'PROVIDERS_UNAVAILABLE';
}

/** The errno-style code of a network failure (`ECONNREFUSED`), looked for in `cause` chains as undici nests it. */
function networkCode(e: unknown): string | undefined {
  for (let current = e, depth = 0; current && depth < 4; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z_]+$|^UND_ERR/.test(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}
