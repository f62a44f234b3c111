import { afterEach, describe, expect, it } from 'vitest';
import { isInputValidationError } from '../../../core/errors';
import { type KubeObject, ObjectStore } from '../object-store';
import { EVENTS, NAMESPACES, NODES, PODS } from '../resources';
import { StatusError } from '../status-error';
import { ControlLoop } from './control-loop';
import type { ControllerContext } from './controller';
import { storeEventRecorder } from './events';
import { kubeletController } from './kubelet';
import { PodLogs } from './logs';
import { nodeController } from './nodes';
import { PodFaults } from './pod-faults';

// The scheduler/kubelet and node controller on an in-memory store, run by the real loop, without the
// workload controllers: pods here are created directly, as a test or `kubectl run` would.

interface Harness {
  store: ObjectStore;
  faults: PodFaults;
  logs: PodLogs;
  loop: ControlLoop;
  settle(): Promise<void>;
  pod(name: string): KubeObject;
  until(what: string, predicate: () => boolean, timeoutMs?: number): Promise<void>;
}

const running: ControlLoop[] = [];
afterEach(() => {
  for (const loop of running.splice(0)) loop.stop();
});

function harness(options: Partial<ControllerContext['options']> = {}): Harness {
  const store = new ObjectStore();
  store.create(NAMESPACES, { metadata: { name: 'default' } });
  const ctx: ControllerContext = {
    store,
    events: storeEventRecorder(store),
    options: {
      nodes: ['node-1', 'node-2', 'node-3'],
      startDelayMs: 0,
      readinessDelayMs: 0,
      crashBackoffMs: 100,
      metricsIntervalMs: 1000,
      ...options,
    },
  };
  const faults = new PodFaults();
  const logs = new PodLogs(store);
  const loop = new ControlLoop(store, [
    { controller: nodeController(ctx, faults) },
    { controller: kubeletController(ctx, faults, logs) },
  ]);
  faults.onChange(() => loop.wake());
  loop.start();
  running.push(loop);
  const pod = (name: string) => store.get(PODS, 'default', name);
  return {
    store,
    faults,
    logs,
    loop,
    settle: () => loop.settle(2000),
    pod,
    async until(what, predicate, timeoutMs = 2000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
  };
}

function createPod(
  store: ObjectStore,
  name: string,
  labels: Record<string, string> = { app: 'web' },
  containers = ['app'],
) {
  return store.create(PODS, {
    metadata: { name, namespace: 'default', labels },
    spec: {
      containers: containers.map((c) => ({
        name: c,
        image: 'registry.local/web:1.2.0',
        ports: [{ containerPort: 8080 }],
      })),
    },
  });
}

interface PodStatusView {
  phase?: string;
  podIP?: string;
  hostIP?: string;
  startTime?: string;
  conditions?: { type: string; status: string; reason?: string; lastTransitionTime?: string }[];
  containerStatuses?: {
    name: string;
    image: string;
    imageID: string;
    containerID?: string;
    ready: boolean;
    started: boolean;
    restartCount: number;
    state: {
      waiting?: { reason: string; message?: string };
      running?: { startedAt: string };
      terminated?: { reason: string; exitCode: number };
    };
    lastState: { terminated?: { reason: string; exitCode: number; startedAt: string; finishedAt: string } };
  }[];
}

const statusOf = (pod: KubeObject) => (pod.status ?? {}) as PodStatusView;
const condition = (pod: KubeObject, type: string) => statusOf(pod).conditions?.find((c) => c.type === type);
const isReady = (pod: KubeObject) => condition(pod, 'Ready')?.status === 'True';
const container = (pod: KubeObject, i = 0) => {
  const c = statusOf(pod).containerStatuses?.[i];
  if (!c) throw new Error(`pod ${pod.metadata.name} has no container status ${i}`);
  return c;
};
const eventsOf = (store: ObjectStore, name: string) =>
  store
    .list(EVENTS, 'default')
    .items.sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion))
    .filter((e) => (e.involvedObject as { name: string }).name === name)
    .map((e) => ({
      type: e.type,
      reason: e.reason,
      message: e.message,
      count: e.count as number,
      component: (e.source as { component: string }).component,
    }));

