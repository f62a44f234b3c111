import { Registry } from 'prom-client';
import { afterEach, beforeEach } from 'vitest';
import { ollamaProvider } from '../../src/resilience/ollama';
import { openRouterProvider } from '../../src/resilience/openrouter';
import {
  createProviderChain,
  type ProviderChain,
  type ProviderChainOptions,
} from '../../src/resilience/provider-chain';
import type { ChatRequest } from '../../src/resilience/provider-request';
import {
  type OllamaDouble,
  type OpenRouterDouble,
  startOllamaDouble,
  startOpenRouterDouble,
} from '../../src/testing';

// What the provider-chain tests share: an OpenRouter double with two keys, an Ollama double, and a chain over
// both with short breaker and retry settings and a registry of its own.

export const KEY_A = 'sk-or-v1-1111111111111111111111111111111111111111111111111111111111111111';
export const KEY_B = 'sk-or-v1-2222222222222222222222222222222222222222222222222222222222222222';
export const OPENROUTER_MODEL = 'anthropic/claude-3.5-sonnet';
export const OLLAMA_MODEL = 'llama3.1:8b';

/** A chat with one user message. */
export const ask = (content: string): ChatRequest => ({ messages: [{ role: 'user', content }] });

export interface Providers {
  openrouter: OpenRouterDouble;
  ollama: OllamaDouble;
  close(): Promise<void>;
}

export async function startProviders(): Promise<Providers> {
  const [openrouter, ollama] = await Promise.all([
    startOpenRouterDouble({ keys: [KEY_A, KEY_B] }),
    startOllamaDouble({ models: [OLLAMA_MODEL] }),
  ]);
  return {
    openrouter,
    ollama,
    async close() {
      await Promise.all([openrouter.close(), ollama.close()]);
    },
  };
}

/** Test-sized settings: fast backoff, a breaker that opens after 3 calls and probes again after 500 ms. */
export const FAST: Pick<ProviderChainOptions, 'breaker' | 'retry'> = {
  breaker: { timeout: 2_000, volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeout: 500 },
  retry: { maxAttempts: 2, baseDelay: 20, maxDelay: 50, maxRetryAfter: '5s', keyCooldown: '30s' },
};

/** A chain of OpenRouter (keys A and B) then Ollama over the doubles; `registry` is its own unless given. */
export function chainOver(
  providers: Providers,
  options: Partial<ProviderChainOptions> & { keys?: string[] } = {},
): { chain: ProviderChain; registry: Registry } {
  const { keys = [KEY_A, KEY_B], ...rest } = options;
  const registry = new Registry();
  const chain = createProviderChain({
    providers: [
      openRouterProvider({ baseUrl: providers.openrouter.baseUrl, apiKeys: keys, model: OPENROUTER_MODEL }),
      ollamaProvider({ baseUrl: providers.ollama.url, model: OLLAMA_MODEL }),
    ],
    ...FAST,
    metrics: { registry },
    ...rest,
  });
  return { chain, registry };
}

/** The value of one sample in a registry's exposition, e.g. `value(text, 'x_total{outcome="success"}')`. */
export function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/**
 * The per-test setup the chain tests share: fresh doubles before each test, and after it every chain made with
 * `chainFor` closed and the doubles stopped. `defaults` are chain options every `chainFor` starts from.
 */
export function useChainFixture(defaults: Partial<ProviderChainOptions> = {}) {
  const chains: ProviderChain[] = [];
  const fixture = {
    /** This test's doubles. */
    providers: undefined as unknown as Providers,
    /** A chain over this test's doubles (see {@link chainOver}), closed after the test. */
    chainFor(options: Parameters<typeof chainOver>[1] = {}) {
      const made = chainOver(fixture.providers, { ...defaults, ...options });
      chains.push(made.chain);
      return made;
    },
    /** Closes `chain` (made some other way) after the test. */
    closeAfter(chain: ProviderChain) {
      chains.push(chain);
    },
  };
  beforeEach(async () => {
    fixture.providers = await startProviders();
  });
  afterEach(async () => {
    for (const chain of chains.splice(0)) await chain.close();
    await fixture.providers.close();
  });
  return fixture;
}
