import { canonicalJson } from '../../../core/json';
import { matchesLabels } from '../label-selector';
import type { KubeObject } from '../object-store';
import { NODES, PODS } from '../resources';
import { StatusError } from '../status-error';
import type { Controller, ControllerContext } from './controller';
import type { PodLogs } from './logs';
import { isNodeReady } from './nodes';
import type { ActivePodFault, PodFaults } from './pod-faults';
import {
  type ContainerPhase,
  type ContainerRun,
  type ContainerSpec,
  imageIdOf,
  type PodRun,
  podStatus,
  pullErrorMessage,
  restarts,
  specOf,
} from './pod-status';
import { stableHash, stableHex } from './stable-hash';

interface NodeView {
  name: string;
  object: KubeObject;
  ready: boolean;
  hostIP?: string;
}

/**
 * The scheduler and every node's kubelet in one controller: binds pods to Ready nodes (round robin), then
 * runs their containers through creation, image pull, start, readiness, crashes and back-off, writing the
 * pod status and events a real kubelet writes. The container runtime's state lives here, in memory, like a
 * node's; the store only holds what the kubelet reports. Faults are looked up on every sync, so they act on
 * running pods as well as new ones, and clearing one lets the pod recover at its next back-off.
 *
 * Not simulated: init containers (pods report `Initialized` at once and `initContainers` never run, so
 * `Init:*` statuses cannot be rehearsed), probes as such (readiness is a delay plus faults), eviction from
 * NotReady nodes.
 */
export function kubeletController(ctx: ControllerContext, faults: PodFaults, logs: PodLogs): Controller {
  return new Kubelet(ctx, faults, logs);
}

class Kubelet implements Controller {
  readonly name = 'kubelet';
  readonly #runs = new Map<string, PodRun>();
  readonly #nextIp = new Map<string, number>();
  #roundRobin = 0;

  constructor(
    readonly ctx: ControllerContext,
    readonly faults: PodFaults,
    readonly logs: PodLogs,
  ) {}

  sync(now: number): number | undefined {
    const pods = this.ctx.store.list(PODS).items;
    const nodes = new Map(this.ctx.store.list(NODES).items.map((n) => [n.metadata.name, nodeView(n)]));
    // Forget deleted pods first, so that a pod re-created under the same name starts with empty logs.
    const live = new Set(pods.map((p) => p.metadata.uid));
    for (const [uid, run] of this.#runs) {
      if (live.has(uid)) continue;
      this.#runs.delete(uid);
      this.logs.forget(run.namespace, run.name);
    }
    let due = Number.POSITIVE_INFINITY;
    for (const pod of pods) {
      if (pod.metadata.deletionTimestamp) continue;
      try {
        due = Math.min(due, this.#syncPod(pod, nodes, now));
      } catch (e) {
        // The pod changed or went away under us (another writer in this pass): the next pass sees it anew.
        if (!(e instanceof StatusError) || (e.code !== 404 && e.code !== 409)) throw e;
      }
    }
    return due === Number.POSITIVE_INFINITY ? undefined : Math.max(0, due - now);
  }

  /** Moves one pod on; returns when it next needs a sync (epoch ms), or +∞. */
  #syncPod(input: KubeObject, nodes: Map<string, NodeView>, now: number): number {
    let pod = input;
    const run = this.#runFor(pod, now);
    let nodeName = specOf(pod).nodeName;
    if (!nodeName) {
      const chosen = this.#schedule(pod, [...nodes.values()]);
      if (typeof chosen === 'string') {
        this.#writeStatus(
          pod,
          podStatus(pod, run, {
            now,
            crashBackoffMs: this.#backoff,
            nodeReady: false,
            unschedulable: chosen,
          }),
        );
        if (!run.unschedulableReported) {
          this.ctx.events.record(pod, 'Warning', 'FailedScheduling', chosen, 'default-scheduler');
          run.unschedulableReported = true;
        }
        return Number.POSITIVE_INFINITY;
      }
      nodeName = chosen.name;
      pod = this.ctx.store.update(PODS, { ...pod, spec: { ...specOf(pod), nodeName } });
      run.unschedulableReported = false;
      this.ctx.events.record(
        pod,
        'Normal',
        'Scheduled',
        `Successfully assigned ${pod.metadata.namespace}/${pod.metadata.name} to ${nodeName}`,
        'default-scheduler',
      );
    }
    const node = nodes.get(nodeName);
    // Bound to a node that does not exist: no kubelet will ever report on it, as in a real cluster.
    if (!node) return Number.POSITIVE_INFINITY;
    let due = Number.POSITIVE_INFINITY;
    if (node.ready) {
      if (run.acceptedAt === undefined) {
        run.acceptedAt = now;
        run.podIP ??= this.#allocateIp(node);
      }
      run.nodeDownReported = false;
      due = this.#advanceContainers(pod, run, now);
    } else if (run.acceptedAt !== undefined && !run.nodeDownReported) {
      // The kubelet is gone, so nothing on the node moves; the node controller only marks the pod not Ready.
      this.ctx.events.record(pod, 'Warning', 'NodeNotReady', 'Node is not ready', 'node-controller');
      run.nodeDownReported = true;
    }
    if (run.acceptedAt === undefined) return due;
    this.#writeStatus(
      pod,
      podStatus(pod, run, { now, crashBackoffMs: this.#backoff, nodeReady: node.ready, hostIP: node.hostIP }),
    );
    for (const c of run.containers.values()) c.shown = true;
    // `pullError` and `exited` are shown once and then move on: ask for the pass that does that.
    const transient = [...run.containers.values()].some((c) => isTransient(c, specOf(pod)));
    return transient ? now : due;
  }

