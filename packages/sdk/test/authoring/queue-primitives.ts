// The primitives AUTHORING.md builds ("Writing a new primitive"): a replayable check and an action over a
// Redis-backed job queue. Everything between the docs markers appears there exactly, except the import
// lines (the docs import from the package, this file from the sources); docs-examples.test.ts runs them
// against the real Redis and fails when the guide and this file drift apart.
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { finding } from '../../src/core/finding';
import { parseOptions } from '../../src/core/parse-options';
import { resourceRef } from '../../src/core/resource';
import { defineAction, defineCheck } from '../../src/core/step';

// docs:begin queue-depth.ts
const QueueDepthOptions = z.object({
  /** The queue's name: its jobs are the Redis list `queue:<name>`. */
  queue: z.string().regex(/^[a-z0-9-]+$/, 'lowercase letters, digits and dashes'),
  /** More jobs waiting than this is a backlog. */
  max: z.number().int().positive(),
});

/**
 * How many jobs wait in a queue. Replayable: `read` only counts, `judge` decides, so a replay of a past
 * incident judges the recorded count against the threshold the runbook has now.
 */
export function queueDepth(redis: Redis, options: z.input<typeof QueueDepthOptions>) {
  // Bad options fail when the runbook builds the check, naming the field, not in the middle of an incident.
  const { queue, max } = parseOptions('queue.depth', QueueDepthOptions, options);
  return defineCheck({
    kind: 'queue.depth',
    description: `jobs waiting in queue ${queue}`,
    read: async () => ({ depth: await redis.llen(`queue:${queue}`) }),
    judge: ({ depth }) =>
      depth > max
        ? finding('fail', `${depth} jobs wait in ${queue}, more than ${max}`, { depth, max })
        : finding('ok', `${depth} jobs wait in ${queue}`, { depth, max }),
  });
}
// docs:end queue-depth.ts

// docs:begin pause-intake.ts
/**
 * Stops new jobs from entering a queue (the producers skip a queue whose `queue:<name>:paused` is "1").
 * Expires: the engine resumes the intake by itself after `for`, so a forgotten pause cannot outlive the
 * incident.
 */
export function pauseIntake(redis: Redis, options: { queue: string; for?: string }) {
  const { queue } = options;
  const key = `queue:${queue}:paused`;
  const target = resourceRef('redis', 'queue', queue);
  return defineAction({
    kind: 'queue.pause-intake',
    target,
    risk: 'medium', // producers get "try later" answers while it lasts; nothing is lost
    destructive: false,
    expiresAfter: options.for ?? '30m',
    budget: { max: 2, per: '1h' }, // pausing again and again is a problem of its own: a person looks then
    description: `pause the intake of queue ${queue}`,
    // plan reads, never writes, and says exactly what apply will change.
    async plan() {
      const paused = (await redis.get(key)) === '1';
      return {
        summary: `pause the intake of queue ${queue}`,
        changes: paused ? [] : [{ target, field: key, before: null, after: '1' }],
        params: { key },
      };
    },
    // apply uses the approved plan's params, not fresh reads: what was approved is what happens.
    async apply(_ctx, plan) {
      await redis.set(plan.params.key, '1');
      return null;
    },
    async verify(_ctx, applied) {
      const value = await redis.get(applied.plan.params.key);
      return value === '1'
        ? finding('ok', `intake of ${queue} paused`, null)
        : finding('fail', `intake of ${queue} is not paused (${key} is ${value})`, null);
    },
    async revert(_ctx, applied) {
      await redis.del(applied.plan.params.key);
    },
  });
}
// docs:end pause-intake.ts