function statusErrorOf(fn: () => unknown): StatusError {
  try {
    fn();
  } catch (e) {
    if (e instanceof StatusError) return e;
    throw e;
  }
  throw new Error('expected a StatusError');
}

describe('kubelet: pod lifecycle', () => {
  it('schedules pods round robin and runs them to Running and Ready with the fields a kubelet reports', async () => {
    const h = harness();
    for (const name of ['web-a', 'web-b', 'web-c', 'web-d']) createPod(h.store, name);
    await h.settle();
    expect(
      ['web-a', 'web-b', 'web-c', 'web-d'].map((n) => (h.pod(n).spec as { nodeName: string }).nodeName),
    ).toEqual(['node-1', 'node-2', 'node-3', 'node-1']);
    const pod = h.pod('web-a');
    const status = statusOf(pod);
    expect(status.phase).toBe('Running');
    expect(isReady(pod)).toBe(true);
    expect(status.podIP).toMatch(/^10\.244\.0\.\d+$/);
    expect(status.hostIP).toBe('10.0.0.10');
    expect(Date.parse(status.startTime ?? '')).not.toBeNaN();
    expect(status.conditions?.map((c) => `${c.type}=${c.status}`).sort()).toEqual([
      'ContainersReady=True',
      'Initialized=True',
      'PodReadyToStartContainers=True',
      'PodScheduled=True',
      'Ready=True',
    ]);
    expect(status.conditions?.every((c) => !Number.isNaN(Date.parse(c.lastTransitionTime ?? '')))).toBe(true);
    const c = container(pod);
    expect(c).toMatchObject({
      name: 'app',
      image: 'registry.local/web:1.2.0',
      ready: true,
      started: true,
      restartCount: 0,
    });
    expect(c.imageID).toMatch(/^registry\.local\/web@sha256:[0-9a-f]{64}$/);
    expect(c.containerID).toMatch(/^containerd:\/\/[0-9a-f]{64}$/);
    expect(c.state.running?.startedAt).toBeDefined();
    expect(statusOf(h.pod('web-b')).podIP).not.toBe(status.podIP);
    const events = eventsOf(h.store, 'web-a');
    expect(events.map((e) => `${e.component}/${e.reason}`)).toEqual([
      'default-scheduler/Scheduled',
      'kubelet/Pulling',
      'kubelet/Pulled',
      'kubelet/Created',
      'kubelet/Started',
    ]);
    expect(events[0]?.message).toBe('Successfully assigned default/web-a to node-1');
    expect(h.logs.read('default', 'web-a').map((l) => l.text)).toContain('INFO Listening on 0.0.0.0:8080');
  });

  it('waits startDelay before running and readinessDelay before Ready', async () => {
    const h = harness({ startDelayMs: 120, readinessDelayMs: 120 });
    const created = Date.now();
    createPod(h.store, 'slow');
    await h.settle();
    expect(statusOf(h.pod('slow')).phase).toBe('Pending');
    expect(container(h.pod('slow')).state.waiting?.reason).toBe('ContainerCreating');
    await h.until('running', () => statusOf(h.pod('slow')).phase === 'Running');
    expect(Date.now() - created).toBeGreaterThanOrEqual(115);
    expect(isReady(h.pod('slow'))).toBe(false);
    expect(condition(h.pod('slow'), 'ContainersReady')).toMatchObject({
      status: 'False',
      reason: 'ContainersNotReady',
    });
    await h.until('ready', () => isReady(h.pod('slow')));
    expect(Date.now() - created).toBeGreaterThanOrEqual(235);
  });

  it('leaves pods Pending with FailedScheduling when no node is Ready, and schedules them when one is', async () => {
    const h = harness({ nodes: ['only'] });
    const fault = h.faults.inject({ kind: 'nodeNotReady', node: 'only' });
    await h.settle();
    createPod(h.store, 'waiting');
    await h.settle();
    expect(condition(h.pod('waiting'), 'PodScheduled')).toMatchObject({
      status: 'False',
      reason: 'Unschedulable',
    });
    expect(eventsOf(h.store, 'waiting')).toEqual([
      expect.objectContaining({
        type: 'Warning',
        reason: 'FailedScheduling',
        component: 'default-scheduler',
      }),
    ]);
    fault.clear();
    await h.settle();
    expect(isReady(h.pod('waiting'))).toBe(true);
  });
});

