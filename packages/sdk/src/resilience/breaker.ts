import CircuitBreaker from 'opossum';
import { toMillis } from '../core/duration';
import { TimeoutError } from '../core/errors';
import type { BreakerState, ForcedState } from './breaker-switch';
import { isProviderHttpError } from './provider-errors';
import type { BreakerOptions } from './provider-options';
import type { ChatAnswer, ChatProvider, ChatRequest, ProviderCallContext } from './provider-request';

/**
 * One call to a provider through its breaker, and the context the provider gets. Its `signal` aborts on the
 * breaker's timeout or when the caller aborts (the chain calls {@link abort}). The AbortController behind it is
 * made the first time a provider reads `signal`: a provider that never looks costs none, one that looks late
 * finds it aborted already.
 */
export class Attempt implements ProviderCallContext {
  readonly request: ChatRequest;
  readonly apiKey: string | undefined;
  readonly #caller: AbortSignal | undefined;
  #controller: AbortController | undefined;
  #aborted: { reason: unknown } | undefined;

  constructor(request: ChatRequest, apiKey: string | undefined, caller: AbortSignal | undefined) {
    this.request = request;
    this.apiKey = apiKey;
    this.#caller = caller;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#aborted.reason);
    }
    return this.#controller.signal;
  }

  /** True when the caller gave up on this call (not the breaker's timeout). */
  get abortedByCaller(): boolean {
    return this.#caller?.aborted === true;
  }

  /** Aborts the call with `reason` (the breaker's timeout, or the caller's reason). */
  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = { reason };
    this.#controller?.abort(reason);
  }
}

/**
 * The opossum breaker in front of one provider, steerable by an operator's forced state:
 * - `open`: the breaker is opened and kept open (the chain does not call the provider at all);
 * - `closed`: the breaker is closed and *disabled* (opossum then calls straight through, counting nothing), so
 *   calls go through whatever the failure rate; the timeout still applies (the chain enforces it itself then);
 * - `auto`: enabled, judging by itself from then on; a breaker forced open until then goes through half-open.
 *
 * Not failures (opossum's `errorFilter`): a 4xx other than 408 — a 429 means the API is alive and busy, the
 * rest are the caller's or the key's problem — and calls the caller aborted. Except for the half-open probe:
 * opossum closes the breaker on anything that is not a failure, and a probe the caller aborted or that got a 4xx
 * (a 429, a revoked key) proves nothing about the provider. It counts as a failed probe, so the breaker opens
 * again for another `resetTimeout`; only an answer closes it.
 */
export class ProviderBreaker {
  readonly provider: ChatProvider;
  readonly breaker: CircuitBreaker<[Attempt], ChatAnswer>;
  readonly timeoutMs: number;
  #forced: ForcedState = 'auto';
  /** True while a forced-open breaker is re-opened after its reset timer: no transition to report. */
  #holdingOpen = false;

  readonly #onLatency: ((ms: number, ok: boolean) => void) | undefined;

