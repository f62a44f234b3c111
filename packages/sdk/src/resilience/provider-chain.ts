import type { Registry } from 'prom-client';
import { z } from 'zod';
import { toMillis } from '../core/duration';
import { InputValidationError, InvalidStateError, isRetryAfterError } from '../core/errors';
import { type Disposable, TypedEvent } from '../core/events';
import { parseOptions } from '../core/parse-options';
import { sleep } from '../core/sleep';
import { KeyRing } from './api-keys';
import { Attempt, isBreakerOpenRejection, isBreakerTimeout, ProviderBreaker } from './breaker';
import {
  type BreakerState,
  type BreakerSwitch,
  type ForcedState,
  localBreakerSwitch,
} from './breaker-switch';
import { InFlight } from './coalesce';
import { ChainTally, llmMetrics, type Outcome, type ProviderTally } from './llm-metrics';
import { ProviderName, ServiceName } from './names';
import {
  type FallbackReason,
  isProviderHttpError,
  isProviderUnreachableError,
  type ProviderFailure,
  ProvidersUnavailableError,
} from './provider-errors';
import { BreakerOptions } from './provider-options';
import {
  type ChatAnswer,
  type ChatProvider,
  type ChatRequest,
  canonicalRequest,
  requestHash,
} from './provider-request';
import { ResponseCache, ResponseCacheOptions } from './response-cache';
import { backoffDelay, ProviderRetryOptions } from './retry-policy';

const isProvider = (v: unknown): v is ChatProvider =>
  typeof (v as ChatProvider | null)?.name === 'string' &&
  typeof (v as ChatProvider | null)?.call === 'function';

/** Per-provider changes to the chain's breaker and retry options (say, a longer timeout for a local model). */
const ProviderOverride = z.strictObject({
  breaker: BreakerOptions.partial().optional(),
  retry: ProviderRetryOptions.partial().optional(),
});

/** Options of {@link createProviderChain}. */
export const ProviderChainOptions = z
  .strictObject({
    /**
     * The providers in the order they are tried: {@link openRouterProvider}, {@link ollamaProvider}, or any
     * `{ name, model?, apiKeys?, call(request, { signal, apiKey }) }`. Names must be unique.
     */
    providers: z
      .array(z.custom<ChatProvider>(isProvider, 'expected a provider: { name, call(request, context) }'))
      .min(1, 'give at least one provider')
      .superRefine((providers, ctx) => {
        const seen = new Set<string>();
        providers.forEach((p, i) => {
          const name = ProviderName.safeParse(p.name);
          if (!name.success)
            ctx.addIssue({
              code: 'custom',
              path: [i, 'name'],
              message: name.error.issues[0]?.message ?? 'bad name',
            });
          if (seen.has(p.name))
            ctx.addIssue({
              code: 'custom',
              path: [i, 'name'],
              message: `"${p.name}" is used twice: names must be unique`,
            });
          seen.add(p.name);
        });
      }),
    /** The service the chain belongs to: the `service` label of the breaker and chain metrics. @default "llm" */
    service: ServiceName.default('llm'),
    /** The circuit breaker of every provider. @default see {@link BreakerOptions} */
    breaker: BreakerOptions.prefault({}),
    /** Retries on one provider before falling back. @default see {@link ProviderRetryOptions} */
    retry: ProviderRetryOptions.prefault({}),
    /** Per provider name: `breaker` and `retry` fields that differ from the chain's. @default none */
    overrides: z.record(z.string(), ProviderOverride).optional(),
    /** A Redis response cache; only successful answers are stored. @default no cache */
    cache: ResponseCacheOptions.optional(),
    /**
     * Identical calls in flight (same messages and settings) share one upstream call. Off by default: callers
     * then share one sample of a non-zero temperature, and the request key costs a serialization per call.
     * Worth it where identical prompts arrive together (several agents, retrying clients). @default false
     */
    coalesce: z.boolean().default(false),
    /** Where forced breaker states come from and live states go (breaker control across replicas). @default localBreakerSwitch() */
    control: z
      .custom<BreakerSwitch>(
        (v) =>
          typeof (v as BreakerSwitch | null)?.forced === 'function' &&
          typeof (v as BreakerSwitch | null)?.onChange === 'function',
        'expected a BreakerSwitch (forced, onChange, register, report)',
      )
      .optional(),
    /** prom-client metrics: `false` for none, or the registry to use. @default prom-client's global registry */
    metrics: z
      .union([
        z.literal(false),
        z.strictObject({
          /** @default prom-client's global `register` */
          registry: z
            .custom<Registry>(
              (v) => typeof (v as Registry | null)?.registerMetric === 'function',
              'expected a prom-client Registry',
            )
            .optional(),
        }),
      ])
      .default({}),
  })
  .superRefine((o, ctx) => {
    // A misspelt provider name would silently leave that provider on the chain's defaults.
    const names = new Set(o.providers.map((p) => p.name));
    for (const name of Object.keys(o.overrides ?? {}))
      if (!names.has(name))
        ctx.addIssue({
          code: 'custom',
          path: ['overrides', name],
          message: `no provider is named "${name}"`,
        });
  });
