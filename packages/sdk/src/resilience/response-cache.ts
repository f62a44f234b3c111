import type { Redis } from 'ioredis';
import { z } from 'zod';
import { durationBetween, toMillis } from '../core/duration';
import { RunbookError } from '../core/errors';
import type { ChatAnswer } from './provider-request';

/** The optional Redis response cache of a provider chain (the manual: "cache recent responses, TTL 5 minutes"). */
export const ResponseCacheOptions = z.strictObject({
  /** An ioredis client (shared with the rest of the service is fine: the chain only GETs and SETs). */
  redis: z.custom<Redis>(
    (v) => typeof (v as Redis | null)?.get === 'function' && typeof (v as Redis | null)?.set === 'function',
    'expected an ioredis client',
  ),
  /** How long an answer is served from the cache, 1 s to 30 d. @default "5m" */
  ttl: durationBetween(1_000, 30 * 86_400_000, 'expected a duration from 1s to 30d').default('5m'),
  /** Prefix of the cache keys (the rest is the SHA-256 of the canonical request). @default "llm:response:" */
  prefix: z.string().min(1).default('llm:response:'),
  /**
   * How long a cache read or write may take before the call goes on without it (a slow or reconnecting Redis
   * must not slow every LLM call down); 1 ms to 1 min. @default "200ms"
   */
  timeout: durationBetween(1, 60_000, 'expected a duration from 1ms to 1m').default('200ms'),
});
/** {@link ResponseCacheOptions} as written by users. */
export type ResponseCacheOptions = z.input<typeof ResponseCacheOptions>;

/** An answer as the cache keeps it: with the provider that gave it. */
export interface CachedAnswer extends ChatAnswer {
  provider: string;
  /** When it was stored (ms since the epoch). */
  storedAt: number;
}

/** A cache read or write failed; the chain reports it (`onCacheError`) and goes on without the cache. */
export class ResponseCacheError extends RunbookError {
  constructor(operation: 'read' | 'write', cause: unknown, reason?: string) {
    const why = reason ?? (cause instanceof Error ? cause.message : String(cause));
    super(
      'RESPONSE_CACHE_ERROR',
      `LLM response cache ${operation} failed: ${why}. The call went on without the cache.`,
      {
        cause,
        details: { operation },
      },
    );
  }
}

/** GET and SET of answers under `prefix + hash`, with a TTL; only successful answers are ever written. */
export class ResponseCache {
  readonly #redis: Redis;
  readonly #ttlMs: number;
  readonly #prefix: string;
  readonly #timeoutMs: number;

  constructor(options: z.output<typeof ResponseCacheOptions>) {
    this.#redis = options.redis;
    this.#ttlMs = toMillis(options.ttl);
    this.#prefix = options.prefix;
    this.#timeoutMs = toMillis(options.timeout);
  }

  /** The Redis key of a request hash. */
  key(hash: string): string {
    return this.#prefix + hash;
  }

  /** The cached answer, `undefined` on a miss; rejects with a {@link ResponseCacheError} on failure or timeout. */
  async get(hash: string): Promise<CachedAnswer | undefined> {
    const text = await this.#bounded('read', this.#redis.get(this.key(hash)));
    if (text === null) return undefined;
    const value = parseCached(text);
    if (!value)
      throw new ResponseCacheError(
        'read',
        undefined,
        `the value under ${this.key(hash)} is not a cached answer`,
      );
    return value;
  }

  /** Stores a successful answer for `ttl`; rejects with a {@link ResponseCacheError} on failure or timeout. */
  async set(hash: string, provider: string, answer: ChatAnswer): Promise<void> {
    const value: CachedAnswer = { ...answer, provider, storedAt: Date.now() };
    await this.#bounded('write', this.#redis.set(this.key(hash), JSON.stringify(value), 'PX', this.#ttlMs));
  }

  /** `command`, or a {@link ResponseCacheError} when it fails or takes longer than `timeout`. */
  async #bounded<T>(operation: 'read' | 'write', command: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        command,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${this.#timeoutMs}ms`)),
            this.#timeoutMs,
          );
        }),
      ]);
    } catch (e) {
      // A command that settles after the timeout must not become an unhandled rejection.
      command.catch(() => {});
      throw new ResponseCacheError(operation, e);
    } finally {
      clearTimeout(timer);
    }
  }
}

function parseCached(text: string): CachedAnswer | undefined {
  try {
    const value = JSON.parse(text) as Partial<CachedAnswer> | null;
    if (typeof value?.content === 'string' && typeof value.provider === 'string')
      return value as CachedAnswer;
  } catch {
    // not JSON: not ours
  }
  return undefined;
}
