import { InputValidationError } from '../../../core/errors';
import { quantityOrUndefined } from '../../../kubernetes/quantity';
import type { KubeObject } from '../object-store';
import { NODE_METRICS, NODES, POD_METRICS, PODS, type ResourceType } from '../resources';
import type { Controller, ControllerContext } from './controller';
import { isNodeReady } from './nodes';
import type { PodFaults } from './pod-faults';
import { type ContainerSpec, rfc3339, specOf } from './pod-status';
import { stableHash } from './stable-hash';

/** Resource usage as `kubectl top` reads it. */
export interface Usage {
  /** CPU, a Kubernetes quantity: `"250m"`, `"1.5"`, `"1200000n"`. */
  cpu: string;
  /** Memory, a Kubernetes quantity: `"300Mi"`, `"1Gi"`, `"123456Ki"`. */
  memory: string;
}

/** The metrics-server of the simulated cluster. */
export interface MetricsController extends Controller {
  /** Pins a container's usage (until set again); written on the next sync, without waiting for the interval. */
  setUsage(namespace: string, pod: string, container: string, usage: Usage): void;
}

interface Measured {
  /** Cores. */
  cpu: number;
  bytes: number;
}

/**
 * Plays metrics-server: every `metricsInterval` it writes a `PodMetrics` for each Running pod on a Ready node
 * and a `NodeMetrics` for each Ready node, in its wire format (CPU in nanocores, memory in KiB). A new pod's
 * metrics appear on the first sync after it runs, and those of a deleted pod go at once, so tests need not
 * wait for a scrape. Usage is deterministic per pod name with a slow wobble over time; a pod under an
 * `oomKill` fault runs close to its memory limit, which is what a runbook looking for memory pressure reads.
 */
export function metricsController(ctx: ControllerContext, faults?: PodFaults): MetricsController {
  const pinned = new Map<string, Measured>();
  const dirty = new Set<string>();
  let nextRefresh = 0;

  const usageOf = (pod: KubeObject, c: ContainerSpec, now: number): Measured => {
    const key = `${pod.metadata.namespace}/${pod.metadata.name}/${c.name}`;
    const set = pinned.get(key);
    if (set) return set;
    const h = stableHash(key);
    const wobble = 1 + 0.05 * Math.sin(now / 10_000 + (h % 628) / 100);
    const requests = c.resources?.requests ?? {};
    const limits = c.resources?.limits ?? {};
    const cpuRequest = quantityOrUndefined(requests.cpu);
    const memRequest = quantityOrUndefined(requests.memory);
    const memLimit = quantityOrUndefined(limits.memory);
    let cpu = cpuRequest ? cpuRequest * (0.2 + (h % 50) / 100) : (5 + (h % 120)) / 1000;
    let bytes = memRequest ? memRequest * (0.4 + ((h >>> 8) % 40) / 100) : (48 + ((h >>> 8) % 200)) * 2 ** 20;
    cpu *= wobble;
    bytes *= wobble;
    const oom = faults?.forPod(pod).some((f) => f.kind === 'oomKill');
    if (memLimit) bytes = oom ? memLimit * (0.96 + ((h >>> 16) % 4) / 100) : Math.min(bytes, memLimit * 0.9);
    return { cpu, bytes };
  };

  const write = (type: ResourceType, existing: KubeObject | undefined, body: Record<string, unknown>) => {
    if (existing) ctx.store.update(type, { ...existing, ...body, metadata: existing.metadata });
    else ctx.store.create(type, body);
  };

  return {
    name: 'metrics',
    setUsage(namespace, pod, container, usage) {
      const cpu = quantityOrUndefined(usage.cpu);
      const bytes = quantityOrUndefined(usage.memory);
      const issues = [
        ...(cpu === undefined
          ? [{ path: 'cpu', message: `"${usage.cpu}" is not a quantity such as "250m"` }]
          : []),
        ...(bytes === undefined
          ? [{ path: 'memory', message: `"${usage.memory}" is not a quantity such as "300Mi"` }]
          : []),
      ];
      if (cpu === undefined || bytes === undefined) throw new InputValidationError('usage', issues);
      pinned.set(`${namespace}/${pod}/${container}`, { cpu, bytes });
      dirty.add(`${namespace}/${pod}`);
    },
    sync(now) {
      const refresh = now >= nextRefresh;
      if (refresh) nextRefresh = now + ctx.options.metricsIntervalMs;
      const timestamp = rfc3339(now);
      const nodes = ctx.store.list(NODES).items.filter(isNodeReady);
      const ready = new Set(nodes.map((n) => n.metadata.name));
      const perNode = new Map<string, Measured>();
      const existing = new Map(
        ctx.store.list(POD_METRICS).items.map((m) => [`${m.metadata.namespace}/${m.metadata.name}`, m]),
      );
      const seen = new Set<string>();
      for (const pod of ctx.store.list(PODS).items) {
        const node = specOf(pod).nodeName;
        if ((pod.status as { phase?: string } | undefined)?.phase !== 'Running' || !node || !ready.has(node))
          continue;
        const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
        seen.add(key);
        const containers = (specOf(pod).containers ?? []).map((c) => ({
          name: c.name,
          ...usageOf(pod, c, now),
        }));
        const total = perNode.get(node) ?? { cpu: 0, bytes: 0 };
        for (const c of containers) {
          total.cpu += c.cpu;
          total.bytes += c.bytes;
        }
        perNode.set(node, total);
        if (!refresh && existing.has(key) && !dirty.has(key)) continue;
        write(POD_METRICS, existing.get(key), {
          metadata: {
            name: pod.metadata.name,
            namespace: pod.metadata.namespace,
            ...(pod.metadata.labels ? { labels: pod.metadata.labels } : {}),
          },
          timestamp,
          window: '30s',
          containers: containers.map((c) => ({ name: c.name, usage: wire(c) })),
        });
      }
      dirty.clear();
      for (const [key, m] of existing) {
        if (!seen.has(key)) ctx.store.delete(POD_METRICS, m.metadata.namespace, m.metadata.name);
      }
      const nodeMetrics = new Map(ctx.store.list(NODE_METRICS).items.map((m) => [m.metadata.name, m]));
      for (const node of nodes) {
        const name = node.metadata.name;
        if (!refresh && nodeMetrics.has(name)) continue;
        const h = stableHash(name);
        // The node's own daemons (kubelet, container runtime, system services) use something too.
        const pods = perNode.get(name) ?? { cpu: 0, bytes: 0 };
        const usage = {
          cpu: 0.1 + (h % 150) / 1000 + pods.cpu,
          bytes: (900 + (h % 500)) * 2 ** 20 + pods.bytes,
        };
        write(NODE_METRICS, nodeMetrics.get(name), {
          metadata: { name, ...(node.metadata.labels ? { labels: node.metadata.labels } : {}) },
          timestamp,
          window: '20s',
          usage: wire(usage),
        });
      }
      for (const [name] of nodeMetrics) if (!ready.has(name)) ctx.store.delete(NODE_METRICS, undefined, name);
      return Math.max(0, nextRefresh - now);
    },
  };
}

/** Usage in metrics-server's units: nanocores and KiB. */
function wire(m: Measured): { cpu: string; memory: string } {
  return { cpu: `${Math.round(m.cpu * 1e9)}n`, memory: `${Math.round(m.bytes / 1024)}Ki` };
}
