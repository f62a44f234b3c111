// The end-to-end runbook of REDIS.md ("End to end: the agent-cache runbook"), which shows it as
// `agent-cache.ts`. Everything between the docs markers appears there exactly, except the import lines: the
// docs import from the package (`@aiwebtest/runbooks`, `@aiwebtest/runbooks/redis`), this file from the
// sources. docs-examples.test.ts runs it against a private redis-server and fails when the two drift apart.

// docs:begin agent-cache.ts
import { z } from 'zod';
import { defineRunbook } from '../../src';
import type { RedisRunbooks } from '../../src/redis';

/**
 * The manual's "clear agent cache (if stale data)" (Runbook 2, step 2) without its `redis-cli FLUSHDB`: make
 * sure Redis answers and the request queue is not the real problem, take a snapshot, then delete only the
 * agent's cache keys. `cache` is a parameter so that a test can point the runbook at a throwaway server.
 */
export function agentCache(cache: RedisRunbooks) {
  return defineRunbook({
    id: 'agent-cache',
    title: 'Agent answers are stale: clear its cache',
    severity: 'P2',
    input: z.object({
      /** The agent whose cache is cleared: its keys start with `agent:<agent>:cache:`. */
      agent: z
        .string()
        .regex(/^[a-z]+$/)
        .default('generation'),
    }),
    async run({ input, step }) {
      const ping = await step.check('redis-ping', cache.ping());
      if (ping.status === 'fail') return step.escalate(`Redis does not answer: ${ping.summary}`);

      // Runbook 7's queue check: a queue at its bound is a rate-limit incident, not a stale cache.
      const queue = await step.check('request-queue', cache.queueLength({ key: 'agent:requests:queue' }));
      if (queue.status === 'fail') return step.escalate(`the request queue is full: ${queue.summary}`);

      // The cache clear cannot be undone; a fresh snapshot can bring the keys back if the prefix was wrong.
      await step.act('snapshot', cache.bgsave({ timeout: '5m' }));
      const cleared = await step.act(
        'clear-cache',
        cache.clearCache({ prefix: `agent:${input.agent}:cache:` }),
      );

      const outcome =
        cleared.status === 'applied' ? `${cleared.plan.params.keysAtPlan} keys deleted` : cleared.status;
      return step.done(`${input.agent} cache: ${outcome}`);
    },
  });
}
// docs:end agent-cache.ts
