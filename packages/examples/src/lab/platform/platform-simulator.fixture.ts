/**
 * Test-only: the platform's manifests on the SDK's Kubernetes simulator, reached through the real client, for
 * the co-located tests of the platform modules (logs, status, Grid double, workload watch). A pod that
 * crashes restarts within 50 ms, so a test sees a crash loop in well under a second.
 */
import { type Kubernetes, kubernetes } from '@aiwebtest/runbooks/kubernetes';
import { type KubernetesSimulator, startKubernetesSimulator } from '@aiwebtest/runbooks/testing';
import { PLATFORM_NAMESPACE, platformManifests } from './manifests';

export interface PlatformSimulator {
  sim: KubernetesSimulator;
  /** The SDK's runbooks on the simulator, allowed to change {@link PLATFORM_NAMESPACE} only. */
  k8s: Kubernetes;
  /** The client under {@link k8s}, for the raw `kubectl` calls a test makes. */
  cluster: Kubernetes['cluster'];
}

/** Starts an empty simulated cluster (apply the platform with {@link applyPlatform}). */
export async function startPlatformSimulator(): Promise<PlatformSimulator> {
  const sim = await startKubernetesSimulator({ cluster: { crashBackoff: '50ms', metricsInterval: '10s' } });
  const k8s = kubernetes({
    kubeConfig: sim.kubeConfig(),
    expectedContext: sim.contextName,
    namespaces: [PLATFORM_NAMESPACE],
  });
  return { sim, k8s, cluster: k8s.cluster };
}

/**
 * Applies the platform's manifests and waits until every workload is settled. Applying again resets every
 * replica count, so a test that scales may call it before each test for a fresh platform.
 */
export async function applyPlatform(sim: KubernetesSimulator): Promise<void> {
  sim.apply(...platformManifests());
  await sim.settle({ timeoutMs: 10_000 });
}
