import { createRedactor } from '../core/redact';
import { ProviderHttpError, ProviderUnreachableError } from './provider-errors';
import { parseRetryAfter } from './retry-policy';

const MAX_MESSAGE = 300;

/**
 * POSTs `body` as JSON with the global `fetch` and returns the parsed JSON answer. An HTTP error becomes a
 * {@link ProviderHttpError} (with `Retry-After`), a network failure a {@link ProviderUnreachableError}; an abort
 * rethrows the signal's reason. `secrets` (the API key) are scrubbed from any upstream text that is kept.
 */
export async function postJson(
  provider: string,
  url: string,
  body: unknown,
  headers: Record<string, string>,
  signal: AbortSignal,
  secrets: readonly string[],
): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
      body: JSON.stringify(body),
      signal,
    });
  } catch (e) {
    if (signal.aborted) throw signal.reason;
    throw new ProviderUnreachableError(provider, originOf(url), e);
  }
  let text: string;
  try {
    text = await response.text();
  } catch (e) {
    if (signal.aborted) throw signal.reason;
    throw new ProviderUnreachableError(provider, originOf(url), e);
  }
  if (!response.ok) {
    throw new ProviderHttpError(
      provider,
      response.status,
      scrubUpstreamText(upstreamMessage(text) ?? response.statusText ?? 'no message', secrets),
      parseRetryAfter(response.headers.get('retry-after')),
    );
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ProviderHttpError(provider, 502, 'the answer was not JSON');
  }
}

/** The error text of an OpenRouter (`{error:{message}}`) or Ollama (`{error:"…"}`) error body. */
export function upstreamMessage(text: string): string | undefined {
  try {
    const parsed = JSON.parse(text) as { error?: unknown; message?: unknown };
    const error = parsed?.error;
    if (typeof error === 'string') return error;
    if (error && typeof (error as { message?: unknown }).message === 'string')
      return (error as { message: string }).message;
    if (typeof parsed?.message === 'string') return parsed.message;
  } catch {
    // not JSON: the text itself, shortened
  }
  return text.trim() === '' ? undefined : text.trim();
}

/**
 * Upstream text as errors may keep it: at most 300 characters, with `secrets` (the API key) and anything that
 * looks like a credential redacted.
 */
export function scrubUpstreamText(message: string, secrets: readonly string[]): string {
  // Redacted before it is cut: a key cut in two at the limit would match neither the key nor its pattern.
  const clean = createRedactor(secrets).redactText(message);
  return clean.length > MAX_MESSAGE ? `${clean.slice(0, MAX_MESSAGE)}…` : clean;
}

/** The URL's origin only: error messages name where, never a path or query that might carry a token. */
function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'the configured URL';
  }
}
