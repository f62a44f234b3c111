import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sealPlan } from '../../src/core/plan';
import type { Action, Applied, StepContext } from '../../src/core/step';
import { applyManifests } from '../../src/kubernetes/actions/apply-manifests';
import { RESTARTED_AT_ANNOTATION, rolloutRestart } from '../../src/kubernetes/actions/rollout-restart';
import { rolloutUndo } from '../../src/kubernetes/actions/rollout-undo';
import { scale } from '../../src/kubernetes/actions/scale';
import { setEnv } from '../../src/kubernetes/actions/set-env';
import { waitForRollout } from '../../src/kubernetes/actions/wait-for-rollout';
import { connectKubernetes, type KubernetesCluster } from '../../src/kubernetes/cluster';
import type { KubeObject } from '../../src/testing/kubernetes/object-store';
import {
  CONFIGMAPS,
  DEPLOYMENTS,
  PODS,
  REPLICASETS,
  SECRETS,
  SERVICES,
  STATEFULSETS,
} from '../../src/testing/kubernetes/resources';
import type { KubernetesSimulator } from '../../src/testing/kubernetes/simulator';
import { sealAsEngine, startSimulatedCluster, stepContext } from '../support/kubernetes';

// Every action runs through the real @kubernetes/client-node against the project's Kubernetes API
// simulator (no real API server can run here); its controllers and kubelet play the cluster, and the
// tests prove each effect by reading the simulator's store.

const NS = 'lab';

let sim: KubernetesSimulator;
let cluster: KubernetesCluster;

beforeAll(async () => {
  ({ sim, cluster } = await startSimulatedCluster({ namespaces: [NS, 'redeploy'], existing: [NS, 'other'] }));
});

afterAll(async () => {
  await sim?.close();
});

const ctx = (signal?: AbortSignal): StepContext => stepContext(signal ? { signal } : {});

/** plan → seal (redacted, as stored) → apply → verify, as the engine drives them. */
async function execute<P, A>(action: Action<P, A>) {
  const c = ctx();
  const plan = sealAsEngine(action, await action.plan(c));
  const data = await action.apply(c, plan);
  const applied: Applied<P, A> = { plan, data, appliedAt: new Date().toISOString(), recovered: false };
  const verification = action.verify ? await action.verify(c, applied) : undefined;
  return { plan, applied, verification };
}

interface AppOptions {
  replicas?: number;
  image?: string;
  paused?: boolean;
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  sidecar?: boolean;
}

function deployment(name: string, o: AppOptions = {}) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS, labels: { app: name } },
    spec: {
      replicas: o.replicas ?? 2,
      ...(o.paused ? { paused: true } : {}),
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [
            { name: 'app', image: o.image ?? `aiwebtest/${name}:1.0`, ...(o.env ? { env: o.env } : {}) },
            ...(o.sidecar
              ? [{ name: 'sidecar', image: 'envoy:1.30', env: [{ name: 'A', value: 'side' }] }]
              : []),
          ],
        },
      },
    },
  };
}

async function seed(...manifests: object[]): Promise<void> {
  sim.apply(...manifests);
  await sim.settle();
}

const getDeployment = (name: string) => sim.store.get(DEPLOYMENTS, NS, name);
const templateOf = (o: KubeObject) =>
  (o.spec as { template: { metadata?: { annotations?: Record<string, string> }; spec: PodSpec } }).template;
type PodSpec = { containers: { name: string; image: string; env?: { name: string; value?: string }[] }[] };
const podsOf = (app: string) =>
  sim.store
    .list(PODS, NS)
    .items.filter((p) => p.metadata.labels?.app === app && !p.metadata.deletionTimestamp);
const replicaSetsOf = (app: string) =>
  sim.store
    .list(REPLICASETS, NS)
    .items.filter((rs) => rs.metadata.labels?.app === app)
    .map((rs) => ({
      name: rs.metadata.name,
      uid: rs.metadata.uid,
      revision: Number(rs.metadata.annotations?.['deployment.kubernetes.io/revision']),
      replicas: (rs.spec as { replicas: number }).replicas,
    }))
    .sort((a, b) => a.revision - b.revision);
const envOf = (app: string, container = 'app') =>
  Object.fromEntries(
    (templateOf(getDeployment(app)).spec.containers.find((c) => c.name === container)?.env ?? []).map((e) => [
      e.name,
      e.value,
    ]),
  );

