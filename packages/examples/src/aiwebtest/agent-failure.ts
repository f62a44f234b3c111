import { defineRunbook, onAlert } from '@aiwebtest/runbooks';
import { z } from 'zod';
import { defaultLabDir, openLab } from '../lab/lab';
import { AgentName, LAB_NAMESPACE } from '../lab/state';
import { podLogs, podStatus, rolloutRestart } from '../lab/steps';

/** Input of `agent-failure`: which agent is down, and where. */
export const AgentFailureInput = z.object({
  /** The agent's deployment name. */
  agent: AgentName,
  /** The agent's namespace. @default "aiwebtest" */
  namespace: z.string().min(1).default(LAB_NAMESPACE),
});
/** Input of `agent-failure`. */
export type AgentFailureInput = z.input<typeof AgentFailureInput>;

/** Options of {@link createAgentFailureRunbook}. */
export interface AgentFailureOptions {
  /** The lab directory. @default `$AIWEBTEST_LAB_DIR`, else `.runbook/lab`, read when a run starts */
  labDir?: string;
}

/**
 * Runbook 1 of the operations manual, "Agent failure recovery": check the agent's pods and logs; if its pods
 * are not ready, rollout-restart the deployment and verify the pods come back. When they do not (the fault
 * survives a restart, or the budget of 3 restarts an hour is spent), page on-call.
 */
export function createAgentFailureRunbook(options: AgentFailureOptions = {}) {
  return defineRunbook({
    id: 'agent-failure',
    title: 'Agent failure recovery',
    description:
      'Checks an AI-Web-Test agent’s pods and logs; restarts its deployment when the pods are not ready, verifies they recover, and pages on-call when they do not.',
    severity: 'P1',
    input: AgentFailureInput,
    triggers: [onAlert({ alertname: 'AgentDown' })],
    tags: ['component: agents', 'runbook: 1'],
    async run({ input, step }) {
      const lab = openLab(options.labDir ?? defaultLabDir());
      const ref = { namespace: input.namespace, agent: input.agent };

      const pods = await step.check('pods', podStatus(lab, ref));
      await step.check('logs', podLogs(lab, { ...ref, tail: 100 }));
      if (pods.status === 'ok')
        return step.done(`${input.agent} is healthy: ${pods.summary}; no restart needed`);

      const restart = await step.act('restart', rolloutRestart(lab, ref), {
        retry: { maxAttempts: 3 },
        onGiveUp: step.escalate('page on-call: agent still down after restart'),
      });
      switch (restart.status) {
        case 'skipped':
          return step.done(
            `${input.agent} is down (${pods.summary}); plan or run this runbook to restart it`,
          );
        case 'planned':
          return step.done(`would ${restart.plan.summary}`);
        case 'noop':
          return step.done(`${input.agent} recovered before the restart (${restart.plan.summary})`);
        case 'applied':
          return step.done(
            `restarted deployment/${input.agent} (restartedAt ${restart.plan.params?.restartedAt}); ${restart.verification?.summary ?? 'applied'}`,
          );
      }
    },
  });
}

/** `agent-failure` on the lab at `$AIWEBTEST_LAB_DIR` (default `.runbook/lab`). */
export const agentFailure = createAgentFailureRunbook();
