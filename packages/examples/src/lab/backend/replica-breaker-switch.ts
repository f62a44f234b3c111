import type { BreakerSwitch, ForcedState } from '@aiwebtest/runbooks/resilience';

/** A breaker switch whose forced states can be overridden in this replica only. */
export interface ReplicaBreakerSwitch extends BreakerSwitch {
  /** `true` forces `provider` open here whatever the shared state says; `false` gives the shared state back. */
  forceOpenHere(provider: string, on: boolean): void;
}

/**
 * Layers a per-replica override over the shared breaker control. `OPENROUTER_FALLBACK=true` is an env var of a
 * Deployment, so it reaches the replicas one by one as Kubernetes rolls them; the shared control
 * (`POST …/circuit-breaker/openrouter/open`) reaches every replica at once. Both must hold at the same time
 * without one erasing the other, which is why the override sits beside the shared state instead of writing to it.
 */
export function replicaBreakerSwitch(shared: BreakerSwitch): ReplicaBreakerSwitch {
  const openHere = new Set<string>();
  const listeners = new Set<(provider: string, state: ForcedState) => void>();
  const effective = (provider: string): ForcedState =>
    openHere.has(provider) ? 'open' : shared.forced(provider);
  let previous = new Map<string, ForcedState>();
  const notify = (provider: string) => {
    const state = effective(provider);
    if ((previous.get(provider) ?? 'auto') === state) return;
    previous = new Map(previous).set(provider, state);
    for (const listener of listeners) listener(provider, state);
  };
  shared.onChange((provider) => notify(provider));
  return {
    forced: effective,
    onChange(listener) {
      listeners.add(listener);
      const dispose = () => {
        listeners.delete(listener);
      };
      return { dispose, [Symbol.dispose]: dispose };
    },
    register(providers) {
      for (const p of providers) previous.set(p, effective(p));
      shared.register(providers);
    },
    report: (provider, state) => shared.report(provider, state),
    forceOpenHere(provider, on) {
      if (on) openHere.add(provider);
      else openHere.delete(provider);
      notify(provider);
    },
  };
}