/** Deletes workloads a test broke (their pods and ReplicaSets go with them), so later settles are quick. */
function remove(...names: string[]): void {
  for (const name of names) {
    if (sim.store.find(DEPLOYMENTS, NS, name)) sim.store.delete(DEPLOYMENTS, NS, name);
  }
}

/** Changes the image through the store (as another tool would) and waits for the rollout. */
async function setImage(app: string, image: string): Promise<void> {
  const d = getDeployment(app);
  const template = templateOf(d);
  template.spec.containers[0] = { ...(template.spec.containers[0] as PodSpec['containers'][0]), image };
  sim.store.update(DEPLOYMENTS, d);
  await sim.settle();
}

describe('rolloutRestart', () => {
  it('sets restartedAt, creates a new revision, replaces every pod and verifies', async () => {
    await seed(deployment('web', { replicas: 3 }));
    const oldPods = podsOf('web').map((p) => p.metadata.name);
    expect(oldPods).toHaveLength(3);
    const action = rolloutRestart(cluster, { namespace: NS, name: 'web', timeout: '20s' });
    expect(action).toMatchObject({
      kind: 'k8s.rollout-restart',
      target: 'k8s:lab/deployment/web',
      risk: 'medium',
    });
    expect(action.budget).toEqual({ max: 3, per: '1h' });

    const before = getDeployment('web').metadata.resourceVersion;
    const draft = await action.plan(ctx());
    expect(getDeployment('web').metadata.resourceVersion).toBe(before); // plan changed nothing
    expect(draft.changes).toEqual([
      {
        target: 'k8s:lab/deployment/web',
        field: `spec.template.metadata.annotations["${RESTARTED_AT_ANNOTATION}"]`,
        before: null,
        after: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
      },
    ]);
    expect(draft.summary).toContain('revision 1');

    const { plan, verification } = await execute(action);
    expect(verification?.status).toBe('ok');
    expect(verification?.summary).toBe('Deployment lab/web: deployment "web" successfully rolled out');
    const restartedAt = plan.params.restartedAt;
    expect(templateOf(getDeployment('web')).metadata?.annotations?.[RESTARTED_AT_ANNOTATION]).toBe(
      restartedAt,
    );
    expect(getDeployment('web').metadata.annotations?.['deployment.kubernetes.io/revision']).toBe('2');
    const sets = replicaSetsOf('web');
    expect(sets.map((s) => [s.revision, s.replicas])).toEqual([
      [1, 0],
      [2, 3],
    ]);
    await sim.settle();
    const newPods = podsOf('web');
    expect(newPods).toHaveLength(3);
    expect(newPods.every((p) => p.metadata.ownerReferences?.[0]?.uid === sets[1]?.uid)).toBe(true);
    expect(newPods.some((p) => oldPods.includes(p.metadata.name))).toBe(false);
  });

  it('plans the next restart from the previous one and never reuses its timestamp', async () => {
    await seed(deployment('twice', { replicas: 1 }));
    const first = await execute(rolloutRestart(cluster, { namespace: NS, name: 'twice', timeout: '20s' }));
    const second = await rolloutRestart(cluster, { namespace: NS, name: 'twice' }).plan(ctx());
    expect(second.changes[0]?.before).toBe(first.plan.params.restartedAt);
    expect(second.changes[0]?.after).not.toBe(first.plan.params.restartedAt);
  });

  it('refuses a paused deployment, as kubectl does, and changes nothing', async () => {
    await seed(deployment('paused', { paused: true }));
    const rv = getDeployment('paused').metadata.resourceVersion;
    await expect(
      rolloutRestart(cluster, { namespace: NS, name: 'paused' }).plan(ctx()),
    ).rejects.toMatchObject({
      code: 'K8S_PAUSED',
      message: expect.stringContaining("can't restart paused deployment (run rollout resume first)"),
    });
    expect(getDeployment('paused').metadata.resourceVersion).toBe(rv);
  });

  it('restarts a StatefulSet: every pod moves to the new controller revision', async () => {
    await seed({
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'db', namespace: NS, labels: { app: 'db' } },
      spec: {
        replicas: 2,
        serviceName: 'db',
        selector: { matchLabels: { app: 'db' } },
        template: {
          metadata: { labels: { app: 'db' } },
          spec: { containers: [{ name: 'pg', image: 'postgres:16' }] },
        },
      },
    });
    const revisionBefore = (sim.store.get(STATEFULSETS, NS, 'db').status as { updateRevision: string })
      .updateRevision;
    const { plan, verification } = await execute(
      rolloutRestart(cluster, { namespace: NS, name: 'db', kind: 'StatefulSet', timeout: '20s' }),
    );
    expect(plan.target).toBe('k8s:lab/statefulset/db');
    expect(verification?.status).toBe('ok');
    const sts = sim.store.get(STATEFULSETS, NS, 'db');
    const status = sts.status as { updateRevision: string; currentRevision: string };
    expect(status.updateRevision).not.toBe(revisionBefore);
    expect(status.currentRevision).toBe(status.updateRevision);
    expect(templateOf(sts).metadata?.annotations?.[RESTARTED_AT_ANNOTATION]).toBe(plan.params.restartedAt);
    const pods = podsOf('db');
    expect(pods.map((p) => p.metadata.name).sort()).toEqual(['db-0', 'db-1']);
    expect(pods.every((p) => p.metadata.labels?.['controller-revision-hash'] === status.updateRevision)).toBe(
      true,
    );
  });

  it('fails verify fast, naming CrashLoopBackOff, when the new pods crash', async () => {
    await seed(deployment('crashy', { replicas: 2 }));
    const fault = sim.faults.inject({ kind: 'crashLoop', namespace: NS, selector: 'app=crashy' });
    try {
      const started = Date.now();
      const { verification } = await execute(
        rolloutRestart(cluster, { namespace: NS, name: 'crashy', timeout: '10s' }),
      );
      expect(Date.now() - started).toBeLessThan(8_000);
      expect(verification?.status).toBe('fail');
      expect(verification?.summary).toContain('CrashLoopBackOff');
      expect(verification?.data).toMatchObject({
        failing: expect.arrayContaining([expect.objectContaining({ reason: 'CrashLoopBackOff' })]),
      });
    } finally {
      fault.clear();
      remove('crashy');
    }
  });

  it('fails verify fast on image pull errors and OOM kills', async () => {
    await seed(deployment('pull', { replicas: 1 }), deployment('oom', { replicas: 1 }));
    const pull = sim.faults.inject({ kind: 'imagePullError', namespace: NS, selector: 'app=pull' });
    const oom = sim.faults.inject({ kind: 'oomKill', namespace: NS, selector: 'app=oom' });
    try {
      const [p, o] = await Promise.all([
        execute(rolloutRestart(cluster, { namespace: NS, name: 'pull', timeout: '10s' })),
        execute(rolloutRestart(cluster, { namespace: NS, name: 'oom', timeout: '10s' })),
      ]);
      expect(p.verification?.status).toBe('fail');
      expect(p.verification?.summary).toMatch(/ErrImagePull|ImagePullBackOff/);
      expect(o.verification?.status).toBe('fail');
      expect(o.verification?.summary).toContain('OOMKilled');
    } finally {
      pull.clear();
      oom.clear();
      remove('pull', 'oom');
    }
  });

  it('times out with kubectl words when pods never get ready, within the timeout', async () => {
    await seed(deployment('unready', { replicas: 1 }));
    const fault = sim.faults.inject({ kind: 'readinessFailure', namespace: NS, selector: 'app=unready' });
    try {
      const started = Date.now();
      const { verification } = await execute(
        rolloutRestart(cluster, { namespace: NS, name: 'unready', timeout: '800ms' }),
      );
      const elapsed = Date.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(800);
      expect(elapsed).toBeLessThan(3_000);
      expect(verification?.status).toBe('fail');
      expect(verification?.summary).toMatch(/rollout not done after 800ms: Waiting for deployment "unready"/);
    } finally {
      fault.clear();
      remove('unready');
    }
  });

  it('stops verifying as soon as the step signal aborts', async () => {
    await seed(deployment('aborted', { replicas: 1 }));
    const fault = sim.faults.inject({ kind: 'readinessFailure', namespace: NS, selector: 'app=aborted' });
    try {
      const action = rolloutRestart(cluster, { namespace: NS, name: 'aborted', timeout: '1m' });
      const plan = sealPlan(action, await action.plan(ctx()));
      await action.apply(ctx(), plan);
      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error('step timed out')), 200);
      const started = Date.now();
      await expect(
        action.verify?.(ctx(controller.signal), { plan, data: null, appliedAt: '', recovered: true }),
      ).rejects.toThrow('step timed out');
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      fault.clear();
      remove('aborted');
    }
  });
});

