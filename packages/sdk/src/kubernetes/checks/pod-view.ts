import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { formatAge, isoOf, timeOf } from './age';
import { clip } from './wording';

/** What one container of a pod is doing, as `kubectl describe pod` shows it (never its env or command). */
export type ContainerView = {
  name: string;
  /** An init container (runs before the others). */
  init: boolean;
  ready: boolean;
  restarts: number;
  state: 'waiting' | 'running' | 'terminated' | 'unknown';
  /** The waiting or terminated reason: `CrashLoopBackOff`, `ImagePullBackOff`, `OOMKilled`, `Error`, … */
  reason: string | null;
  message: string | null;
  exitCode: number | null;
  /** How the previous run of the container ended, when it has restarted. */
  lastTerminated: { reason: string | null; exitCode: number | null; finishedAt: string | null } | null;
};

/** One pod, as a row of `kubectl get pods -o wide` plus its containers. */
export type PodView = {
  name: string;
  phase: string;
  /** The STATUS column of `kubectl get pods`: `Running`, `CrashLoopBackOff`, `Init:0/1`, `Terminating`, … */
  status: string;
  /** The pod's `Ready` condition is `True`. */
  ready: boolean;
  readyContainers: number;
  totalContainers: number;
  /** Restarts of all its containers. */
  restarts: number;
  /** When a container last ended and was restarted (RFC 3339), if ever. */
  lastRestartAt: string | null;
  node: string | null;
  createdAt: string | null;
  /** Being deleted. */
  terminating: boolean;
  /** `Succeeded` or `Failed`: it will not run again (a finished job, an evicted pod). */
  finished: boolean;
  containers: ContainerView[];
};

/** Reasons a container cannot start until someone changes something (image, config, registry credentials). */
export const IMAGE_PULL_REASONS = new Set([
  'ImagePullBackOff',
  'ErrImagePull',
  'ErrImageNeverPull',
  'InvalidImageName',
  'RegistryUnavailable',
]);
export const CONFIG_REASONS = new Set([
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
  'PreCreateHookError',
  'PostStartHookError',
]);

/** Reads a pod into a {@link PodView}. */
export function viewPod(pod: V1Pod): PodView {
  const status = pod.status ?? {};
  const containers = [
    ...(status.initContainerStatuses ?? []).map((c) => viewContainer(c, true)),
    ...(status.containerStatuses ?? []).map((c) => viewContainer(c, false)),
  ];
  const main = containers.filter((c) => !c.init);
  const finishedTimes = containers
    .map((c) => timeOf(c.lastTerminated?.finishedAt))
    .filter((t): t is number => t !== undefined);
  const phase = status.phase ?? 'Unknown';
  return {
    name: pod.metadata?.name ?? '',
    phase,
    status: kubectlStatus(pod),
    ready: isPodReady(pod),
    readyContainers: main.filter((c) => c.ready).length,
    totalContainers: pod.spec?.containers?.length ?? main.length,
    restarts: containers.reduce((sum, c) => sum + c.restarts, 0),
    lastRestartAt: finishedTimes.length ? new Date(Math.max(...finishedTimes)).toISOString() : null,
    node: pod.spec?.nodeName ?? null,
    createdAt: isoOf(pod.metadata?.creationTimestamp),
    terminating: pod.metadata?.deletionTimestamp != null,
    finished: phase === 'Succeeded' || phase === 'Failed',
    containers,
  };
}

/** The pod's `Ready` condition is `True` (what `kubectl wait --for=condition=ready` waits for). */
export function isPodReady(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

function viewContainer(c: V1ContainerStatus, init: boolean): ContainerView {
  const { waiting, running, terminated } = c.state ?? {};
  const last = c.lastState?.terminated;
  return {
    name: c.name,
    init,
    ready: c.ready === true,
    restarts: c.restartCount ?? 0,
    state: waiting ? 'waiting' : running ? 'running' : terminated ? 'terminated' : 'unknown',
    reason: waiting?.reason ?? terminated?.reason ?? null,
    message: clipOrNull(waiting?.message ?? terminated?.message),
    exitCode: terminated?.exitCode ?? null,
    lastTerminated: last
      ? { reason: last.reason ?? null, exitCode: last.exitCode ?? null, finishedAt: isoOf(last.finishedAt) }
      : null,
  };
}

function clipOrNull(text: string | undefined): string | null {
  return text ? clip(text, 300) : null;
}

/** The STATUS column, computed the way `kubectl get pods` does. */
function kubectlStatus(pod: V1Pod): string {
  const status = pod.status ?? {};
  let reason = status.reason || status.phase || 'Unknown';
  let initializing = false;
  const initStatuses = status.initContainerStatuses ?? [];
  for (const [i, c] of initStatuses.entries()) {
    const { terminated, waiting } = c.state ?? {};
    if (terminated && terminated.exitCode === 0) continue;
    // A sidecar (restartable init container) that has started does not hold the pod in Init.
    if (c.started && isSidecar(pod, c.name)) continue;
    initializing = true;
    if (terminated) {
      reason = terminated.reason
        ? `Init:${terminated.reason}`
        : terminated.signal
          ? `Init:Signal:${terminated.signal}`
          : `Init:ExitCode:${terminated.exitCode}`;
    } else if (waiting?.reason && waiting.reason !== 'PodInitializing') {
      reason = `Init:${waiting.reason}`;
    } else {
      reason = `Init:${i}/${pod.spec?.initContainers?.length ?? initStatuses.length}`;
    }
    break;
  }
  const initialized = status.conditions?.some((c) => c.type === 'Initialized' && c.status === 'True');
  if (!initializing || initialized) {
    let hasRunning = false;
    const statuses = status.containerStatuses ?? [];
    for (let i = statuses.length - 1; i >= 0; i--) {
      const c = statuses[i];
      if (!c) continue;
      const { waiting, running, terminated } = c.state ?? {};
      if (waiting?.reason) reason = waiting.reason;
      else if (terminated?.reason) reason = terminated.reason;
      else if (terminated) {
        reason = terminated.signal ? `Signal:${terminated.signal}` : `ExitCode:${terminated.exitCode}`;
      } else if (c.ready && running) hasRunning = true;
    }
    if (reason === 'Completed' && hasRunning) reason = isPodReady(pod) ? 'Running' : 'NotReady';
  }
  if (pod.metadata?.deletionTimestamp) reason = status.reason === 'NodeLost' ? 'Unknown' : 'Terminating';
  return reason;
}

function isSidecar(pod: V1Pod, name: string): boolean {
  return pod.spec?.initContainers?.some((c) => c.name === name && c.restartPolicy === 'Always') ?? false;
}

/** The RESTARTS column: `5 (2m ago)`, or `0`. */
export function restartsColumn(view: PodView, now: number): string {
  return view.restarts > 0 && view.lastRestartAt
    ? `${view.restarts} (${formatAge(view.lastRestartAt, now)} ago)`
    : String(view.restarts);
}
