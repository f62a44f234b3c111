// The examples of RATE-LIMITS.md. Everything between a pair of docs markers appears there exactly, except the
// import lines: the docs import from the packages (`@aiwebtest/runbooks`, `@aiwebtest/runbooks/resilience`,
// `fastify`), this file from the sources and from a stand-in for Fastify. rate-limiter-docs.test.ts runs the
// examples against a real Redis and fails when the docs and this file drift apart.

// docs:begin login-route.ts
import type { Redis } from 'ioredis';
import { createRateLimiter } from '../../../src/resilience/rate-limiter';
import type { FastifyInstance } from './limiter-fastify';

/**
 * POST /login: at most 20 attempts a minute per client address, 5 of them at once, and more for the office's
 * NAT. Every replica shares the counts, and the service's strict mode tightens them all at once.
 */
export function loginRoute(app: FastifyInstance, redis: Redis, prefix = 'ratelimit') {
  const limiter = createRateLimiter(redis, {
    prefix,
    service: 'backend',
    name: 'login',
    limit: 20,
    period: '1m',
    burst: 5,
    overrides: { '10.20.0.1': { limit: 600, burst: 50 } },
  });
  app.post('/login', async (request, reply) => {
    const decision = await limiter.take(request.ip);
    reply.header('RateLimit-Remaining', String(decision.remaining));
    if (!decision.allowed) {
      return reply
        .code(429)
        .header('Retry-After', String(Math.ceil(decision.retryAfterMs / 1000)))
        .send({ error: { code: 'RATE_LIMITED', message: 'Too many login attempts; try again later.' } });
    }
    return { ok: true };
  });
  return limiter;
}

// docs:end login-route.ts

// docs:begin agent-requests.ts
import { createRequestQueue, type RequestQueue } from '../../../src/resilience/request-queue';
import { isQueueFullError } from '../../../src/resilience/request-queue-errors';

/** A request for an LLM agent, as the backend queues it. */
export interface AgentRequest {
  agent: string;
  prompt: string;
}

/**
 * The manual's Runbook 7: queue requests in Redis, at most 1000 (`redis-cli LLEN agent:requests:queue`
 * counts them), and send them on at 50 a minute across all replicas.
 */
export function agentRequestQueue(redis: Redis, key = 'agent:requests:queue'): RequestQueue<AgentRequest> {
  return createRequestQueue<AgentRequest>(redis, { key, maxLength: 1000, rate: { limit: 50, period: '1m' } });
}

/** POST /agent-requests: 202 and the item's id, or 429 with Retry-After while the queue is full. */
export function agentRequestsRoute(app: FastifyInstance, queue: RequestQueue<AgentRequest>) {
  app.post('/agent-requests', async (request, reply) => {
    try {
      const { id } = await queue.enqueue(request.body as AgentRequest);
      return reply.code(202).send({ id });
    } catch (e) {
      if (!isQueueFullError(e)) throw e;
      return reply
        .code(e.httpStatus)
        .header('Retry-After', String(e.retryAfterSeconds))
        .send({ error: { code: e.code, message: e.message } });
    }
  });
}

/**
 * What every replica runs: 4 requests at a time here, 50 a minute in all however many replicas there are.
 * A request that fails is retried twice (1 s apart), then kept in the dead letters.
 */
export function sendQueuedRequests(
  queue: RequestQueue<AgentRequest>,
  callLlm: (request: AgentRequest) => Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  return queue.process((request) => callLlm(request), { concurrency: 4, signal });
}

// docs:end agent-requests.ts

// docs:begin security-containment.ts
import { z } from 'zod';
import { Duration } from '../../../src/core/duration';
import { defineRunbook } from '../../../src/core/runbook';
import { enableStrictMode } from '../../../src/resilience/strict-mode';

/**
 * The manual's Runbook 12, step 4: strict rate limiting for the backend (`RATE_LIMIT_STRICT=true
 * RATE_LIMIT_GLOBAL=10`), here for an hour unless lifted sooner. Every limiter of the service applies it
 * within a second; the plan lists the login limiter's limit before → after.
 */
export function securityContainment(redis: Redis, prefix = 'ratelimit') {
  return defineRunbook({
    id: 'security-containment',
    title: 'Security breach: strict rate limiting',
    severity: 'P1',
    input: z.object({
      /** Each key's limit per period while strict (the manual: 10). */
      limit: z.number().int().min(1).default(10),
      /** How long strict mode lasts. */
      duration: Duration.default('1h'),
    }),
    async run({ input, step }) {
      await step.act(
        'strict-mode',
        enableStrictMode(redis, {
          prefix,
          service: 'backend',
          limit: input.limit,
          expiresAfter: input.duration,
          reason: 'Runbook 12: security breach',
          limiters: [{ name: 'login', limit: 20, period: '1m', burst: 5 }],
        }),
      );
      return step.done(`strict rate limiting on for ${input.duration}`);
    },
  });
}
// docs:end security-containment.ts
