import type { KubernetesCluster } from '@aiwebtest/runbooks/kubernetes';
import type { KubernetesSimulator } from '@aiwebtest/runbooks/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENTS } from './manifests';
import { applyPlatform, startPlatformSimulator } from './platform-simulator.fixture';
import { agentHealth, workloadStatus } from './platform-status';

let sim: KubernetesSimulator;
let cluster: KubernetesCluster;

beforeAll(async () => {
  ({ sim, cluster } = await startPlatformSimulator());
  await applyPlatform(sim);
});
afterAll(async () => {
  await sim?.close();
});

const healthOf = (agent: string) => agentHealth(sim.store, 'aiwebtest').find((h) => h.agent === agent);

describe('platform status', () => {
  it('reports every agent healthy with 2/2 once the platform is up', () => {
    const health = agentHealth(sim.store, 'aiwebtest');
    expect(health.map((h) => h.agent)).toEqual([...AGENTS]);
    for (const h of health) expect(h).toMatchObject({ desired: 2, ready: 2, healthy: true });
  });

  it('flips an agent unhealthy under a crash loop, and back after the fault is cleared and the pods restarted', async () => {
    const fault = sim.faults.inject({
      kind: 'crashLoop',
      namespace: 'aiwebtest',
      selector: 'app=requirements-agent',
      message: 'RequirementsAgent is not responding',
    });
    await expect.poll(() => healthOf('requirements-agent')?.healthy, { timeout: 5000 }).toBe(false);
    await expect
      .poll(() => workloadStatus(sim.store, 'aiwebtest', 'requirements-agent')?.crashLooping.length, {
        timeout: 5000,
      })
      .toBe(2);
    expect(healthOf('requirements-agent')).toMatchObject({ desired: 2, ready: 0, healthy: false });
    // The other agents are not affected.
    expect(healthOf('generation-agent')?.healthy).toBe(true);

    fault.clear();
    // `kubectl delete pod -l app=requirements-agent`: the ReplicaSet replaces them with fresh pods.
    await cluster.call('delete pods', (o) =>
      cluster.core.deleteCollectionNamespacedPod(
        { namespace: 'aiwebtest', labelSelector: 'app=requirements-agent' },
        o,
      ),
    );
    await sim.settle({ timeoutMs: 10_000 });
    await expect
      .poll(() => healthOf('requirements-agent'), { timeout: 5000 })
      .toMatchObject({
        desired: 2,
        ready: 2,
        healthy: true,
      });
  });

  it('counts a scaled-down agent at zero as unhealthy, and knows StatefulSets and missing workloads', async () => {
    await cluster.call(
      'scale',
      (o) =>
        cluster.apps.patchNamespacedDeploymentScale(
          { name: 'evolution-agent', namespace: 'aiwebtest', body: { spec: { replicas: 0 } } },
          o,
        ),
      { contentType: 'application/merge-patch+json' },
    );
    await sim.settle({ timeoutMs: 10_000 });
    expect(healthOf('evolution-agent')).toEqual({
      agent: 'evolution-agent',
      desired: 0,
      ready: 0,
      healthy: false,
    });
    expect(workloadStatus(sim.store, 'aiwebtest', 'redis')).toEqual({
      name: 'redis',
      kind: 'StatefulSet',
      desired: 1,
      ready: 1,
      pods: 1,
      crashLooping: [],
    });
    expect(workloadStatus(sim.store, 'aiwebtest', 'no-such-thing')).toBeUndefined();
  });
});
