import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import {
  type BreakerControl,
  isProviderHttpError,
  isProvidersUnavailableError,
  isQueueFullError,
  type ProviderChain,
  startBreakerControl,
} from '@aiwebtest/runbooks/resilience';
import Fastify, { type FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import pg from 'pg';
import { Gauge, Registry } from 'prom-client';
import { z } from 'zod';
import { guardBackend } from '../security/backend-guard';
import {
  type BackendEnv,
  type BackendOptionsInput,
  parseBackendEnv,
  parseBackendOptions,
  publicConfig,
} from './backend-config';
import { type GenerateOutcome, GenerateQueue } from './generate-queue';
import { instrumentHttp } from './http-metrics';
import { buildLlmChain, currentProvider } from './llm-chain';
import { ProjectId, readProjectStats } from './project-stats';
import { replicaBreakerSwitch } from './replica-breaker-switch';

/** A running sample backend. */
export interface Backend {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  app: FastifyInstance;
  /**
   * Applies a Deployment's complete env live (what `kubectl set env deployment/backend` reaches through the lab's
   * bridge); missing variables take their defaults. A bad or unknown variable throws an `InputValidationError`
   * naming it, and nothing changes. Returns the settings now in force.
   */
  reconfigure(env: Record<string, string>): Promise<ReturnType<typeof publicConfig>>;
  /** Closes the pg pool and opens a new one: what restarting the backend pods does to their connections. */
  resetDatabasePool(): Promise<void>;
  close(): Promise<void>;
}

const GenerateBody = z.strictObject({
  prompt: z.string().trim().min(1, 'expected a prompt').max(20_000),
  agent: z
    .string()
    .regex(/^[a-z][a-z0-9_-]{0,62}$/, 'expected an agent name such as "generation_agent"')
    .optional(),
});

const AdminParams = z.object({
  provider: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, 'expected a provider name such as "openrouter"'),
  action: z.enum(['open', 'close', 'auto'], { message: 'expected open, close or auto' }),
});
const AdminBody = z
  .strictObject({ reason: z.string().trim().min(1).max(500).optional() })
  .optional()
  .nullable();

const FORCED = { open: 'open', close: 'closed', auto: 'auto' } as const;
const HEALTH_TIMEOUT_MS = 2_000;

