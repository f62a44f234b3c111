import { describe, expect, it } from 'vitest';
import {
  type BreakerState,
  type BreakerSwitch,
  type ForcedState,
  localBreakerSwitch,
} from '../../src/resilience/breaker-switch';
import type { ProviderChain } from '../../src/resilience/provider-chain';
import { ask, sample, useChainFixture } from './llm-fixture';

// Forced breaker states, as an operator sets them through a BreakerSwitch (here the in-process one; the Redis
// breaker control implements the same interface across replicas).

const llm = useChainFixture();
const chainFor = llm.chainFor;
const outcomes = (r: { attempts: readonly { provider: string; outcome: string }[] }) =>
  r.attempts.map((a) => [a.provider, a.outcome]);
/** Resolves when `provider`'s breaker next reports `state`; rejects when it has not within 3 s. */
const nextState = (chain: ProviderChain, provider: string, state: BreakerState) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      listening.dispose();
      reject(new Error(`${provider}'s breaker did not go ${state} within 3s`));
    }, 3_000);
    const listening = chain.onBreakerStateChange((e) => {
      if (e.provider === provider && e.state === state) {
        clearTimeout(timer);
        listening.dispose();
        resolve();
      }
    });
  });

describe('forced breaker states', () => {
  it('registers the providers in order and reports the live states', () => {
    const control = localBreakerSwitch();
    chainFor({ control });
    expect(control.providers).toEqual(['openrouter', 'ollama']);
    expect([...control.reported]).toEqual([
      ['openrouter', 'closed'],
      ['ollama', 'closed'],
    ]);
  });

  it('forced open: the provider is skipped without a request (a forced fallback) and stays open past resetTimeout', async () => {
    const control = localBreakerSwitch();
    const { chain, registry } = chainFor({ control });
    const states: string[] = [];
    chain.onBreakerStateChange(({ provider, state }) => provider === 'openrouter' && states.push(state));
    control.force('openrouter', 'open');
    expect(control.reported.get('openrouter')).toBe('open');
    const result = await chain.chat(ask('x'));
    expect(result.provider).toBe('ollama');
    expect(outcomes(result)).toEqual([
      ['openrouter', 'forced_open'],
      ['ollama', 'success'],
    ]);
    expect(llm.providers.openrouter.requests).toHaveLength(0);
    expect(chain.health().circuit_breakers.openrouter).toMatchObject({ state: 'open', forced: 'open' });
    expect(chain.health().status).toBe('degraded');
    // resetTimeout (500 ms) passes: a forced-open breaker does not go half-open, and nobody hears of a
    // transition that did not happen (it was opened once).
    await new Promise((r) => setTimeout(r, 700));
    expect(chain.health().circuit_breakers.openrouter?.state).toBe('open');
    expect(states).toEqual(['open']);
    expect(outcomes(await chain.chat(ask('y')))[0]).toEqual(['openrouter', 'forced_open']);
    const text = await registry.metrics();
    expect(
      sample(text, 'llm_fallbacks_total{service="llm",from="openrouter",to="ollama",reason="forced_open"}'),
    ).toBe(2);
    expect(
      sample(text, 'circuit_breaker_forced_state{service="llm",provider="openrouter",state="open"}'),
    ).toBe(1);
    expect(sample(text, 'circuit_breaker_state{service="llm",provider="openrouter",state="open"}')).toBe(1);

    // auto: the breaker judges again from where it is, open. Within resetTimeout it goes half-open, and one
    // successful probe closes it: not straight to closed, which would send every replica's traffic at once to
    // a provider that may still fail.
    const halfOpen = nextState(chain, 'openrouter', 'halfOpen');
    control.force('openrouter', 'auto');
    expect(chain.health().circuit_breakers.openrouter).toMatchObject({ state: 'open', forced: 'auto' });
    expect(chain.health().status).toBe('degraded');
    await halfOpen;
    expect((await chain.chat(ask('z'))).provider).toBe('openrouter');
    expect(chain.health().circuit_breakers.openrouter).toMatchObject({ state: 'closed', forced: 'auto' });
    expect(states).toEqual(['open', 'halfOpen', 'closed']);
  });

  it('back to auto from forced open, a probe that fails opens the breaker again', async () => {
    const control = localBreakerSwitch();
    const { chain } = chainFor({ control });
    control.force('openrouter', 'open');
    llm.providers.openrouter.faults.inject({ kind: 'serverError' });
    const halfOpen = nextState(chain, 'openrouter', 'halfOpen');
    control.force('openrouter', 'auto');
    await halfOpen;
    const probe = await chain.chat(ask('still down?'));
    // The failed probe reopened the breaker: no retry on OpenRouter.
    expect(outcomes(probe)).toEqual([
      ['openrouter', 'server_error'],
      ['ollama', 'success'],
    ]);
    expect(llm.providers.openrouter.requests).toHaveLength(1);
    expect(chain.health().circuit_breakers.openrouter).toMatchObject({ state: 'open', forced: 'auto' });
  });

  it('forced closed: calls go through although the breaker would be open; the timeout still applies', async () => {
    const control = localBreakerSwitch();
    const { chain } = chainFor({
      control,
      breaker: { timeout: 300, volumeThreshold: 2, resetTimeout: 60_000 },
    });
    llm.providers.openrouter.faults.inject({ kind: 'serverError' });
    await chain.chat(ask('a'));
    expect(chain.health().circuit_breakers.openrouter?.state).toBe('open');

    control.force('openrouter', 'closed');
    expect(chain.health().circuit_breakers.openrouter).toMatchObject({ state: 'closed', forced: 'closed' });
    // Still failing: every call tries OpenRouter (and falls back), the breaker does not open again.
    const failing = await chain.chat(ask('b'));
    expect(outcomes(failing)).toEqual([
      ['openrouter', 'server_error'],
      ['openrouter', 'server_error'],
      ['ollama', 'success'],
    ]);
    expect(chain.health().circuit_breakers.openrouter?.state).toBe('closed');
    // Recovered: OpenRouter answers at once, no probe, no resetTimeout (one minute here) to wait for.
    llm.providers.openrouter.faults.clearAll();
    expect((await chain.chat(ask('c'))).provider).toBe('openrouter');
    // The timeout holds even though opossum is disabled.
    llm.providers.openrouter.faults.inject({ kind: 'latency', delay: '10s', times: 1 });
    const started = Date.now();
    const slow = await chain.chat(ask('d'));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(outcomes(slow)).toEqual([
      ['openrouter', 'timeout'],
      ['ollama', 'success'],
    ]);

    control.force('openrouter', 'auto');
    expect(chain.health().circuit_breakers.openrouter).toMatchObject({ state: 'closed', forced: 'auto' });
  });

  it('a chain made while a state is forced starts in it, and reads the forced state before every call', async () => {
    let forced: ForcedState = 'open';
    // A switch that never notifies: the chain must still read it before each call.
    const quiet: BreakerSwitch = {
      forced: (provider) => (provider === 'openrouter' ? forced : 'auto'),
      onChange: () => ({ dispose() {}, [Symbol.dispose]() {} }),
      register: () => {},
      report: () => {},
    };
    const { chain } = chainFor({ control: quiet });
    expect(chain.health().circuit_breakers.openrouter).toMatchObject({ state: 'open', forced: 'open' });
    expect((await chain.chat(ask('x'))).provider).toBe('ollama');
    forced = 'auto';
    // The next call reads auto (the breaker is still open: Ollama answers); the half-open probe then closes it.
    const halfOpen = nextState(chain, 'openrouter', 'halfOpen');
    await chain.chat(ask('y'));
    expect(chain.health().circuit_breakers.openrouter?.forced).toBe('auto');
    await halfOpen;
    expect((await chain.chat(ask('z'))).provider).toBe('openrouter');
  });

  it('forcing every provider open makes calls fail fast with PROVIDERS_UNAVAILABLE', async () => {
    const control = localBreakerSwitch();
    const { chain } = chainFor({ control });
    control.force('openrouter', 'open');
    control.force('ollama', 'open');
    const error = await chain.chat(ask('x')).catch((e) => e);
    expect(error).toMatchObject({ code: 'PROVIDERS_UNAVAILABLE' });
    expect(error.failures.map((f: { reason: string }) => f.reason)).toEqual(['forced_open', 'forced_open']);
    expect(chain.health().status).toBe('down');
    expect(llm.providers.openrouter.requests.length + llm.providers.ollama.requests.length).toBe(0);
  });

  it('close() stops listening to the switch', async () => {
    const control = localBreakerSwitch();
    const { chain } = chainFor({ control });
    await chain.close();
    control.force('openrouter', 'open');
    expect(chain.health().circuit_breakers.openrouter?.forced).toBe('auto');
  });
});
