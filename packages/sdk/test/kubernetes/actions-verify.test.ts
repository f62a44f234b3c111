import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sealPlan } from '../../src/core/plan';
import type { Action, Applied, StepContext } from '../../src/core/step';
import { rolloutRestart } from '../../src/kubernetes/actions/rollout-restart';
import { scale } from '../../src/kubernetes/actions/scale';
import { setEnv } from '../../src/kubernetes/actions/set-env';
import type { KubernetesCluster } from '../../src/kubernetes/cluster';
import { isKubernetesApiError, toKubernetesError } from '../../src/kubernetes/errors';
import { DEPLOYMENTS, PODS, STATEFULSETS } from '../../src/testing/kubernetes/resources';
import type { KubernetesSimulator } from '../../src/testing/kubernetes/simulator';
import { startSimulatedCluster, stepContext } from '../support/kubernetes';

// Verify semantics that decide whether the engine reverts, crash recovery by re-planning, and the guard on
// apply and revert — through the real client against the project's Kubernetes API simulator.

const NS = 'verify';

let sim: KubernetesSimulator;
let cluster: KubernetesCluster;

beforeAll(async () => {
  ({ sim, cluster } = await startSimulatedCluster({ namespaces: [NS] }));
});

afterAll(async () => {
  await sim?.close();
});

const ctx = (): StepContext => stepContext();

async function planOf<P, A>(action: Action<P, A>) {
  return sealPlan(action, await action.plan(ctx()));
}

async function applyAndVerify<P, A>(action: Action<P, A>) {
  const plan = await planOf(action);
  const data = await action.apply(ctx(), plan);
  const applied: Applied<P, A> = { plan, data, appliedAt: new Date().toISOString(), recovered: false };
  return { plan, applied, verification: await action.verify?.(ctx(), applied) };
}

function workload(kind: 'Deployment' | 'StatefulSet', name: string, replicas: number, extra: object = {}) {
  return {
    apiVersion: 'apps/v1',
    kind,
    metadata: { name, namespace: NS, labels: { app: name } },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [
            { name: 'app', image: `aiwebtest/${name}:1`, env: [{ name: 'LOG_LEVEL', value: 'info' }] },
          ],
        },
      },
      ...extra,
    },
  };
}

const readyPods = (app: string) =>
  sim.store
    .list(PODS, NS)
    .items.filter(
      (p) =>
        p.metadata.labels?.app === app &&
        (p.status as { conditions?: { type: string; status: string }[] }).conditions?.some(
          (c) => c.type === 'Ready' && c.status === 'True',
        ),
    );

describe('scale verify (simulated cluster)', () => {
  it('scaling out succeeds when the new pods are ready, although an old pod keeps crash-looping', async () => {
    sim.apply(workload('Deployment', 'burst', 2));
    await sim.settle();
    // Mark one of the two pods and make only it crash-loop.
    const [sick] = sim.store.list(PODS, NS).items.filter((p) => p.metadata.labels?.app === 'burst');
    const pod = sim.store.get(PODS, NS, sick?.metadata.name as string);
    sim.store.update(PODS, {
      ...pod,
      metadata: { ...pod.metadata, labels: { ...pod.metadata.labels, sick: 'yes' } },
    });
    const keepSick = sim.faults.inject({ kind: 'crashLoop', namespace: NS, selector: 'sick=yes' });
    await vi.waitFor(() => expect(readyPods('burst')).toHaveLength(1), { timeout: 5_000, interval: 20 });
    try {
      const { verification } = await applyAndVerify(
        scale(cluster, { namespace: NS, name: 'burst', replicas: 4, timeout: '5s' }),
      );
      expect(verification?.summary).toMatch(/4 pods, 3 ready/);
      expect(verification?.status).toBe('ok');
      expect(verification?.data).toMatchObject({ replicas: 4, pods: 4, ready: 3, needReady: 3 });
      expect(sim.store.get(DEPLOYMENTS, NS, 'burst').spec).toMatchObject({ replicas: 4 });
    } finally {
      keepSick.clear();
    }
  });

  it('is unknown (so the engine does not revert) when something else changed spec.replicas meanwhile', async () => {
    sim.apply(workload('Deployment', 'autoscaled', 1));
    await sim.settle();
    const action = scale(cluster, { namespace: NS, name: 'autoscaled', replicas: 3, timeout: '3s' });
    const plan = await planOf(action);
    await action.apply(ctx(), plan);
    // An autoscaler answers before the verify looks.
    const d = sim.store.get(DEPLOYMENTS, NS, 'autoscaled');
    sim.store.update(DEPLOYMENTS, { ...d, spec: { ...(d.spec as object), replicas: 7 } });
    const verification = await action.verify?.(ctx(), {
      plan,
      data: null,
      appliedAt: new Date().toISOString(),
      recovered: false,
    });
    expect(verification?.status).toBe('unknown');
    expect(verification?.summary).toMatch(/spec\.replicas is now 7, not the 3 this step set/);
  });

  it('scales an OnDelete StatefulSet (no rollout status) and verifies the pod count', async () => {
    sim.apply(
      workload('StatefulSet', 'ondelete', 1, {
        serviceName: 'ondelete',
        updateStrategy: { type: 'OnDelete' },
      }),
    );
    await sim.settle();
    const { verification } = await applyAndVerify(
      scale(cluster, { namespace: NS, kind: 'StatefulSet', name: 'ondelete', replicas: 2, timeout: '5s' }),
    );
    expect(verification?.status).toBe('ok');
    expect(sim.store.get(STATEFULSETS, NS, 'ondelete').spec).toMatchObject({ replicas: 2 });
    expect(
      readyPods('ondelete')
        .map((p) => p.metadata.name)
        .sort(),
    ).toEqual(['ondelete-0', 'ondelete-1']);
  });
});