/** {@link ProviderChainOptions} as written by users. */
export type ProviderChainOptions = z.input<typeof ProviderChainOptions>;

/** Why an attempt ended, or why a provider was passed over without a call. */
export type AttemptOutcome = Outcome | 'breaker_open' | 'forced_open' | 'keys_cooling';

/** One step of a chain call: an upstream call, or a provider passed over. */
export interface AttemptRecord {
  provider: string;
  outcome: AttemptOutcome;
  /** The API key's fingerprint (`apiKeyFingerprint`), for providers with keys. */
  keyFingerprint?: string;
  /** The HTTP status, when the provider answered with one. */
  status?: number;
  /** How long the chain waited before it (backoff, `Retry-After`, every key cooling down). */
  waitedMs: number;
}

/** What a chain call returns: the answer and how it was obtained. */
export interface ChatResult extends ChatAnswer {
  /** The provider that answered (for a cached answer: the one that answered when it was stored). */
  provider: string;
  /** Served from the Redis response cache. */
  cached: boolean;
  /** Shared with an identical call that was already in flight. */
  coalesced: boolean;
  /** What it took, in order (empty for a cached answer). */
  attempts: readonly AttemptRecord[];
}

/** Options of one chain call. */
export interface ChatOptions {
  /** Aborts the call (waits and the upstream request); the call rejects with the signal's reason. */
  signal?: AbortSignal;
  /** `false` skips the response cache for this call (neither read nor written). @default true */
  cache?: boolean;
}

/** One provider as `chain.health()` shows it. */
export interface ProviderHealth {
  /** The breaker's state (`closed` lets calls through, `open` skips the provider, `halfOpen` probes). */
  state: BreakerState;
  /** What an operator forced (`auto`: the breaker judges). */
  forced: ForcedState;
  /**
   * False after a network error, timeout or 5xx, and when the breaker opened by itself; true again after a
   * success (or any answer: a 4xx or 429 means it is up). An operator forcing it open is no evidence either way.
   */
  up: boolean;
  model?: string;
  /** Its API keys: how many, how many rest after a 429, when the first wakes. Never the keys. */
  keys: { total: number; cooling: number; nextFreeInMs?: number };
  /** The last failed call: why, when (ISO 8601), and the error's message. */
  lastFailure?: { reason: AttemptOutcome; at: string; message: string };
  /** opossum's counts over its rolling window. */
  window: { fires: number; successes: number; failures: number; timeouts: number; rejects: number };
}

/** What `chain.health()` returns: `circuit_breakers` as the manual reads it (`jq .circuit_breakers.openrouter`). */
export interface ChainHealth {
  service: string;
  /** `ok`: the first provider can be called; `degraded`: only a fallback can; `down`: none can. */
  status: 'ok' | 'degraded' | 'down';
  /** The providers in chain order, by name. */
  circuit_breakers: Record<string, ProviderHealth>;
}

