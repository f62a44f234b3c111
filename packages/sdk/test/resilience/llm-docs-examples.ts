import { createServer, type Server } from 'node:http';
import type { Redis } from 'ioredis';
import { register } from 'prom-client';
import type { BreakerSwitch, LocalBreakerSwitch } from '../../src/resilience/breaker-switch';
import { ollamaProvider } from '../../src/resilience/ollama';
import { openRouterProvider } from '../../src/resilience/openrouter';
import { createProviderChain, type ProviderChain } from '../../src/resilience/provider-chain';

// The examples RESILIENCE.md shows (between the docs: markers), run by provider-chain-docs.test.ts. The docs
// import the package; this file imports the sources.

// docs:begin llm-chain
export function llmChain(redis: Redis, control?: BreakerSwitch): ProviderChain {
  return createProviderChain({
    service: 'backend',
    providers: [
      openRouterProvider({
        baseUrl: process.env.OPENROUTER_URL, // unset: https://openrouter.ai/api/v1
        apiKeys: (process.env.OPENROUTER_API_KEYS ?? '').split(','),
        model: 'anthropic/claude-3.5-sonnet',
        headers: { 'X-Title': 'AI-Web-Test' },
      }),
      ollamaProvider({ baseUrl: process.env.OLLAMA_URL, model: 'llama3.1:8b' }),
    ],
    breaker: { timeout: '30s', errorThresholdPercentage: 50, resetTimeout: '30s', volumeThreshold: 5 },
    retry: { maxAttempts: 3, maxRetryAfter: '10s', keyCooldown: '60s' },
    cache: { redis, ttl: '5m' },
    control,
  });
}
// docs:end llm-chain

// docs:begin admin-endpoints
export function adminServer(chain: ProviderChain, control: LocalBreakerSwitch): Server {
  const forced = { open: 'open', close: 'closed', auto: 'auto' } as const;
  return createServer(async (req, res) => {
    const url = req.url ?? '/';
    const admin = /^\/api\/v1\/admin\/circuit-breaker\/([a-z0-9_]+)\/(open|close|auto)$/.exec(url);
    if (req.method === 'POST' && admin && chain.providers.includes(admin[1] as string)) {
      control.force(admin[1] as string, forced[admin[2] as keyof typeof forced]);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(chain.health().circuit_breakers[admin[1] as string]));
    } else if (req.method === 'GET' && url === '/api/v1/health') {
      const health = chain.health();
      res.writeHead(health.status === 'down' ? 503 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(health));
    } else if (req.method === 'GET' && url === '/metrics') {
      res.writeHead(200, { 'content-type': register.contentType });
      res.end(await register.metrics());
    } else {
      res.writeHead(404).end();
    }
  });
}
// docs:end admin-endpoints
