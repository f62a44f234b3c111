import type { Redis } from 'ioredis';
import { z } from 'zod';
import { type ResourceRef, ResourceRefSchema } from '../core/resource';

// The names every resilience primitive shares. A service's name is the `service` of its provider chain, its
// breaker control and its limiters alike — one rule, so a chain can always be steered by the control and the
// runbook actions. Names end up inside Redis key names (no braces: the `{service}` hash tag; no colons: the key
// separator; no spaces or slashes), metric labels and resource references.

/** A service's name (`backend`, `requirements-agent`): letters, digits, `_`, `.`, `-`, starting with a letter or digit. */
export const ServiceName = z
  .string()
  .max(100)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.-]*$/,
    'expected letters, digits, "_", "." or "-", starting with a letter or digit',
  );

/**
 * A provider's name (`openrouter`, `ollama`). It becomes a metric name prefix (`openrouter` → `openrouter_api_up`),
 * so it is lower case letters, digits and `_`. The breaker actions take the same rule, so a misspelt `OpenRouter`
 * is refused at once.
 */
export const ProviderName = z
  .string()
  .regex(
    /^[a-z][a-z0-9_]{0,39}$/,
    'expected lower case letters, digits and "_", starting with a letter (a metric prefix)',
  );

/**
 * A resource reference to something stored in the Redis server `redis` talks to, such as
 * `redis://127.0.0.1:6379/0/breaker/backend/openrouter` (a socket path or Sentinel group where it has one), never
 * with credentials: what locks and budgets of the resilience actions are keyed by.
 */
export function redisRef(redis: Redis, ...path: string[]): ResourceRef {
  const o = redis.options;
  const db = o.db ?? 0;
  let location: string;
  if (o.path) location = `redis:unix/${encodeURIComponent(o.path)}/${db}`;
  else if (o.sentinels?.length) location = `redis:sentinel/${encodeURIComponent(o.name ?? 'mymaster')}/${db}`;
  else {
    const host = o.host ?? '127.0.0.1';
    location = `redis://${host.includes(':') ? `[${host}]` : host}:${o.port ?? 6379}/${db}`;
  }
  return ResourceRefSchema.parse([location, ...path.map(encodeURIComponent)].join('/'));
}