describe('waitForRollout', () => {
  it('is a check that waits for done, and an action whose plan is empty when already done', async () => {
    await seed(deployment('waited', { replicas: 2 }));
    const wait = waitForRollout(cluster, { namespace: NS, name: 'waited', timeout: '10s' });
    expect((await wait.plan(ctx())).changes).toEqual([]);
    await setImage('waited', 'aiwebtest/waited:2.0');
    const f = await wait.run(ctx());
    expect(f.status).toBe('ok');
    expect(f.data.message).toBe('deployment "waited" successfully rolled out');
  });

  it('as an action, plans the awaited transition and verifies it', async () => {
    await seed(deployment('waited2', { replicas: 2 }));
    const unready = sim.faults.inject({ kind: 'readinessFailure', namespace: NS, selector: 'app=waited2' });
    const d = getDeployment('waited2');
    templateOf(d).spec.containers[0] = { name: 'app', image: 'aiwebtest/waited2:2.0' };
    sim.store.update(DEPLOYMENTS, d);
    const action = waitForRollout(cluster, { namespace: NS, name: 'waited2', timeout: '10s' });
    const draft = await action.plan(ctx());
    expect(draft.changes).toEqual([
      { target: 'k8s:lab/deployment/waited2', field: 'status.rollout', before: 'progressing', after: 'done' },
    ]);
    setTimeout(() => unready.clear(), 300);
    const plan = sealPlan(action, draft);
    expect(await action.apply(ctx(), plan)).toBeNull();
    const f = await action.verify?.(ctx(), { plan, data: null, appliedAt: '', recovered: false });
    expect(f?.status).toBe('ok');
  });
});