/** 400 with the zod issues as `field: message`, the style of the SDK's InputValidationError. */
function invalid(error: z.ZodError) {
  const message = error.issues
    .map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`)
    .join('; ');
  return { error: { code: 'INVALID_INPUT', message } };
}

/** Resolves with `promise`'s value, or rejects after `ms`: a health check must answer even when a dependency hangs. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Starts the sample AI-Web-Test backend: the "prevention as code" of the manual's Runbooks 6–8 on the SDK's
 * resilience half. LLM calls go OpenRouter → Ollama through breakers shared across replicas (breaker control in
 * Redis), optionally through the Redis request queue and response cache, and every setting comes from the
 * Deployment's env so the runbooks' `kubectl set env` steps change it live.
 */
export async function startBackend(input: BackendOptionsInput): Promise<Backend> {
  const o = parseBackendOptions(input);
  let env: BackendEnv = parseBackendEnv(o.env);
  const apiKeys = o.apiKeys ?? [o.apiKey as string];
  const replicaId = o.replicaId ?? `${o.serviceName}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const registry = new Registry();

  const makePool = () => {
    const pool = new pg.Pool({
      connectionString: o.databaseUrl,
      max: o.databasePoolSize,
      connectionTimeoutMillis: 5_000,
      // Long enough for Runbook 5's slow queries to be seen, short enough that requests do not hang forever.
      query_timeout: 30_000,
    });
    // An idle client's error (the server went away) must not crash the process; the next query reconnects.
    pool.on('error', () => {});
    return pool;
  };
  let pool = makePool();

  const redis = new Redis(o.redisUrl, { maxRetriesPerRequest: 2, lazyConnect: true });
  redis.on('error', () => {}); // ioredis reconnects by itself; health reports the outage
  let breakers: BreakerControl | undefined;
  let queue: GenerateQueue | undefined;
  let chain: ProviderChain | undefined;
  try {
    await redis.connect();
    breakers = await startBreakerControl(redis, {
      service: o.serviceName,
      replicaId,
      prefix: `${o.redisPrefix}breaker`,
    });
    const control = replicaBreakerSwitch(breakers);
    control.forceOpenHere('openrouter', env.OPENROUTER_FALLBACK);
    // Closing must not wait for keep-alive connections of the load generator (or a stuck client) to time out.
    const app = Fastify({ logger: o.logger, forceCloseConnections: true });
    const chainFor = (e: BackendEnv) => {
      const made = buildLlmChain({
        service: o.serviceName,
        openRouterUrl: o.openRouterUrl,
        apiKeys,
        openRouterModel: o.openRouterModel,
        ollamaUrl: e.OLLAMA_URL ?? o.ollamaUrl,
        ollamaModel: o.ollamaModel,
        cacheTtlSeconds: e.OPENROUTER_CACHE_TTL,
        redis,
        redisPrefix: o.redisPrefix,
        control,
        registry,
        breaker: o.breaker,
        retry: o.retry,
      });
      // The log lines the manual's symptoms quote ("OpenRouter API is unreachable", "Rate limit exceeded").
      // Skips of an open breaker repeat on every call, so they stay at debug.
      made.onFallback(({ from, to, reason }) => {
        if (reason === 'forced_open' || reason === 'breaker_open')
          app.log.debug({ from, to, reason }, `${from} skipped (${reason}); using ${to}`);
        else if (reason === 'rate_limited')
          app.log.warn({ from, to, reason }, `${from}: rate limit exceeded; falling back to ${to}`);
        else
          app.log.warn({ from, to, reason }, `${from} API is unreachable (${reason}); falling back to ${to}`);
      });
      return made;
    };
    chain = chainFor(env);
    queue = await GenerateQueue.open(
      redis,
      o.redisPrefix,
      o.queueMaxLength,
      env.OPENROUTER_MAX_REQUESTS_PER_MINUTE,
    );

    instrumentHttp(app, registry);
    // Runbook 12: the IP blocklist (403) and the login with strict rate limiting.
    guardBackend(app, { redis, env: () => env, pool: () => pool });
    let lastQueueLength = 0;
    const activeQueue = queue;
    new Gauge({
      name: 'agent_request_queue_length',
      help: 'LLM requests waiting in the Redis request queue (Runbook 7; 429 beyond the maximum).',
      registers: [registry],
      async collect() {
        // A Redis outage must not break the whole scrape: the last known length stands in.
        lastQueueLength = await within(activeQueue.length(), 1_000, 'redis').catch(() => lastQueueLength);
        this.set(lastQueueLength);
      },
    });

    const callChain = async (prompt: string, retried = false): Promise<GenerateOutcome> => {
      const current = chain as ProviderChain;
      try {
        const answer = await current.chat(
          { messages: [{ role: 'user', content: prompt }] },
          { cache: env.OPENROUTER_CACHE_ENABLED, signal: AbortSignal.timeout(o.generateTimeoutMs) },
        );
        return { ok: true, text: answer.content, provider: answer.provider, cached: answer.cached };
      } catch (e) {
        // The chain was replaced by reconfigure() while this call started on the old one: once more on the new.
        if (!retried && (e as { code?: string }).code === 'INVALID_STATE' && chain !== current)
          return callChain(prompt, true);
        if (isProvidersUnavailableError(e))
          return { ok: false, status: 503, code: e.code, message: e.message };
        if (isProviderHttpError(e)) return { ok: false, status: 502, code: e.code, message: e.message };
        if (e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError'))
          return {
            ok: false,
            status: 504,
            code: 'TIMEOUT',
            message: `no answer within ${o.generateTimeoutMs} ms`,
          };
        app.log.error({ err: e }, 'generate failed');
        return { ok: false, status: 503, code: 'LLM_UNAVAILABLE', message: 'the LLM chain is not available' };
      }
    };
    queue.consume((request) => callChain(request.prompt));

    const checkDatabase = async () => {
      const started = performance.now();
      try {
        await within(pool.query('SELECT 1'), HEALTH_TIMEOUT_MS, 'database');
        return { up: true, latency_ms: Math.round((performance.now() - started) * 10) / 10 };
      } catch {
        return { up: false, latency_ms: null };
      }
    };
    const checkRedis = async () => {
      try {
        await within(redis.ping(), HEALTH_TIMEOUT_MS, 'redis');
        return { up: true };
      } catch {
        return { up: false };
      }
    };

    app.get('/api/v1/health', async (_request, reply) => {
      const [database, redisHealth, queueLength] = await Promise.all([
        checkDatabase(),
        checkRedis(),
        within(activeQueue.length(), HEALTH_TIMEOUT_MS, 'redis').catch(() => null),
      ]);
      const llm = (chain as ProviderChain).health();
      const status =
        !database.up || llm.status === 'down'
          ? 'down'
          : llm.status === 'degraded' || !redisHealth.up
            ? 'degraded'
            : 'ok';
      return reply.code(status === 'down' ? 503 : 200).send({
        status,
        service: o.serviceName,
        replica: replicaId,
        database,
        redis: redisHealth,
        circuit_breakers: llm.circuit_breakers,
        provider_current: currentProvider(chain as ProviderChain),
        queue: { enabled: env.OPENROUTER_QUEUE_ENABLED, length: queueLength, max: o.queueMaxLength },
        config: publicConfig(env, o.ollamaUrl),
      });
    });

    app.get('/ready', async (_request, reply) => {
      const database = await checkDatabase();
      return reply.code(database.up ? 200 : 503).send({ ready: database.up, database });
    });

    app.get('/metrics', async (_request, reply) => {
      return reply.header('content-type', registry.contentType).send(await registry.metrics());
    });

    app.post('/api/v1/generate', async (request, reply) => {
      const body = GenerateBody.safeParse(request.body);
      if (!body.success) return reply.code(400).send(invalid(body.error));
      let outcome: GenerateOutcome;
      if (env.OPENROUTER_QUEUE_ENABLED) {
        try {
          outcome = await activeQueue.submit(body.data, o.queueWaitTimeoutMs);
        } catch (e) {
          if (isQueueFullError(e))
            return reply
              .code(429)
              .header('Retry-After', String(e.retryAfterSeconds))
              .send({ error: { code: e.code, message: 'The request queue is full; try again later.' } });
          if ((e as { code?: string }).code === 'QUEUE_WAIT_TIMEOUT')
            return reply
              .code(504)
              .send({ error: { code: 'QUEUE_WAIT_TIMEOUT', message: (e as Error).message } });
          throw e;
        }
      } else {
        outcome = await callChain(body.data.prompt);
      }
      if (outcome.ok) return { text: outcome.text, provider: outcome.provider, cached: outcome.cached };
      return reply.code(outcome.status).send({ error: { code: outcome.code, message: outcome.message } });
    });

    app.get('/api/v1/projects/:id/stats', async (request, reply) => {
      const id = ProjectId.safeParse((request.params as { id: string }).id);
      if (!id.success) return reply.code(400).send(invalid(id.error));
      let stats: Awaited<ReturnType<typeof readProjectStats>>;
      try {
        stats = await readProjectStats(pool, id.data);
      } catch (e) {
        // The driver's message can name hosts and ports: the log gets it, the client a fixed text.
        request.log.error({ err: e }, 'project stats query failed');
        return reply
          .code(503)
          .send({ error: { code: 'DATABASE_UNAVAILABLE', message: 'the database did not answer' } });
      }
      if (!stats)
        return reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no project ${id.data}` } });
      return stats;
    });

    app.post('/api/v1/admin/circuit-breaker/:provider/:action', async (request, reply) => {
      const params = AdminParams.safeParse(request.params);
      if (!params.success) return reply.code(400).send(invalid(params.error));
      const body = AdminBody.safeParse(request.body);
      if (!body.success) return reply.code(400).send(invalid(body.error));
      const { provider, action } = params.data;
      const current = chain as ProviderChain;
      if (!current.providers.includes(provider))
        return reply.code(404).send({
          error: {
            code: 'UNKNOWN_PROVIDER',
            message: `provider: expected one of ${current.providers.join(', ')}`,
          },
        });
      // Through breaker control, so every replica of the service follows, not just the one the balancer picked.
      const record = await (breakers as BreakerControl).force(provider, FORCED[action], {
        actor: 'admin-endpoint',
        reason: body.data?.reason ?? `POST /api/v1/admin/circuit-breaker/${provider}/${action}`,
        origin: `${o.serviceName} replica ${replicaId} on ${hostname()}`,
      });
      return {
        provider,
        forced: record?.state ?? 'auto',
        circuit_breaker: current.health().circuit_breakers[provider],
      };
    });

    await app.listen({ host: o.host, port: o.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : o.port;
    const url = `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`;

    let closed = false;
    // One reconfigure at a time: two overlapping ones must not both rebuild the chain.
    let reconfiguring: Promise<unknown> = Promise.resolve();
    const apply = async (next: Record<string, string>) => {
      const parsed = parseBackendEnv(next); // throws before anything changes
      const previous = env;
      if (
        parsed.OLLAMA_URL !== previous.OLLAMA_URL ||
        parsed.OPENROUTER_CACHE_TTL !== previous.OPENROUTER_CACHE_TTL
      ) {
        // The chain's providers and cache TTL are fixed when it is made: a new chain, like a new pod would
        // have. The old one is closed first so its gauges do not linger beside the new chain's.
        await (chain as ProviderChain).close();
        chain = chainFor(parsed);
      }
      control.forceOpenHere('openrouter', parsed.OPENROUTER_FALLBACK);
      activeQueue.setRate(parsed.OPENROUTER_MAX_REQUESTS_PER_MINUTE);
      env = parsed;
      return publicConfig(env, o.ollamaUrl);
    };
    return {
      url,
      app,
      reconfigure(next) {
        const result = reconfiguring.then(() => apply(next));
        reconfiguring = result.catch(() => {});
        return result;
      },
      async resetDatabasePool() {
        const old = pool;
        pool = makePool();
        await old.end();
      },
      async close() {
        if (closed) return;
        closed = true;
        await app.close();
        await activeQueue.close();
        await (chain as ProviderChain).close();
        await (breakers as BreakerControl).close();
        await pool.end();
        await redis.quit().catch(() => redis.disconnect());
      },
    };
  } catch (e) {
    await queue?.close().catch(() => {});
    await chain?.close().catch(() => {});
    await breakers?.close().catch(() => {});
    await pool.end().catch(() => {});
    redis.disconnect();
    throw e;
  }
}
