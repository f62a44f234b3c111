import { Counter, Gauge, register as globalRegistry, type Metric, type Registry } from 'prom-client';
import type { BreakerState, ForcedState } from './breaker-switch';
import type { FallbackReason } from './provider-errors';

// The hot path of a chain call only bumps plain numbers (tallies); prom-client reads them when the registry is
// scraped, through each metric's `collect()`. Calling prom-client on every call (a label hash, a validation and
// an object per observation) would cost more than the circuit breaker itself.

/** How one upstream call ended, as `<provider>_api_requests_total{outcome}` counts it. */
export const OUTCOMES = [
  'success',
  'rate_limited',
  'server_error',
  'timeout',
  'network_error',
  'refused',
  'rejected',
  'bad_response',
  'error',
] as const;
/** How one upstream call ended. */
export type Outcome = (typeof OUTCOMES)[number];
/** Index of each {@link Outcome} in a tally. */
export const OUTCOME_INDEX = Object.fromEntries(OUTCOMES.map((o, i) => [o, i])) as Record<Outcome, number>;

/** Bucket bounds of `<provider>_api_duration_seconds`: LLM calls take from 50 ms (a cache-warm model) to minutes. */
export const LLM_DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120] as const;

/** Where answers come from, as `llm_requests_total{source}` counts them. */
export const SOURCES = ['upstream', 'cache', 'coalesced', 'unavailable'] as const;
/** Where an answer came from. */
export type Source = (typeof SOURCES)[number];

const SOURCE_INDEX = Object.fromEntries(SOURCES.map((s, i) => [s, i])) as Record<Source, number>;