describe('scale', () => {
  it('scales up and down through /scale, verifies ready replicas, and revert restores the count', async () => {
    await seed(deployment('scaled', { replicas: 2 }));
    const up = await execute(scale(cluster, { namespace: NS, name: 'scaled', replicas: 4, timeout: '20s' }));
    expect(up.plan.changes).toEqual([
      { target: 'k8s:lab/deployment/scaled', field: 'spec.replicas', before: 2, after: 4 },
    ]);
    expect(up.verification?.status).toBe('ok');
    expect(getDeployment('scaled').status).toMatchObject({ readyReplicas: 4, replicas: 4 });

    const action = scale(cluster, { namespace: NS, name: 'scaled', replicas: 1, timeout: '20s' });
    const down = await execute(action);
    expect(down.verification?.status).toBe('ok');
    await sim.settle();
    expect(podsOf('scaled')).toHaveLength(1);

    await action.revert?.(ctx(), down.applied);
    expect((getDeployment('scaled').spec as { replicas: number }).replicas).toBe(4);
    await sim.settle();
    expect(podsOf('scaled')).toHaveLength(4);

    const same = await scale(cluster, { namespace: NS, name: 'scaled', replicas: 4 }).plan(ctx());
    expect(same.changes).toEqual([]);
  });

  it('scales a StatefulSet', async () => {
    await seed({
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'cache', namespace: NS, labels: { app: 'cache' } },
      spec: {
        replicas: 1,
        serviceName: 'cache',
        selector: { matchLabels: { app: 'cache' } },
        template: {
          metadata: { labels: { app: 'cache' } },
          spec: { containers: [{ name: 'r', image: 'redis:7' }] },
        },
      },
    });
    const { verification } = await execute(
      scale(cluster, { namespace: NS, name: 'cache', kind: 'StatefulSet', replicas: 3, timeout: '20s' }),
    );
    expect(verification?.status).toBe('ok');
    expect(
      podsOf('cache')
        .map((p) => p.metadata.name)
        .sort(),
    ).toEqual(['cache-0', 'cache-1', 'cache-2']);
  });

  it('rejects bad options with the field named, before anything runs', () => {
    expect(() => scale(cluster, { namespace: NS, name: 'x', replicas: -1 })).toThrow(/replicas: /);
    expect(() => scale(cluster, { namespace: 'Bad_NS', name: 'x', replicas: 1 })).toThrow(/namespace: /);
  });
});

