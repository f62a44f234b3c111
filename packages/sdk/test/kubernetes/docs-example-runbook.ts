// The end-to-end runbook of KUBERNETES.md ("End to end: the agent-failure runbook"), which shows it as
// `agent-failure.ts`. Everything between the docs markers appears there exactly, except the import lines:
// the docs import from the package (`@aiwebtest/runbooks`, `@aiwebtest/runbooks/kubernetes`), this file
// from the sources. docs-examples.test.ts runs it against the simulator and fails when the two drift apart.

// docs:begin agent-failure.ts
import { z } from 'zod';
import { defineRunbook, onAlert } from '../../src';
import type { Kubernetes } from '../../src/kubernetes';

/**
 * The manual's runbook 1, agent failure: look at the pods, read why they die, restart the Deployment,
 * judge the rollout. `k8s` is a parameter so that a test can point the runbook at a simulated cluster.
 */
export function agentFailure(k8s: Kubernetes) {
  return defineRunbook({
    id: 'agent-failure',
    title: 'Agent failure recovery',
    severity: 'P1',
    input: z.object({
      namespace: z.string().default('aiwebtest'),
      /** The Deployment; its pods carry the label `app=<agent>`. */
      agent: z.string().min(1),
    }),
    triggers: [onAlert({ alertname: 'AgentDown' })],
    async run({ input, step }) {
      const { namespace, agent } = input;
      const selector = `app=${agent}`;

      const pods = await step.check('pods', k8s.podStatus({ namespace, selector }));
      if (pods.status === 'ok') return step.done(`agent healthy: ${pods.summary}`);

      // Evidence for whoever reads the run: the last words of the containers that died.
      await step.check(
        'logs',
        k8s.podLogs({ namespace, selector, previous: true, pattern: 'error|fatal|panic', tailLines: 200 }),
      );

      const restart = await step.act(
        'restart',
        k8s.rolloutRestart({ namespace, name: agent, timeout: '5m' }),
        {
          // Retries plan and apply after a retriable API error (409, 429, 5xx, no answer). A failed
          // verification (the new pods crash too) is not retried: it goes straight to onGiveUp.
          retry: { maxAttempts: 3, minDelay: '2s' },
          onGiveUp: step.escalate(`restart of ${agent} did not bring it back: page on-call`, {
            severity: 'P1',
          }),
        },
      );
      // In diagnose mode the restart is skipped, in plan mode only planned.
      if (restart.status !== 'applied') return step.done(`restart ${restart.status}; nothing changed`);

      const rollout = await step.check('rollout', k8s.deploymentStatus({ namespace, name: agent }));
      return rollout.status === 'ok'
        ? step.done(`restarted: ${rollout.summary}`)
        : step.escalate(`restarted, but ${rollout.summary}`);
    },
  });
}
// docs:end agent-failure.ts
