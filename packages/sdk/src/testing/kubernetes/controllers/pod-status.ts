import type { KubeObject } from '../object-store';
import { stableHex } from './stable-hash';

/**
 * Where one container of a pod is in its life, as the simulated kubelet tracks it. `pullError` and `exited`
 * are shown in one status write and then move on (to `pullBackOff` / `crashBackOff`), so that watchers see
 * `ErrImagePull` and `Error` before the back-off, as they would on a real node.
 */
export type ContainerPhase = 'creating' | 'pullError' | 'pullBackOff' | 'running' | 'exited' | 'crashBackOff';

/** One finished run of a container. */
export interface Termination {
  reason: string;
  exitCode: number;
  message?: string;
  startedAt: number;
  finishedAt: number;
  containerID: string;
}

/** The kubelet's memory of one container (the container runtime's state, which the API does not hold). */
export interface ContainerRun {
  name: string;
  image: string;
  phase: ContainerPhase;
  /** Whether the current phase has been written to the pod's status yet. */
  shown: boolean;
  restartCount: number;
  /** Runs started so far; names the container id of each run. */
  instance: number;
  containerID?: string;
  startedAt?: number;
  ready: boolean;
  /** When the current back-off (crash or image pull) ends. */
  nextAt?: number;
  /** The latest termination, and the one before it (shown as `lastState` while `exited`). */
  lastTerminated?: Termination;
  priorTerminated?: Termination;
  unhealthyReported: boolean;
}

/** The kubelet's memory of one pod. */
export interface PodRun {
  uid: string;
  namespace: string;
  name: string;
  /** When a kubelet first took the pod on (its sandbox and IP exist from then). */
  acceptedAt?: number;
  podIP?: string;
  containers: Map<string, ContainerRun>;
  unschedulableReported: boolean;
  nodeDownReported: boolean;
}

export interface ContainerSpec {
  name: string;
  image?: string;
  ports?: { containerPort?: number }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  terminationMessagePolicy?: string;
}

export interface PodSpec {
  nodeName?: string;
  nodeSelector?: Record<string, string>;
  restartPolicy?: string;
  containers?: ContainerSpec[];
}

export interface PodCondition {
  type: string;
  status: 'True' | 'False';
  reason?: string;
  message?: string;
  lastProbeTime: null;
  lastTransitionTime: string;
}

/** What the status depends on besides the pod and its run. */
export interface StatusView {
  now: number;
  crashBackoffMs: number;
  hostIP?: string;
  nodeReady: boolean;
  /** Why the scheduler could not place the pod, when it could not. */
  unschedulable?: string;
}

/** Times as the API server writes them: RFC 3339, whole seconds, UTC. */
export function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

export function specOf(pod: KubeObject): PodSpec {
  return (pod.spec ?? {}) as PodSpec;
}

/** `nginx:1.27` → `docker.io/library/nginx:1.27`, the reference the container runtime reports. */
export function qualifiedImage(image: string): string {
  const first = image.split('/')[0] ?? '';
  const hasRegistry =
    image.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (hasRegistry) return image;
  return image.includes('/') ? `docker.io/${image}` : `docker.io/library/${image}`;
}

/** The image pull error a registry answers for an image that does not exist. */
export function pullErrorMessage(image: string): string {
  const ref = qualifiedImage(image);
  return `rpc error: code = NotFound desc = failed to pull and unpack image "${ref}": failed to resolve reference "${ref}": ${ref}: not found`;
}

/** Whether a container that exited with `exitCode` is started again under the pod's restart policy. */
export function restarts(spec: PodSpec, exitCode: number): boolean {
  const policy = spec.restartPolicy ?? 'Always';
  return policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
}

/**
 * The pod's `status` as the kubelet (and, for `Ready` on a lost node, the node controller) would write it.
 * Condition transition times are kept from `previous` when a condition did not change.
 */
