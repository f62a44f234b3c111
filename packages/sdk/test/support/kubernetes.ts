import type { Plan, PlanDraft } from '../../src/core/plan';
import { createRedactor } from '../../src/core/redact';
import type { Action, StepContext } from '../../src/core/step';
import { sealRedacted } from '../../src/engine/seal';
import { connectKubernetes, type KubernetesCluster } from '../../src/kubernetes/cluster';
import type { ClusterOptionsInput } from '../../src/testing/kubernetes/controllers/controller';
import { type KubernetesSimulator, startKubernetesSimulator } from '../../src/testing/kubernetes/simulator';

/** The kubeconfig context the simulated cluster is reached by in tests. */
export const LAB_CONTEXT = 'lab';

/**
 * A simulated cluster for one test file (the project's Kubernetes API simulator, spoken to over HTTP by
 * the real client): actions may change `namespaces`; `existing` namespaces (by default the same) are
 * created. Readiness is immediate and the crash back-off short, so crash loops show within a test.
 */
export async function startSimulatedCluster(options: {
  namespaces: string[];
  existing?: string[];
  cluster?: ClusterOptionsInput;
}): Promise<{ sim: KubernetesSimulator; cluster: KubernetesCluster }> {
  const sim = await startKubernetesSimulator({
    contextName: LAB_CONTEXT,
    namespace: options.namespaces[0] ?? 'default',
    cluster: { readinessDelay: 0, crashBackoff: '100ms', ...options.cluster },
  });
  sim.apply(
    ...(options.existing ?? options.namespaces).map((name) => ({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name },
    })),
  );
  const cluster = connectKubernetes({
    kubeConfig: sim.kubeConfig(),
    expectedContext: LAB_CONTEXT,
    namespaces: options.namespaces,
  });
  return { sim, cluster };
}

/** A step context for calling a check or an action directly, as the engine would. */
export function stepContext(overrides: Partial<StepContext> = {}): StepContext {
  return {
    runId: 'run-1',
    runbookId: 'test',
    step: 'step',
    mode: 'execute',
    attempt: 1,
    actor: 'tester',
    signal: new AbortController().signal,
    log() {},
    ...overrides,
  };
}

const redactor = createRedactor();

/** Seals a plan exactly as the engine stores it and hands it to apply, verify and revert (redacted). */
export function sealAsEngine<P>(action: Action<P, unknown>, draft: PlanDraft<P>): Plan<P> {
  return sealRedacted(action, draft, redactor);
}
