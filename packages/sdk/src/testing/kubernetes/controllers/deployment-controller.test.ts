import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../object-store';
import { DEPLOYMENTS, REPLICASETS } from '../resources';
import { conflict } from '../status-error';
import { deploymentController, REVISION_ANNOTATION, revisionOf } from './deployment-controller';
import type { DeploymentCondition, DeploymentSpec, DeploymentStatus } from './deployment-progress';
import { isPodActive, isPodReady } from './pod-readiness';
import { isControlledBy, POD_TEMPLATE_HASH_LABEL, type PodTemplateSpec } from './pod-template';
import { RETRY_MS } from './reconcile';
import { rsReplicas, rsSpec } from './replicaset-controller';
import { WorkloadLab } from './workload-fixture';

const HASH = /^[bcdfghjklmnpqrstvwxz2456789]{10}$/;

function createDeployment(lab: WorkloadLab, spec: Partial<DeploymentSpec> = {}, name = 'web'): KubeObject {
  return lab.store.create(DEPLOYMENTS, {
    metadata: { name, namespace: 'default' },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'app', image: 'registry.local/web:1.0' }] },
      },
      ...spec,
    },
  });
}

const deployment = (lab: WorkloadLab, name = 'web') => lab.store.get(DEPLOYMENTS, 'default', name);
const statusOf = (d: KubeObject) => (d.status ?? {}) as DeploymentStatus;
const conditionOf = (d: KubeObject, type: string): DeploymentCondition | undefined =>
  statusOf(d).conditions?.find((c) => c.type === type);

/** The Deployment's ReplicaSets, by revision. */
function replicaSets(lab: WorkloadLab, name = 'web'): KubeObject[] {
  const d = deployment(lab, name);
  return lab.store
    .list(REPLICASETS, 'default')
    .items.filter((rs) => isControlledBy(rs, d))
    .sort((a, b) => revisionOf(a) - revisionOf(b));
}

/** `kubectl rollout status`'s test for a finished rollout. */
function rolloutDone(lab: WorkloadLab, name = 'web'): boolean {
  const d = deployment(lab, name);
  const s = statusOf(d);
  const replicas = (d.spec as DeploymentSpec).replicas ?? 1;
  return (
    (s.observedGeneration ?? 0) >= d.metadata.generation &&
    (s.updatedReplicas ?? 0) >= replicas &&
    (s.replicas ?? 0) <= (s.updatedReplicas ?? 0) &&
    (s.availableReplicas ?? 0) >= (s.updatedReplicas ?? 0)
  );
}

/** `kubectl rollout restart`: a new template annotation. */
function restart(lab: WorkloadLab, at: string, name = 'web'): void {
  lab.edit(DEPLOYMENTS, name, (d) => {
    const template = (d.spec as DeploymentSpec).template as PodTemplateSpec;
    template.metadata = {
      ...template.metadata,
      annotations: { ...template.metadata?.annotations, 'kubectl.kubernetes.io/restartedAt': at },
    };
  });
}