/** Events of a chain. Listeners get no API keys (fingerprints at most). */
export interface FallbackEvent {
  from: string;
  /** The next provider, or `none` when there is none left. */
  to: string;
  reason: FallbackReason;
}
export interface RetryEvent {
  provider: string;
  /** The attempt that failed (1-based). */
  attempt: number;
  outcome: AttemptOutcome;
  delayMs: number;
  keyFingerprint?: string;
}
export interface BreakerStateEvent {
  provider: string;
  state: BreakerState;
}

/** An ordered set of LLM providers, each behind a circuit breaker, with retries, fallback, cache and coalescing. */
export interface ProviderChain {
  /** The service name (metric label). */
  readonly service: string;
  /** Provider names in the order they are tried. */
  readonly providers: readonly string[];
  /**
   * Asks the providers in order for an answer. Rejects with {@link ProvidersUnavailableError} when all fail,
   * with the provider's `ProviderHttpError` for a request it refused (a 4xx other than 401/402/403/408/429:
   * the caller's bug, not retried elsewhere), or with the signal's reason when aborted.
   */
  chat(request: ChatRequest, options?: ChatOptions): Promise<ChatResult>;
  /** Breaker state, forced state, up and key cool-downs per provider. */
  health(): ChainHealth;
  /** Called when the chain moves past a provider. */
  onFallback(listener: (event: FallbackEvent) => void): Disposable;
  /** Called before the chain retries a provider (after a backoff, a `Retry-After`, or with another key). */
  onRetry(listener: (event: RetryEvent) => void): Disposable;
  /** Called on every breaker transition. */
  onBreakerStateChange(listener: (event: BreakerStateEvent) => void): Disposable;
  /** Called when a cache read or write fails (the call goes on without the cache). */
  onCacheError(listener: (error: unknown) => void): Disposable;
  /**
   * Stops the breakers, stops listening to the breaker switch, and removes the chain's gauges; its counters keep
   * their totals, the counts no scrape has read yet included. Idempotent.
   */
  close(): Promise<void>;
}

interface Slot {
  index: number;
  name: string;
  provider: ChatProvider;
  breaker: ProviderBreaker;
  keys: KeyRing;
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  maxRetryAfterMs: number;
  keyCooldownMs: number;
  tally: ProviderTally | undefined;
  /** Per key: the attempts of a call that succeeded at its first try (shared, frozen: the usual result). */
  firstTry: (readonly AttemptRecord[])[];
  /** Per key: the success handler of a first try (made once, not per call). */
  onFirstTry: ((answer: ChatAnswer) => ChatResult)[];
  up: boolean;
  lastFailure?: ProviderHealth['lastFailure'];
}

/**
 * Builds a provider chain. Each provider gets an opossum circuit breaker; a call tries the providers in order:
 *
 * - **retries** on one provider (up to `retry.maxAttempts`) after a 5xx or network error, with exponential
 *   backoff and full jitter, honouring a `Retry-After` up to `retry.maxRetryAfter`; a timeout is not retried
 *   on the same provider;
 * - **429**: the key rests for `Retry-After` (or `retry.keyCooldown`) and the next key is used at once; when every
 *   key rests, the chain waits for the first to wake if that is within `retry.maxRetryAfter`, else falls back.
 *   A 429 is not a breaker failure (the API is up, just busy); 401/402/403 rest the key the same way;
 * - **fallback** to the next provider on an open breaker, a timeout, a 5xx or network error after the retries,
 *   or rate limits; other 4xx reject at once (the caller's bug: another provider would refuse it too);
 * - optional Redis **cache** and **coalescing** of identical calls in flight.
 *
 * Forced states come from `control` (default {@link localBreakerSwitch}): `open` skips the provider, `closed`
 * calls it whatever its breaker thinks, `auto` lets the breaker judge.
 */
