import {
  DEPLOYMENTS,
  type KubeObject,
  type ObjectStore,
  PODS,
  STATEFULSETS,
} from '@aiwebtest/runbooks/testing';
import { AGENTS, type AgentName } from './manifests';

/**
 * What the lab reads off its simulated cluster: pure functions over the store, so the exporter and
 * `aiwebtest-lab health` judge the platform the way `kubectl get` would show it.
 */

/** One workload as `kubectl get deploy/sts` and `kubectl get pods -l …` show it. */
export interface WorkloadStatus {
  name: string;
  kind: 'Deployment' | 'StatefulSet';
  /** `spec.replicas`. */
  desired: number;
  /** Pods of the workload (not being deleted) whose Ready condition is True. */
  ready: number;
  /** Pods of the workload that are not being deleted. */
  pods: number;
  /** Names of its pods with a container waiting in `CrashLoopBackOff`. */
  crashLooping: string[];
}

/** An agent's health: `healthy` is what `agent_health{agent}` reports as 1. */
export interface AgentHealth {
  agent: AgentName;
  desired: number;
  ready: number;
  healthy: boolean;
}

interface PodView {
  metadata: KubeObject['metadata'];
  status?: {
    conditions?: { type: string; status: string }[];
    containerStatuses?: { state?: { waiting?: { reason?: string } } }[];
  };
}

interface WorkloadView {
  spec?: { replicas?: number; selector?: { matchLabels?: Record<string, string> } };
}

const isReady = (pod: PodView): boolean =>
  pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

const isCrashLooping = (pod: PodView): boolean =>
  pod.status?.containerStatuses?.some((c) => c.state?.waiting?.reason === 'CrashLoopBackOff') ?? false;

/** The pods a selector of `matchLabels` selects in `namespace`, without those being deleted. */
export function podsMatching(
  store: ObjectStore,
  namespace: string,
  matchLabels: Record<string, string>,
): KubeObject[] {
  return store
    .list(PODS, namespace)
    .items.filter(
      (p) =>
        p.metadata.deletionTimestamp === undefined &&
        Object.entries(matchLabels).every(([k, v]) => p.metadata.labels?.[k] === v),
    );
}

/** The Ready pods of `matchLabels` in `namespace`. */
export function readyPods(
  store: ObjectStore,
  namespace: string,
  matchLabels: Record<string, string>,
): KubeObject[] {
  return podsMatching(store, namespace, matchLabels).filter((p) => isReady(p as PodView));
}

/**
 * A Deployment's or StatefulSet's desired and ready pods, counted from the pods themselves (the
 * workload's status lags a controller pass behind). `undefined` when there is no such workload.
 */
export function workloadStatus(
  store: ObjectStore,
  namespace: string,
  name: string,
): WorkloadStatus | undefined {
  const deployment = store.list(DEPLOYMENTS, namespace).items.find((d) => d.metadata.name === name);
  const statefulSet = deployment
    ? undefined
    : store.list(STATEFULSETS, namespace).items.find((s) => s.metadata.name === name);
  const workload = deployment ?? statefulSet;
  if (!workload) return undefined;
  const spec = (workload as WorkloadView).spec;
  const pods = podsMatching(store, namespace, spec?.selector?.matchLabels ?? {}) as PodView[];
  return {
    name,
    kind: deployment ? 'Deployment' : 'StatefulSet',
    desired: spec?.replicas ?? 1,
    ready: pods.filter(isReady).length,
    pods: pods.length,
    crashLooping: pods.filter(isCrashLooping).map((p) => p.metadata.name),
  };
}

/**
 * Every agent's health: healthy when at least one pod is ready, as many pods as desired are ready, and no pod
 * is crash-looping. An agent whose deployment is missing is unhealthy with 0/0.
 */
export function agentHealth(store: ObjectStore, namespace: string): AgentHealth[] {
  return AGENTS.map((agent) => {
    const status = workloadStatus(store, namespace, agent);
    const desired = status?.desired ?? 0;
    const ready = status?.ready ?? 0;
    // `>=` rather than `===`: a rolling restart surges one pod above `desired`, and the agent is no less
    // healthy for it; an alert would otherwise fire on every restart the runbooks make.
    const healthy =
      status !== undefined && ready >= 1 && ready >= desired && status.crashLooping.length === 0;
    return { agent, desired, ready, healthy };
  });
}
