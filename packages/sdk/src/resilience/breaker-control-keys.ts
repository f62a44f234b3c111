import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { ResourceRef } from '../core/resource';
import { redisRef } from './names';

export { ProviderName, ServiceName } from './names';

/** The key prefix breaker control uses unless told otherwise. */
export const DEFAULT_BREAKER_PREFIX = 'aiwebtest:breaker';

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
  /** Hash: provider → JSON `{version, changeId}` of its last change (also one that returned it to `auto`). */
  last: string;
  /** Sorted set: replica id → when its heartbeat expires (ms, Redis clock). */
  replicas: string;
  /** String with a TTL: one replica's heartbeat. */
  replica(replicaId: string): string;
  /** Pub/sub channel: every change, as JSON. */
  channel: string;
}

/**
 * The keys of `service` under `prefix`: `<prefix>:{<service>}:forced`, `…:version`, `…:epoch`, `…:last`, `…:replicas`,
 * `…:replica:<id>` and the channel `…:changes`. The `{service}` hash tag keeps them in one cluster slot, so the
 * Lua scripts that touch several of them stay valid on a cluster too.
 */
export function breakerKeys(prefix: string, service: string): BreakerKeys {
  const base = `${prefix}:{${service}}`;
  return {
    forced: `${base}:forced`,
    version: `${base}:version`,
    epoch: `${base}:epoch`,
    last: `${base}:last`,
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
  return redisRef(redis, 'breaker', service, ...(provider === undefined ? [] : [provider]));
}
