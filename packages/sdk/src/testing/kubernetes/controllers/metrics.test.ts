import { afterEach, describe, expect, it } from 'vitest';
import { isInputValidationError } from '../../../core/errors';
import { quantityOrUndefined } from '../../../kubernetes/quantity';
import { type KubeObject, ObjectStore } from '../object-store';
import { NAMESPACES, NODE_METRICS, POD_METRICS, PODS } from '../resources';
import { ControlLoop } from './control-loop';
import type { ControllerContext } from './controller';
import { storeEventRecorder } from './events';
import { kubeletController } from './kubelet';
import { PodLogs } from './logs';
import { metricsController } from './metrics';
import { nodeController } from './nodes';
import { PodFaults } from './pod-faults';

const loops: ControlLoop[] = [];
afterEach(() => {
  for (const loop of loops.splice(0)) loop.stop();
});

function harness(metricsIntervalMs = 60) {
  const store = new ObjectStore();
  store.create(NAMESPACES, { metadata: { name: 'default' } });
  const ctx: ControllerContext = {
    store,
    events: storeEventRecorder(store),
    options: {
      nodes: ['node-1', 'node-2'],
      startDelayMs: 0,
      readinessDelayMs: 0,
      crashBackoffMs: 100,
      metricsIntervalMs,
    },
  };
  const faults = new PodFaults();
  const metrics = metricsController(ctx, faults);
  const loop = new ControlLoop(store, [
    { controller: nodeController(ctx, faults) },
    { controller: kubeletController(ctx, faults, new PodLogs(store)) },
    { controller: metrics, periodic: true },
  ]);
  faults.onChange(() => loop.wake());
  loops.push(loop);
  loop.start();
  return { store, faults, metrics, loop, settle: () => loop.settle(2000) };
}

const createPod = (store: ObjectStore, name: string, resources?: Record<string, Record<string, string>>) =>
  store.create(PODS, {
    metadata: { name, namespace: 'default', labels: { app: 'web' } },
    spec: { containers: [{ name: 'app', image: 'web:1', ...(resources ? { resources } : {}) }] },
  });

interface ContainerMetrics {
  name: string;
  usage: { cpu: string; memory: string };
}
const containersOf = (m: KubeObject) => m.containers as ContainerMetrics[];

describe('metrics', () => {
  it('writes PodMetrics for running pods and NodeMetrics per node, in metrics-server units', async () => {
    const h = harness();
    createPod(h.store, 'web-1');
    await h.settle();
    const m = h.store.get(POD_METRICS, 'default', 'web-1');
    expect(m).toMatchObject({
      apiVersion: 'metrics.k8s.io/v1beta1',
      kind: 'PodMetrics',
      metadata: { name: 'web-1', namespace: 'default', labels: { app: 'web' } },
      window: '30s',
    });
    expect(Date.parse(m.timestamp as string)).not.toBeNaN();
    const [c] = containersOf(m);
    expect(c?.name).toBe('app');
    expect(c?.usage.cpu).toMatch(/^\d+n$/);
    expect(c?.usage.memory).toMatch(/^\d+Ki$/);
    expect(h.store.list(NODE_METRICS).items.map((n) => n.metadata.name)).toEqual(['node-1', 'node-2']);
    const node = h.store.get(NODE_METRICS, undefined, 'node-1');
    expect((node.usage as { cpu: string }).cpu).toMatch(/^\d+n$/);

    h.store.delete(PODS, 'default', 'web-1');
    await h.settle();
    expect(h.store.find(POD_METRICS, 'default', 'web-1')).toBeUndefined();
  });

  it('gives the same usage for the same pod name, and refreshes every interval', async () => {
    const a = harness();
    const b = harness();
    createPod(a.store, 'api-7d9f');
    createPod(b.store, 'api-7d9f');
    await Promise.all([a.settle(), b.settle()]);
    const usageA = containersOf(a.store.get(POD_METRICS, 'default', 'api-7d9f'))[0]?.usage;
    const usageB = containersOf(b.store.get(POD_METRICS, 'default', 'api-7d9f'))[0]?.usage;
    const cpu = (u?: { cpu: string }) => Number(u?.cpu.slice(0, -1));
    expect(Math.abs(cpu(usageA) - cpu(usageB)) / cpu(usageA)).toBeLessThan(0.02);
    const rv = a.store.get(POD_METRICS, 'default', 'api-7d9f').metadata.resourceVersion;
    await new Promise((r) => setTimeout(r, 150));
    expect(a.store.get(POD_METRICS, 'default', 'api-7d9f').metadata.resourceVersion).not.toBe(rv);
  });

  it('follows setUsage at once', async () => {
    const h = harness(60_000);
    createPod(h.store, 'web-1');
    await h.settle();
    h.metrics.setUsage('default', 'web-1', 'app', { cpu: '250m', memory: '300Mi' });
    h.loop.wake();
    await h.settle();
    expect(containersOf(h.store.get(POD_METRICS, 'default', 'web-1'))).toEqual([
      { name: 'app', usage: { cpu: '250000000n', memory: '307200Ki' } },
    ]);
    let error: unknown;
    try {
      h.metrics.setUsage('default', 'web-1', 'app', { cpu: 'lots', memory: '1Gi' });
    } catch (e) {
      error = e;
    }
    expect(isInputValidationError(error)).toBe(true);
    expect((error as Error).message).toContain('cpu');
  });

  it('shows an oomKill pod near its memory limit, and others below it', async () => {
    const h = harness();
    h.faults.inject({ kind: 'oomKill', selector: 'app=web' });
    const resources = { requests: { memory: '256Mi', cpu: '100m' }, limits: { memory: '512Mi' } };
    createPod(h.store, 'web-1', resources);
    await h.settle();
    const memory = quantityOrUndefined(
      containersOf(h.store.get(POD_METRICS, 'default', 'web-1'))[0]?.usage.memory,
    );
    expect(memory).toBeGreaterThanOrEqual(0.95 * 512 * 2 ** 20);
    expect(memory).toBeLessThanOrEqual(512 * 2 ** 20);
    h.faults.clearAll();
    await new Promise((r) => setTimeout(r, 150));
    await h.settle();
    const after = quantityOrUndefined(
      containersOf(h.store.get(POD_METRICS, 'default', 'web-1'))[0]?.usage.memory,
    );
    expect(after).toBeLessThan(0.9 * 512 * 2 ** 20 + 1024);
  });

  it('parses Kubernetes quantities', () => {
    expect(quantityOrUndefined('250m')).toBe(0.25);
    expect(quantityOrUndefined('1Gi')).toBe(2 ** 30);
    expect(quantityOrUndefined('1.5')).toBe(1.5);
    expect(quantityOrUndefined('1e3')).toBe(1000);
    expect(quantityOrUndefined('12345n')).toBeCloseTo(0.000012345);
    expect(quantityOrUndefined('2E')).toBe(2e18);
    expect(quantityOrUndefined('1 Gi')).toBeUndefined();
    expect(quantityOrUndefined('Gi')).toBeUndefined();
  });
});