describe('crash recovery by re-planning (simulated cluster)', () => {
  // After a crash between apply and its record, the engine re-plans: the change took effect when the fresh
  // plan's `before` values are the interrupted plan's `after` values.
  it.each([
    ['rolloutRestart', () => rolloutRestart(cluster, { namespace: NS, name: 'replayed', timeout: '5s' })],
    ['scale', () => scale(cluster, { namespace: NS, name: 'replayed', replicas: 3, timeout: '5s' })],
    ['setEnv', () => setEnv(cluster, { namespace: NS, name: 'replayed', env: { LOG_LEVEL: 'debug' } })],
  ])('%s: a re-plan after the apply shows the planned values as the current ones', async (_name, make) => {
    sim.apply(workload('Deployment', 'replayed', 2));
    await sim.settle();
    const action = make() as Action<unknown, unknown>;
    const interrupted = await planOf(action);
    expect(interrupted.changes.length).toBeGreaterThan(0);
    await action.apply(ctx(), interrupted);
    const fresh = await planOf(make() as Action<unknown, unknown>);
    for (const change of interrupted.changes) {
      const now = fresh.changes.find((c) => c.field === change.field);
      // Either the field no longer needs a change, or its current value is what the interrupted plan set.
      if (now) expect(now.before).toEqual(change.after);
    }
    sim.store.delete(DEPLOYMENTS, NS, 'replayed');
  });
});

describe('guard on apply and revert (simulated cluster)', () => {
  it('refuses a forged plan for a namespace outside the allowlist before any request', async () => {
    sim.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'elsewhere' } });
    const action = scale(cluster, { namespace: NS, name: 'guarded', replicas: 2 });
    const forged = sealPlan(action, {
      summary: 'forged',
      changes: [],
      params: {
        namespace: 'elsewhere',
        name: 'x',
        kind: 'Deployment' as const,
        replicas: 9,
        previous: 1,
        timeoutMs: 1000,
      },
    });
    const tripwire = sim.faults.inject({ kind: 'apiError', code: 500, times: 1 });
    try {
      await expect(action.apply(ctx(), forged)).rejects.toMatchObject({ code: 'K8S_REFUSED' });
      const applied = { plan: forged, data: null, appliedAt: new Date().toISOString(), recovered: false };
      await expect(action.revert?.(ctx(), applied)).rejects.toMatchObject({ code: 'K8S_REFUSED' });
      expect(sim.faults.list().map((f) => f.id)).toContain(tripwire.id); // no request consumed it
    } finally {
      tripwire.clear();
    }
  });
});

describe('client errors', () => {
  it('an error the client raises before sending is not retriable and says so', () => {
    const e = toKubernetesError(
      new Error('Unrecognized API version and kind: v9 Gizmo'),
      'read Gizmo x',
      'lab',
    );
    expect(isKubernetesApiError(e)).toBe(true);
    expect(e).toMatchObject({ code: 'K8S_CLIENT_ERROR', retriable: false });
    expect(e.message).toMatch(/failed in the client: Unrecognized API version and kind/);
  });

  it('a refused connection is Unreachable and retriable', () => {
    const refused = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    expect(toKubernetesError(refused, 'list pods', 'lab')).toMatchObject({
      code: 'K8S_UNREACHABLE',
      retriable: true,
    });
  });
});