export function createProviderChain(options: ProviderChainOptions): ProviderChain {
  const o = parseOptions('createProviderChain', ProviderChainOptions, options);
  const control = o.control ?? localBreakerSwitch();
  const metrics = o.metrics === false ? undefined : llmMetrics(o.metrics.registry);
  const names = o.providers.map((p) => p.name);
  const tally = new ChainTally(names.length);
  const cache = o.cache ? new ResponseCache(o.cache) : undefined;
  const inFlight = o.coalesce ? new InFlight<ChatResult>() : undefined;
  // Part of every cache key: changing a provider's model must not serve the old model's answers.
  const models = o.providers.map((p) => `${p.name}=${p.model ?? ''}`).join(',');

  const fallbackEvent = new TypedEvent<FallbackEvent>();
  const retryEvent = new TypedEvent<RetryEvent>();
  const stateEvent = new TypedEvent<BreakerStateEvent>();
  const cacheErrorEvent = new TypedEvent<unknown>();

  const slots: Slot[] = o.providers.map((provider, index) => {
    const breakerOptions = parseOptions(`createProviderChain (breaker of ${provider.name})`, BreakerOptions, {
      ...(options.breaker ?? {}),
      ...(options.overrides?.[provider.name]?.breaker ?? {}),
    });
    const retry = parseOptions(`createProviderChain (retry of ${provider.name})`, ProviderRetryOptions, {
      ...(options.retry ?? {}),
      ...(options.overrides?.[provider.name]?.retry ?? {}),
    });
    const slot: Slot = {
      index,
      name: provider.name,
      provider,
      breaker: undefined as unknown as ProviderBreaker,
      keys: new KeyRing(provider.apiKeys),
      maxAttempts: retry.maxAttempts,
      baseDelayMs: toMillis(retry.baseDelay),
      maxDelayMs: toMillis(retry.maxDelay),
      maxRetryAfterMs: toMillis(retry.maxRetryAfter),
      keyCooldownMs: toMillis(retry.keyCooldown),
      tally: metrics?.provider(provider.name),
      firstTry: [],
      onFirstTry: [],
      up: true,
    };
    slot.firstTry = slot.keys.fingerprints.map((keyFingerprint) =>
      Object.freeze([
        Object.freeze({
          provider: provider.name,
          outcome: 'success',
          keyFingerprint,
          status: undefined,
          waitedMs: 0,
        }),
      ]),
    );
    slot.onFirstTry = slot.firstTry.map(
      (attempts) => (answer: ChatAnswer) => succeeded(slot, answer, attempts),
    );
    const onState = (state: BreakerState) => {
      // An opened breaker is evidence of an outage; a breaker an operator forced open is not.
      if (state === 'open' && slot.breaker.forced !== 'open') {
        slot.up = false;
        if (slot.tally) slot.tally.up = 0;
      }
      control.report(provider.name, state);
      stateEvent.emit({ provider: provider.name, state });
    };
    const tallied = slot.tally;
    slot.breaker = new ProviderBreaker(
      provider,
      breakerOptions,
      onState,
      tallied ? (ms, ok) => tallied.observe(ms, ok) : undefined,
    );
    return slot;
  });
  const byName = new Map(slots.map((s) => [s.name, s]));

  control.register(names);
  for (const slot of slots) {
    slot.breaker.force(control.forced(slot.name));
    control.report(slot.name, slot.breaker.state);
  }
  const stopListening = control.onChange((provider, state) => byName.get(provider)?.breaker.force(state));
  const removeMetrics = metrics?.addChain({
    service: o.service,
    providers: names,
    tally,
    breakerState: (name) => byName.get(name)?.breaker.state ?? 'closed',
    forcedState: (name) => byName.get(name)?.breaker.forced ?? 'auto',
  });
  let closed = false;

  function fellBack(slot: Slot, reason: FallbackReason): void {
    const to = slots[slot.index + 1]?.name ?? 'none';
    tally.fallback(slot.name, to, reason);
    fallbackEvent.emit({ from: slot.name, to, reason });
  }

  function failed(slot: Slot, outcome: AttemptOutcome, error: unknown): void {
    slot.lastFailure = {
      reason: outcome,
      at: new Date().toISOString(),
      message: error instanceof Error ? error.message : String(error),
    };
    // The same rule as `<provider>_api_up`: only these say the provider is not there; any answer says it is.
    slot.up = !(outcome === 'server_error' || outcome === 'timeout' || outcome === 'network_error');
  }

  /** One call to `slot`'s provider through its breaker. Records the attempt (and the provider's metrics) either way. */
  function callOnce(
    slot: Slot,
    request: ChatRequest,
    keyIndex: number,
    signal: AbortSignal | undefined,
    waitedMs: number,
    attempts: AttemptRecord[],
  ): Promise<ChatResult> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const attempt = new Attempt(request, slot.keys.keys[keyIndex], signal);
    const fired = slot.breaker.fire(attempt);
    return (signal ? untilAborted(fired, signal, attempt) : fired).then(
      (answer) => {
        attempts.push({
          provider: slot.name,
          outcome: 'success',
          keyFingerprint: slot.keys.fingerprints[keyIndex],
          status: undefined,
          waitedMs,
        });
        return succeeded(slot, answer, attempts);
      },
      (error: unknown) => {
        if (signal?.aborted) throw signal.reason;
        attempts.push(failedAttempt(slot, keyIndex, error, waitedMs));
        throw error;
      },
    );
  }

  /**
   * Tries the providers in order. The usual call — no signal, the first provider, nothing forced, no key
   * resting — is one breaker call whose success handler is the slot's own (made once per key, not per call);
   * anything else, and any failure of that call, goes through `loop`.
   */
  function run(request: ChatRequest, signal: AbortSignal | undefined): Promise<ChatResult> {
    const first = slots[0] as Slot;
    if (
      signal ||
      control.forced(first.name) !== 'auto' ||
      first.breaker.forced !== 'auto' ||
      !first.keys.idle
    )
      return loop(request, signal, [], undefined);
    const keyIndex = first.keys.next();
    return first.breaker
      .fire(new Attempt(request, first.keys.keys[keyIndex], undefined))
      .then(first.onFirstTry[keyIndex], (error: unknown) =>
        loop(request, undefined, [failedAttempt(first, keyIndex, error, 0)], { error, keyIndex }),
      );
  }

  /** Counts a provider's answer and makes the result. */
  function succeeded(slot: Slot, answer: ChatAnswer, attempts: readonly AttemptRecord[]): ChatResult {
    slot.tally?.record('success', 0);
    slot.up = true;
    tally.answered(slot.index, 'upstream');
    tally.current = slot.index;
    return {
      content: answer.content,
      model: answer.model,
      id: answer.id,
      finishReason: answer.finishReason,
      usage: answer.usage,
      provider: slot.name,
      cached: false,
      coalesced: false,
      attempts,
    };
  }

  /** Counts a failed call (not opossum's refusal of one: that is no upstream call) and makes its record. */
  function failedAttempt(slot: Slot, keyIndex: number, error: unknown, waitedMs: number): AttemptRecord {
    const outcome = classify(error);
    if (outcome !== 'breaker_open') slot.tally?.record(outcome, Date.now());
    return {
      provider: slot.name,
      outcome,
      keyFingerprint: slot.keys.fingerprints[keyIndex],
      status: isProviderHttpError(error) ? error.status : undefined,
      waitedMs,
    };
  }

  /** The state of one provider's turn in a chain call. */
  interface Turn {
    made: number;
    waited: number;
    reason: FallbackReason | undefined;
    lastStatus: number | undefined;
    lastMessage: string;
  }

  /** The general path: forced states, key cool-downs, retries, fallback. `pending`: the fast path's failure. */
  async function loop(
    request: ChatRequest,
    signal: AbortSignal | undefined,
    attempts: AttemptRecord[],
    pending: { error: unknown; keyIndex: number } | undefined,
  ): Promise<ChatResult> {
    const failures: ProviderFailure[] = [];
    let retryAfterMs: number | undefined;
    for (const slot of slots) {
      const turn: Turn = { made: 0, waited: 0, reason: undefined, lastStatus: undefined, lastMessage: '' };
      if (pending) {
        // The fast path already made this provider's first attempt.
        turn.made = 1;
        await afterFailure(slot, turn, pending.error, pending.keyIndex, signal);
        pending = undefined;
      } else {
        const forced = control.forced(slot.name);
        if (forced !== slot.breaker.forced) slot.breaker.force(forced);
        if (forced === 'open') {
          attempts.push({
            provider: slot.name,
            outcome: 'forced_open',
            keyFingerprint: undefined,
            status: undefined,
            waitedMs: 0,
          });
          turn.reason = 'forced_open';
          turn.lastMessage = 'forced open by an operator';
        }
      }
      while (turn.reason === undefined) {
        if (turn.made >= slot.maxAttempts) {
          turn.reason = lastReason(attempts, slot.name);
          const wake = slot.keys.cooling(Date.now()).nextFreeInMs;
          if (turn.reason === 'rate_limited' && wake !== undefined)
            retryAfterMs = Math.min(retryAfterMs ?? wake, wake);
          break;
        }
        const pick = slot.keys.pick();
        if (pick.index < 0) {
          if (pick.waitMs > slot.maxRetryAfterMs) {
            attempts.push({
              provider: slot.name,
              outcome: 'keys_cooling',
              keyFingerprint: undefined,
              status: undefined,
              waitedMs: 0,
            });
            turn.reason = 'rate_limited';
            turn.lastMessage = `every API key rests after a 429 or a refusal (the first wakes in ${pick.waitMs}ms)`;
            retryAfterMs = Math.min(retryAfterMs ?? pick.waitMs, pick.waitMs);
            break;
          }
          await pause(pick.waitMs, signal);
          turn.waited += pick.waitMs;
          continue;
        }
        turn.made++;
        try {
          return await callOnce(slot, request, pick.index, signal, turn.waited, attempts);
        } catch (error) {
          if (signal?.aborted) throw signal.reason;
          turn.waited = 0;
          await afterFailure(slot, turn, error, pick.index, signal);
        }
      }
      failures.push({
        provider: slot.name,
        reason: turn.reason,
        ...(turn.lastStatus === undefined ? {} : { status: turn.lastStatus }),
        message: turn.lastMessage,
      });
      fellBack(slot, turn.reason);
    }
    tally.answered(names.length, 'unavailable');
    throw new ProvidersUnavailableError(failures, retryAfterMs);
  }

  /**
   * Decides what follows a failed attempt: sets `turn.reason` to give the provider up, rests the key after a
   * 429 or a refusal, backs off before a retry, or rethrows a request the provider refused (a 4xx).
   */
  async function afterFailure(
    slot: Slot,
    turn: Turn,
    error: unknown,
    keyIndex: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const outcome = classify(error);
    turn.lastStatus = isProviderHttpError(error) ? error.status : undefined;
    turn.lastMessage = error instanceof Error ? error.message : String(error);
    if (outcome === 'breaker_open') {
      turn.made--; // opossum refused it: no call was made
      turn.reason = 'breaker_open';
      return;
    }
    failed(slot, outcome, error);
    if (outcome === 'rejected') throw error;
    if (outcome === 'timeout') {
      turn.reason = 'timeout';
      return;
    }
    const keyFingerprint = slot.keys.fingerprints[keyIndex];
    const hinted = retryAfterOf(error);
    if (outcome === 'rate_limited' || outcome === 'refused') {
      const rest = (outcome === 'rate_limited' ? hinted : undefined) ?? slot.keyCooldownMs;
      slot.keys.coolDown(keyIndex, rest, Date.now());
      if (turn.made < slot.maxAttempts)
        retryEvent.emit({ provider: slot.name, attempt: turn.made, outcome, delayMs: 0, keyFingerprint });
      return;
    }
    // server_error, network_error, bad_response, error: back off and try again, unless that is pointless.
    if (turn.made >= slot.maxAttempts || slot.breaker.state === 'open') {
      turn.reason = toReason(outcome);
      return;
    }
    const delay =
      hinted !== undefined && hinted <= slot.maxRetryAfterMs
        ? hinted
        : backoffDelay(turn.made, slot.baseDelayMs, slot.maxDelayMs);
    retryEvent.emit({ provider: slot.name, attempt: turn.made, outcome, delayMs: delay, keyFingerprint });
    await pause(delay, signal);
    turn.waited += delay;
  }

  /** `run`, with the cache in front of it. */
  async function cachedRun(request: ChatRequest, canonical: string, signal: AbortSignal | undefined) {
    if (!cache) return run(request, signal);
    const hash = requestHash(canonical);
    try {
      const hit = await cache.get(hash);
      if (hit) {
        tally.cacheHits++;
        const slot = byName.get(hit.provider);
        tally.answered(slot?.index ?? names.length, 'cache');
        const { storedAt: _storedAt, provider, ...answer } = hit;
        return { ...answer, provider, cached: true, coalesced: false, attempts: [] } satisfies ChatResult;
      }
      tally.cacheMisses++;
    } catch (error) {
      tally.cacheErrors++;
      cacheErrorEvent.emit(error);
    }
    const result = await run(request, signal);
    const { provider, cached: _c, coalesced: _co, attempts: _a, ...answer } = result;
    try {
      await cache.set(hash, provider, answer);
    } catch (error) {
      tally.cacheErrors++;
      cacheErrorEvent.emit(error);
    }
    return result;
  }

  // Not `async`: on the usual path the caller awaits `run`'s promise itself, one promise less per call.
  function chat(request: ChatRequest, chatOptions?: ChatOptions): Promise<ChatResult> {
    if (closed)
      return Promise.reject(
        new InvalidStateError('This provider chain is closed: create a new one to make calls.'),
      );
    const signal = chatOptions?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!Array.isArray(request?.messages) || request.messages.length === 0) {
      return Promise.reject(
        new InputValidationError('chat request', [
          { path: 'messages', message: 'a chat needs at least one message' },
        ]),
      );
    }
    const useCache = cache !== undefined && chatOptions?.cache !== false;
    if (!inFlight && !useCache) return run(request, signal);
    return shared(request, signal, useCache);
  }

  /** A call through the cache and/or coalescing. */
  function shared(
    request: ChatRequest,
    signal: AbortSignal | undefined,
    useCache: boolean,
  ): Promise<ChatResult> {
    const canonical = canonicalRequest(request, models);
    if (!inFlight) return cachedRun(request, canonical, signal);
    // A call that skips the cache must not join one that may answer from it (nor the other way round).
    const key = useCache ? `cache:${canonical}` : `fresh:${canonical}`;
    const { promise, joined } = inFlight.join(key, signal, (sharedSignal) =>
      useCache ? cachedRun(request, canonical, sharedSignal) : run(request, sharedSignal),
    );
    return joined ? promise.then(coalesced) : promise;
  }

  function coalesced(result: ChatResult): ChatResult {
    tally.coalesced++;
    tally.answered(byName.get(result.provider)?.index ?? names.length, 'coalesced');
    return { ...result, coalesced: true };
  }

  function health(): ChainHealth {
    const now = Date.now();
    const breakers: Record<string, ProviderHealth> = {};
    let usable = -1;
    for (const slot of slots) {
      const state = slot.breaker.state;
      const forced = slot.breaker.forced;
      const cooling = slot.keys.cooling(now);
      const stats = slot.breaker.breaker.stats;
      const callable =
        forced === 'closed' ||
        (forced === 'auto' && state !== 'open' && cooling.count < slot.keys.keys.length);
      if (callable && usable < 0) usable = slot.index;
      breakers[slot.name] = {
        state,
        forced,
        up: slot.up,
        ...(slot.provider.model ? { model: slot.provider.model } : {}),
        keys: {
          total: slot.provider.apiKeys?.length ?? 0,
          cooling: slot.provider.apiKeys?.length ? cooling.count : 0,
          ...(slot.provider.apiKeys?.length && cooling.nextFreeInMs !== undefined
            ? { nextFreeInMs: cooling.nextFreeInMs }
            : {}),
        },
        ...(slot.lastFailure ? { lastFailure: slot.lastFailure } : {}),
        window: {
          fires: stats.fires,
          successes: stats.successes,
          failures: stats.failures,
          timeouts: stats.timeouts,
          rejects: stats.rejects,
        },
      };
    }
    return {
      service: o.service,
      status: usable === 0 ? 'ok' : usable > 0 ? 'degraded' : 'down',
      circuit_breakers: breakers,
    };
  }

  return {
    service: o.service,
    providers: names,
    chat,
    health,
    onFallback: (listener) => fallbackEvent.on(listener),
    onRetry: (listener) => retryEvent.on(listener),
    onBreakerStateChange: (listener) => stateEvent.on(listener),
    onCacheError: (listener) => cacheErrorEvent.on(listener),
    async close() {
      if (closed) return;
      closed = true;
      stopListening.dispose();
      removeMetrics?.();
      for (const slot of slots) slot.breaker.shutdown();
    },
  };
}

