import type { ScaffoldNames } from './names';

/**
 * The source of `<id>.ts`: a runbook that checks a Deployment and its pods, restarts it when its pods fail,
 * and judges the rollout. Erasable TypeScript only (no enums, namespaces or parameter properties), so
 * `runbook` can load it with Node's type stripping, without a build.
 */
export function runbookModuleSource(names: ScaffoldNames): string {
  const { id, title, factory, alertname } = names;
  // Laid out as biome and prettier would, so that a formatter run leaves the file as it is.
  const params = 'connect: () => Kubernetes = connectFromEnv';
  const oneLine = `export function ${factory}(${params})`;
  const signature = oneLine.length + 2 <= 110 ? oneLine : `export function ${factory}(\n  ${params},\n)`;
  return `// The "${id}" runbook, scaffolded by \`runbook init\`: yours to change.
//
// A runbook reads the world with checks and changes it with actions; the engine makes that safe (durable
// steps, approvals, a lock and a restart budget per Deployment, verification, an audit log). The authoring
// guide, AUTHORING.md in @aiwebtest/runbooks, explains each part. The test next to this file runs it
// against a simulated cluster.
//
// Keep to erasable TypeScript (no enums, namespaces or parameter properties): \`runbook\` loads this file
// with Node's type stripping, without a build step.

import { defineRunbook, onAlert } from '@aiwebtest/runbooks';
import { type Kubernetes, kubernetes } from '@aiwebtest/runbooks/kubernetes';
import { z } from 'zod';

/** Reads a required environment variable, with an error that says how to set it. */
function requiredEnv(name: string, meaning: string): string {
  const value = process.env[name]?.trim();
  if (!value) throw new Error(\`\${name} is not set: set it to \${meaning}.\`);
  return value;
}

/**
 * Connects to the cluster of your kubeconfig (\`KUBECONFIG\`, else ~/.kube/config, else the pod's service
 * account). The guard rails need two more facts, taken from the environment so that one file serves
 * staging and production:
 * - \`RUNBOOK_KUBE_CONTEXT\`: the kubeconfig context this runbook is meant for. Every check and action
 *   refuses to run when the kubeconfig's current context is another one: no acting on the wrong cluster.
 * - \`RUNBOOK_KUBE_NAMESPACES\`: the namespaces its actions may change, comma-separated.
 */
export function connectFromEnv(): Kubernetes {
  return kubernetes({
    expectedContext: requiredEnv(
      'RUNBOOK_KUBE_CONTEXT',
      'the kubeconfig context this runbook is meant for (\`kubectl config get-contexts\` lists them)',
    ),
    namespaces: requiredEnv('RUNBOOK_KUBE_NAMESPACES', 'the namespaces it may change, comma-separated')
      .split(',')
      .map((namespace) => namespace.trim())
      .filter((namespace) => namespace !== ''),
  });
}

// Input is checked before anything runs, so a typo is refused at once instead of failing mid-incident.
const KubernetesName = z
  .string()
  .regex(
    /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
    'expected a Kubernetes name: lowercase letters, digits, "-" and "."',
  );

/**
 * ${title}.
 *
 * When the pods of a Deployment fail, restart it and check that the rollout brings it back. \`connect\` is
 * a parameter so that a test can point the runbook at a simulated cluster.
 */
${signature} {
  return defineRunbook({
    // How people, alert routes and the audit log name it: keep it stable.
    id: '${id}',
    title: '${title}',
    severity: 'P2',
    input: z.object({
      namespace: KubernetesName.describe('Namespace of the Deployment'),
      deployment: KubernetesName.describe('The Deployment; its pods carry the label app=<deployment>'),
    }),
    // \`runbook serve\` starts it when Alertmanager posts this alert (see the service config's alert routes).
    triggers: [onAlert({ alertname: '${alertname}' })],
    async run({ input, step, mode }) {
      // Connect here, not when the module loads: listing or describing the runbook needs no cluster.
      const k8s = connect();
      const { namespace, deployment } = input;

      // Step names ('deployment', 'pods', …) are the keys the results are stored under: a resumed run
      // replays finished steps instead of repeating them. Keep them unique and stable.
      const before = await step.check('deployment', k8s.deploymentStatus({ namespace, name: deployment }));
      if (!before.data.found) return step.escalate(\`deployment \${deployment} not found in \${namespace}\`);
      const pods = await step.check('pods', k8s.podStatus({ namespace, selector: \`app=\${deployment}\` }));
      // \`warn\` (a rollout in progress, a container that restarted earlier) is not worth a restart.
      if (before.status !== 'fail' && pods.status !== 'fail') {
        return step.done(\`\${deployment} is healthy: \${pods.summary}\`);
      }

      // An action says what it will change before it changes it. The engine applies it only in execute
      // mode, after any approval the policy asks for, and verifies it: a restart waits for the new pods.
      const restart = await step.act('restart', k8s.rolloutRestart({ namespace, name: deployment }), {
        // Retries API errors that may pass (409, 429, 5xx, no answer); a failed verification is not.
        retry: { maxAttempts: 3, minDelay: '2s' },
        // When the restart fails (the new pods crash too, the restart budget is spent), hand over to a human.
        onGiveUp: step.escalate(\`restarting \${deployment} did not bring it back: page on-call\`),
      });
      // In diagnose mode the restart is skipped, in plan mode it is only planned.
      if (restart.status !== 'applied') {
        return step.done(\`\${deployment} needs a restart; \${mode} mode changed nothing\`);
      }

      const after = await step.check('rollout', k8s.deploymentStatus({ namespace, name: deployment }));
      return after.status === 'ok'
        ? step.done(\`restarted \${deployment}: \${after.summary}\`)
        : step.escalate(\`restarted \${deployment}, but \${after.summary}\`);
    },
  });
}

// What \`runbook … --runbooks <this file>\` loads: the runbook bound to the cluster of your kubeconfig.
export default ${factory}();
`;
}