describe('kubelet: faults', () => {
  it('crashLoop: CrashLoopBackOff with growing restarts, previous logs and events; clearing recovers', async () => {
    const h = harness();
    createPod(h.store, 'healthy', { app: 'other' });
    const fault = h.faults.inject({
      kind: 'crashLoop',
      selector: 'app=web',
      exitCode: 3,
      message: 'cannot connect to db',
    });
    createPod(h.store, 'web-1');
    await h.settle();
    let pod = h.pod('web-1');
    expect(statusOf(pod).phase).toBe('Running');
    expect(isReady(pod)).toBe(false);
    expect(container(pod).state.waiting).toEqual({
      reason: 'CrashLoopBackOff',
      message: 'back-off 100ms restarting failed container=app pod=web-1',
    });
    expect(container(pod).lastState.terminated).toMatchObject({ reason: 'Error', exitCode: 3 });
    expect(isReady(h.pod('healthy'))).toBe(true);
    await h.until('two restarts', () => container(h.pod('web-1')).restartCount >= 2);
    await h.settle();
    pod = h.pod('web-1');
    expect(container(pod).state.waiting?.reason).toBe('CrashLoopBackOff');
    // In back-off the kubelet serves the container that last ran, for both current and previous.
    expect(h.logs.read('default', 'web-1').at(-1)?.text).toBe('ERROR cannot connect to db');
    expect(h.logs.read('default', 'web-1', { previous: true }).map((l) => l.text)).toContain(
      'ERROR cannot connect to db',
    );
    const backOff = eventsOf(h.store, 'web-1').find((e) => e.reason === 'BackOff');
    expect(backOff).toMatchObject({
      type: 'Warning',
      message: 'Back-off restarting failed container app in pod web-1',
    });
    expect(backOff?.count).toBeGreaterThanOrEqual(2);

    fault.clear();
    await h.until('ready again', () => isReady(h.pod('web-1')));
    pod = h.pod('web-1');
    const restarts = container(pod).restartCount;
    expect(restarts).toBeGreaterThanOrEqual(3);
    expect(container(pod).state.running).toBeDefined();
    expect(container(pod).lastState.terminated?.reason).toBe('Error');
    expect(h.logs.read('default', 'web-1', { previous: true }).at(-1)?.text).toBe(
      'ERROR cannot connect to db',
    );
    expect(h.logs.read('default', 'web-1').map((l) => l.text)).not.toContain('ERROR cannot connect to db');
    await new Promise((r) => setTimeout(r, 250));
    expect(container(h.pod('web-1')).restartCount).toBe(restarts);
  });

  it('crashLoop also breaks pods that were already running', async () => {
    const h = harness();
    createPod(h.store, 'web-1');
    await h.settle();
    expect(isReady(h.pod('web-1'))).toBe(true);
    h.faults.inject({ kind: 'crashLoop', selector: 'app', namespace: 'default' });
    await h.settle();
    expect(container(h.pod('web-1')).state.waiting?.reason).toBe('CrashLoopBackOff');
    expect(container(h.pod('web-1')).lastState.terminated).toMatchObject({ reason: 'Error', exitCode: 1 });
    expect(isReady(h.pod('web-1'))).toBe(false);
  });

  it('a fault in another namespace or for other labels leaves the pod alone', async () => {
    const h = harness();
    h.faults.inject({ kind: 'crashLoop', selector: 'app=web', namespace: 'prod' });
    h.faults.inject({ kind: 'oomKill', selector: 'app in (api,worker)' });
    createPod(h.store, 'web-1');
    await h.settle();
    expect(isReady(h.pod('web-1'))).toBe(true);
  });

  it('oomKill: terminated OOMKilled with exit code 137', async () => {
    const h = harness();
    h.faults.inject({ kind: 'oomKill', selector: 'app=web' });
    createPod(h.store, 'web-1');
    await h.settle();
    const c = container(h.pod('web-1'));
    expect(c.state.waiting?.reason).toBe('CrashLoopBackOff');
    expect(c.lastState.terminated).toMatchObject({ reason: 'OOMKilled', exitCode: 137 });
  });

  it('imagePullError: Pending in ImagePullBackOff with the kubelet events, running after it is cleared', async () => {
    const h = harness();
    const fault = h.faults.inject({ kind: 'imagePullError', selector: 'app=web' });
    createPod(h.store, 'web-1');
    await h.settle();
    const pod = h.pod('web-1');
    expect(statusOf(pod).phase).toBe('Pending');
    expect(container(pod).state.waiting?.reason).toBe('ImagePullBackOff');
    expect(container(pod).state.waiting?.message).toMatch(
      /^Back-off pulling image "registry.local\/web:1.2.0": ErrImagePull: /,
    );
    const events = eventsOf(h.store, 'web-1');
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'Warning', reason: 'Failed', message: 'Error: ErrImagePull' }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({
        reason: 'BackOff',
        message: 'Back-off pulling image "registry.local/web:1.2.0"',
      }),
    );
    expect(statusErrorOf(() => h.logs.read('default', 'web-1')).message).toBe(
      'container "app" in pod "web-1" is waiting to start: trying and failing to pull image',
    );
    fault.clear();
    await h.until('ready', () => isReady(h.pod('web-1')));
    expect(statusOf(h.pod('web-1')).phase).toBe('Running');
  });

  it('readinessFailure: running but never Ready, with Unhealthy events; Ready once cleared', async () => {
    const h = harness();
    const fault = h.faults.inject({ kind: 'readinessFailure', selector: 'app=web' });
    createPod(h.store, 'web-1');
    await h.settle();
    const pod = h.pod('web-1');
    expect(statusOf(pod).phase).toBe('Running');
    expect(container(pod)).toMatchObject({ started: true, ready: false });
    expect(isReady(pod)).toBe(false);
    expect(eventsOf(h.store, 'web-1')).toContainEqual(
      expect.objectContaining({
        type: 'Warning',
        reason: 'Unhealthy',
        message: 'Readiness probe failed: HTTP probe failed with statuscode: 503',
      }),
    );
    fault.clear();
    await h.settle();
    expect(isReady(h.pod('web-1'))).toBe(true);
  });

  it('slowStart: adds its delay before the containers run', async () => {
    const h = harness();
    h.faults.inject({ kind: 'slowStart', selector: 'app=web', delay: '150ms' });
    const created = Date.now();
    createPod(h.store, 'web-1');
    createPod(h.store, 'quick', { app: 'other' });
    await h.settle();
    expect(statusOf(h.pod('web-1')).phase).toBe('Pending');
    expect(isReady(h.pod('quick'))).toBe(true);
    await h.until('running', () => statusOf(h.pod('web-1')).phase === 'Running');
    expect(Date.now() - created).toBeGreaterThanOrEqual(145);
  });

  it('nodeNotReady: the node turns NotReady and tainted, its pods not Ready, new pods go elsewhere', async () => {
    const h = harness();
    for (const name of ['web-a', 'web-b', 'web-c']) createPod(h.store, name);
    await h.settle();
    const fault = h.faults.inject({ kind: 'nodeNotReady', node: 'node-1' });
    await h.settle();
    const node = h.store.get(NODES, undefined, 'node-1');
    const ready = (node.status as { conditions: { type: string }[] }).conditions.find(
      (c) => c.type === 'Ready',
    );
    expect(ready).toMatchObject({
      status: 'Unknown',
      reason: 'NodeStatusUnknown',
      message: 'Kubelet stopped posting node status.',
    });
    expect((node.spec as { taints: { key: string }[] }).taints.map((t) => t.key)).toContain(
      'node.kubernetes.io/unreachable',
    );
    expect(isReady(h.pod('web-a'))).toBe(false);
    expect(isReady(h.pod('web-b'))).toBe(true);
    expect(eventsOf(h.store, 'web-a')).toContainEqual(expect.objectContaining({ reason: 'NodeNotReady' }));
    for (const name of ['new-1', 'new-2', 'new-3']) createPod(h.store, name);
    await h.settle();
    for (const name of ['new-1', 'new-2', 'new-3']) {
      expect((h.pod(name).spec as { nodeName: string }).nodeName).not.toBe('node-1');
    }
    fault.clear();
    await h.settle();
    expect(isReady(h.pod('web-a'))).toBe(true);
    expect((h.store.get(NODES, undefined, 'node-1').spec as { taints?: unknown[] }).taints).toBeUndefined();
  });
});

