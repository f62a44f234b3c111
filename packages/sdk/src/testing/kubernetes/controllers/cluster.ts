import { toMillis } from '../../../core/duration';
import { InputValidationError } from '../../../core/errors';
import type { ObjectStore } from '../object-store';
import { PODS } from '../resources';
import { notFound } from '../status-error';
import { ControlLoop } from './control-loop';
import { ClusterOptions, type ClusterOptionsInput, type ControllerContext } from './controller';
import { deploymentController } from './deployment-controller';
import { storeEventRecorder } from './events';
import { kubeletController } from './kubelet';
import { type LogLine, PodLogs, resolveContainer } from './logs';
import { type MetricsController, metricsController, type Usage } from './metrics';
import { nodeController } from './nodes';
import { PodFaults } from './pod-faults';
import { replicaSetController } from './replicaset-controller';
import { statefulSetController } from './statefulset-controller';

/**
 * Everything that makes a store behave like a cluster: the node lifecycle, the workload controllers, the
 * scheduler and kubelets, and metrics-server, run by one loop; plus the faults that break pods on purpose,
 * the containers' logs, and pinned resource usage. The HTTP API server serves the store and asks this
 * for logs.
 */
export class ClusterControllers {
  /** Faults to break pods and nodes with; changing them wakes the loop. */
  readonly faults: PodFaults;
  readonly #store: ObjectStore;
  readonly #logs: PodLogs;
  readonly #metrics: MetricsController;
  readonly #loop: ControlLoop;

  /** @throws InputValidationError naming the option that is wrong. */
  constructor(store: ObjectStore, options: ClusterOptionsInput = {}) {
    const parsed = ClusterOptions.safeParse(options);
    if (!parsed.success) {
      throw new InputValidationError(
        'cluster options',
        parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      );
    }
    const o = parsed.data;
    const ctx: ControllerContext = {
      store,
      events: storeEventRecorder(store),
      options: {
        nodes: o.nodes,
        startDelayMs: toMillis(o.startDelay),
        readinessDelayMs: toMillis(o.readinessDelay),
        crashBackoffMs: toMillis(o.crashBackoff),
        metricsIntervalMs: toMillis(o.metricsInterval),
      },
    };
    this.#store = store;
    this.faults = new PodFaults();
    this.#logs = new PodLogs(store);
    this.#metrics = metricsController(ctx, this.faults);
    // The order of a pass: workloads create pods before the kubelet runs them and metrics measure them.
    this.#loop = new ControlLoop(store, [
      { controller: nodeController(ctx, this.faults) },
      { controller: deploymentController(ctx) },
      { controller: replicaSetController(ctx) },
      { controller: statefulSetController(ctx) },
      { controller: kubeletController(ctx, this.faults, this.#logs) },
      { controller: this.#metrics, periodic: true },
    ]);
    this.faults.onChange(() => this.#loop.wake());
  }

  /** Creates the nodes, subscribes to the store and runs every controller once. Calling it again does nothing. */
  start(): void {
    this.#loop.start();
  }

  /** Stops the loop; no timer is left behind. Pending `settle()` calls reject. */
  async stop(): Promise<void> {
    this.#loop.stop();
  }

  /**
   * Resolves once no pass is pending and no controller asked to run within the next ~50 ms (periodic
   * metrics refreshes do not count). Rejects with a `TIMEOUT` RunbookError after `timeoutMs` (default 5000).
   */
  settle(options: { timeoutMs?: number } = {}): Promise<void> {
    return this.#loop.settle(options.timeoutMs ?? 5000);
  }

  /** A container's log lines, with the API server's 404/400 `StatusError`s (see `GET …/pods/{name}/log`). */
  logs(namespace: string, pod: string, options: { container?: string; previous?: boolean }): LogLine[] {
    return this.#logs.read(namespace, pod, options);
  }

  /** Adds lines (split on newlines) to the current instance of a container's log, as the application would. */
  appendLog(namespace: string, pod: string, container: string, text: string): void {
    const obj = this.#store.find(PODS, namespace, pod);
    if (!obj) throw notFound('pods', '', pod);
    this.#logs.append(namespace, pod, resolveContainer(obj, container), text);
  }

  /** Pins a container's CPU and memory usage (Kubernetes quantities) in its PodMetrics from the next sync on. */
  setUsage(namespace: string, pod: string, container: string, usage: Usage): void {
    this.#metrics.setUsage(namespace, pod, container, usage);
    this.#loop.wake();
  }
}