/**
 * Waits `ms`, ended early by `signal` when there is one. Without one, a plain timer: a shared never-aborting
 * signal would collect one abort listener per concurrent wait under load (and a `MaxListenersExceededWarning`
 * where Node warns about them).
 */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return signal ? sleep(ms, signal) : new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * `call`, ended at once when `signal` aborts (its attempt aborted too), even if the provider ignores its signal:
 * the caller must not wait for the breaker's timeout.
 */
function untilAborted<T>(call: Promise<T>, signal: AbortSignal, attempt: Attempt): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      attempt.abort(signal.reason);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    call.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** What kind of failure `error` is, for retries, fallback and metrics. */
function classify(error: unknown): Outcome | 'breaker_open' {
  if (isBreakerOpenRejection(error)) return 'breaker_open';
  if (isBreakerTimeout(error)) return 'timeout';
  if (isProviderHttpError(error)) {
    const status = error.status;
    if (status === 429) return 'rate_limited';
    if (status === 408 || status >= 500) return 'server_error';
    if (status === 401 || status === 402 || status === 403) return 'refused';
    return 'rejected';
  }
  if (isRetryAfterError(error)) return 'rate_limited';
  if (isProviderUnreachableError(error)) return 'network_error';
  if ((error as { code?: unknown } | null)?.code === 'PROVIDER_BAD_RESPONSE') return 'bad_response';
  return 'error';
}

function retryAfterOf(error: unknown): number | undefined {
  if (isProviderHttpError(error)) return error.retryAfterMs;
  if (isRetryAfterError(error)) return error.retryAfterMs;
  return undefined;
}

function toReason(outcome: Outcome): FallbackReason {
  switch (outcome) {
    case 'rate_limited':
      return 'rate_limited';
    case 'timeout':
      return 'timeout';
    case 'network_error':
      return 'network_error';
    case 'refused':
      return 'refused';
    case 'bad_response':
      return 'bad_response';
    default:
      return 'server_error';
  }
}

/** The reason a provider is given up on after its last attempt. */
function lastReason(attempts: AttemptRecord[], provider: string): FallbackReason {
  for (let i = attempts.length - 1; i >= 0; i--) {
    const a = attempts[i] as AttemptRecord;
    if (a.provider !== provider) break;
    if (
      a.outcome !== 'success' &&
      a.outcome !== 'breaker_open' &&
      a.outcome !== 'forced_open' &&
      a.outcome !== 'keys_cooling'
    )
      return toReason(a.outcome);
  }
  return 'server_error';
}