describe('setEnv', () => {
  const env = [
    { name: 'A', value: '1' },
    { name: 'B', value: '2' },
    { name: 'DB_PASSWORD', value: 'old-secret' },
  ];

  it('merges by container and variable name, redacts secrets in the plan, and revert restores', async () => {
    await seed(deployment('envy', { replicas: 1, env, sidecar: true }));
    const action = setEnv(cluster, {
      namespace: NS,
      name: 'envy',
      container: 'app',
      env: { A: '10', C: '3', B: null, DB_PASSWORD: 'new-secret' },
      timeout: '20s',
    });
    const { plan, applied, verification } = await execute(action);
    const field = (name: string) => `spec.template.spec.containers[name=app].env[name=${name}]`;
    expect(plan.changes).toEqual([
      { target: 'k8s:lab/deployment/envy', field: field('A'), before: '1', after: '10' },
      { target: 'k8s:lab/deployment/envy', field: field('C'), before: null, after: '3' },
      { target: 'k8s:lab/deployment/envy', field: field('B'), before: '2', after: null },
      {
        target: 'k8s:lab/deployment/envy',
        field: field('DB_PASSWORD'),
        before: '[REDACTED]',
        after: '[REDACTED: new value]',
      },
    ]);
    expect(JSON.stringify(plan)).not.toMatch(/old-secret|new-secret/);
    expect(verification?.status).toBe('ok');
    expect(envOf('envy')).toEqual({ A: '10', C: '3', DB_PASSWORD: 'new-secret' });
    expect(envOf('envy', 'sidecar')).toEqual({ A: 'side' });

    await action.revert?.(ctx(), applied);
    expect(envOf('envy')).toEqual({ A: '1', B: '2', DB_PASSWORD: 'old-secret' });
    expect(envOf('envy', 'sidecar')).toEqual({ A: 'side' });
  });

  it('sets every container without `container`, and has nothing to do when values are already set', async () => {
    await seed(deployment('allc', { replicas: 1, sidecar: true }));
    const { verification } = await execute(
      setEnv(cluster, { namespace: NS, name: 'allc', env: { MODE: 'fallback' }, timeout: '20s' }),
    );
    expect(verification?.status).toBe('ok');
    expect(envOf('allc')).toEqual({ MODE: 'fallback' });
    expect(envOf('allc', 'sidecar')).toEqual({ A: 'side', MODE: 'fallback' });
    const again = await setEnv(cluster, { namespace: NS, name: 'allc', env: { MODE: 'fallback' } }).plan(
      ctx(),
    );
    expect(again.changes).toEqual([]);
  });

  it('refuses to replace a valueFrom variable unless allowed', async () => {
    const ref = { name: 'API_KEY', valueFrom: { secretKeyRef: { name: 'keys', key: 'api' } } };
    await seed(deployment('reffed', { replicas: 1, env: [ref] }));
    await expect(
      setEnv(cluster, { namespace: NS, name: 'reffed', env: { API_KEY: 'literal' } }).plan(ctx()),
    ).rejects.toMatchObject({ code: 'K8S_VALUE_FROM', message: expect.stringContaining('Secret keys/api') });
    const action = setEnv(cluster, {
      namespace: NS,
      name: 'reffed',
      env: { API_KEY: null },
      allowValueFrom: true,
      timeout: '20s',
    });
    const { plan, applied } = await execute(action);
    expect(plan.changes[0]).toMatchObject({
      before: { valueFrom: { secretKeyRef: { name: 'keys', key: 'api' } } },
    });
    expect(envOf('reffed')).toEqual({});
    await action.revert?.(ctx(), applied);
    const restored = templateOf(getDeployment('reffed')).spec.containers[0]?.env;
    expect(restored).toEqual([ref]);
  });

  it('names an unknown container', async () => {
    await seed(deployment('onec', { replicas: 1 }));
    await expect(
      setEnv(cluster, { namespace: NS, name: 'onec', container: 'nope', env: { X: '1' } }).plan(ctx()),
    ).rejects.toThrow('has no container named "nope" (it has: app)');
  });
});