  /**
   * `onLatency` gets each call's duration: opossum measures it anyway and hands it to its `success` and
   * `failure` listeners, which spares two clock reads per call (they cost as much as a tenth of opossum's own
   * work here).
   */
  constructor(
    provider: ChatProvider,
    options: BreakerOptions,
    onState: (state: BreakerState) => void,
    onLatency?: (ms: number, ok: boolean) => void,
  ) {
    this.#onLatency = onLatency;
    this.provider = provider;
    this.timeoutMs = toMillis(options.timeout);
    const call = (attempt: Attempt) => provider.call(attempt.request, attempt);
    this.breaker = new CircuitBreaker(call, {
      name: provider.name,
      timeout: this.timeoutMs,
      errorThresholdPercentage: options.errorThresholdPercentage,
      resetTimeout: toMillis(options.resetTimeout),
      volumeThreshold: options.volumeThreshold,
      rollingCountTimeout: toMillis(options.rollingCountTimeout),
      rollingCountBuckets: options.rollingCountBuckets,
      // The chain keeps its own latency histogram; opossum's percentiles and snapshots would be unused work.
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      errorFilter: ((error: unknown, attempt: Attempt) =>
        !this.breaker.halfOpen &&
        (attempt.abortedByCaller ||
          (isProviderHttpError(error) && error.status < 500 && error.status !== 408))) as (
        err: unknown,
      ) => boolean,
    });
    // opossum passes the call's arguments to `timeout` listeners: abort that call's request.
    this.breaker.on('timeout', ((_error: Error, _latency: number, args: [Attempt]) => {
      args[0].abort(new TimeoutError(`${provider.name} call`, this.timeoutMs));
    }) as (error: Error) => void);
    if (onLatency) {
      // A filtered error (a 4xx) is reported as a `success` with the error as its result.
      this.breaker.on('success', (result: unknown, latency: number) =>
        onLatency(latency, !(result instanceof Error)),
      );
      this.breaker.on('failure', (_error, latency) => onLatency(latency, false));
    }
    this.breaker.on('open', () => {
      if (!this.#holdingOpen) onState('open');
    });
    this.breaker.on('close', () => onState('closed'));
    this.breaker.on('halfOpen', () => {
      if (this.#forced !== 'open') {
        onState('halfOpen');
        return;
      }
      // Forced open stays open: no probe call may reach a provider an operator switched off. Opening it again
      // restarts opossum's reset timer; the breaker never stopped being open, so nobody hears of it.
      this.#holdingOpen = true;
      try {
        this.breaker.open();
      } finally {
        this.#holdingOpen = false;
      }
    });
  }

  /** The breaker's state, as opossum names it. */
  get state(): BreakerState {
    if (this.breaker.opened) return 'open';
    return this.breaker.halfOpen ? 'halfOpen' : 'closed';
  }

  /** The forced state applied last. */
  get forced(): ForcedState {
    return this.#forced;
  }

  /** Applies an operator's forced state (idempotent). */
  force(state: ForcedState): void {
    if (state === this.#forced) return;
    this.#forced = state;
    if (state === 'open') {
      this.breaker.enable();
      this.breaker.open();
    } else if (state === 'closed') {
      this.breaker.close();
      this.breaker.disable();
    } else {
      // Back to auto. From forced closed: enabled, it judges from here. From forced open: it stays open and
      // opossum's reset timer lets one probe through (half-open) within `resetTimeout`; only a successful probe
      // closes it. Closing it at once would send every replica's traffic to a provider that may still fail.
      this.breaker.enable();
    }
  }

  /** Calls the provider through the breaker. */
  fire(attempt: Attempt): Promise<ChatAnswer> {
    if (this.#forced !== 'closed') return this.breaker.fire(attempt);
    return this.#fireWithOwnTimeout(attempt);
  }

  /** A disabled opossum breaker applies no timeout: forced closed still must not wait forever. */
  #fireWithOwnTimeout(attempt: Attempt): Promise<ChatAnswer> {
    const started = performance.now();
    let settled = false;
    const settle = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      this.#onLatency?.(performance.now() - started, ok);
    };
    let timer: NodeJS.Timeout | undefined;
    return new Promise<ChatAnswer>((resolve, reject) => {
      timer = setTimeout(() => {
        const error = new TimeoutError(`${this.provider.name} call`, this.timeoutMs);
        settle(false);
        attempt.abort(error);
        reject(error);
      }, this.timeoutMs);
      this.breaker.fire(attempt).then(
        (answer) => {
          settle(true);
          resolve(answer);
        },
        (error: unknown) => {
          settle(false);
          reject(error);
        },
      );
    });
  }

  /** Stops the breaker's timers; later calls fail. */
  shutdown(): void {
    this.breaker.shutdown();
  }
}

/** True when `e` is opossum's rejection of a call because the breaker is open (or half-open with a probe out). */
export function isBreakerOpenRejection(e: unknown): boolean {
  return (e as { code?: unknown } | null)?.code === 'EOPENBREAKER';
}

/** True when `e` is opossum's (or the forced-closed path's) timeout. */
export function isBreakerTimeout(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'ETIMEDOUT' || code === 'TIMEOUT';
}
