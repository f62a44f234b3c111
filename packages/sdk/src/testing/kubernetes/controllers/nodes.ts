import type { KubeObject, KubeObjectInput } from '../object-store';
import { NODES } from '../resources';
import type { Controller, ControllerContext } from './controller';
import type { PodFaults } from './pod-faults';
import { stableHex, stableUuid } from './stable-hash';

/** Taints the node lifecycle controller puts on a node whose kubelet stopped reporting. */
const UNREACHABLE = 'node.kubernetes.io/unreachable';

interface NodeCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastHeartbeatTime: string;
  lastTransitionTime: string;
}

interface Taint {
  key: string;
  effect: string;
  timeAdded?: string;
}

/**
 * Registers the cluster's nodes (as each kubelet does at start-up) and plays the node lifecycle
 * controller: a `nodeNotReady` fault makes the node's Ready condition False and taints it unreachable,
 * clearing the fault brings it back. Nodes are never deleted here: one removed by a test stays removed
 * until the next start.
 */
export function nodeController(ctx: ControllerContext, faults: PodFaults): Controller {
  return {
    name: 'node',
    sync(now) {
      ctx.options.nodes.forEach((name, index) => {
        if (!ctx.store.find(NODES, undefined, name)) ctx.store.create(NODES, nodeObject(name, index, now));
      });
      for (const node of ctx.store.list(NODES).items)
        reconcileReady(ctx, node, !faults.isNodeNotReady(node.metadata.name), now);
      return undefined;
    },
  };
}

/** The Ready condition of a Node as stored (`undefined` when it has none). */
export function isNodeReady(node: KubeObject | undefined): boolean {
  const conditions = (node?.status as { conditions?: NodeCondition[] } | undefined)?.conditions ?? [];
  return conditions.some((c) => c.type === 'Ready' && c.status === 'True');
}

function reconcileReady(ctx: ControllerContext, node: KubeObject, ready: boolean, now: number): void {
  if (isNodeReady(node) === ready) return;
  const name = node.metadata.name;
  const time = rfc3339(now);
  const spec = (node.spec ?? {}) as { taints?: Taint[] };
  const others = (spec.taints ?? []).filter((t) => t.key !== UNREACHABLE);
  const taints = ready
    ? others
    : [
        ...others,
        { key: UNREACHABLE, effect: 'NoSchedule', timeAdded: time },
        { key: UNREACHABLE, effect: 'NoExecute', timeAdded: time },
      ];
  const { taints: _old, ...rest } = spec;
  const updated = ctx.store.update(NODES, { ...node, spec: taints.length ? { ...rest, taints } : rest });
  const status = (updated.status ?? {}) as { conditions?: NodeCondition[] };
  const conditions = (status.conditions ?? []).filter((c) => c.type !== 'Ready');
  conditions.push(
    ready
      ? condition('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status', time)
      : // What the node lifecycle controller writes when the kubelet stops reporting: Unknown, not False.
        condition('Ready', 'Unknown', 'NodeStatusUnknown', 'Kubelet stopped posting node status.', time),
  );
  ctx.store.update(NODES, { ...updated, status: { ...status, conditions } }, { subresource: 'status' });
  ctx.events.record(
    updated,
    'Normal',
    ready ? 'NodeReady' : 'NodeNotReady',
    `Node ${name} status is now: ${ready ? 'NodeReady' : 'NodeNotReady'}`,
    ready ? 'kubelet' : 'node-controller',
  );
}

function condition(
  type: string,
  status: NodeCondition['status'],
  reason: string,
  message: string,
  time: string,
): NodeCondition {
  return { type, status, reason, message, lastHeartbeatTime: time, lastTransitionTime: time };
}

/** A Node as a kubelet registers it; the index gives it a distinct address and pod CIDR. */
function nodeObject(name: string, index: number, now: number): KubeObjectInput {
  const time = rfc3339(now);
  const resources = { cpu: '4', memory: '16Gi', pods: '110', 'ephemeral-storage': '100Gi' };
  return {
    metadata: {
      name,
      labels: {
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'beta.kubernetes.io/os': 'linux',
        'beta.kubernetes.io/arch': 'amd64',
      },
      annotations: { 'node.alpha.kubernetes.io/ttl': '0' },
    },
    spec: { podCIDR: podCidrOf(index), podCIDRs: [podCidrOf(index)] },
    status: {
      capacity: resources,
      allocatable: resources,
      conditions: [
        condition(
          'MemoryPressure',
          'False',
          'KubeletHasSufficientMemory',
          'kubelet has sufficient memory available',
          time,
        ),
        condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure', time),
        condition(
          'PIDPressure',
          'False',
          'KubeletHasSufficientPID',
          'kubelet has sufficient PID available',
          time,
        ),
        condition('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status', time),
      ],
      addresses: [
        { type: 'InternalIP', address: `10.0.0.${10 + (index % 240)}` },
        { type: 'Hostname', address: name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: stableHex(name, 32),
        systemUUID: stableUuid(`${name}-uuid`),
        bootID: stableUuid(`${name}-boot`),
        kernelVersion: '6.8.0-sim',
        osImage: 'Debian GNU/Linux 12 (bookworm)',
        containerRuntimeVersion: 'containerd://1.7.22',
        kubeletVersion: 'v1.31.0-sim',
        kubeProxyVersion: 'v1.31.0-sim',
        operatingSystem: 'linux',
        architecture: 'amd64',
      },
    },
  };
}

function podCidrOf(index: number): string {
  return `10.244.${index % 256}.0/24`;
}

/** Times as the API server writes them: RFC 3339, whole seconds, UTC. */
function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}