describe('logs', () => {
  it('answer like the API server for a missing pod, an ambiguous or unknown container, no previous container', async () => {
    const h = harness();
    createPod(h.store, 'two', { app: 'web' }, ['app', 'sidecar']);
    createPod(h.store, 'one');
    await h.settle();
    const cases: [() => unknown, number, string][] = [
      [() => h.logs.read('default', 'nope'), 404, 'pods "nope" not found'],
      [
        () => h.logs.read('default', 'two'),
        400,
        'a container name must be specified for pod two, choose one of: [app sidecar]',
      ],
      [
        () => h.logs.read('default', 'two', { container: 'db' }),
        400,
        'container "db" is not valid for pod "two"',
      ],
      [
        () => h.logs.read('default', 'one', { previous: true }),
        400,
        'previous terminated container "app" in pod "one" not found',
      ],
    ];
    for (const [read, code, message] of cases) {
      const e = statusErrorOf(read);
      expect({ code: e.code, message: e.message }).toEqual({ code, message });
    }
    expect(h.logs.read('default', 'two', { container: 'sidecar' }).length).toBeGreaterThan(0);
  });

  it('keep the last 2000 lines of a container and start empty for a re-created pod', async () => {
    const h = harness();
    createPod(h.store, 'one');
    await h.settle();
    for (let i = 0; i < 2100; i++) h.logs.append('default', 'one', 'app', `line ${i}`);
    const lines = h.logs.read('default', 'one');
    expect(lines).toHaveLength(2000);
    expect(lines.at(-1)?.text).toBe('line 2099');
    expect(lines[0]?.time).toBeInstanceOf(Date);
    h.store.delete(PODS, 'default', 'one');
    createPod(h.store, 'one');
    await h.settle();
    expect(h.logs.read('default', 'one').map((l) => l.text)).not.toContain('line 2099');
  });
});