/** Counts of observations per bucket (not cumulative), their sum and count. */
class HistogramTally {
  readonly counts = new Float64Array(LLM_DURATION_BUCKETS.length + 1);
  sum = 0;
  count = 0;
  observe(seconds: number): void {
    let i = 0;
    while (i < LLM_DURATION_BUCKETS.length && seconds > (LLM_DURATION_BUCKETS[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += seconds;
    this.count++;
  }
}

/** Events in the last 60 seconds, in one-second buckets. */
class LastMinute {
  readonly #seconds = new Float64Array(60);
  readonly #counts = new Float64Array(60);
  add(now: number): void {
    const second = Math.floor(now / 1000);
    const i = second % 60;
    if (this.#seconds[i] !== second) {
      this.#seconds[i] = second;
      this.#counts[i] = 0;
    }
    this.#counts[i] = (this.#counts[i] as number) + 1;
  }
  total(now: number): number {
    const second = Math.floor(now / 1000);
    let sum = 0;
    for (let i = 0; i < 60; i++)
      if ((this.#seconds[i] as number) > second - 60) sum += this.#counts[i] as number;
    return sum;
  }
}

/** What one provider's upstream calls did, shared by every chain that reports into the same registry. */
export class ProviderTally {
  /** Calls per {@link Outcome} not yet handed to `<provider>_api_requests_total`. */
  readonly pendingRequests = new Float64Array(OUTCOMES.length);
  /** The same for `<provider>_api_errors_total` (read by its own collect, so each flushes only its own). */
  readonly pendingErrors = new Float64Array(OUTCOMES.length);
  readonly success = new HistogramTally();
  readonly error = new HistogramTally();
  readonly rateLimits = new LastMinute();
  /** 1 while the last evidence says the API answers, 0 after a network error, timeout, 5xx or an opened breaker. */
  up = 1;

  /** Counts one upstream call (its duration comes separately, from the breaker: {@link observe}). */
  record(outcome: Outcome, now: number): void {
    const i = OUTCOME_INDEX[outcome];
    this.pendingRequests[i] = (this.pendingRequests[i] as number) + 1;
    if (outcome === 'success') {
      this.up = 1;
      return;
    }
    this.pendingErrors[i] = (this.pendingErrors[i] as number) + 1;
    if (outcome === 'rate_limited') this.rateLimits.add(now);
    if (outcome === 'server_error' || outcome === 'timeout' || outcome === 'network_error') this.up = 0;
    else this.up = 1; // it answered: a 4xx is not an outage
  }

  /** Adds a call's duration to the success or error histogram. */
  observe(ms: number, ok: boolean): void {
    (ok ? this.success : this.error).observe(ms / 1000);
  }
}

/** What one chain did beyond upstream calls; {@link ChainSource} hands it to the registry. */
export class ChainTally {
  /** `from\0to\0reason` → fallbacks not yet handed to prom-client. */
  readonly fallbacks = new Map<string, number>();
  cacheHits = 0;
  cacheMisses = 0;
  cacheErrors = 0;
  coalesced = 0;
  /** Per provider index (the last row: no provider), per {@link Source}: answers not yet handed to prom-client. */
  readonly answers: Float64Array[];
  /** Index of the provider that answered the last upstream call, -1 before the first. */
  current = -1;

  constructor(providerCount: number) {
    this.answers = Array.from({ length: providerCount + 1 }, () => new Float64Array(SOURCES.length));
  }

  /** Counts an answer of provider `index` (`providerCount`: none) from `source`. */
  answered(index: number, source: Source): void {
    const row = this.answers[index] as Float64Array;
    const j = SOURCE_INDEX[source];
    row[j] = (row[j] as number) + 1;
  }

  fallback(from: string, to: string, reason: FallbackReason): void {
    const key = `${from}\0${to}\0${reason}`;
    this.fallbacks.set(key, (this.fallbacks.get(key) ?? 0) + 1);
  }
}

/** What a chain shows the registry: its tallies and, read at scrape time, its breakers' states. */
export interface ChainSource {
  service: string;
  providers: readonly string[];
  tally: ChainTally;
  breakerState(provider: string): BreakerState;
  forcedState(provider: string): ForcedState;
}

const BREAKER_STATES: [BreakerState, string][] = [
  ['closed', 'closed'],
  ['open', 'open'],
  ['halfOpen', 'half_open'],
];
const FORCED_STATES: ForcedState[] = ['auto', 'open', 'closed'];

/** The LLM metrics of one registry: one set per provider name, chain-level ones labelled by service. */
class LlmMetrics {
  readonly #registry: Registry;
  readonly #providers = new Map<string, ProviderTally>();
  readonly #chains = new Set<ChainSource>();
  /** Per chain counter: hands a chain's unscraped tallies to it (at a scrape, and when the chain closes). */
  readonly #flushes: ((chain: ChainSource) => void)[] = [];

  constructor(registry: Registry) {
    this.#registry = registry;
    const chains = this.#chains;
    const registers = [registry];
    const flushes = this.#flushes;
    /** A counter fed from the chains' tallies by `flush`. */
    const chainCounter = (
      config: { name: string; help: string; labelNames: string[] },
      flush: (counter: Counter, chain: ChainSource) => void,
    ) => {
      const counter: Counter = new Counter({
        ...config,
        registers,
        collect() {
          for (const chain of chains) flush(counter, chain);
        },
      });
      flushes.push((chain) => flush(counter, chain));
    };
    new Gauge({
      name: 'circuit_breaker_state',
      help: 'State of the circuit breaker in front of each LLM provider: 1 for the current state, 0 for the others.',
      labelNames: ['service', 'provider', 'state'],
      registers,
      collect() {
        this.reset();
        for (const chain of chains)
          for (const provider of chain.providers) {
            const state = chain.breakerState(provider);
            for (const [name, label] of BREAKER_STATES)
              this.set({ service: chain.service, provider, state: label }, name === state ? 1 : 0);
          }
      },
    });
    new Gauge({
      name: 'circuit_breaker_forced_state',
      help: 'What an operator forced each LLM provider breaker to (auto: the breaker judges): 1 for the current one.',
      labelNames: ['service', 'provider', 'state'],
      registers,
      collect() {
        this.reset();
        for (const chain of chains)
          for (const provider of chain.providers) {
            const forced = chain.forcedState(provider);
            for (const state of FORCED_STATES)
              this.set({ service: chain.service, provider, state }, state === forced ? 1 : 0);
          }
      },
    });
    new Gauge({
      name: 'llm_provider_current',
      help: 'The LLM provider that answered the last upstream call of each service (1), the others 0.',
      labelNames: ['service', 'provider'],
      registers,
      collect() {
        this.reset();
        for (const chain of chains)
          chain.providers.forEach((provider, i) => {
            this.set({ service: chain.service, provider }, chain.tally.current === i ? 1 : 0);
          });
      },
    });
    chainCounter(
      {
        name: 'llm_fallbacks_total',
        help: 'Times a provider chain moved past a provider to the next one (to="none": none was left), by reason.',
        labelNames: ['service', 'from', 'to', 'reason'],
      },
      (counter, chain) => {
        for (const [key, n] of chain.tally.fallbacks) {
          if (n === 0) continue;
          const [from, to, reason] = key.split('\0') as [string, string, string];
          counter.inc({ service: chain.service, from, to, reason }, n);
          chain.tally.fallbacks.set(key, 0);
        }
      },
    );
    const serviceCounter = (name: string, help: string, take: (tally: ChainTally) => number) =>
      chainCounter({ name, help, labelNames: ['service'] }, (counter, chain) =>
        counter.inc({ service: chain.service }, take(chain.tally)),
      );
    serviceCounter('llm_cache_hits_total', 'Chain calls answered from the Redis response cache.', (t) => {
      const n = t.cacheHits;
      t.cacheHits = 0;
      return n;
    });
    serviceCounter('llm_cache_misses_total', 'Chain calls the response cache had no answer for.', (t) => {
      const n = t.cacheMisses;
      t.cacheMisses = 0;
      return n;
    });
    serviceCounter(
      'llm_cache_errors_total',
      'Response cache reads or writes that failed (the call went on without it).',
      (t) => {
        const n = t.cacheErrors;
        t.cacheErrors = 0;
        return n;
      },
    );
    serviceCounter(
      'llm_coalesced_requests_total',
      'Chain calls that shared an identical call already in flight.',
      (t) => {
        const n = t.coalesced;
        t.coalesced = 0;
        return n;
      },
    );
    chainCounter(
      {
        name: 'llm_requests_total',
        help: 'Chain calls by the provider whose answer they got and where it came from (provider="none": failed).',
        labelNames: ['service', 'provider', 'source'],
      },
      (counter, chain) => {
        chain.tally.answers.forEach((row, i) => {
          const provider = chain.providers[i] ?? 'none';
          SOURCES.forEach((source, j) => {
            // Only the combinations that happen: a provider's answers, and "none" for failed calls.
            if ((provider === 'none') !== (source === 'unavailable')) return;
            counter.inc({ service: chain.service, provider, source }, row[j] as number);
            row[j] = 0;
          });
        });
      },
    );
  }

  /** The tally of provider `name`, registering its `<name>_api_*` metrics on first use. */
  provider(name: string): ProviderTally {
    let tally = this.#providers.get(name);
    if (tally) return tally;
    tally = new ProviderTally();
    this.#providers.set(name, tally);
    registerProviderMetrics(this.#registry, name, tally);
    return tally;
  }

  /**
   * Adds a chain's tallies and states to what the registry shows; returns the function that removes them. Removal
   * hands the counts no scrape has read yet to the counters first (they keep them, as counters do); the chain's
   * gauges are gone from the next scrape on.
   */
  addChain(source: ChainSource): () => void {
    this.#chains.add(source);
    return () => {
      if (!this.#chains.delete(source)) return;
      for (const flush of this.#flushes) flush(source);
    };
  }
}

const byRegistry = new WeakMap<Registry, LlmMetrics>();

/** The LLM metrics of `registry` (prom-client's global one by default), created on first use. */
export function llmMetrics(registry: Registry = globalRegistry): LlmMetrics {
  let metrics = byRegistry.get(registry);
  if (!metrics) {
    metrics = new LlmMetrics(registry);
    byRegistry.set(registry, metrics);
  }
  return metrics;
}
export type { LlmMetrics };

/** The manual's names for OpenRouter, with the provider's name as prefix: `ollama_api_up` for Ollama. */
function registerProviderMetrics(registry: Registry, provider: string, tally: ProviderTally): void {
  const prefix = `${provider}_api`;
  const registers = [registry];
  new Gauge({
    name: `${prefix}_up`,
    help: `1 while ${provider} answers; 0 after a network error, timeout or 5xx until a call succeeds again.`,
    registers,
    collect() {
      this.set(tally.up);
    },
  });
  const requests = new Counter({
    name: `${prefix}_requests_total`,
    help: `Calls to ${provider}, one per attempt, by outcome.`,
    labelNames: ['outcome'],
    registers,
    collect() {
      OUTCOMES.forEach((outcome, i) => {
        this.inc({ outcome }, tally.pendingRequests[i] as number);
      });
      tally.pendingRequests.fill(0);
    },
  });
  const errors = new Counter({
    name: `${prefix}_errors_total`,
    help: `Failed calls to ${provider}, by type (rate_limited: a 429).`,
    labelNames: ['type'],
    registers,
    collect() {
      OUTCOMES.forEach((outcome, i) => {
        if (outcome !== 'success') this.inc({ type: outcome }, tally.pendingErrors[i] as number);
      });
      tally.pendingErrors.fill(0);
    },
  });
  // Every series exists from the start, so that rate() and alerts see a 0 rather than nothing.
  for (const outcome of OUTCOMES) {
    requests.inc({ outcome }, 0);
    if (outcome !== 'success') errors.inc({ type: outcome }, 0);
  }
  new Gauge({
    name: `${prefix}_rate_limit_errors`,
    help: `429 answers from ${provider} in the last 60 seconds (the manual alerts above 10).`,
    registers,
    collect() {
      this.set(tally.rateLimits.total(Date.now()));
    },
  });
  registry.registerMetric(
    new TallyHistogram(
      `${prefix}_duration_seconds`,
      `Duration of calls to ${provider} in seconds, by outcome (success or error).`,
      tally,
    ) as unknown as Metric,
  );
}

/**
 * A histogram that prom-client's registry exposes like its own, read from a {@link ProviderTally}: prom-client's
 * `Histogram` can only be fed one observation at a time, so it implements the registry's metric contract
 * (`name`, `get()`, `reset()`) itself.
 */
class TallyHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames = ['outcome'];
  constructor(
    readonly name: string,
    readonly help: string,
    readonly tally: ProviderTally,
  ) {}

  async get() {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const [outcome, h] of [
      ['success', this.tally.success],
      ['error', this.tally.error],
    ] as const) {
      let cumulative = 0;
      LLM_DURATION_BUCKETS.forEach((le, i) => {
        cumulative += h.counts[i] as number;
        values.push({ labels: { le, outcome }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', outcome }, value: h.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { outcome }, value: h.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { outcome }, value: h.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    for (const h of [this.tally.success, this.tally.error]) {
      h.counts.fill(0);
      h.sum = 0;
      h.count = 0;
    }
  }
}
