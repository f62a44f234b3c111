import { z } from 'zod';
import { Duration } from '../../../core/duration';
import type { ObjectStore } from '../object-store';
import type { EventRecorder } from './events';

/** How the simulated cluster behaves. Times are compressed so that tests run in milliseconds. */
export const ClusterOptions = z.object({
  /** Names of the nodes the cluster has; created at start when absent. @default ["node-1","node-2","node-3"] */
  nodes: z.array(z.string().min(1)).min(1).default(['node-1', 'node-2', 'node-3']),
  /** From a pod's creation to its containers running (scheduling and image pull). @default 0 */
  startDelay: Duration.default(0),
  /** From a container running to the pod being Ready (the readiness probe's first success). @default 0 */
  readinessDelay: Duration.default(0),
  /** The simulator's CrashLoopBackOff between restarts (a real kubelet waits 10 s doubling to 5 min). @default "200ms" */
  crashBackoff: Duration.default('200ms'),
  /** How often PodMetrics and NodeMetrics are refreshed. @default "1s" */
  metricsInterval: Duration.default('1s'),
});
export type ClusterOptions = z.output<typeof ClusterOptions>;
export type ClusterOptionsInput = z.input<typeof ClusterOptions>;

/** What every controller is given. */
export interface ControllerContext {
  store: ObjectStore;
  events: EventRecorder;
  /** Options with durations already in milliseconds. */
  options: {
    nodes: string[];
    startDelayMs: number;
    readinessDelayMs: number;
    crashBackoffMs: number;
    metricsIntervalMs: number;
  };
}

/**
 * A reconcile loop over the store, like one of kube-controller-manager's or the kubelet's. The cluster
 * calls `sync` after every stored change (batched) and when the time it asked for has come.
 */
export interface Controller {
  name: string;
  /**
   * Moves the world one step towards the desired state, writing through the store.
   * Returns the milliseconds until it next needs to run for time-based work (a readiness delay, a
   * crash back-off, a progress deadline), or `undefined` when only a change can give it work.
   */
  sync(now: number): number | undefined;
}
