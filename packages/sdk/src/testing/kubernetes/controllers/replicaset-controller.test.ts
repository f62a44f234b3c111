import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../object-store';
import { PODS, REPLICASETS } from '../resources';
import { isPodReady } from './pod-readiness';
import { isControlledBy } from './pod-template';
import { podsToDelete, type ReplicaSetStatus } from './replicaset-controller';
import { WorkloadLab } from './workload-fixture';

function createReplicaSet(lab: WorkloadLab, replicas: number, minReadySeconds?: number): KubeObject {
  return lab.store.create(REPLICASETS, {
    metadata: { name: 'cache', namespace: 'default' },
    spec: {
      replicas,
      ...(minReadySeconds ? { minReadySeconds } : {}),
      selector: { matchLabels: { app: 'cache' } },
      template: {
        metadata: { labels: { app: 'cache', tier: 'backend' }, annotations: { 'example.com/note': 'x' } },
        spec: { containers: [{ name: 'redis', image: 'redis:7' }] },
      },
    },
  });
}

const rs = (lab: WorkloadLab) => lab.store.get(REPLICASETS, 'default', 'cache');
const statusOf = (lab: WorkloadLab) => rs(lab).status as ReplicaSetStatus;
const names = (pods: KubeObject[]) => pods.map((p) => p.metadata.name).sort();

function setReplicas(lab: WorkloadLab, replicas: number): void {
  lab.edit(REPLICASETS, 'cache', (obj) => {
    (obj.spec as { replicas: number }).replicas = replicas;
  });
}

