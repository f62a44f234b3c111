import type { KubernetesCluster } from '@aiwebtest/runbooks/kubernetes';
import { type KubernetesSimulator, PODS } from '@aiwebtest/runbooks/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentClassName, agentLogLines, appendAgentLogs } from './agent-logs';
import { applyPlatform, startPlatformSimulator } from './platform-simulator.fixture';

let sim: KubernetesSimulator;
let cluster: KubernetesCluster;

beforeAll(async () => {
  ({ sim, cluster } = await startPlatformSimulator());
  await applyPlatform(sim);
});
afterAll(async () => {
  await sim?.close();
});

/** `kubectl logs <pod>` through the real client. */
async function logsOf(app: string): Promise<string[]> {
  const pods = sim.store.list(PODS, 'aiwebtest').items.filter((p) => p.metadata.labels?.app === app);
  const texts = await Promise.all(
    pods.map((p) =>
      cluster.call('logs', (o) =>
        cluster.core.readNamespacedPodLog({ name: p.metadata.name, namespace: 'aiwebtest' }, o),
      ),
    ),
  );
  return texts;
}

describe('agent logs', () => {
  it('names agents as the manual’s log lines do', () => {
    expect(agentClassName('requirements-agent')).toBe('RequirementsAgent');
    expect(agentLogLines('requirements-agent', 'failing')).toContain(
      'ERROR RequirementsAgent is not responding',
    );
    expect(agentLogLines('generation-agent', 'healthy').some((l) => l.startsWith('ERROR'))).toBe(false);
    expect(
      agentLogLines('generation-agent', 'degraded').filter((l) => l.startsWith('ERROR')),
    ).not.toHaveLength(0);
    expect(agentLogLines('execution-agent', 'healthy', 1)).not.toEqual(
      agentLogLines('execution-agent', 'healthy', 2),
    );
  });

  it('appends healthy lines to ready pods and the forced mode’s lines where told, readable with kubectl logs', async () => {
    const written = appendAgentLogs(sim, {
      modes: { 'generation-agent': 'degraded', 'requirements-agent': 'failing' },
    });
    expect(written['analysis-agent']).toBe(4); // 2 lines × 2 pods
    const analysis = await logsOf('analysis-agent');
    for (const log of analysis) {
      expect(log).toMatch(/INFO AnalysisAgent processed request/);
      expect(log).not.toMatch(/ERROR/);
    }
    for (const log of await logsOf('requirements-agent'))
      expect(log).toMatch(/ERROR RequirementsAgent is not responding/);
    for (const log of await logsOf('generation-agent')) {
      expect(log.split('\n').filter((l) => l.includes('ERROR'))).not.toHaveLength(0);
    }
  });

  it('writes failing lines from running pods that are not ready, and nothing from containers that are not running', async () => {
    const fault = sim.faults.inject({
      kind: 'readinessFailure',
      namespace: 'aiwebtest',
      selector: 'app=observation-agent',
    });
    await expect
      .poll(
        () =>
          sim.store
            .list(PODS, 'aiwebtest')
            .items.filter((p) => p.metadata.labels?.app === 'observation-agent')
            .every((p) =>
              (p.status as { conditions?: { type: string; status: string }[] }).conditions?.some(
                (c) => c.type === 'Ready' && c.status === 'False',
              ),
            ),
        { timeout: 5000 },
      )
      .toBe(true);
    appendAgentLogs(sim, { tick: 3 });
    for (const log of await logsOf('observation-agent'))
      expect(log).toMatch(/ERROR ObservationAgent is not responding/);
    fault.clear();

    const pull = sim.faults.inject({
      kind: 'imagePullError',
      namespace: 'aiwebtest',
      selector: 'app=evolution-agent',
    });
    await cluster.call('delete pods', (o) =>
      cluster.core.deleteCollectionNamespacedPod(
        { namespace: 'aiwebtest', labelSelector: 'app=evolution-agent' },
        o,
      ),
    );
    // The image pull back-off keeps the cluster busy, so wait for the waiting containers rather than a settle.
    const pulling = () =>
      sim.store
        .list(PODS, 'aiwebtest')
        .items.filter((p) => p.metadata.labels?.app === 'evolution-agent' && !p.metadata.deletionTimestamp)
        .filter((p) =>
          (
            p.status as { containerStatuses?: { state?: { waiting?: { reason?: string } } }[] }
          ).containerStatuses?.some((c) => /ImagePull|ErrImagePull/.test(c.state?.waiting?.reason ?? '')),
        ).length;
    await expect.poll(pulling, { timeout: 5000 }).toBe(2);
    expect(appendAgentLogs(sim)['evolution-agent']).toBe(0);
    pull.clear();
  });
});
