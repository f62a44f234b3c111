import type { V1Node } from '@kubernetes/client-node';
import { z } from 'zod';
import { type Evidence, type FindingStatus, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { type Check, defineCheck } from '../../core/step';
import type { KubernetesCluster } from '../cluster';
import { formatCpu, formatMemory, quantityOrUndefined } from '../quantity';
import { formatAge, isoOf } from './age';
import { clip, listSome, MAX_ROWS, plural } from './wording';

/** Options of {@link nodeStatus}. */
export const NodeStatusOptions = z.object({
  /** Label selector of the nodes, e.g. `node-role.kubernetes.io/worker`. @default every node */
  selector: z.string().min(1).optional(),
});
export type NodeStatusOptions = z.output<typeof NodeStatusOptions>;
export type NodeStatusOptionsInput = z.input<typeof NodeStatusOptions>;

/** One node, as `kubectl get nodes -o wide` and `kubectl describe node` show it. */
export type NodeView = {
  name: string;
  /** The `Ready` condition's status: `True`, `False`, or `Unknown` (the kubelet stopped reporting). */
  ready: 'True' | 'False' | 'Unknown';
  /** Why it is not ready, from the `Ready` condition. */
  readyReason: string | null;
  readyMessage: string | null;
  /** Conditions that are `True` but should not be: `MemoryPressure`, `DiskPressure`, `PIDPressure`, `NetworkUnavailable`. */
  pressures: string[];
  /** Cordoned (`spec.unschedulable`). */
  unschedulable: boolean;
  roles: string[];
  kubeletVersion: string | null;
  /** Allocatable CPU in cores, memory in bytes, and pods; `null` when not reported. */
  allocatable: { cpu: number | null; memory: number | null; pods: number | null };
  createdAt: string | null;
};

/** What {@link nodeStatus} found. */
export type NodeStatusData = {
  selector: string | null;
  total: number;
  ready: number;
  /** At most 200 nodes, not-ready ones first. */
  nodes: NodeView[];
};

const KIND = 'k8s.node-status';
const PRESSURES = ['MemoryPressure', 'DiskPressure', 'PIDPressure', 'NetworkUnavailable'];
const MAX_NODES_IN_DATA = 200;

/**
 * Like `kubectl get nodes` plus the conditions `kubectl describe node` shows.
 *
 * - `fail` when any node is not `Ready` (`False`, or `Unknown` because its kubelet stopped reporting), or
 *   when no node matches.
 * - `warn` when all are ready but one is under memory, disk or PID pressure or has no network.
 * - `ok` otherwise. Cordoned nodes are reported, not judged: draining a node is routine.
 */
export function nodeStatus(
  cluster: KubernetesCluster,
  params: NodeStatusOptionsInput = {},
): Check<NodeStatusData> {
  const p = parseOptions(KIND, NodeStatusOptions, params);
  const which = p.selector ? `nodes ${p.selector}` : 'nodes';
  return defineCheck({
    kind: KIND,
    description: `Readiness and pressure of ${which}`,
    async run(ctx) {
      cluster.assertContext();
      const list = await cluster.call(
        `list ${which}`,
        (options) =>
          cluster.core.listNode(p.selector === undefined ? {} : { labelSelector: p.selector }, options),
        { signal: ctx.signal },
      );
      const nodes = list.items
        .map(viewNode)
        .sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
      const ready = nodes.filter((n) => n.ready === 'True').length;
      const data: NodeStatusData = {
        selector: p.selector ?? null,
        total: nodes.length,
        ready,
        nodes: nodes.slice(0, MAX_NODES_IN_DATA),
      };
      if (nodes.length === 0) {
        return finding(
          'fail',
          p.selector ? `No nodes match ${p.selector}` : 'The cluster has no nodes',
          data,
        );
      }
      const notReady = nodes.filter((n) => n.ready !== 'True');
      const pressured = nodes.filter((n) => n.ready === 'True' && n.pressures.length);
      const cordoned = nodes.filter((n) => n.unschedulable);
      let status: FindingStatus = 'ok';
      const parts: string[] = [];
      if (notReady.length) {
        status = 'fail';
        parts.push(
          `not ready: ${listSome(notReady.map((n) => `${n.name} (${n.ready === 'Unknown' ? 'Unknown, kubelet stopped reporting' : (n.readyReason ?? 'NotReady')})`))}`,
        );
      }
      if (pressured.length) {
        if (status === 'ok') status = 'warn';
        parts.push(
          `under pressure: ${listSome(pressured.map((n) => `${n.name} (${n.pressures.join(', ')})`))}`,
        );
      }
      if (cordoned.length) parts.push(`cordoned: ${listSome(cordoned.map((n) => n.name))}`);
      const head = `${ready}/${plural(nodes.length, 'node')} ready${p.selector ? ` (${p.selector})` : ''}`;
      return finding(status, parts.length ? `${head}; ${parts.join('; ')}` : head, data, evidenceOf(nodes));
    },
  });
}

function rank(n: NodeView): number {
  return n.ready !== 'True' ? 0 : n.pressures.length ? 1 : 2;
}

function viewNode(node: V1Node): NodeView {
  const conditions = node.status?.conditions ?? [];
  const readyCondition = conditions.find((c) => c.type === 'Ready');
  const readyStatus = readyCondition?.status;
  const labels = node.metadata?.labels ?? {};
  const roles = Object.keys(labels)
    .filter((k) => k.startsWith('node-role.kubernetes.io/'))
    .map((k) => k.slice('node-role.kubernetes.io/'.length))
    .filter(Boolean);
  if (labels['kubernetes.io/role']) roles.push(labels['kubernetes.io/role']);
  const allocatable = node.status?.allocatable ?? {};
  return {
    name: node.metadata?.name ?? '',
    ready: readyStatus === 'True' || readyStatus === 'False' ? readyStatus : 'Unknown',
    readyReason: readyCondition?.reason ?? null,
    readyMessage: readyCondition?.message ? clip(readyCondition.message, 300) : null,
    pressures: conditions.filter((c) => PRESSURES.includes(c.type) && c.status === 'True').map((c) => c.type),
    unschedulable: node.spec?.unschedulable === true,
    roles,
    kubeletVersion: node.status?.nodeInfo?.kubeletVersion ?? null,
    allocatable: {
      cpu: quantityOrUndefined(allocatable.cpu) ?? null,
      memory: quantityOrUndefined(allocatable.memory) ?? null,
      pods: quantityOrUndefined(allocatable.pods) ?? null,
    },
    createdAt: isoOf(node.metadata?.creationTimestamp),
  };
}

/** The STATUS column of `kubectl get nodes`: `Ready` or `NotReady`, plus `,SchedulingDisabled`. */
function statusColumn(n: NodeView): string {
  // kubectl prints NotReady for a Ready condition that is False or Unknown.
  const ready = n.ready === 'True' ? 'Ready' : 'NotReady';
  return n.unschedulable ? `${ready},SchedulingDisabled` : ready;
}

function evidenceOf(nodes: NodeView[]): Evidence[] {
  const now = Date.now();
  const shown = nodes.slice(0, MAX_ROWS);
  const evidence: Evidence[] = [
    {
      kind: 'table',
      title: nodes.length > shown.length ? `Nodes (${shown.length} of ${nodes.length})` : 'Nodes',
      columns: [
        'NAME',
        'STATUS',
        'ROLES',
        'AGE',
        'VERSION',
        'PRESSURE',
        'ALLOCATABLE CPU',
        'ALLOCATABLE MEMORY',
        'ALLOCATABLE PODS',
      ],
      rows: shown.map((n) => [
        n.name,
        statusColumn(n),
        n.roles.length ? n.roles.join(',') : '<none>',
        formatAge(n.createdAt, now),
        n.kubeletVersion,
        n.pressures.length ? n.pressures.join(',') : '-',
        n.allocatable.cpu === null ? null : formatCpu(n.allocatable.cpu),
        n.allocatable.memory === null ? null : formatMemory(n.allocatable.memory),
        n.allocatable.pods,
      ]),
    },
  ];
  const reasons = nodes.filter((n) => n.ready !== 'True').slice(0, MAX_ROWS);
  if (reasons.length) {
    evidence.push({
      kind: 'text',
      title: 'Why not ready',
      text: reasons
        .map(
          (n) =>
            `${n.name}: Ready=${n.ready} ${n.readyReason ?? ''}${n.readyMessage ? ` — ${n.readyMessage}` : ''}`,
        )
        .join('\n'),
    });
  }
  return evidence;
}
