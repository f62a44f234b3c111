import type { Redis } from 'ioredis';
import { z } from 'zod';
import { type ResourceRef, ResourceRefSchema } from '../core/resource';

/** The key prefix breaker control uses unless told otherwise. */
export const DEFAULT_BREAKER_PREFIX = 'aiwebtest:breaker';

// Names end up inside Redis key names and resource references: no braces (the `{service}` hash tag), no
// colons in service and provider names (the key separator), no spaces or slashes.
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** A service's name (`backend`, `requirements-agent`): letters, digits, `_`, `.`, `-`. */
export const ServiceName = z
  .string()
  .max(100)
  .regex(NAME, 'expected letters, digits, "_", "." or "-", starting with a letter or digit');
/** A provider's name as the chain registers it (`openrouter`, `ollama`). */
export const ProviderName = z
  .string()
  .max(64)
  .regex(NAME, 'expected letters, digits, "_", "." or "-", starting with a letter or digit');
/** A replica's id (a pod name, `host-pid`): letters, digits, `_`, `.`, `-`, `:`. */
export const ReplicaId = z
  .string()
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]*$/, 'expected letters, digits, "_", ".", ":" or "-"');
/** The namespace of every key and channel, e.g. `aiwebtest:breaker` or `staging:breaker`. */
export const KeyPrefix = z
  .string()
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]*$/, 'expected letters, digits, "_", ".", ":" or "-"');

/** The Redis keys and the channel of one service's breaker control. */
export interface BreakerKeys {
  /** Hash: provider → JSON forced record. A provider in `auto` has no field. */
  forced: string;
  /** Counter: the version of the last change (every change increments it). */
  version: string;
  /** String: a random id created with the first use of the keys; a new one means Redis lost them. */
  epoch: string;
  /** Sorted set: replica id → when its heartbeat expires (ms, Redis clock). */
  replicas: string;
  /** String with a TTL: one replica's heartbeat. */
  replica(replicaId: string): string;
  /** Pub/sub channel: every change, as JSON. */
  channel: string;
}

/**
 * The keys of `service` under `prefix`: `<prefix>:{<service>}:forced`, `…:version`, `…:epoch`, `…:replicas`,
 * `…:replica:<id>` and the channel `…:changes`. The `{service}` hash tag keeps them in one cluster slot, so the
 * Lua scripts that touch several of them stay valid on a cluster too.
 */
export function breakerKeys(prefix: string, service: string): BreakerKeys {
  const base = `${prefix}:{${service}}`;
  return {
    forced: `${base}:forced`,
    version: `${base}:version`,
    epoch: `${base}:epoch`,
    replicas: `${base}:replicas`,
    replica: (replicaId) => `${base}:replica:${replicaId}`,
    channel: `${base}:changes`,
  };
}

/**
 * The resource reference of a service's breakers (`redis://127.0.0.1:6379/0/breaker/backend`) or of one
 * provider's (`…/breaker/backend/openrouter`): where the forced state lives, never the credentials.
 */
export function breakerRef(redis: Redis, service: string, provider?: string): ResourceRef {
  const path = ['breaker', service, ...(provider === undefined ? [] : [provider])].map(encodeURIComponent);
  return ResourceRefSchema.parse(`${redisLocation(redis)}/${path.join('/')}`);
}

/** `redis://host:port/db` of a client (a socket path or a Sentinel group name where it has one). */
function redisLocation(redis: Redis): string {
  const o = redis.options;
  const db = o.db ?? 0;
  if (o.path) return `redis:unix/${encodeURIComponent(o.path)}/${db}`;
  if (o.sentinels?.length) return `redis:sentinel/${encodeURIComponent(o.name ?? 'mymaster')}/${db}`;
  const host = o.host ?? '127.0.0.1';
  return `redis://${host.includes(':') ? `[${host}]` : host}:${o.port ?? 6379}/${db}`;
}
