import { InputValidationError } from '@aiwebtest/runbooks';
import type { BreakerOptionsInput, ProviderRetryOptionsInput } from '@aiwebtest/runbooks/resilience';
import { z } from 'zod';

/** `"true"` or `"false"`, as Kubernetes env values are strings; anything else is refused rather than guessed. */
const EnvBoolean = z
  .enum(['true', 'false'], { message: 'expected "true" or "false"' })
  .transform((v) => v === 'true');

/** A positive whole number written as a string (`"50"`). */
function envInteger(min: number, max: number) {
  return z
    .string()
    .regex(/^[0-9]+$/, 'expected a whole number such as "50"')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));
}

/** An http(s) URL without credentials: it is shown in /api/v1/health, so it must never carry a password. */
const ServiceUrl = z
  .url({ protocol: /^https?$/, message: 'expected an http(s) URL such as "http://ollama:11434"' })
  .refine((v) => {
    const u = new URL(v);
    return u.username === '' && u.password === '';
  }, 'must not contain credentials');

/**
 * The backend Deployment's environment (LAB.md): what `kubectl set env deployment/backend` changes. Every value
 * is a string, as Kubernetes passes it. A variable this backend does not know is refused, so a typo such as
 * `OPENROUTER_FALLBAK=true` fails loudly instead of doing nothing in the middle of an incident.
 */
export const BackendEnv = z.strictObject({
  /** Runbook 6: `true` forces this replica's OpenRouter breaker open (traffic goes to Ollama). */
  OPENROUTER_FALLBACK: EnvBoolean.default(false),
  /** Where the Ollama fallback listens; unset: the `ollamaUrl` option. */
  OLLAMA_URL: ServiceUrl.optional(),
  /** Runbook 7: LLM calls wait in the Redis request queue and are sent at the rate below. */
  OPENROUTER_QUEUE_ENABLED: EnvBoolean.default(false),
  /** The queue's drain rate, across all replicas (Runbook 7: 50). */
  OPENROUTER_MAX_REQUESTS_PER_MINUTE: envInteger(1, 60_000).default(50),
  /** Runbook 8: answers of identical prompts come from Redis. */
  OPENROUTER_CACHE_ENABLED: EnvBoolean.default(false),
  /** Seconds a cached answer lives (Runbook 8: 300). */
  OPENROUTER_CACHE_TTL: envInteger(1, 30 * 24 * 3600).default(300),
  /** Carried for the test-execution side of the platform; shown in health, not used by the LLM path. */
  MAX_PARALLEL_TESTS: envInteger(1, 1000).default(2),
  TEST_RESULT_CACHE_ENABLED: EnvBoolean.default(false),
  TEST_RESULT_CACHE_TTL: envInteger(1, 30 * 24 * 3600).default(3600),
  /** Runbook 12: strict rate limiting of the login endpoint, `RATE_LIMIT_GLOBAL` attempts per minute per client. */
  RATE_LIMIT_STRICT: EnvBoolean.default(false),
  RATE_LIMIT_GLOBAL: envInteger(1, 1_000_000).default(10),
});
/** The parsed environment. */
export type BackendEnv = z.output<typeof BackendEnv>;

/**
 * Parses a complete environment (missing variables take their defaults), or throws an
 * {@link InputValidationError} naming each bad variable (`OPENROUTER_CACHE_TTL: expected a whole number…`).
 */
export function parseBackendEnv(env: Record<string, string>): BackendEnv {
  const result = BackendEnv.safeParse(env);
  if (result.success) return result.data;
  throw new InputValidationError(
    'backend environment',
    result.error.issues.flatMap((issue) => {
      // An unknown variable is reported under its own name, not under the object's root.
      if (issue.code === 'unrecognized_keys')
        return issue.keys.map((key) => ({ path: key, message: 'unknown variable' }));
      return [{ path: issue.path.map(String).join('.'), message: issue.message }];
    }),
  );
}

function isObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Options of `startBackend`. */
export const BackendOptions = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  /** 0 picks a free port. */
  port: z.number().int().min(0).max(65_535).default(0),
  /** The application database (through PgBouncer in the lab). */
  databaseUrl: z.string().regex(/^postgres(ql)?:\/\//, 'expected a postgres:// URL'),
  redisUrl: z.string().regex(/^rediss?:\/\//, 'expected a redis:// URL'),
  /** Prefix of every Redis key and channel this backend writes (`aiwebtest:lab:`), so tests and labs never meet. */
  redisPrefix: z
    .string()
    .max(48)
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9_.:-]*:$/,
      'expected letters, digits, "_", ".", ":" or "-", ending with ":"',
    ),
  /** OpenRouter up to and including `/api/v1`. */
  openRouterUrl: ServiceUrl,
  /** One key, or several used round-robin (Runbook 7's prevention). */
  apiKey: z.string().min(1).optional(),
  apiKeys: z.array(z.string().min(1)).min(1).optional(),
  /** The default Ollama URL when the env has no `OLLAMA_URL`. */
  ollamaUrl: ServiceUrl,
  openRouterModel: z.string().min(1).default('anthropic/claude-3.5-sonnet'),
  ollamaModel: z.string().min(1).default('llama3.1:8b'),
  serviceName: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/, 'expected letters, digits, "_", "." or "-"')
    .default('aiwebtest-backend'),
  /** This replica in breaker-control heartbeats (the pod name in a cluster). @default `<serviceName>-<pid>-<random>` */
  replicaId: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,200}$/, 'expected letters, digits, "_", ".", ":" or "-"')
    .optional(),
  /** The Deployment's env vars (LAB.md). */
  env: z.record(z.string(), z.string()).default({}),
  /** pino logging; off so tests and the lab's terminal stay quiet. */
  logger: z.boolean().default(false),
  /** The provider chain's breaker and retry settings; the SDK validates their fields when the chain is made. */
  breaker: z.custom<BreakerOptionsInput>(isObject, 'expected an object of breaker options').optional(),
  retry: z.custom<ProviderRetryOptionsInput>(isObject, 'expected an object of retry options').optional(),
  /** Requests the queue holds before it answers 429 (the manual's escalation threshold: 1000). */
  queueMaxLength: z.number().int().min(1).max(1_000_000).default(1000),
  /** How long a queued /generate waits for its answer before 504 (the item stays queued). */
  queueWaitTimeoutMs: z.number().int().min(100).max(3_600_000).default(120_000),
  /** How long one /generate may take in the provider chain. */
  generateTimeoutMs: z.number().int().min(100).max(600_000).default(60_000),
  /** Connections of the pg pool (PgBouncer multiplexes them in the lab). */
  databasePoolSize: z.number().int().min(1).max(100).default(5),
});
/** Options of `startBackend` as callers write them. */
export type BackendOptionsInput = z.input<typeof BackendOptions>;
/** Parsed {@link BackendOptions}. */
export type BackendOptions = z.output<typeof BackendOptions>;

/** Parses the options or throws an {@link InputValidationError} naming the fields; never echoes the keys. */
export function parseBackendOptions(input: BackendOptionsInput): BackendOptions {
  const result = BackendOptions.safeParse(input);
  if (!result.success)
    throw new InputValidationError(
      'backend options',
      result.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
    );
  const o = result.data;
  if (!o.apiKey && !o.apiKeys)
    throw new InputValidationError('backend options', [
      { path: 'apiKeys', message: 'give apiKey or apiKeys' },
    ]);
  return o;
}

/** The settings `/api/v1/health` shows: everything but secrets. */
export function publicConfig(env: BackendEnv, ollamaUrl: string) {
  return {
    openrouter_fallback: env.OPENROUTER_FALLBACK,
    ollama_url: env.OLLAMA_URL ?? ollamaUrl,
    openrouter_queue_enabled: env.OPENROUTER_QUEUE_ENABLED,
    openrouter_max_requests_per_minute: env.OPENROUTER_MAX_REQUESTS_PER_MINUTE,
    openrouter_cache_enabled: env.OPENROUTER_CACHE_ENABLED,
    openrouter_cache_ttl: env.OPENROUTER_CACHE_TTL,
    max_parallel_tests: env.MAX_PARALLEL_TESTS,
    test_result_cache_enabled: env.TEST_RESULT_CACHE_ENABLED,
    test_result_cache_ttl: env.TEST_RESULT_CACHE_TTL,
    rate_limit_strict: env.RATE_LIMIT_STRICT,
    rate_limit_global: env.RATE_LIMIT_GLOBAL,
  };
}
