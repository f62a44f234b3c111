// The runbook AUTHORING.md builds ("A runbook"), over the primitives of queue-primitives.ts and the SDK's
// Kubernetes actions. Between the docs markers it appears there exactly, except the import lines.
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { defineRunbook, onAlert } from '../../src/core/runbook';
import type { Kubernetes } from '../../src/kubernetes';
import { pauseIntake, queueDepth } from './queue-primitives';

// docs:begin worker-backlog.ts
/** What the runbook talks to; a test passes the simulator's cluster and a test Redis. */
export interface Shop {
  k8s: Kubernetes;
  redis: Redis;
}

/**
 * Jobs pile up: look at the queue and the workers, scale the workers out, and when that is not enough,
 * pause the intake (approved by a second person). `connect` is called when a run starts, so loading the
 * module needs no cluster.
 */
export function workerBacklog(connect: () => Shop) {
  return defineRunbook({
    id: 'worker-backlog',
    title: 'Worker backlog',
    severity: 'P2',
    input: z.object({
      namespace: z.string().default('shop'),
      worker: z.string().default('worker'),
      queue: z.string().default('jobs'),
      /** Jobs waiting before it is a backlog; when absent, the code's threshold (replays see it change). */
      maxDepth: z.number().int().positive().optional(),
      maxReplicas: z.number().int().min(1).max(50).default(8),
    }),
    triggers: [onAlert({ alertname: 'QueueBacklog' })],
    tags: ['component: queue'],
    async run({ input, step }) {
      const { k8s, redis } = connect();
      const { namespace, worker, queue } = input;
      const max = input.maxDepth ?? 1000;

      const depth = await step.check('queue-depth', queueDepth(redis, { queue, max }));
      if (depth.status === 'ok') return step.done(depth.summary);

      const workers = await step.check('workers', k8s.deploymentStatus({ namespace, name: worker }));
      // Scaling out a failing or half-rolled-out Deployment makes more of the problem: a person looks first.
      if (workers.status !== 'ok') return step.escalate(`workers are not healthy: ${workers.summary}`);

      const replicas = Math.min(workers.data.replicas * 2, input.maxReplicas);
      if (replicas > workers.data.replicas) {
        const scaled = await step.act('scale-out', k8s.scale({ namespace, name: worker, replicas }), {
          onGiveUp: step.escalate(`could not scale ${worker} to ${replicas}: page the shop team`),
        });
        // diagnose mode skips actions and plan mode only plans them: report and stop there.
        if (scaled.status !== 'applied') return step.done(`${depth.summary}; scale-out ${scaled.status}`);
        return step.done(`${depth.summary}; ${worker} scaled to ${replicas}`);
      }

      // At the ceiling: stop taking new jobs. A second person agrees first; the pause ends by itself.
      await step.approve('agree-to-pause', { summary: `pause the intake of ${queue} for 30 minutes` });
      await step.act('pause-intake', pauseIntake(redis, { queue, for: '30m' }));
      await step.notify('tell-shop', {
        channel: 'slack:#shop',
        message: `intake of ${queue} paused for 30m`,
      });
      return step.done(`${depth.summary}; ${worker} at ${replicas} replicas; intake paused for 30m`);
    },
  });
}
// docs:end worker-backlog.ts
