import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../object-store';
import { CONTROLLERREVISIONS, PODS, STATEFULSETS } from '../resources';
import { isPodReady } from './pod-readiness';
import { isControlledBy, type PodTemplateSpec } from './pod-template';
import {
  POD_INDEX_LABEL,
  POD_NAME_LABEL,
  REVISION_HASH_LABEL,
  type StatefulSetSpec,
  type StatefulSetStatus,
} from './statefulset-controller';
import { WorkloadLab } from './workload-fixture';

function createStatefulSet(lab: WorkloadLab, spec: Partial<StatefulSetSpec> = {}): KubeObject {
  return lab.store.create(STATEFULSETS, {
    metadata: { name: 'db', namespace: 'default' },
    spec: {
      replicas: 3,
      serviceName: 'db-headless',
      selector: { matchLabels: { app: 'db' } },
      template: {
        metadata: { labels: { app: 'db' } },
        spec: { containers: [{ name: 'postgres', image: 'postgres:16' }] },
      },
      volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'] } }],
      ...spec,
    },
  });
}

const sts = (lab: WorkloadLab) => lab.store.get(STATEFULSETS, 'default', 'db');
const statusOf = (lab: WorkloadLab) => sts(lab).status as StatefulSetStatus;
const podNames = (lab: WorkloadLab) =>
  lab
    .pods({ app: 'db' })
    .map((p) => p.metadata.name)
    .sort();
const revisionOfPod = (lab: WorkloadLab, name: string) =>
  lab.store.get(PODS, 'default', name).metadata.labels?.[REVISION_HASH_LABEL];

function revisions(lab: WorkloadLab): KubeObject[] {
  const set = sts(lab);
  return lab.store
    .list(CONTROLLERREVISIONS, 'default')
    .items.filter((r) => isControlledBy(r, set))
    .sort((a, b) => Number(a.revision) - Number(b.revision));
}

/** `kubectl rollout restart` on a StatefulSet: a new template annotation. */
function restart(lab: WorkloadLab, at: string): void {
  lab.edit(STATEFULSETS, 'db', (obj) => {
    const template = (obj.spec as StatefulSetSpec).template as PodTemplateSpec;
    template.metadata = { ...template.metadata, annotations: { 'kubectl.kubernetes.io/restartedAt': at } };
  });
}

/** Records the order of pod deletions and creations while the lab settles. */
function recordChanges(lab: WorkloadLab): string[] {
  const changes: string[] = [];
  lab.store.onChange((type, event) => {
    if (type !== PODS || event.type === 'MODIFIED') return;
    changes.push(`${event.type === 'ADDED' ? '+' : '-'}${event.object.metadata.name}`);
  });
  return changes;
}

