import { type Kubernetes, RESTARTED_AT_ANNOTATION } from '@aiwebtest/runbooks/kubernetes';
import { DEPLOYMENTS, type KubernetesSimulator, PODS } from '@aiwebtest/runbooks/testing';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { applyAction } from '../../../test/support/apply-action';
import { applyPlatform, startPlatformSimulator } from './platform-simulator.fixture';
import { type WorkloadEvent, type WorkloadWatch, watchWorkloads } from './workload-watch';

let sim: KubernetesSimulator;
let k8s: Kubernetes;
let events: WorkloadEvent[];
let watch: WorkloadWatch;

beforeAll(async () => {
  ({ sim, k8s } = await startPlatformSimulator());
});
afterAll(async () => {
  await sim?.close();
});
beforeEach(async () => {
  await applyPlatform(sim);
  events = [];
  watch = watchWorkloads(sim.store, 'aiwebtest', (e) => {
    events.push(e);
  });
});
afterEach(() => {
  watch?.close();
});

/** Lets queued deliveries run. */
const drained = () => new Promise((resolve) => setTimeout(resolve, 20));

describe('watchWorkloads', () => {
  it('reports nothing for what already exists', async () => {
    await drained();
    expect(events).toEqual([]);
  });

  it('reports a set env on the backend once, with the env before and after', async () => {
    await applyAction(
      k8s.setEnv({
        namespace: 'aiwebtest',
        name: 'backend',
        env: { OPENROUTER_FALLBACK: 'true', MAX_PARALLEL_TESTS: null },
      }),
    );
    await sim.settle({ timeoutMs: 10_000 });
    await drained();
    const changes = events.filter((e) => e.type === 'envChanged');
    expect(changes).toHaveLength(1);
    const change = changes[0] as Extract<WorkloadEvent, { type: 'envChanged' }>;
    expect(change).toMatchObject({ kind: 'Deployment', name: 'backend', container: 'backend' });
    expect(change.before).toMatchObject({ OPENROUTER_FALLBACK: 'false', MAX_PARALLEL_TESTS: '2' });
    expect(change.after.OPENROUTER_FALLBACK).toBe('true');
    expect(change.after).not.toHaveProperty('MAX_PARALLEL_TESTS');
    expect(events.some((e) => e.type === 'restarted')).toBe(false);
  });

  it('reports a rollout restart once, after the new pods are ready', async () => {
    await applyAction(k8s.rolloutRestart({ namespace: 'aiwebtest', name: 'pgbouncer' }));
    await sim.settle({ timeoutMs: 10_000 });
    await drained();
    const restarts = events.filter((e) => e.type === 'restarted');
    expect(restarts).toHaveLength(1);
    // The annotation the action wrote is the one reported.
    const stamped = sim.store.get(DEPLOYMENTS, 'aiwebtest', 'pgbouncer') as unknown as {
      spec: { template: { metadata: { annotations: Record<string, string> } } };
    };
    expect(restarts[0]).toEqual({
      type: 'restarted',
      kind: 'Deployment',
      name: 'pgbouncer',
      restartedAt: stamped.spec.template.metadata.annotations[RESTARTED_AT_ANNOTATION],
    });
    // By the time it is reported the old pod is gone and the new one is ready.
    const index = events.indexOf(restarts[0] as WorkloadEvent);
    expect(events.slice(0, index).some((e) => e.type === 'replicasChanged' && e.name === 'pgbouncer')).toBe(
      true,
    );
    expect(events.some((e) => e.type === 'envChanged')).toBe(false);
  });

  it('reports a StatefulSet restart too', async () => {
    await applyAction(k8s.rolloutRestart({ namespace: 'aiwebtest', name: 'postgres', kind: 'StatefulSet' }));
    await sim.settle({ timeoutMs: 10_000 });
    await drained();
    expect(events.filter((e) => e.type === 'restarted')).toEqual([
      { type: 'restarted', kind: 'StatefulSet', name: 'postgres', restartedAt: expect.any(String) },
    ]);
  });

  it('reports scaling: desired first, then ready as the pods come up', async () => {
    await applyAction(k8s.scale({ namespace: 'aiwebtest', name: 'selenium-node-chrome', replicas: 4 }));
    await sim.settle({ timeoutMs: 10_000 });
    await drained();
    const scaled = events.filter((e) => e.type === 'replicasChanged' && e.name === 'selenium-node-chrome');
    expect(scaled[0]).toMatchObject({ desired: 4, ready: 2, before: { desired: 2, ready: 2 } });
    expect(scaled.at(-1)).toMatchObject({ desired: 4, ready: 4 });
  });

  it('stops reporting once closed, and survives a listener that throws', async () => {
    const errors: unknown[] = [];
    const throwing = watchWorkloads(
      sim.store,
      'aiwebtest',
      () => {
        throw new Error('listener broke');
      },
      { onError: (e) => errors.push(e) },
    );
    watch.close();
    await applyAction(k8s.scale({ namespace: 'aiwebtest', name: 'ollama', replicas: 2 }));
    await sim.settle({ timeoutMs: 10_000 });
    await drained();
    throwing.close();
    expect(events).toEqual([]);
    expect(errors.length).toBeGreaterThan(0);
    expect(
      sim.store.list(PODS, 'aiwebtest').items.filter((p) => p.metadata.labels?.app === 'ollama'),
    ).toHaveLength(2);
  });
});
