// The examples of BREAKER-CONTROL.md. Everything between the docs markers appears there exactly, except the
// import lines: the docs import from the package (`@aiwebtest/runbooks`, `@aiwebtest/runbooks/resilience`), this
// file from the sources. breaker-control-docs.test.ts runs `backendBreakers` against the real Redis and checks
// the docs; breaker-actions-engine.test.ts runs the runbooks through the engine with replica processes.

import type { Redis } from 'ioredis';
import { z } from 'zod';
import { Duration } from '../../../src/core/duration';
import { defineRunbook } from '../../../src/core/runbook';
import { resetBreaker, switchToFallback } from '../../../src/resilience/breaker-actions';
import { startBreakerControl } from '../../../src/resilience/breaker-control';

// docs:begin backend-breakers.ts
/**
 * Breaker control in one replica of the backend, started before the replica takes traffic (it then already
 * holds the forced states), and the admin endpoint of the manual's Runbook 6
 * (`POST /api/v1/admin/circuit-breaker/<provider>/<open|close|auto>`) on top of it. Hand `breakers` to the
 * provider chain as its breaker switch.
 */
export async function backendBreakers(redis: Redis, replicaId = process.env.HOSTNAME, service = 'backend') {
  const breakers = await startBreakerControl(redis, { service, replicaId });

  async function adminEndpoint(
    provider: string,
    action: 'open' | 'close' | 'auto',
    user: string,
    reason: string,
  ) {
    const state = action === 'close' ? 'closed' : action;
    const record = await breakers.force(provider, state, { actor: user, reason, origin: 'admin endpoint' });
    const replicas = await breakers.replicas();
    return {
      provider,
      forced: record ?? 'auto',
      replicas: replicas.map((r) => ({ replica: r.replicaId, knows: r.forced[provider] ?? 'auto' })),
    };
  }

  return { breakers, adminEndpoint };
}
// docs:end backend-breakers.ts

// docs:begin openrouter-outage.ts
/**
 * The manual's Runbook 6, OpenRouter API complete outage, steps 1 to 3: serve every replica of `service` from
 * `fallback` (each provider before it forced open, verified on every live replica), then tell the users. The
 * forced state returns to automatic after `forcedFor` unless someone acts first.
 */
export function openrouterOutage(redis: Redis) {
  return defineRunbook({
    id: 'openrouter-outage',
    title: 'OpenRouter API complete outage',
    severity: 'P1',
    input: z.object({
      service: z.string().default('backend'),
      fallback: z.string().default('ollama'),
      incident: z.string(),
      forcedFor: Duration.default('1h'),
    }),
    async run({ input, step }) {
      await step.act(
        'switch-to-fallback',
        switchToFallback(redis, {
          service: input.service,
          fallback: input.fallback,
          reason: `${input.incident}: OpenRouter outage`,
          expiresAfter: input.forcedFor,
        }),
        { onGiveUp: step.escalate('the switch to the fallback did not reach every replica') },
      );
      await step.notify('status-page', {
        channel: 'statuspage',
        message:
          'OpenRouter API is experiencing issues. Switched to fallback model. Response times may be slower.',
      });
      return step.done(`${input.service} serves from ${input.fallback}`);
    },
  });
}

/** Runbook 6 step 5, OpenRouter is back: its breaker returns to automatic, half-open, and closes after a good probe. */
export function openrouterRecovered(redis: Redis) {
  return defineRunbook({
    id: 'openrouter-recovered',
    title: 'OpenRouter API recovered',
    severity: 'P2',
    input: z.object({ service: z.string().default('backend'), incident: z.string() }),
    async run({ input, step }) {
      await step.act(
        'reset-openrouter',
        resetBreaker(redis, {
          service: input.service,
          provider: 'openrouter',
          reason: `${input.incident}: OpenRouter recovered`,
        }),
      );
      return step.done(`${input.service} tries OpenRouter again`);
    },
  });
}
// docs:end openrouter-outage.ts