describe('pod faults', () => {
  it('refuse invalid faults with an error naming the field', () => {
    const faults = new PodFaults();
    const bad: [unknown, string][] = [
      [{ kind: 'explode', selector: 'app=web' }, 'kind'],
      [{ kind: 'crashLoop' }, 'selector'],
      [{ kind: 'crashLoop', selector: 'app=(' }, 'selector'],
      [{ kind: 'crashLoop', selector: 'app=web', exitCode: 300 }, 'exitCode'],
      [{ kind: 'slowStart', selector: 'app=web', delay: 'soon' }, 'delay'],
      [{ kind: 'oomKill', selector: 'app=web', selecter: 'x' }, 'selecter'],
      [{ kind: 'nodeNotReady' }, 'node'],
    ];
    for (const [fault, field] of bad) {
      let error: unknown;
      try {
        faults.inject(fault as never);
      } catch (e) {
        error = e;
      }
      expect(isInputValidationError(error), JSON.stringify(fault)).toBe(true);
      expect((error as Error).message).toContain(field);
    }
    expect(faults.list()).toEqual([]);
  });

  it('list, clear one, clear all, and tell listeners', () => {
    const faults = new PodFaults();
    let changes = 0;
    faults.onChange(() => changes++);
    const a = faults.inject({ kind: 'oomKill', selector: 'app=web' });
    faults.inject({ kind: 'nodeNotReady', node: 'node-2' });
    expect(faults.list()).toEqual([
      { id: a.id, kind: 'oomKill', selector: 'app=web' },
      { id: expect.any(String), kind: 'nodeNotReady', node: 'node-2' },
    ]);
    expect(faults.isNodeNotReady('node-2')).toBe(true);
    a.clear();
    a.clear();
    expect(faults.list()).toHaveLength(1);
    faults.clearAll();
    expect(faults.list()).toEqual([]);
    expect(faults.isNodeNotReady('node-2')).toBe(false);
    expect(changes).toBe(4);
  });
});
