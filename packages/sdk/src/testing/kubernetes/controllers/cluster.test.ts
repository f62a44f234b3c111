import { afterEach, describe, expect, it } from 'vitest';
import { isInputValidationError, isRunbookError } from '../../../core/errors';
import { type KubeObject, ObjectStore } from '../object-store';
import { DEPLOYMENTS, NAMESPACES, NODES, POD_METRICS, PODS } from '../resources';
import { ClusterControllers } from './cluster';

const clusters: ClusterControllers[] = [];
afterEach(async () => {
  for (const c of clusters.splice(0)) await c.stop();
});

function cluster(options: ConstructorParameters<typeof ClusterControllers>[1] = {}) {
  const store = new ObjectStore();
  store.create(NAMESPACES, { metadata: { name: 'default' } });
  const controllers = new ClusterControllers(store, { crashBackoff: '100ms', ...options });
  clusters.push(controllers);
  controllers.start();
  return { store, controllers };
}

const deployment = (replicas: number) => ({
  metadata: { name: 'web', namespace: 'default' },
  spec: {
    replicas,
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: { containers: [{ name: 'app', image: 'registry.local/web:1.2.0' }] },
    },
  },
});

interface PodStatusView {
  conditions?: { type: string; status: string }[];
  containerStatuses?: { restartCount: number; state: { waiting?: { reason: string } } }[];
}
const isReady = (p: KubeObject) =>
  (p.status as PodStatusView | undefined)?.conditions?.some(
    (c) => c.type === 'Ready' && c.status === 'True',
  ) ?? false;
const webPods = (store: ObjectStore) =>
  store.list(PODS, 'default').items.filter((p) => p.metadata.labels?.app === 'web');

describe('ClusterControllers', () => {
  it('creates the nodes on start', () => {
    const { store } = cluster({ nodes: ['a', 'b'] });
    expect(store.list(NODES).items.map((n) => n.metadata.name)).toEqual(['a', 'b']);
  });

  it('rolls a Deployment out to Ready pods, and a crashLoop fault on its selector makes it unavailable', async () => {
    const { store, controllers } = cluster();
    store.create(DEPLOYMENTS, deployment(3));
    await controllers.settle();
    const pods = webPods(store);
    expect(pods).toHaveLength(3);
    expect(pods.every(isReady)).toBe(true);
    expect(new Set(pods.map((p) => (p.spec as { nodeName: string }).nodeName)).size).toBe(3);
    expect(store.get(DEPLOYMENTS, 'default', 'web').status).toMatchObject({
      readyReplicas: 3,
      availableReplicas: 3,
    });

    controllers.faults.inject({ kind: 'crashLoop', selector: 'app=web', message: 'panic: nil map' });
    await controllers.settle();
    for (const pod of webPods(store)) {
      const c = (pod.status as PodStatusView).containerStatuses?.[0];
      expect(c?.state.waiting?.reason).toBe('CrashLoopBackOff');
      expect(isReady(pod)).toBe(false);
    }
    const status = store.get(DEPLOYMENTS, 'default', 'web').status as {
      availableReplicas?: number;
      conditions: { type: string; status: string }[];
    };
    expect(status.availableReplicas ?? 0).toBe(0);
    expect(status.conditions.find((c) => c.type === 'Available')?.status).toBe('False');
    const name = webPods(store)[0]?.metadata.name ?? '';
    expect(controllers.logs('default', name, {}).at(-1)?.text).toBe('ERROR panic: nil map');

    controllers.faults.clearAll();
    await new Promise((r) => setTimeout(r, 150));
    await controllers.settle();
    expect(webPods(store).every(isReady)).toBe(true);
    expect(
      (store.get(DEPLOYMENTS, 'default', 'web').status as { availableReplicas: number }).availableReplicas,
    ).toBe(3);
  });

  it('settle() times out with a clear error while a crash back-off under 50 ms keeps the kubelet busy', async () => {
    const { store, controllers } = cluster({ crashBackoff: '20ms' });
    controllers.faults.inject({ kind: 'crashLoop', selector: 'app=web' });
    store.create(DEPLOYMENTS, deployment(1));
    const error = await controllers.settle({ timeoutMs: 300 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isRunbookError(error) && error.code).toBe('TIMEOUT');
    expect((error as Error).message).toContain('did not settle within 300ms');
    expect((error as Error).message).toContain('kubelet');
  });

  it('appendLog and setUsage go to the pod, and refuse unknown pods and containers', async () => {
    const { store, controllers } = cluster();
    store.create(PODS, {
      metadata: { name: 'solo', namespace: 'default' },
      spec: { containers: [{ name: 'app', image: 'web:1' }] },
    });
    await controllers.settle();
    controllers.appendLog('default', 'solo', 'app', 'GET /healthz 200\nGET /api 500');
    expect(
      controllers
        .logs('default', 'solo', { container: 'app' })
        .slice(-2)
        .map((l) => l.text),
    ).toEqual(['GET /healthz 200', 'GET /api 500']);
    expect(() => controllers.appendLog('default', 'ghost', 'app', 'x')).toThrow('pods "ghost" not found');
    expect(() => controllers.appendLog('default', 'solo', 'db', 'x')).toThrow(
      'container "db" is not valid for pod "solo"',
    );
    controllers.setUsage('default', 'solo', 'app', { cpu: '1', memory: '1Gi' });
    await controllers.settle();
    expect(store.get(POD_METRICS, 'default', 'solo').containers).toEqual([
      { name: 'app', usage: { cpu: '1000000000n', memory: '1048576Ki' } },
    ]);
  });

  it('refuses invalid options naming the field', () => {
    let error: unknown;
    try {
      new ClusterControllers(new ObjectStore(), { crashBackoff: 'often' });
    } catch (e) {
      error = e;
    }
    expect(isInputValidationError(error)).toBe(true);
    expect((error as Error).message).toContain('crashBackoff');
  });

  it('stop() leaves no timer behind', async () => {
    const before = process
      .getActiveResourcesInfo()
      .filter((r) => r === 'Timeout' || r === 'Immediate').length;
    const { store, controllers } = cluster({ metricsInterval: '50ms' });
    controllers.faults.inject({ kind: 'crashLoop', selector: 'app=web' });
    store.create(DEPLOYMENTS, deployment(2));
    await controllers.settle();
    await controllers.stop();
    const after = process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r === 'Immediate').length;
    expect(after).toBe(before);
  });
});
