import type { Disposable } from '../core/events';

/**
 * The seam between a provider chain and whoever steers its breakers. The chain reads the forced state of each
 * provider's breaker before a call and reports what its breakers do; an operator (a runbook action, an admin
 * endpoint) forces states. {@link localBreakerSwitch} keeps it in one process; the Redis-backed breaker
 * control shares it across every replica of a service.
 */

/** What an operator forced a breaker to: `auto` lets the breaker judge by itself. */
export type ForcedState = 'open' | 'closed' | 'auto';

/** What a breaker is doing now, as opossum names it. */
export type BreakerState = 'closed' | 'open' | 'halfOpen';

export interface BreakerSwitch {
  /** The forced state of `provider`'s breaker as this process knows it now (synchronous: read on every call). */
  forced(provider: string): ForcedState;
  /** Calls `listener` whenever a provider's forced state changes; dispose the result to stop. */
  onChange(listener: (provider: string, state: ForcedState) => void): Disposable;
  /** The chain's providers, in the order it tries them: what "switch to fallback" and verification read. */
  register(providers: readonly string[]): void;
  /** The chain reports its breaker's live state on every transition (and once after register). */
  report(provider: string, state: BreakerState): void;
}

/** A switch that lives in this process only: `force()` changes it, listeners hear it at once. */
export interface LocalBreakerSwitch extends BreakerSwitch {
  force(provider: string, state: ForcedState): void;
  /** The live states reported by the chain. */
  readonly reported: ReadonlyMap<string, BreakerState>;
  readonly providers: readonly string[];
}

export function localBreakerSwitch(): LocalBreakerSwitch {
  const forced = new Map<string, ForcedState>();
  const reported = new Map<string, BreakerState>();
  const listeners = new Set<(provider: string, state: ForcedState) => void>();
  let providers: readonly string[] = [];
  return {
    forced: (provider) => forced.get(provider) ?? 'auto',
    onChange(listener) {
      listeners.add(listener);
      const dispose = () => {
        listeners.delete(listener);
      };
      return { dispose, [Symbol.dispose]: dispose };
    },
    register(list) {
      providers = [...list];
    },
    report(provider, state) {
      reported.set(provider, state);
    },
    force(provider, state) {
      if ((forced.get(provider) ?? 'auto') === state) return;
      if (state === 'auto') forced.delete(provider);
      else forced.set(provider, state);
      for (const listener of listeners) listener(provider, state);
    },
    reported,
    get providers() {
      return providers;
    },
  };
}