describe('replicaSetController', () => {
  it('creates spec.replicas pods named <rs>-<5 chars> from the template, owned by the ReplicaSet', () => {
    const lab = new WorkloadLab();
    const set = createReplicaSet(lab, 3);
    lab.replicaSets.sync(lab.now);

    const pods = lab.pods();
    expect(pods).toHaveLength(3);
    for (const pod of pods) {
      expect(pod.metadata.name).toMatch(/^cache-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
      expect(pod.metadata.generateName).toBe('cache-');
      expect(pod.metadata.labels).toEqual({ app: 'cache', tier: 'backend' });
      expect(pod.metadata.annotations).toEqual({ 'example.com/note': 'x' });
      expect(pod.spec).toEqual({ containers: [{ name: 'redis', image: 'redis:7' }] });
      expect(pod.status).toEqual({ phase: 'Pending' });
      expect(pod.metadata.ownerReferences).toEqual([
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: 'cache',
          uid: set.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
    }
    expect(lab.events('cache').sort()).toEqual(names(pods).map((n) => `SuccessfulCreate: Created pod: ${n}`));
    expect(statusOf(lab)).toEqual({ replicas: 3, fullyLabeledReplicas: 3, observedGeneration: 1 });
  });

  it('counts ready and available pods, waking up when minReadySeconds makes one available', () => {
    const lab = new WorkloadLab();
    createReplicaSet(lab, 2, 10);
    lab.replicaSets.sync(lab.now);
    lab.markReady(1);
    const wake = lab.replicaSets.sync(lab.now);
    expect(wake).toBe(10_000);
    expect(statusOf(lab)).toMatchObject({ replicas: 2, readyReplicas: 1 });
    expect(statusOf(lab).availableReplicas).toBeUndefined();

    lab.now += 10_000;
    expect(lab.replicaSets.sync(lab.now)).toBeUndefined();
    expect(statusOf(lab)).toMatchObject({ replicas: 2, readyReplicas: 1, availableReplicas: 1 });

    // Settled: another sync writes nothing.
    const before = lab.store.resourceVersion;
    lab.replicaSets.sync(lab.now);
    expect(lab.store.resourceVersion).toBe(before);
  });

  it('scales down the least valuable pods first: unscheduled, then not ready, then ready for less time', () => {
    const lab = new WorkloadLab();
    createReplicaSet(lab, 5);
    lab.replicaSets.sync(lab.now);
    const [a, b, c, d, e] = lab.pods() as [KubeObject, KubeObject, KubeObject, KubeObject, KubeObject];
    lab.setPodStatus(a, 'Running', true);
    lab.now += 5_000;
    lab.setPodStatus(b, 'Running', true); // ready for less time than a
    lab.setPodStatus(c, 'Running', false); // scheduled and running, not ready
    lab.setPodStatus(d, 'Pending', false); // scheduled, still pending
    // e stays unscheduled

    setReplicas(lab, 4);
    lab.replicaSets.sync(lab.now);
    expect(names(lab.pods())).toEqual(names([a, b, c, d]));
    setReplicas(lab, 3);
    lab.replicaSets.sync(lab.now);
    expect(names(lab.pods())).toEqual(names([a, b, c]));
    setReplicas(lab, 2);
    lab.replicaSets.sync(lab.now);
    expect(names(lab.pods())).toEqual(names([a, b]));
    setReplicas(lab, 1);
    lab.replicaSets.sync(lab.now);
    expect(names(lab.pods())).toEqual(names([a]));
    expect(lab.events('cache')).toContain(`SuccessfulDelete: Deleted pod: ${e.metadata.name}`);
    expect(statusOf(lab)).toMatchObject({ replicas: 1, readyReplicas: 1, availableReplicas: 1 });
  });

  it('deletes pods with a lower pod-deletion-cost first', () => {
    const lab = new WorkloadLab();
    createReplicaSet(lab, 3);
    lab.replicaSets.sync(lab.now);
    lab.markReady();
    const pods = lab.pods();
    const cheap = { ...(pods[2] as KubeObject) };
    cheap.metadata = {
      ...cheap.metadata,
      annotations: { 'controller.kubernetes.io/pod-deletion-cost': '-100' },
    };
    const expensive = { ...(pods[0] as KubeObject) };
    expensive.metadata = {
      ...expensive.metadata,
      annotations: { 'controller.kubernetes.io/pod-deletion-cost': '100' },
    };
    expect(podsToDelete([expensive, pods[1] as KubeObject, cheap], 1)).toEqual([cheap]);
  });

  it('replaces deleted pods and pods that failed, leaving the failed pod for inspection', () => {
    const lab = new WorkloadLab();
    createReplicaSet(lab, 2);
    lab.replicaSets.sync(lab.now);
    lab.markReady();
    const [first, second] = lab.pods() as [KubeObject, KubeObject];

    lab.store.delete(PODS, 'default', first.metadata.name);
    lab.setPodStatus(lab.store.get(PODS, 'default', second.metadata.name), 'Failed', false);
    lab.replicaSets.sync(lab.now);

    const pods = lab.pods();
    expect(pods).toHaveLength(3);
    expect(pods.map((p) => p.metadata.name)).toContain(second.metadata.name);
    expect(pods.map((p) => p.metadata.name)).not.toContain(first.metadata.name);
    expect(statusOf(lab).replicas).toBe(2);
  });

  it('lets go of a pod relabelled out of its selector and replaces it; adopts no orphans', () => {
    const lab = new WorkloadLab();
    const set = createReplicaSet(lab, 2);
    lab.store.create(PODS, {
      metadata: { name: 'stray', namespace: 'default', labels: { app: 'cache' } },
      spec: { containers: [{ name: 'redis', image: 'redis:7' }] },
    });
    lab.replicaSets.sync(lab.now);
    expect(lab.pods()).toHaveLength(3);
    expect(isControlledBy(lab.store.get(PODS, 'default', 'stray'), set)).toBe(false);

    const quarantined = lab.pods().find((p) => p.metadata.name !== 'stray') as KubeObject;
    lab.store.update(PODS, {
      ...quarantined,
      metadata: { ...quarantined.metadata, labels: { app: 'debug' } },
    });
    lab.replicaSets.sync(lab.now);
    const released = lab.store.get(PODS, 'default', quarantined.metadata.name);
    expect(released.metadata.ownerReferences).toBeUndefined();
    expect(lab.pods().filter((p) => isControlledBy(p, set))).toHaveLength(2);
    expect(lab.pods()).toHaveLength(4);
  });

  it('creates no pods from a template its selector does not match (they would be released at once)', () => {
    const lab = new WorkloadLab();
    lab.store.create(REPLICASETS, {
      metadata: { name: 'cache', namespace: 'default' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'other' } },
        template: {
          metadata: { labels: { app: 'cache' } },
          spec: { containers: [{ name: 'c', image: 'c:1' }] },
        },
      },
    });
    lab.replicaSets.sync(lab.now);
    lab.replicaSets.sync(lab.now);
    expect(lab.pods()).toEqual([]);
    expect(statusOf(lab)).toEqual({ replicas: 0, observedGeneration: 1 });
  });

  it('marks pods ready through the test kubelet only as asked', () => {
    const lab = new WorkloadLab();
    createReplicaSet(lab, 3);
    lab.replicaSets.sync(lab.now);
    lab.markReady(2);
    expect(lab.pods().filter(isPodReady)).toHaveLength(2);
    lab.replicaSets.sync(lab.now);
    expect(statusOf(lab)).toMatchObject({ replicas: 3, readyReplicas: 2, availableReplicas: 2 });
  });
});