export function podStatus(pod: KubeObject, run: PodRun, view: StatusView): Record<string, unknown> {
  const spec = specOf(pod);
  const previous = (pod.status ?? {}) as { conditions?: PodCondition[] };
  const qosClass = qosClassOf(spec);
  const condition = (type: string, ok: boolean, reason?: string, message?: string): PodCondition => {
    const status = ok ? 'True' : 'False';
    const before = previous.conditions?.find((c) => c.type === type);
    return {
      type,
      status,
      ...(reason ? { reason } : {}),
      ...(message ? { message } : {}),
      lastProbeTime: null,
      lastTransitionTime: before?.status === status ? before.lastTransitionTime : rfc3339(view.now),
    };
  };
  if (view.unschedulable !== undefined || run.acceptedAt === undefined) {
    return {
      phase: 'Pending',
      conditions: [
        condition('PodScheduled', false, 'Unschedulable', view.unschedulable ?? 'waiting for the node'),
      ],
      qosClass,
    };
  }
  const containers = (spec.containers ?? []).map((c) => run.containers.get(c.name)).filter((c) => !!c);
  const unready = containers.filter((c) => !c.ready).map((c) => c.name);
  const containersReady = unready.length === 0;
  const notReadyMessage = `containers with unready status: [${unready.join(' ')}]`;
  const ready = containersReady && view.nodeReady;
  const readyReason = !view.nodeReady ? 'NodeNotReady' : containersReady ? undefined : 'ContainersNotReady';
  const readyMessage = !view.nodeReady
    ? `Node ${spec.nodeName} is not ready`
    : containersReady
      ? undefined
      : notReadyMessage;
  const ip = run.podIP;
  return {
    phase: phaseOf(spec, containers),
    conditions: [
      condition('PodReadyToStartContainers', true),
      condition('Initialized', true),
      condition('Ready', ready, readyReason, readyMessage),
      condition(
        'ContainersReady',
        containersReady,
        containersReady ? undefined : 'ContainersNotReady',
        containersReady ? undefined : notReadyMessage,
      ),
      condition('PodScheduled', true),
    ],
    ...(view.hostIP ? { hostIP: view.hostIP, hostIPs: [{ ip: view.hostIP }] } : {}),
    ...(ip ? { podIP: ip, podIPs: [{ ip }] } : {}),
    startTime: rfc3339(run.acceptedAt),
    containerStatuses: containers.map((c) => containerStatus(pod, c, view)),
    qosClass,
  };
}

function phaseOf(spec: PodSpec, containers: ContainerRun[]): string {
  if (containers.some((c) => c.instance === 0)) return 'Pending';
  const finished = containers.filter(
    (c) => c.phase === 'exited' && c.lastTerminated && !restarts(spec, c.lastTerminated.exitCode),
  );
  if (containers.length > 0 && finished.length === containers.length) {
    return finished.some((c) => c.lastTerminated?.exitCode !== 0) ? 'Failed' : 'Succeeded';
  }
  return 'Running';
}

function containerStatus(pod: KubeObject, c: ContainerRun, view: StatusView): Record<string, unknown> {
  const terminated = (t: Termination) => ({
    exitCode: t.exitCode,
    reason: t.reason,
    ...(t.message ? { message: t.message } : {}),
    startedAt: rfc3339(t.startedAt),
    finishedAt: rfc3339(t.finishedAt),
    containerID: t.containerID,
  });
  let state: Record<string, unknown>;
  let lastState: Record<string, unknown> = c.lastTerminated
    ? { terminated: terminated(c.lastTerminated) }
    : {};
  switch (c.phase) {
    case 'creating':
      state = { waiting: { reason: 'ContainerCreating' } };
      break;
    case 'pullError':
      state = { waiting: { reason: 'ErrImagePull', message: pullErrorMessage(c.image) } };
      break;
    case 'pullBackOff':
      state = {
        waiting: {
          reason: 'ImagePullBackOff',
          message: `Back-off pulling image "${c.image}": ErrImagePull: ${pullErrorMessage(c.image)}`,
        },
      };
      break;
    case 'running':
      state = { running: { startedAt: rfc3339(c.startedAt ?? view.now) } };
      break;
    case 'exited':
      state = c.lastTerminated ? { terminated: terminated(c.lastTerminated) } : {};
      lastState = c.priorTerminated ? { terminated: terminated(c.priorTerminated) } : {};
      break;
    case 'crashBackOff':
      state = {
        waiting: {
          reason: 'CrashLoopBackOff',
          message: `back-off ${view.crashBackoffMs}ms restarting failed container=${c.name} pod=${pod.metadata.name}`,
        },
      };
      break;
  }
  const hasRun = c.instance > 0;
  return {
    name: c.name,
    image: c.image,
    imageID: hasRun ? imageIdOf(c.image) : '',
    ...(c.containerID ? { containerID: c.containerID } : {}),
    ready: c.ready,
    started: c.phase === 'running',
    restartCount: c.restartCount,
    state,
    lastState,
  };
}

/** The digest-pinned reference the runtime reports once the image is on the node. */
export function imageIdOf(image: string): string {
  const ref = qualifiedImage(image).replace(/(@.*|:[^/:]+)$/, '');
  return `${ref}@sha256:${stableHex(ref, 64)}`;
}

/** The pod's QoS class, computed from its containers' requests and limits like the API server does. */
function qosClassOf(spec: PodSpec): 'Guaranteed' | 'Burstable' | 'BestEffort' {
  const containers = spec.containers ?? [];
  const any = containers.some(
    (c) =>
      Object.keys(c.resources?.requests ?? {}).length + Object.keys(c.resources?.limits ?? {}).length > 0,
  );
  if (!any) return 'BestEffort';
  const guaranteed = containers.every((c) =>
    ['cpu', 'memory'].every((r) => {
      const limit = c.resources?.limits?.[r];
      const request = c.resources?.requests?.[r] ?? limit;
      return limit !== undefined && request === limit;
    }),
  );
  return guaranteed ? 'Guaranteed' : 'Burstable';
}
