import type { KubeObject, KubeObjectInput } from '../object-store';
import { ObjectStore } from '../object-store';
import { EVENTS, NAMESPACES, PODS } from '../resources';
import type { Controller, ControllerContext } from './controller';
import { deploymentController } from './deployment-controller';
import { storeEventRecorder } from './events';
import { isPodReady } from './pod-readiness';
import { timestamp } from './reconcile';
import { replicaSetController } from './replicaset-controller';
import { statefulSetController } from './statefulset-controller';

/**
 * Test-only: the workload controllers on a fresh store, driven step by step with a virtual clock, and a
 * stand-in for the kubelet that makes pods Running and Ready when a test says so.
 */
export class WorkloadLab {
  readonly store = new ObjectStore();
  readonly ctx: ControllerContext;
  readonly deployments: Controller;
  readonly replicaSets: Controller;
  readonly statefulSets: Controller;
  /** The virtual clock every sync and readiness transition uses. */
  now = Date.parse('2030-01-01T00:00:00Z');

  constructor() {
    this.store.create(NAMESPACES, { metadata: { name: 'default' } });
    this.ctx = {
      store: this.store,
      events: storeEventRecorder(this.store),
      options: {
        nodes: ['node-1'],
        startDelayMs: 0,
        readinessDelayMs: 0,
        crashBackoffMs: 200,
        metricsIntervalMs: 1000,
      },
    };
    this.deployments = deploymentController(this.ctx);
    this.replicaSets = replicaSetController(this.ctx);
    this.statefulSets = statefulSetController(this.ctx);
  }

  /** Every controller once, in the cluster's order, with `check` after each; returns the earliest wake-up. */
  step(check?: (stage: string) => void): number | undefined {
    let wake: number | undefined;
    for (const c of [this.deployments, this.replicaSets, this.statefulSets]) {
      const w = c.sync(this.now);
      if (w !== undefined) wake = wake === undefined ? w : Math.min(wake, w);
      check?.(c.name);
    }
    return wake;
  }

  /**
   * Steps until a round changes nothing. After each round `ready` pods (oldest first) become Running and
   * Ready: a number, `'all'`, or `'none'`. The clock moves `tickMs` per round.
   */
  settle(
    options: {
      ready?: number | 'all' | 'none';
      check?: (stage: string) => void;
      tickMs?: number;
      maxRounds?: number;
    } = {},
  ): number {
    const { ready = 'all', check, tickMs = 100, maxRounds = 500 } = options;
    for (let round = 1; round <= maxRounds; round++) {
      const before = this.store.resourceVersion;
      this.step(check);
      if (ready !== 'none') this.markReady(ready === 'all' ? Number.POSITIVE_INFINITY : ready);
      check?.('kubelet');
      this.now += tickMs;
      if (this.store.resourceVersion === before) return round;
    }
    throw new Error(`workloads did not settle in ${maxRounds} rounds`);
  }

  /** Makes up to `limit` pods that are not ready yet Running and Ready now, oldest first, and schedules them. */
  markReady(limit = Number.POSITIVE_INFINITY, filter: (pod: KubeObject) => boolean = () => true): void {
    const waiting = this.pods().filter((p) => !isPodReady(p) && filter(p));
    for (const pod of waiting.slice(0, limit)) this.setPodStatus(pod, 'Running', true);
  }

  /** Writes a pod's phase and Ready condition (and a node) the way the kubelet reports them. */
  setPodStatus(pod: KubeObject, phase: string, ready: boolean): KubeObject {
    const at = timestamp(this.now);
    const scheduled = { ...pod, spec: { ...(pod.spec as object), nodeName: 'node-1' } };
    const stored = (pod.spec as { nodeName?: string }).nodeName ? pod : this.store.update(PODS, scheduled);
    return this.store.update(
      PODS,
      {
        ...stored,
        status: {
          phase,
          conditions: [
            { type: 'PodScheduled', status: 'True', lastTransitionTime: at },
            { type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: at },
          ],
        },
      },
      { subresource: 'status' },
    );
  }

  /** Pods in `default`, optionally only those with all of `labels`, oldest first (then by name). */
  pods(labels: Record<string, string> = {}): KubeObject[] {
    return this.store
      .list(PODS, 'default')
      .items.filter((p) => Object.entries(labels).every(([k, v]) => p.metadata.labels?.[k] === v))
      .sort(
        (a, b) =>
          a.metadata.creationTimestamp.localeCompare(b.metadata.creationTimestamp) ||
          Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion),
      );
  }

  /** `reason: message` of every event about the object named `name` (in no particular order: events have random names). */
  events(name: string): string[] {
    return this.store
      .list(EVENTS, 'default')
      .items.filter((e) => (e.involvedObject as { name: string }).name === name)
      .map((e) => `${e.reason}: ${e.message}`);
  }

  /** Reads, changes and writes back an object (a client's read-modify-write). */
  edit(type: Parameters<ObjectStore['get']>[0], name: string, change: (obj: KubeObject) => void): KubeObject {
    const obj = this.store.get(type, 'default', name);
    change(obj);
    return this.store.update(type, obj as KubeObjectInput);
  }
}