describe('rolloutUndo', () => {
  it('rolls back to the previous revision with a plan of the differences, and revert goes forward again', async () => {
    await seed(deployment('undo', { replicas: 2, image: 'aiwebtest/undo:1.0' }));
    await setImage('undo', 'aiwebtest/undo:2.0');
    const action = rolloutUndo(cluster, { namespace: NS, name: 'undo', timeout: '20s' });
    const { plan, applied, verification } = await execute(action);
    expect(plan.summary).toContain('from revision 2 to revision 1');
    expect(plan.changes).toContainEqual({
      target: 'k8s:lab/deployment/undo',
      field: 'spec.template.spec.containers[name=app].image',
      before: 'aiwebtest/undo:2.0',
      after: 'aiwebtest/undo:1.0',
    });
    expect(verification?.status).toBe('ok');
    const d = getDeployment('undo');
    expect(templateOf(d).spec.containers[0]?.image).toBe('aiwebtest/undo:1.0');
    expect(d.metadata.annotations?.['deployment.kubernetes.io/revision']).toBe('3');
    expect(JSON.stringify(templateOf(d))).not.toContain('pod-template-hash');

    await action.revert?.(ctx(), applied);
    await sim.settle();
    expect(templateOf(getDeployment('undo')).spec.containers[0]?.image).toBe('aiwebtest/undo:2.0');
  });

  it('rolls back to a given revision, and is a no-op when the template already matches it', async () => {
    await seed(deployment('hist', { replicas: 1, image: 'aiwebtest/hist:1.0' }));
    await setImage('hist', 'aiwebtest/hist:2.0');
    await setImage('hist', 'aiwebtest/hist:3.0');
    const same = await rolloutUndo(cluster, { namespace: NS, name: 'hist', toRevision: 3 }).plan(ctx());
    expect(same.changes).toEqual([]);
    expect(same.summary).toContain('skipped rollback (current template already matches revision 3)');
    const { verification } = await execute(
      rolloutUndo(cluster, { namespace: NS, name: 'hist', toRevision: 1, timeout: '20s' }),
    );
    expect(verification?.status).toBe('ok');
    expect(templateOf(getDeployment('hist')).spec.containers[0]?.image).toBe('aiwebtest/hist:1.0');
    await expect(
      rolloutUndo(cluster, { namespace: NS, name: 'hist', toRevision: 42 }).plan(ctx()),
    ).rejects.toThrow('unable to find specified revision 42 in history');
  });

  it('refuses a paused deployment', async () => {
    await seed(deployment('pundo', { replicas: 1 }));
    await setImage('pundo', 'aiwebtest/pundo:2.0');
    const d = getDeployment('pundo');
    (d.spec as { paused?: boolean }).paused = true;
    sim.store.update(DEPLOYMENTS, d);
    await expect(rolloutUndo(cluster, { namespace: NS, name: 'pundo' }).plan(ctx())).rejects.toMatchObject({
      code: 'K8S_PAUSED',
      message: expect.stringContaining('you cannot rollback a paused deployment'),
    });
  });

  it('says there is no history when there is only one revision', async () => {
    await seed(deployment('fresh', { replicas: 1 }));
    await expect(rolloutUndo(cluster, { namespace: NS, name: 'fresh' }).plan(ctx())).rejects.toThrow(
      'no rollout history found for deployment "fresh"',
    );
  });
});