  #advanceContainers(pod: KubeObject, run: PodRun, now: number): number {
    const spec = specOf(pod);
    const podFaults = this.faults.forPod(pod);
    const crash = podFaults.find((f) => f.kind === 'crashLoop' || f.kind === 'oomKill');
    const pullFails = podFaults.some((f) => f.kind === 'imagePullError');
    const probeFails = podFaults.some((f) => f.kind === 'readinessFailure');
    const slowStart = Math.max(0, ...podFaults.filter((f) => f.kind === 'slowStart').map((f) => f.delayMs));
    const startAt = (run.acceptedAt ?? now) + this.ctx.options.startDelayMs + slowStart;
    let due = Number.POSITIVE_INFINITY;
    for (const cs of spec.containers ?? []) {
      const c = this.#containerFor(run, cs);
      // A few steps can happen in one sync (created → started → crashed); `exited` and `pullError` wait to be shown.
      for (let step = 0; step < 4; step++) {
        const next = this.#step(pod, run, cs, c, { now, startAt, crash, pullFails, probeFails });
        if (next === 'moved') continue;
        due = Math.min(due, next);
        break;
      }
    }
    return due;
  }

  /** One transition of a container's state machine: `'moved'`, or when it can next move (epoch ms or +∞). */
  #step(
    pod: KubeObject,
    run: PodRun,
    spec: ContainerSpec,
    c: ContainerRun,
    s: { now: number; startAt: number; crash?: ActivePodFault; pullFails: boolean; probeFails: boolean },
  ): number | 'moved' {
    const { now } = s;
    const never = Number.POSITIVE_INFINITY;
    switch (c.phase) {
      case 'creating':
      case 'pullBackOff': {
        const at = c.phase === 'creating' ? s.startAt : (c.nextAt ?? now);
        if (now < at) return at;
        if (s.pullFails && c.instance === 0) this.#failPull(pod, c, now);
        else this.#start(pod, run, spec, c, now);
        return 'moved';
      }
      case 'pullError':
        if (!c.shown) return never;
        setPhase(c, 'pullBackOff');
        this.ctx.events.record(pod, 'Normal', 'BackOff', `Back-off pulling image "${c.image}"`, 'kubelet');
        this.ctx.events.record(pod, 'Warning', 'Failed', 'Error: ImagePullBackOff', 'kubelet');
        return 'moved';
      case 'running': {
        if (s.crash) {
          this.#exit(run, spec, c, s.crash, now);
          return 'moved';
        }
        const readyAt = (c.startedAt ?? now) + this.ctx.options.readinessDelayMs;
        if (now < readyAt) {
          c.ready = false;
          return readyAt;
        }
        if (s.probeFails && !c.unhealthyReported) {
          this.ctx.events.record(
            pod,
            'Warning',
            'Unhealthy',
            'Readiness probe failed: HTTP probe failed with statuscode: 503',
            'kubelet',
          );
          c.unhealthyReported = true;
        }
        c.ready = !s.probeFails;
        return never;
      }
      case 'exited': {
        const t = c.lastTerminated;
        if (!c.shown || !t || !restarts(specOf(pod), t.exitCode)) return never;
        setPhase(c, 'crashBackOff');
        c.nextAt = now + this.#backoff;
        this.ctx.events.record(
          pod,
          'Warning',
          'BackOff',
          `Back-off restarting failed container ${c.name} in pod ${pod.metadata.name}`,
          'kubelet',
        );
        return 'moved';
      }
      case 'crashBackOff': {
        const at = c.nextAt ?? now;
        if (now < at) return at;
        c.restartCount++;
        this.#start(pod, run, spec, c, now);
        return 'moved';
      }
    }
  }

  #failPull(pod: KubeObject, c: ContainerRun, now: number): void {
    setPhase(c, 'pullError');
    c.nextAt = now + this.#backoff;
    this.ctx.events.record(pod, 'Normal', 'Pulling', `Pulling image "${c.image}"`, 'kubelet');
    this.ctx.events.record(
      pod,
      'Warning',
      'Failed',
      `Failed to pull image "${c.image}": ${pullErrorMessage(c.image)}`,
      'kubelet',
    );
    this.ctx.events.record(pod, 'Warning', 'Failed', 'Error: ErrImagePull', 'kubelet');
  }

  #start(pod: KubeObject, run: PodRun, spec: ContainerSpec, c: ContainerRun, now: number): void {
    const first = c.instance === 0;
    c.instance++;
    c.containerID = `containerd://${stableHex(`${run.uid}/${c.name}/${c.instance}`, 64)}`;
    c.startedAt = now;
    c.ready = false;
    c.unhealthyReported = false;
    setPhase(c, 'running');
    const record = (reason: string, message: string) =>
      this.ctx.events.record(pod, 'Normal', reason, message, 'kubelet');
    if (first) {
      const ms = 400 + (stableHash(c.image) % 2000);
      record('Pulling', `Pulling image "${c.image}"`);
      record(
        'Pulled',
        `Successfully pulled image "${c.image}" in ${ms}ms (${ms}ms including waiting). Image size: ${
          20_000_000 + (stableHash(imageIdOf(c.image)) % 200_000_000)
        } bytes.`,
      );
    } else {
      record('Pulled', `Container image "${c.image}" already present on machine`);
    }
    record('Created', `Created container ${c.name}`);
    record('Started', `Started container ${c.name}`);
    const { namespace, name } = run;
    this.logs.startContainer(namespace, name, c.name, c.containerID);
    const time = new Date(now);
    const port = spec.ports?.[0]?.containerPort ?? 8080;
    this.logs.append(namespace, name, c.name, `INFO Starting ${c.name} (image ${c.image})`, time);
    this.logs.append(namespace, name, c.name, 'INFO Loading configuration from environment', time);
    this.logs.append(namespace, name, c.name, `INFO Listening on 0.0.0.0:${port}`, time);
  }

  #exit(run: PodRun, spec: ContainerSpec, c: ContainerRun, fault: ActivePodFault, now: number): void {
    const oom = fault.kind === 'oomKill';
    const exitCode = fault.exitCode;
    let message: string | undefined;
    if (!oom) {
      // The process's last words; an OOM-killed process gets no chance to write any.
      const line = fault.message ?? `FATAL ${c.name} terminated unexpectedly (exit code ${exitCode})`;
      this.logs.append(run.namespace, run.name, c.name, `ERROR ${line}`, new Date(now));
      if (spec.terminationMessagePolicy === 'FallbackToLogsOnError') message = `ERROR ${line}\n`;
    }
    c.priorTerminated = c.lastTerminated;
    c.lastTerminated = {
      reason: oom ? 'OOMKilled' : exitCode === 0 ? 'Completed' : 'Error',
      exitCode,
      ...(message ? { message } : {}),
      startedAt: c.startedAt ?? now,
      finishedAt: now,
      containerID: c.containerID ?? '',
    };
    c.ready = false;
    setPhase(c, 'exited');
  }

  /** Picks a node for the pod, or says why none fits (the scheduler's FailedScheduling message). */
  #schedule(pod: KubeObject, nodes: NodeView[]): NodeView | string {
    const selector = specOf(pod).nodeSelector;
    const fits: NodeView[] = [];
    let notReady = 0;
    let unschedulable = 0;
    let mismatched = 0;
    for (const n of nodes.sort((a, b) => a.name.localeCompare(b.name))) {
      const spec = (n.object.spec ?? {}) as { unschedulable?: boolean };
      if (!n.ready) notReady++;
      else if (spec.unschedulable) unschedulable++;
      else if (selector && !matchesLabels(selectorOf(selector), n.object.metadata.labels)) mismatched++;
      else fits.push(n);
    }
    if (fits.length > 0) return fits[this.#roundRobin++ % fits.length] as NodeView;
    if (nodes.length === 0) return 'no nodes available to schedule pods';
    const reasons = [
      mismatched && `${mismatched} node(s) didn't match Pod's node affinity/selector`,
      notReady && `${notReady} node(s) had untolerated taint {node.kubernetes.io/unreachable: }`,
      unschedulable && `${unschedulable} node(s) were unschedulable`,
    ].filter(Boolean);
    return `0/${nodes.length} nodes are available: ${reasons.join(', ')}. preemption: 0/${nodes.length} nodes are available: ${nodes.length} Preemption is not helpful for scheduling.`;
  }

  #allocateIp(node: NodeView): string {
    const cidr = ((node.object.spec ?? {}) as { podCIDR?: string }).podCIDR ?? '10.244.255.0/24';
    const prefix = cidr.replace(/\.\d+\/\d+$/, '');
    const n = this.#nextIp.get(node.name) ?? 0;
    this.#nextIp.set(node.name, n + 1);
    return `${prefix}.${(n % 250) + 2}`;
  }

  #runFor(pod: KubeObject, now: number): PodRun {
    const uid = pod.metadata.uid;
    let run = this.#runs.get(uid);
    if (!run) {
      run = adopt(pod, now);
      this.#runs.set(uid, run);
    }
    return run;
  }

  #containerFor(run: PodRun, spec: ContainerSpec): ContainerRun {
    let c = run.containers.get(spec.name);
    if (!c) {
      c = newContainer(spec);
      run.containers.set(spec.name, c);
    }
    return c;
  }

  #writeStatus(pod: KubeObject, status: Record<string, unknown>): void {
    if (canonicalJson(status) === canonicalJson(pod.status ?? null)) return;
    this.ctx.store.update(PODS, { ...pod, status }, { subresource: 'status' });
  }

  get #backoff(): number {
    return this.ctx.options.crashBackoffMs;
  }
}