describe('statefulSetController', () => {
  it('creates pods in ordinal order, each only once the one before is Running and Ready', () => {
    const lab = new WorkloadLab();
    const set = createStatefulSet(lab);
    lab.statefulSets.sync(lab.now);
    expect(podNames(lab)).toEqual(['db-0']);
    lab.statefulSets.sync(lab.now);
    expect(podNames(lab)).toEqual(['db-0']);

    lab.markReady();
    lab.statefulSets.sync(lab.now);
    expect(podNames(lab)).toEqual(['db-0', 'db-1']);
    lab.markReady();
    lab.statefulSets.sync(lab.now);
    expect(podNames(lab)).toEqual(['db-0', 'db-1', 'db-2']);
    lab.markReady();
    lab.statefulSets.sync(lab.now);

    const [revision, ...more] = revisions(lab);
    expect(more).toEqual([]);
    expect(revision?.metadata.name).toMatch(/^db-[bcdfghjklmnpqrstvwxz2456789]{10}$/);
    expect(revision?.revision).toBe(1);
    // The strategic-merge patch that restores the template, as kubectl rollout undo applies it.
    expect(revision?.data).toEqual({
      spec: { template: { ...(set.spec as StatefulSetSpec).template, $patch: 'replace' } },
    });

    const pod = lab.store.get(PODS, 'default', 'db-1');
    expect(pod.metadata.labels).toEqual({
      app: 'db',
      [POD_NAME_LABEL]: 'db-1',
      [POD_INDEX_LABEL]: '1',
      [REVISION_HASH_LABEL]: revision?.metadata.name,
    });
    expect(pod.spec).toMatchObject({
      hostname: 'db-1',
      subdomain: 'db-headless',
      volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data-db-1' } }],
    });
    expect(isControlledBy(pod, set)).toBe(true);
    expect(statusOf(lab)).toEqual({
      observedGeneration: sts(lab).metadata.generation,
      replicas: 3,
      readyReplicas: 3,
      currentReplicas: 3,
      updatedReplicas: 3,
      availableReplicas: 3,
      currentRevision: revision?.metadata.name,
      updateRevision: revision?.metadata.name,
      collisionCount: 0,
    });
    expect(lab.events('db')).toContain('SuccessfulCreate: create Pod db-0 in StatefulSet db successful');
    // Defaults the API server would have set.
    expect((sts(lab).spec as StatefulSetSpec).updateStrategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { partition: 0 },
    });
    expect((sts(lab).spec as StatefulSetSpec).podManagementPolicy).toBe('OrderedReady');

    const before = lab.store.resourceVersion;
    lab.statefulSets.sync(lab.now);
    expect(lab.store.resourceVersion).toBe(before);
  });

  it('creates all pods at once with the Parallel policy', () => {
    const lab = new WorkloadLab();
    createStatefulSet(lab, { podManagementPolicy: 'Parallel' });
    lab.statefulSets.sync(lab.now);
    expect(podNames(lab)).toEqual(['db-0', 'db-1', 'db-2']);
  });

  it('scales down from the highest ordinal, one pod at a time', () => {
    const lab = new WorkloadLab();
    createStatefulSet(lab, { replicas: 4 });
    lab.settle();
    const changes = recordChanges(lab);
    lab.edit(STATEFULSETS, 'db', (obj) => {
      (obj.spec as StatefulSetSpec).replicas = 1;
    });
    lab.statefulSets.sync(lab.now);
    expect(podNames(lab)).toEqual(['db-0', 'db-1', 'db-2']);
    lab.settle();
    expect(changes).toEqual(['-db-3', '-db-2', '-db-1']);
    expect(statusOf(lab)).toMatchObject({ replicas: 1, readyReplicas: 1, availableReplicas: 1 });
  });

  it('rolls a template change from the highest ordinal down, waiting for each pod to be ready', () => {
    const lab = new WorkloadLab();
    createStatefulSet(lab);
    lab.settle();
    const [rev1] = revisions(lab);
    const changes = recordChanges(lab);
    restart(lab, '2030-01-01T00:05:00Z');

    lab.statefulSets.sync(lab.now);
    const [, rev2] = revisions(lab);
    expect(rev2?.revision).toBe(2);
    expect(changes).toEqual(['-db-2']);
    lab.statefulSets.sync(lab.now);
    expect(changes).toEqual(['-db-2', '+db-2']);
    expect(revisionOfPod(lab, 'db-2')).toBe(rev2?.metadata.name);
    // db-2 is not ready yet: nothing else moves.
    lab.statefulSets.sync(lab.now);
    expect(changes).toEqual(['-db-2', '+db-2']);
    expect(statusOf(lab)).toMatchObject({
      currentRevision: rev1?.metadata.name,
      updateRevision: rev2?.metadata.name,
      currentReplicas: 2,
      updatedReplicas: 1,
      readyReplicas: 2,
    });

    lab.settle();
    expect(changes).toEqual(['-db-2', '+db-2', '-db-1', '+db-1', '-db-0', '+db-0']);
    expect(statusOf(lab)).toMatchObject({
      currentRevision: rev2?.metadata.name,
      updateRevision: rev2?.metadata.name,
      currentReplicas: 3,
      updatedReplicas: 3,
      readyReplicas: 3,
    });
    expect(lab.pods({ app: 'db' }).every(isPodReady)).toBe(true);
  });

  it('updates only ordinals at or above the partition; lower ones keep (and are recreated at) the current revision', () => {
    const lab = new WorkloadLab();
    createStatefulSet(lab, { updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 2 } } });
    lab.settle();
    const [rev1] = revisions(lab);
    restart(lab, '2030-01-01T00:05:00Z');
    lab.settle();
    const [, rev2] = revisions(lab);
    expect(revisionOfPod(lab, 'db-2')).toBe(rev2?.metadata.name);
    expect(revisionOfPod(lab, 'db-1')).toBe(rev1?.metadata.name);
    expect(revisionOfPod(lab, 'db-0')).toBe(rev1?.metadata.name);
    expect(statusOf(lab)).toMatchObject({
      currentRevision: rev1?.metadata.name,
      updateRevision: rev2?.metadata.name,
      currentReplicas: 2,
      updatedReplicas: 1,
    });

    lab.store.delete(PODS, 'default', 'db-0');
    lab.settle();
    expect(revisionOfPod(lab, 'db-0')).toBe(rev1?.metadata.name);

    lab.edit(STATEFULSETS, 'db', (obj) => {
      (obj.spec as StatefulSetSpec).updateStrategy = {
        type: 'RollingUpdate',
        rollingUpdate: { partition: 0 },
      };
    });
    lab.settle();
    expect(['db-0', 'db-1', 'db-2'].map((n) => revisionOfPod(lab, n))).toEqual(
      new Array(3).fill(rev2?.metadata.name),
    );
    expect(statusOf(lab).currentRevision).toBe(rev2?.metadata.name);
  });

  it('OnDelete leaves pods alone until they are deleted, then recreates them at the update revision', () => {
    const lab = new WorkloadLab();
    createStatefulSet(lab, { updateStrategy: { type: 'OnDelete' } });
    lab.settle();
    const [rev1] = revisions(lab);
    restart(lab, '2030-01-01T00:05:00Z');
    lab.settle();
    const [, rev2] = revisions(lab);
    expect(['db-0', 'db-1', 'db-2'].map((n) => revisionOfPod(lab, n))).toEqual(
      new Array(3).fill(rev1?.metadata.name),
    );
    lab.store.delete(PODS, 'default', 'db-1');
    lab.settle();
    expect(revisionOfPod(lab, 'db-1')).toBe(rev2?.metadata.name);
    expect(statusOf(lab)).toMatchObject({ currentReplicas: 2, updatedReplicas: 1 });
  });

  it('reuses the revision of a template that comes back, renumbered as the newest', () => {
    const lab = new WorkloadLab();
    createStatefulSet(lab);
    lab.settle();
    const [rev1] = revisions(lab);
    const original = structuredClone((sts(lab).spec as StatefulSetSpec).template);
    restart(lab, '2030-01-01T00:05:00Z');
    lab.settle();
    lab.edit(STATEFULSETS, 'db', (obj) => {
      (obj.spec as StatefulSetSpec).template = original;
    });
    lab.settle();
    const all = revisions(lab);
    expect(all).toHaveLength(2);
    expect(all[1]?.metadata.name).toBe(rev1?.metadata.name);
    expect(all[1]?.revision).toBe(3);
    expect(statusOf(lab).updateRevision).toBe(rev1?.metadata.name);
    expect(statusOf(lab).currentRevision).toBe(rev1?.metadata.name);
  });

  it('recreates a failed pod', () => {
    const lab = new WorkloadLab();
    createStatefulSet(lab, { replicas: 1 });
    lab.settle();
    const failed = lab.setPodStatus(lab.store.get(PODS, 'default', 'db-0'), 'Failed', false);
    lab.statefulSets.sync(lab.now);
    const pod = lab.store.get(PODS, 'default', 'db-0');
    expect(pod.metadata.uid).not.toBe(failed.metadata.uid);
    expect(pod.status).toEqual({ phase: 'Pending' });
    expect(lab.events('db')).toContain(
      'RecreatingFailedPod: StatefulSet default/db is recreating failed Pod db-0',
    );
  });

  it('keeps revisionHistoryLimit unused revisions', () => {
    const lab = new WorkloadLab();
    createStatefulSet(lab, { replicas: 1, revisionHistoryLimit: 1 });
    lab.settle();
    for (const at of ['2030-01-01T00:01:00Z', '2030-01-01T00:02:00Z', '2030-01-01T00:03:00Z']) {
      restart(lab, at);
      lab.settle();
    }
    expect(revisions(lab).map((r) => r.revision)).toEqual([3, 4]);
  });
});