describe('deploymentController', () => {
  it('creates revision 1 as <name>-<hash> with the hash in labels, selector and template, then its pods', () => {
    const lab = new WorkloadLab();
    const d = createDeployment(lab);
    lab.settle();

    const [rs, ...others] = replicaSets(lab);
    expect(others).toEqual([]);
    if (!rs) throw new Error('no ReplicaSet');
    const hash = rs.metadata.labels?.[POD_TEMPLATE_HASH_LABEL] ?? '';
    expect(hash).toMatch(HASH);
    expect(rs.metadata.name).toBe(`web-${hash}`);
    expect(rs.metadata.labels).toEqual({ app: 'web', [POD_TEMPLATE_HASH_LABEL]: hash });
    expect(rsSpec(rs).selector).toEqual({ matchLabels: { app: 'web', [POD_TEMPLATE_HASH_LABEL]: hash } });
    expect(rsSpec(rs).template?.metadata?.labels).toEqual({ app: 'web', [POD_TEMPLATE_HASH_LABEL]: hash });
    expect(rs.metadata.ownerReferences).toEqual([
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        name: 'web',
        uid: d.metadata.uid,
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    expect(rs.metadata.annotations).toEqual({
      [REVISION_ANNOTATION]: '1',
      'deployment.kubernetes.io/desired-replicas': '3',
      'deployment.kubernetes.io/max-replicas': '4',
    });

    const pods = lab.pods({ app: 'web' });
    expect(pods).toHaveLength(3);
    for (const pod of pods) {
      expect(pod.metadata.name).toMatch(new RegExp(`^web-${hash}-[bcdfghjklmnpqrstvwxz2456789]{5}$`));
      expect(pod.metadata.labels?.[POD_TEMPLATE_HASH_LABEL]).toBe(hash);
      expect(isControlledBy(pod, rs)).toBe(true);
    }

    const now = deployment(lab);
    expect(now.metadata.annotations?.[REVISION_ANNOTATION]).toBe('1');
    // Defaults the API server would have set, written back with a normal update.
    expect((now.spec as DeploymentSpec).strategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' },
    });
    expect((now.spec as DeploymentSpec).revisionHistoryLimit).toBe(10);
    expect((now.spec as DeploymentSpec).progressDeadlineSeconds).toBe(600);
    expect(statusOf(now)).toMatchObject({
      observedGeneration: now.metadata.generation,
      replicas: 3,
      updatedReplicas: 3,
      readyReplicas: 3,
      availableReplicas: 3,
    });
    expect(statusOf(now).unavailableReplicas).toBeUndefined();
    expect(conditionOf(now, 'Available')).toMatchObject({
      status: 'True',
      reason: 'MinimumReplicasAvailable',
    });
    expect(conditionOf(now, 'Progressing')).toMatchObject({
      status: 'True',
      reason: 'NewReplicaSetAvailable',
      message: `ReplicaSet "web-${hash}" has successfully progressed.`,
    });
    expect(lab.events('web')).toEqual([`ScalingReplicaSet: Scaled up replica set web-${hash} from 0 to 3`]);
    expect(rolloutDone(lab)).toBe(true);
  });

  it('writes nothing once settled', () => {
    const lab = new WorkloadLab();
    createDeployment(lab);
    lab.settle();
    const before = lab.store.resourceVersion;
    lab.now += 60_000;
    expect(lab.step()).toBeUndefined();
    expect(lab.store.resourceVersion).toBe(before);
  });

  it('reports a rollout in flight while the new pods are not ready', () => {
    const lab = new WorkloadLab();
    createDeployment(lab);
    lab.settle({ ready: 'none' });
    const d = deployment(lab);
    expect(statusOf(d)).toMatchObject({ replicas: 3, updatedReplicas: 3, unavailableReplicas: 3 });
    expect(statusOf(d).availableReplicas).toBeUndefined();
    expect(conditionOf(d, 'Available')).toMatchObject({
      status: 'False',
      reason: 'MinimumReplicasUnavailable',
    });
    // Pods being created is progress: the condition moved on from NewReplicaSetCreated.
    expect(conditionOf(d, 'Progressing')).toMatchObject({
      status: 'True',
      reason: 'ReplicaSetUpdated',
      message: `ReplicaSet "${replicaSets(lab)[0]?.metadata.name}" is progressing.`,
    });
    expect(rolloutDone(lab)).toBe(false);
  });

  const strategies: {
    name: string;
    replicas: number;
    maxSurge?: number | string;
    maxUnavailable?: number | string;
    surge: number;
    unavailable: number;
  }[] = [
    { name: 'defaults 25%/25% of 4', replicas: 4, surge: 1, unavailable: 1 },
    {
      name: 'maxSurge 0, maxUnavailable 1',
      replicas: 5,
      maxSurge: 0,
      maxUnavailable: 1,
      surge: 0,
      unavailable: 1,
    },
    {
      name: 'maxSurge 1, maxUnavailable 0',
      replicas: 3,
      maxSurge: 1,
      maxUnavailable: 0,
      surge: 1,
      unavailable: 0,
    },
    {
      name: '50%/20% of 10 (surge rounds up, unavailable down)',
      replicas: 10,
      maxSurge: '50%',
      maxUnavailable: '20%',
      surge: 5,
      unavailable: 2,
    },
    {
      name: '10%/10% of 4 (surge rounds up to 1, unavailable down to 0)',
      replicas: 4,
      maxSurge: '10%',
      maxUnavailable: '10%',
      surge: 1,
      unavailable: 0,
    },
    {
      name: '0%/0% of 4 (both 0: maxUnavailable becomes 1)',
      replicas: 4,
      maxSurge: '0%',
      maxUnavailable: '0%',
      surge: 0,
      unavailable: 1,
    },
  ];

  for (const s of strategies) {
    it(`rolls out a restart within surge and availability bounds at every step (${s.name})`, () => {
      const lab = new WorkloadLab();
      const rollingUpdate = {
        ...(s.maxSurge !== undefined ? { maxSurge: s.maxSurge } : {}),
        ...(s.maxUnavailable !== undefined ? { maxUnavailable: s.maxUnavailable } : {}),
      };
      createDeployment(lab, { replicas: s.replicas, strategy: { type: 'RollingUpdate', rollingUpdate } });
      lab.settle();
      const [rev1] = replicaSets(lab);
      restart(lab, '2030-01-01T00:05:00Z');

      let sawBothRunning = false;
      let sawProgressUpdate = false;
      const check = (stage: string) => {
        const pods = lab.pods({ app: 'web' }).filter(isPodActive);
        const available = pods.filter(isPodReady).length;
        expect(pods.length, `pods after ${stage}`).toBeLessThanOrEqual(s.replicas + s.surge);
        expect(available, `available pods after ${stage}`).toBeGreaterThanOrEqual(s.replicas - s.unavailable);
        const hashes = new Set(pods.map((p) => p.metadata.labels?.[POD_TEMPLATE_HASH_LABEL]));
        if (hashes.size > 1) sawBothRunning = true;
        if (conditionOf(deployment(lab), 'Progressing')?.reason === 'ReplicaSetUpdated')
          sawProgressUpdate = true;
      };
      // One pod becomes ready per round, so the bounds are what holds the rollout back.
      lab.settle({ ready: 1, check });

      const [old, rev2, ...more] = replicaSets(lab);
      expect(more).toEqual([]);
      expect(old?.metadata.uid).toBe(rev1?.metadata.uid);
      expect(revisionOf(rev2 as KubeObject)).toBe(2);
      expect(rsReplicas(old as KubeObject)).toBe(0);
      expect(rsReplicas(rev2 as KubeObject)).toBe(s.replicas);
      const newHash = rev2?.metadata.labels?.[POD_TEMPLATE_HASH_LABEL];
      expect(lab.pods({ app: 'web' }).map((p) => p.metadata.labels?.[POD_TEMPLATE_HASH_LABEL])).toEqual(
        new Array(s.replicas).fill(newHash),
      );
      expect(sawBothRunning).toBe(true);
      expect(sawProgressUpdate).toBe(true);

      const d = deployment(lab);
      expect(d.metadata.annotations?.[REVISION_ANNOTATION]).toBe('2');
      expect(statusOf(d)).toMatchObject({
        observedGeneration: d.metadata.generation,
        replicas: s.replicas,
        updatedReplicas: s.replicas,
        availableReplicas: s.replicas,
      });
      expect(conditionOf(d, 'Progressing')).toMatchObject({
        reason: 'NewReplicaSetAvailable',
        status: 'True',
      });
      expect(rolloutDone(lab)).toBe(true);
      const lastScaleDown = new RegExp(
        `^ScalingReplicaSet: Scaled down replica set ${old?.metadata.name} from \\d+ to 0$`,
      );
      expect(lab.events('web').some((e) => lastScaleDown.test(e))).toBe(true);
    });
  }

  it('rolls back to an old template by reusing its ReplicaSet as the newest revision', () => {
    const lab = new WorkloadLab();
    createDeployment(lab);
    lab.settle();
    const rev1Template = structuredClone(
      rsSpec(replicaSets(lab)[0] as KubeObject).template,
    ) as PodTemplateSpec;
    restart(lab, '2030-01-01T00:05:00Z');
    lab.settle();
    expect(replicaSets(lab).map(revisionOf)).toEqual([1, 2]);

    // What `kubectl rollout undo` writes: revision 1's template without the hash label.
    delete rev1Template.metadata?.labels?.[POD_TEMPLATE_HASH_LABEL];
    lab.edit(DEPLOYMENTS, 'web', (d) => {
      (d.spec as DeploymentSpec).template = rev1Template;
    });
    lab.settle();

    const sets = replicaSets(lab);
    expect(sets).toHaveLength(2);
    const [rev2, rev3] = sets;
    expect(revisionOf(rev3 as KubeObject)).toBe(3);
    expect(rev3?.metadata.annotations?.['deployment.kubernetes.io/revision-history']).toBe('1');
    expect(rsReplicas(rev3 as KubeObject)).toBe(3);
    expect(rsReplicas(rev2 as KubeObject)).toBe(0);
    expect(deployment(lab).metadata.annotations?.[REVISION_ANNOTATION]).toBe('3');
    const hash = rev3?.metadata.labels?.[POD_TEMPLATE_HASH_LABEL];
    expect(lab.pods({ app: 'web' }).every((p) => p.metadata.labels?.[POD_TEMPLATE_HASH_LABEL] === hash)).toBe(
      true,
    );
    expect(rolloutDone(lab)).toBe(true);
  });

  it('scales the ReplicaSet up and down with a spec.replicas change', () => {
    const lab = new WorkloadLab();
    createDeployment(lab);
    lab.settle();
    const rs = replicaSets(lab)[0] as KubeObject;

    lab.edit(DEPLOYMENTS, 'web', (d) => {
      (d.spec as DeploymentSpec).replicas = 5;
    });
    lab.settle();
    expect(lab.pods({ app: 'web' })).toHaveLength(5);
    const scaled = replicaSets(lab)[0] as KubeObject;
    expect(scaled.metadata.annotations?.['deployment.kubernetes.io/desired-replicas']).toBe('5');
    expect(scaled.metadata.annotations?.['deployment.kubernetes.io/max-replicas']).toBe('7');
    expect(rolloutDone(lab)).toBe(true);

    lab.edit(DEPLOYMENTS, 'web', (d) => {
      (d.spec as DeploymentSpec).replicas = 2;
    });
    lab.settle();
    expect(lab.pods({ app: 'web' })).toHaveLength(2);
    expect(replicaSets(lab)).toHaveLength(1);
    expect(lab.events('web').sort()).toEqual([
      `ScalingReplicaSet: Scaled down replica set ${rs.metadata.name} from 5 to 2`,
      `ScalingReplicaSet: Scaled up replica set ${rs.metadata.name} from 0 to 3`,
      `ScalingReplicaSet: Scaled up replica set ${rs.metadata.name} from 3 to 5`,
    ]);
    expect(statusOf(deployment(lab))).toMatchObject({
      replicas: 2,
      updatedReplicas: 2,
      availableReplicas: 2,
    });
  });

  it('scales a rollout in flight proportionally across its ReplicaSets', () => {
    const lab = new WorkloadLab();
    createDeployment(lab, { replicas: 10 });
    lab.settle();
    restart(lab, '2030-01-01T00:05:00Z');
    // New pods never become ready: the rollout stops with both ReplicaSets holding pods.
    lab.settle({ ready: 'none' });
    const [oldBefore, newBefore] = replicaSets(lab).map(rsReplicas);
    expect(oldBefore).toBe(8);
    expect(newBefore).toBe(5);

    lab.edit(DEPLOYMENTS, 'web', (d) => {
      (d.spec as DeploymentSpec).replicas = 20;
    });
    lab.step();
    const [oldAfter, newAfter] = replicaSets(lab).map(rsReplicas);
    // 13 of an allowed 13 (10 + 3 surge) become 25 of 25 (20 + 5), in the same 8:5 proportion.
    expect((oldAfter ?? 0) + (newAfter ?? 0)).toBe(25);
    expect(oldAfter).toBe(15);
    expect(newAfter).toBe(10);
  });

  it('makes no rollout progress while paused, but still scales; resuming rolls out', () => {
    const lab = new WorkloadLab();
    createDeployment(lab);
    lab.settle();
    lab.edit(DEPLOYMENTS, 'web', (d) => {
      (d.spec as DeploymentSpec).paused = true;
    });
    restart(lab, '2030-01-01T00:05:00Z');
    lab.settle();
    expect(replicaSets(lab)).toHaveLength(1);
    expect(conditionOf(deployment(lab), 'Progressing')).toMatchObject({
      status: 'Unknown',
      reason: 'DeploymentPaused',
      message: 'Deployment is paused',
    });

    lab.edit(DEPLOYMENTS, 'web', (d) => {
      (d.spec as DeploymentSpec).replicas = 4;
    });
    lab.settle();
    expect(replicaSets(lab)).toHaveLength(1);
    expect(lab.pods({ app: 'web' })).toHaveLength(4);

    lab.edit(DEPLOYMENTS, 'web', (d) => {
      (d.spec as DeploymentSpec).paused = false;
    });
    lab.step();
    expect(conditionOf(deployment(lab), 'Progressing')?.reason).toMatch(
      /DeploymentResumed|NewReplicaSetCreated/,
    );
    lab.settle();
    expect(replicaSets(lab).map(revisionOf)).toEqual([1, 2]);
    expect(rolloutDone(lab)).toBe(true);
    expect(statusOf(deployment(lab))).toMatchObject({ updatedReplicas: 4, availableReplicas: 4 });
  });

  it('reports ProgressDeadlineExceeded when the new pods never become ready', () => {
    const lab = new WorkloadLab();
    createDeployment(lab, { progressDeadlineSeconds: 5 });
    lab.settle();
    restart(lab, '2030-01-01T00:05:00Z');
    lab.settle({ ready: 'none' });
    const started = Date.parse(conditionOf(deployment(lab), 'Progressing')?.lastUpdateTime ?? '');

    lab.now = started + 4_000;
    const wake = lab.step();
    expect(conditionOf(deployment(lab), 'Progressing')?.status).toBe('True');
    // It asks to run again when the deadline passes (never before it; at most a second after).
    expect(wake).toBeGreaterThanOrEqual(1_000);
    expect(wake).toBeLessThanOrEqual(2_000);

    lab.now += wake ?? 0;
    lab.step();
    const d = deployment(lab);
    expect(conditionOf(d, 'Progressing')).toMatchObject({
      status: 'False',
      reason: 'ProgressDeadlineExceeded',
      message: `ReplicaSet "${replicaSets(lab)[1]?.metadata.name}" has timed out progressing.`,
    });
    expect(rolloutDone(lab)).toBe(false);
    // The old pods keep serving: the rollout only got as far as the bounds allow.
    expect(conditionOf(d, 'Available')?.status).toBe('True');

    // Once reported it stays, without further writes, until the pods make progress.
    const before = lab.store.resourceVersion;
    lab.now += 60_000;
    expect(lab.step()).toBeUndefined();
    expect(lab.store.resourceVersion).toBe(before);
    lab.settle();
    expect(conditionOf(deployment(lab), 'Progressing')?.reason).toBe('NewReplicaSetAvailable');
  });

  it('Recreate: scales every old pod away before the new ReplicaSet gets any', () => {
    const lab = new WorkloadLab();
    createDeployment(lab, { strategy: { type: 'Recreate' } });
    lab.settle();
    expect((deployment(lab).spec as DeploymentSpec).strategy).toEqual({ type: 'Recreate' });
    restart(lab, '2030-01-01T00:05:00Z');
    let sawNone = false;
    lab.settle({
      check: () => {
        const hashes = new Set(
          lab.pods({ app: 'web' }).map((p) => p.metadata.labels?.[POD_TEMPLATE_HASH_LABEL]),
        );
        expect(hashes.size).toBeLessThanOrEqual(1);
        if (hashes.size === 0) sawNone = true;
      },
    });
    expect(sawNone).toBe(true);
    expect(replicaSets(lab).map(rsReplicas)).toEqual([0, 3]);
    expect(rolloutDone(lab)).toBe(true);
  });

  it('keeps revisionHistoryLimit old ReplicaSets, deleting the oldest scaled to 0', () => {
    const lab = new WorkloadLab();
    createDeployment(lab, { revisionHistoryLimit: 1 });
    lab.settle();
    for (const at of ['2030-01-01T00:01:00Z', '2030-01-01T00:02:00Z', '2030-01-01T00:03:00Z']) {
      restart(lab, at);
      lab.settle();
    }
    expect(replicaSets(lab).map(revisionOf)).toEqual([3, 4]);
    expect(replicaSets(lab).map(rsReplicas)).toEqual([0, 3]);
  });

  it('copies the Deployment annotations to its new ReplicaSet, but not kubectl or revision ones', () => {
    const lab = new WorkloadLab();
    lab.store.create(DEPLOYMENTS, {
      metadata: {
        name: 'api',
        namespace: 'default',
        annotations: {
          'kubernetes.io/change-cause': 'first release',
          'kubectl.kubernetes.io/last-applied-configuration': '{}',
        },
      },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'api' } },
        template: {
          metadata: { labels: { app: 'api' } },
          spec: { containers: [{ name: 'a', image: 'a:1' }] },
        },
      },
    });
    lab.settle();
    const rs = replicaSets(lab, 'api')[0];
    expect(rs?.metadata.annotations?.['kubernetes.io/change-cause']).toBe('first release');
    expect(rs?.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration']).toBeUndefined();
  });

  it('retries on a conflicting write instead of throwing', () => {
    const lab = new WorkloadLab();
    createDeployment(lab);
    // A store that refuses the first status write, as if someone else had written the Deployment.
    let refused = 0;
    const store = new Proxy(lab.store, {
      get(target, prop, receiver) {
        if (prop === 'update') {
          return (...args: Parameters<typeof target.update>) => {
            if (args[0] === DEPLOYMENTS && args[2]?.subresource === 'status' && refused++ === 0) {
              throw conflict('deployments', 'apps', 'web');
            }
            return target.update(...args);
          };
        }
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const controller = deploymentController({ ...lab.ctx, store });
    expect(controller.sync(lab.now)).toBe(RETRY_MS);
    expect(refused).toBe(1);
    // The next sync finds the ReplicaSet it created and starts the progress clock from there.
    expect(controller.sync(lab.now)).toBeGreaterThan(600_000);
    expect(replicaSets(lab)).toHaveLength(1);
    expect(conditionOf(deployment(lab), 'Progressing')?.reason).toBe('FoundNewReplicaSet');
  });
});
