import {
  type BreakerOptionsInput,
  type BreakerSwitch,
  createProviderChain,
  ollamaProvider,
  openRouterProvider,
  type ProviderChain,
  type ProviderRetryOptionsInput,
} from '@aiwebtest/runbooks/resilience';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';

/** What a chain is built from; a change of `ollamaUrl` or `cacheTtlSeconds` needs a new chain. */
export interface LlmChainSettings {
  service: string;
  openRouterUrl: string;
  apiKeys: string[];
  openRouterModel: string;
  ollamaUrl: string;
  ollamaModel: string;
  cacheTtlSeconds: number;
  redis: Redis;
  redisPrefix: string;
  control: BreakerSwitch;
  registry: Registry;
  breaker?: BreakerOptionsInput;
  retry?: ProviderRetryOptionsInput;
}

/**
 * The backend's LLM chain: OpenRouter first, Ollama as the fallback (Runbook 6's prevention), each behind the
 * SDK's breaker, with the Redis response cache always configured so that `OPENROUTER_CACHE_ENABLED` can switch
 * it per call without rebuilding the chain (and losing the breakers' history).
 */
export function buildLlmChain(s: LlmChainSettings): ProviderChain {
  return createProviderChain({
    service: s.service,
    providers: [
      openRouterProvider({
        baseUrl: s.openRouterUrl,
        apiKeys: s.apiKeys,
        model: s.openRouterModel,
        headers: { 'X-Title': 'AI-Web-Test' },
      }),
      ollamaProvider({ baseUrl: s.ollamaUrl, model: s.ollamaModel }),
    ],
    breaker: {
      timeout: '30s',
      errorThresholdPercentage: 50,
      resetTimeout: '30s',
      volumeThreshold: 5,
      ...s.breaker,
    },
    retry: { maxAttempts: 3, maxRetryAfter: '10s', keyCooldown: '60s', ...s.retry },
    cache: { redis: s.redis, ttl: s.cacheTtlSeconds * 1000, prefix: `${s.redisPrefix}llm:response:` },
    control: s.control,
    metrics: { registry: s.registry },
  });
}

/**
 * The provider the next call goes to: the first whose breaker is not open and not forced open. It is what the
 * operator asks during Runbook 6 ("current provider should show ollama") before any call has been made.
 */
export function currentProvider(chain: ProviderChain): string | null {
  const breakers = chain.health().circuit_breakers;
  for (const name of chain.providers) {
    const b = breakers[name];
    if (b && b.forced !== 'open' && (b.state !== 'open' || b.forced === 'closed')) return name;
  }
  return null;
}