describe('applyManifests', () => {
  const manifests = (version: string, data: string) => [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'api', labels: { app: 'api' } },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'api' } },
        template: {
          metadata: { labels: { app: 'api' } },
          spec: { containers: [{ name: 'app', image: `aiwebtest/api:${version}` }] },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'api' },
      spec: { selector: { app: 'api' }, ports: [{ port: 80, targetPort: 8080 }] },
    },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'api-config' }, data: { level: data } },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'api-secret' },
      stringData: { token: `tok-${data}` },
    },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'redeploy' } },
  ];

  it('creates in kind order with a dry-run plan that changes nothing, then replaces with a field diff', async () => {
    const first = applyManifests(cluster, {
      manifests: manifests('1.0', 'info'),
      namespace: 'redeploy',
      timeout: '20s',
    });
    expect(first).toMatchObject({ target: 'k8s:redeploy', risk: 'high', destructive: true });
    const draft = await first.plan(ctx());
    expect(sim.store.find(CONFIGMAPS, 'redeploy', 'api-config')).toBeUndefined();
    expect(draft.params.objects.map((o) => [o.kind, o.action])).toEqual([
      ['Namespace', 'create'],
      ['Secret', 'create'],
      ['ConfigMap', 'create'],
      ['Service', 'create'],
      ['Deployment', 'create'],
    ]);
    expect(JSON.stringify(draft)).not.toContain('tok-info');
    const created = await execute(first);
    expect(created.verification?.status).toBe('ok');
    expect(created.applied.data).toMatchObject({ updated: [] });
    expect((sim.store.get(CONFIGMAPS, 'redeploy', 'api-config').data as { level: string }).level).toBe(
      'info',
    );
    expect(sim.store.get(SERVICES, 'redeploy', 'api')).toBeDefined();
    expect(sim.store.get(SECRETS, 'redeploy', 'api-secret')).toBeDefined();
    expect(sim.store.get(DEPLOYMENTS, 'redeploy', 'api').status).toMatchObject({ readyReplicas: 2 });

    const second = applyManifests(cluster, {
      manifests: manifests('2.0', 'debug'),
      namespace: 'redeploy',
      timeout: '20s',
    });
    const plan2 = await second.plan(ctx());
    expect(plan2.params.objects.map((o) => [o.kind, o.action])).toEqual([
      ['Namespace', 'unchanged'],
      ['Secret', 'update'],
      ['ConfigMap', 'update'],
      ['Service', 'unchanged'],
      ['Deployment', 'update'],
    ]);
    expect(plan2.changes).toContainEqual({
      target: 'k8s:redeploy/configmap/api-config',
      field: 'data.level',
      before: 'info',
      after: 'debug',
    });
    expect(plan2.changes).toContainEqual({
      target: 'k8s:redeploy/deployment/api',
      field: 'spec.template.spec.containers[name=app].image',
      before: 'aiwebtest/api:1.0',
      after: 'aiwebtest/api:2.0',
    });
    expect(plan2.changes.filter((c) => c.target === 'k8s:redeploy/secret/api-secret')).toEqual([
      {
        target: 'k8s:redeploy/secret/api-secret',
        field: 'stringData.token',
        before: '[REDACTED]',
        after: '[REDACTED: new value]',
      },
    ]);
    expect(plan2.summary).toContain('revert cannot restore Secret redeploy/api-secret');
    expect((sim.store.get(CONFIGMAPS, 'redeploy', 'api-config').data as { level: string }).level).toBe(
      'info',
    );

    const updated = await execute(second);
    expect(updated.verification?.status).toBe('ok');
    expect(templateOf(sim.store.get(DEPLOYMENTS, 'redeploy', 'api')).spec.containers[0]?.image).toBe(
      'aiwebtest/api:2.0',
    );

    // Revert restores the ConfigMap and the Deployment, and says the Secret could not be restored.
    await expect(second.revert?.(ctx(), updated.applied)).rejects.toMatchObject({
      code: 'K8S_REVERT_INCOMPLETE',
      message: expect.stringContaining('Secret redeploy/api-secret'),
    });
    expect((sim.store.get(CONFIGMAPS, 'redeploy', 'api-config').data as { level: string }).level).toBe(
      'info',
    );
    expect(templateOf(sim.store.get(DEPLOYMENTS, 'redeploy', 'api')).spec.containers[0]?.image).toBe(
      'aiwebtest/api:1.0',
    );
  });

  it('applies with the planned resourceVersion: an object changed since the plan is a 409 Conflict', async () => {
    const cm = (level: string) => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'stale', namespace: NS },
      data: { level },
    });
    await seed(cm('a'));
    const action = applyManifests(cluster, { manifests: [cm('b')] });
    const plan = sealPlan(action, await action.plan(ctx()));
    sim.store.update(CONFIGMAPS, {
      ...sim.store.get(CONFIGMAPS, NS, 'stale'),
      data: { level: 'changed-by-hand' },
    });
    await expect(action.apply(ctx(), plan)).rejects.toMatchObject({
      code: 'K8S_CONFLICT',
      reason: 'Conflict',
      status: 409,
    });
    expect((sim.store.get(CONFIGMAPS, NS, 'stale').data as { level: string }).level).toBe('changed-by-hand');
  });

  it('revert deletes what it created', async () => {
    const cm = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'temp', namespace: NS },
      data: { a: '1' },
    };
    const action = applyManifests(cluster, { manifests: [cm] });
    const { applied } = await execute(action);
    expect(sim.store.find(CONFIGMAPS, NS, 'temp')).toBeDefined();
    await action.revert?.(ctx(), applied);
    expect(sim.store.find(CONFIGMAPS, NS, 'temp')).toBeUndefined();
  });

  it('refuses manifests without a namespace, and cluster-scoped kinds, at definition time', () => {
    expect(() =>
      applyManifests(cluster, {
        manifests: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } }],
      }),
    ).toThrow(/manifests\[0\]\.metadata\.namespace: required/);
    expect(() =>
      applyManifests(cluster, {
        manifests: [
          { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'x' } },
        ],
      }),
    ).toThrow(/manifests\[0\]\.kind: ClusterRole is cluster-scoped/);
  });
});

