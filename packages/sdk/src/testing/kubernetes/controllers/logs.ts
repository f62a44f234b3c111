import type { KubeObject, ObjectStore } from '../object-store';
import { PODS } from '../resources';
import { badRequest, notFound } from '../status-error';

/** One line of a container's output. */
export interface LogLine {
  time: Date;
  text: string;
}

export interface LogReadOptions {
  /** Required when the pod has more than one container. */
  container?: string;
  /** The previous (terminated) instance of the container, as after a restart. */
  previous?: boolean;
}

/** What a container keeps of its output, per instance, as the container runtime's log files do. */
const MAX_LINES = 2000;

interface Instance {
  /** The runtime's id for this run of the container; absent for lines written before the kubelet started it. */
  containerID?: string;
  lines: LogLine[];
}

interface ContainerStatusView {
  name: string;
  containerID?: string;
  state?: { waiting?: { reason?: string }; running?: unknown; terminated?: { containerID?: string } };
  lastState?: { terminated?: { containerID?: string } };
}

/**
 * Container output of every pod, bounded to the last {@link MAX_LINES} lines of each container instance.
 * Only the current and the previous instance are kept, which is all `kubectl logs [--previous]` can reach.
 * Reads answer with the API server's errors, chosen from the pod's spec and status like the kubelet does.
 */
export class PodLogs {
  readonly #pods = new Map<string, Map<string, Instance[]>>();

  constructor(readonly store: ObjectStore) {}

  /** Appends text (split on newlines) to the current instance of a container. */
  append(namespace: string, pod: string, container: string, text: string, time = new Date()): void {
    const instances = this.#instances(namespace, pod, container);
    let current = instances.at(-1);
    if (!current) {
      current = { lines: [] };
      instances.push(current);
    }
    for (const line of text.replace(/\r?\n$/, '').split(/\r?\n/)) current.lines.push({ time, text: line });
    if (current.lines.length > MAX_LINES) current.lines.splice(0, current.lines.length - MAX_LINES);
  }

  /**
   * A new instance of the container starts: its output goes to a fresh log and the last one becomes the
   * previous. Lines appended before the first start (by a test, say) are adopted by it instead.
   */
  startContainer(namespace: string, pod: string, container: string, containerID: string): void {
    const instances = this.#instances(namespace, pod, container);
    const last = instances.at(-1);
    if (last && last.containerID === undefined) {
      last.containerID = containerID;
      return;
    }
    instances.push({ containerID, lines: [] });
    if (instances.length > 2) instances.splice(0, instances.length - 2);
  }

  /** Drops everything kept for a pod (it was deleted; a new pod of the same name starts empty). */
  forget(namespace: string, pod: string): void {
    this.#pods.delete(`${namespace}/${pod}`);
  }

  /**
   * The lines of one container, as `GET …/pods/{name}/log` returns them.
   * @throws StatusError 404 when the pod does not exist, 400 for a missing or unknown container name, a
   *   container that has not started, or `previous` when the container has not terminated before.
   */
  read(namespace: string, pod: string, options: LogReadOptions = {}): LogLine[] {
    const obj = this.store.find(PODS, namespace, pod);
    if (!obj) throw notFound('pods', '', pod);
    const container = resolveContainer(obj, options.container);
    // A pod that has not been scheduled has no kubelet to ask: the API server answers with nothing.
    if (!(obj.spec as { nodeName?: string } | undefined)?.nodeName) return [];
    const status = containerStatuses(obj).find((s) => s.name === container);
    let containerID: string | undefined;
    if (options.previous) {
      containerID = status?.lastState?.terminated?.containerID;
      if (!containerID) {
        throw badRequest(`previous terminated container "${container}" in pod "${pod}" not found`);
      }
    } else if (status?.state?.running || status?.state?.terminated) {
      containerID = status.containerID;
    } else if (status?.lastState?.terminated?.containerID) {
      // Waiting to restart (CrashLoopBackOff): the kubelet serves the container that last ran.
      containerID = status.lastState.terminated.containerID;
    } else {
      const reason = status?.state?.waiting?.reason ?? 'ContainerCreating';
      const why =
        reason === 'ErrImagePull' || reason === 'ImagePullBackOff'
          ? 'trying and failing to pull image'
          : reason;
      throw badRequest(`container "${container}" in pod "${pod}" is waiting to start: ${why}`);
    }
    const instance = this.#pods
      .get(`${namespace}/${pod}`)
      ?.get(container)
      ?.find((i) => i.containerID === containerID);
    if (!instance && options.previous) {
      throw badRequest(`previous terminated container "${container}" in pod "${pod}" not found`);
    }
    return (instance?.lines ?? []).map((l) => ({ time: new Date(l.time), text: l.text }));
  }

  #instances(namespace: string, pod: string, container: string): Instance[] {
    const key = `${namespace}/${pod}`;
    let containers = this.#pods.get(key);
    if (!containers) {
      containers = new Map();
      this.#pods.set(key, containers);
    }
    let instances = containers.get(container);
    if (!instances) {
      instances = [];
      containers.set(container, instances);
    }
    return instances;
  }
}

/** The container a log request means, with the API server's 400s for a missing or unknown name. */
export function resolveContainer(pod: KubeObject, container: string | undefined): string {
  const names = ((pod.spec as { containers?: { name: string }[] } | undefined)?.containers ?? []).map(
    (c) => c.name,
  );
  const name = pod.metadata.name;
  if (container === undefined || container === '') {
    if (names.length === 1) return names[0] as string;
    throw badRequest(
      `a container name must be specified for pod ${name}, choose one of: [${names.join(' ')}]`,
    );
  }
  if (!names.includes(container)) throw badRequest(`container "${container}" is not valid for pod "${name}"`);
  return container;
}

function containerStatuses(pod: KubeObject): ContainerStatusView[] {
  return (pod.status as { containerStatuses?: ContainerStatusView[] } | undefined)?.containerStatuses ?? [];
}