function setPhase(c: ContainerRun, phase: ContainerPhase): void {
  c.phase = phase;
  c.shown = false;
}

function isTransient(c: ContainerRun, spec: ReturnType<typeof specOf>): boolean {
  if (c.shown) return false;
  if (c.phase === 'pullError') return true;
  return c.phase === 'exited' && !!c.lastTerminated && restarts(spec, c.lastTerminated.exitCode);
}

function newContainer(spec: ContainerSpec): ContainerRun {
  return {
    name: spec.name,
    image: spec.image ?? '',
    phase: 'creating',
    shown: false,
    restartCount: 0,
    instance: 0,
    ready: false,
    unhealthyReported: false,
  };
}

interface ReportedContainer {
  name: string;
  containerID?: string;
  restartCount?: number;
  state?: { running?: { startedAt?: string } };
}

/**
 * The kubelet's memory for a pod it has not seen: empty, or (when a new simulator opens a store whose pods
 * already run) taken from the reported status, so restarting the simulator does not restart every container.
 */
function adopt(pod: KubeObject, now: number): PodRun {
  const run: PodRun = {
    uid: pod.metadata.uid,
    namespace: pod.metadata.namespace ?? 'default',
    name: pod.metadata.name,
    containers: new Map(),
    unschedulableReported: false,
    nodeDownReported: false,
  };
  const status = (pod.status ?? {}) as {
    startTime?: string;
    podIP?: string;
    containerStatuses?: ReportedContainer[];
  };
  if (!status.startTime || !specOf(pod).nodeName) return run;
  run.acceptedAt = Date.parse(status.startTime) || now;
  if (status.podIP) run.podIP = status.podIP;
  for (const spec of specOf(pod).containers ?? []) {
    const reported = status.containerStatuses?.find((s) => s.name === spec.name);
    const c = newContainer(spec);
    if (reported?.state?.running && reported.containerID) {
      c.phase = 'running';
      c.shown = true;
      c.instance = (reported.restartCount ?? 0) + 1;
      c.restartCount = reported.restartCount ?? 0;
      c.containerID = reported.containerID;
      c.startedAt = Date.parse(reported.state.running.startedAt ?? '') || now;
    }
    run.containers.set(spec.name, c);
  }
  return run;
}

function nodeView(node: KubeObject): NodeView {
  const addresses =
    ((node.status ?? {}) as { addresses?: { type: string; address: string }[] }).addresses ?? [];
  const hostIP = addresses.find((a) => a.type === 'InternalIP')?.address;
  return { name: node.metadata.name, object: node, ready: isNodeReady(node), ...(hostIP ? { hostIP } : {}) };
}

function selectorOf(labels: Record<string, string>) {
  return Object.entries(labels).map(([key, value]) => ({ key, operator: 'In' as const, values: [value] }));
}