describe('guard rails', () => {
  /** An API fault that any request would use up: still listed afterwards means no request was made. */
  function tripwire() {
    const fault = sim.faults.inject({ kind: 'apiError', code: 500, times: 1 });
    return {
      untouched: () => sim.faults.list().some((f) => f.id === fault.id),
      clear: () => fault.clear(),
    };
  }

  it('refuses a namespace that is not allowed before any request', async () => {
    const wire = tripwire();
    try {
      const actions = [
        rolloutRestart(cluster, { namespace: 'other', name: 'web' }),
        scale(cluster, { namespace: 'other', name: 'web', replicas: 1 }),
        setEnv(cluster, { namespace: 'other', name: 'web', env: { A: '1' } }),
        rolloutUndo(cluster, { namespace: 'other', name: 'web' }),
        waitForRollout(cluster, { namespace: 'other', name: 'web' }),
        applyManifests(cluster, {
          manifests: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: 'other' } }],
        }),
      ];
      for (const action of actions) {
        await expect(action.plan(ctx())).rejects.toMatchObject({
          code: 'K8S_REFUSED',
          message: expect.stringContaining('namespace "other" is not in the allowed list'),
        });
      }
      expect(wire.untouched()).toBe(true);
    } finally {
      wire.clear();
    }
  });

  it('refuses a kubeconfig pointing at another context before any request, in plan and apply', async () => {
    const prod = connectKubernetes({
      kubeConfig: sim.kubeConfig(),
      expectedContext: 'prod',
      namespaces: [NS],
    });
    const wire = tripwire();
    try {
      const action = rolloutRestart(prod, { namespace: NS, name: 'web' });
      await expect(action.plan(ctx())).rejects.toMatchObject({ code: 'K8S_REFUSED' });
      const forged = sealPlan(action, {
        summary: 'x',
        changes: [],
        params: {
          namespace: NS,
          name: 'web',
          kind: 'Deployment' as const,
          restartedAt: '',
          previous: null,
          revision: null,
          timeoutMs: 1,
        },
      });
      await expect(action.apply(ctx(), forged)).rejects.toMatchObject({
        code: 'K8S_REFUSED',
        message: expect.stringContaining('this code expects "prod"'),
      });
      expect(wire.untouched()).toBe(true);
    } finally {
      wire.clear();
    }
  });
});

describe('API errors', () => {
  it('surface as KubernetesApiError with the Kubernetes reason (409 on the patch, 503 on a read)', async () => {
    await seed(deployment('errs', { replicas: 1 }));
    const action = rolloutRestart(cluster, { namespace: NS, name: 'errs' });
    const plan = sealPlan(action, await action.plan(ctx()));
    const conflict = sim.faults.inject({
      kind: 'apiError',
      code: 409,
      reason: 'Conflict',
      method: 'PATCH',
      times: 1,
    });
    try {
      await expect(action.apply(ctx(), plan)).rejects.toMatchObject({
        name: 'KubernetesApiError',
        code: 'K8S_CONFLICT',
        reason: 'Conflict',
        status: 409,
        retriable: true,
      });
    } finally {
      conflict.clear();
    }
    const unavailable = sim.faults.inject({ kind: 'apiError', code: 503, method: 'GET', times: 1 });
    try {
      await expect(action.plan(ctx())).rejects.toMatchObject({
        code: 'K8S_SERVICE_UNAVAILABLE',
        reason: 'ServiceUnavailable',
        status: 503,
      });
    } finally {
      unavailable.clear();
    }
    expect(
      templateOf(getDeployment('errs')).metadata?.annotations?.[RESTARTED_AT_ANNOTATION],
    ).toBeUndefined();
  });
});
