import type { V1Pod } from '@kubernetes/client-node';
import { z } from 'zod';
import { type Evidence, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import type { KubernetesCluster } from '../cluster';
import { isKubernetesApiError } from '../errors';
import { formatCpu, formatMemory, quantityOrUndefined } from '../quantity';
import { isoOf } from './age';
import { apiMessage, listSome, MAX_ROWS, plural } from './wording';

const Fraction = z.number().gt(0).max(1);

/** Options of {@link resourceUsage}. */
export const ResourceUsageOptions = z.object({
  /** Namespace of the pods. */
  namespace: z.string().min(1),
  /** Label selector of the pods, e.g. `app=generation-agent`. @default every pod of the namespace */
  selector: z.string().min(1).optional(),
  /** Warn when a container uses more than this fraction of its CPU limit (it is being throttled). @default 0.8 */
  cpuWarn: Fraction.default(0.8),
  /** Warn when a container uses more than this fraction of its memory limit (it is close to an OOM kill). @default 0.9 */
  memoryWarn: Fraction.default(0.9),
});
export type ResourceUsageOptions = z.output<typeof ResourceUsageOptions>;
export type ResourceUsageOptionsInput = z.input<typeof ResourceUsageOptions>;

/** One container's usage next to its requests and limits. CPU in cores, memory in bytes. */
export type ContainerUsage = {
  pod: string;
  container: string;
  cpu: number;
  memory: number;
  cpuRequest: number | null;
  cpuLimit: number | null;
  memoryRequest: number | null;
  memoryLimit: number | null;
  /** `cpu / cpuLimit`; `null` without a limit. */
  cpuOfLimit: number | null;
  /** `memory / memoryLimit`; `null` without a limit. */
  memoryOfLimit: number | null;
};

/** A container above a threshold. */
export type UsageAlarm = {
  pod: string;
  container: string;
  resource: 'cpu' | 'memory';
  fraction: number;
  text: string;
};

/** What {@link resourceUsage} found. */
export type ResourceUsageData = {
  namespace: string;
  selector: string | null;
  /** The metrics API (`metrics.k8s.io`, served by metrics-server) answered. */
  metricsAvailable: boolean;
  pods: number;
  /** Pods the metrics API has no sample for yet (just started). */
  podsWithoutMetrics: string[];
  /** At most 200 containers, the fullest first. */
  containers: ContainerUsage[];
  totals: { cpu: number; memory: number };
  alarms: UsageAlarm[];
  /** When the newest sample was taken. */
  sampledAt: string | null;
};

type PodMetrics = {
  metadata?: { name?: string };
  timestamp?: string;
  containers?: { name?: string; usage?: { cpu?: string; memory?: string } }[];
};

/**
 * What {@link resourceUsage} read: each container's usage next to its requests and limits, in pod order.
 * Replaying it with other `cpuWarn` / `memoryWarn` judges the same usage again.
 */
export type ResourceUsageObservation = {
  /** The pods matched (not being deleted). */
  pods: string[];
  /** Why the metrics API could not be read (HTTP 404 or 503); `null` when it answered. */
  metricsError: string | null;
  podsWithoutMetrics: string[];
  containers: ContainerUsage[];
  sampledAt: string | null;
};

const KIND = 'k8s.resource-usage';
const MAX_CONTAINERS_IN_DATA = 200;

/**
 * Like `kubectl top pod --containers [-l selector]`, next to each container's requests and limits.
 *
 * - `warn` when a container uses more than `cpuWarn` of its CPU limit or `memoryWarn` of its memory limit
 *   (containers without a limit are never above it).
 * - `ok` otherwise.
 * - `fail` when no pod matches.
 * - `unknown` when the metrics API is not available (HTTP 404 or 503: metrics-server missing or down), or
 *   has no sample yet for any of the pods.
 *
 * Replayable: `read` samples ({@link ResourceUsageObservation}), `judge` applies `cpuWarn` and `memoryWarn`.
 */
export function resourceUsage(
  cluster: KubernetesCluster,
  params: ResourceUsageOptionsInput,
): ReplayableCheck<ResourceUsageData, ResourceUsageObservation> {
  const p = parseOptions(KIND, ResourceUsageOptions, params);
  const where = `in ${p.namespace}${p.selector ? ` (${p.selector})` : ''}`;
  return defineCheck({
    kind: KIND,
    description: `CPU and memory of pods ${where} against their limits`,
    async read(ctx): Promise<ResourceUsageObservation> {
      cluster.assertContext();
      const selector = p.selector === undefined ? {} : { labelSelector: p.selector };
      const podList = await cluster.call(
        `list pods ${where}`,
        (options) => cluster.core.listNamespacedPod({ namespace: p.namespace, ...selector }, options),
        { signal: ctx.signal },
      );
      const pods = podList.items.filter((pod) => pod.metadata?.deletionTimestamp == null);
      const seen: ResourceUsageObservation = {
        pods: pods.map(nameOf),
        metricsError: null,
        podsWithoutMetrics: [],
        containers: [],
        sampledAt: null,
      };
      if (pods.length === 0) return seen;

      let metrics: PodMetrics[];
      try {
        const list = (await cluster.call(
          `list pod metrics ${where}`,
          (options) =>
            cluster.custom.listNamespacedCustomObject(
              {
                group: 'metrics.k8s.io',
                version: 'v1beta1',
                namespace: p.namespace,
                plural: 'pods',
                ...selector,
              },
              options,
            ),
          { signal: ctx.signal },
        )) as { items?: PodMetrics[] };
        metrics = list.items ?? [];
      } catch (e) {
        if (isKubernetesApiError(e) && (e.status === 404 || e.status === 503)) {
          return {
            ...seen,
            metricsError: `${apiMessage(e)} (HTTP ${e.status})`,
            podsWithoutMetrics: pods.map(nameOf),
          };
        }
        throw e;
      }

      const byPod = new Map(metrics.map((m) => [m.metadata?.name ?? '', m]));
      for (const pod of pods) {
        const sample = byPod.get(nameOf(pod));
        if (!sample) {
          seen.podsWithoutMetrics.push(nameOf(pod));
          continue;
        }
        for (const c of sample.containers ?? []) seen.containers.push(usageOf(pod, c));
      }
      const sampledTimes = metrics.map((m) => m.timestamp).filter((t): t is string => typeof t === 'string');
      seen.sampledAt = sampledTimes.length ? isoOf(sampledTimes.sort().at(-1)) : null;
      return seen;
    },
    judge(seen) {
      const base = {
        namespace: p.namespace,
        selector: p.selector ?? null,
        pods: seen.pods.length,
        containers: [],
        totals: { cpu: 0, memory: 0 },
        alarms: [],
        sampledAt: null,
      };
      if (seen.pods.length === 0) {
        return finding('fail', `No pods ${p.selector ? `match ${p.selector} ` : ''}in ${p.namespace}`, {
          ...base,
          metricsAvailable: false,
          podsWithoutMetrics: [],
        });
      }
      if (seen.metricsError !== null) {
        return finding(
          'unknown',
          `Metrics API (metrics.k8s.io) not available ${where}: ${seen.metricsError}; is metrics-server running?`,
          { ...base, metricsAvailable: false, podsWithoutMetrics: seen.podsWithoutMetrics },
        );
      }
      const { podsWithoutMetrics, sampledAt } = seen;
      const containers = [...seen.containers];
      const totals = {
        cpu: containers.reduce((sum, c) => sum + c.cpu, 0),
        memory: containers.reduce((sum, c) => sum + c.memory, 0),
      };
      const alarms: UsageAlarm[] = containers.flatMap((c) => {
        const found: UsageAlarm[] = [];
        const who = `${c.pod}/${c.container}`;
        if (c.memoryOfLimit !== null && c.memoryLimit !== null && c.memoryOfLimit > p.memoryWarn) {
          found.push({
            pod: c.pod,
            container: c.container,
            resource: 'memory',
            fraction: c.memoryOfLimit,
            text: `${who} memory ${formatMemory(c.memory)} = ${percent(c.memoryOfLimit)} of its ${formatMemory(c.memoryLimit)} limit`,
          });
        }
        if (c.cpuOfLimit !== null && c.cpuLimit !== null && c.cpuOfLimit > p.cpuWarn) {
          found.push({
            pod: c.pod,
            container: c.container,
            resource: 'cpu',
            fraction: c.cpuOfLimit,
            text: `${who} CPU ${formatCpu(c.cpu)} = ${percent(c.cpuOfLimit)} of its ${formatCpu(c.cpuLimit)} limit`,
          });
        }
        return found;
      });
      alarms.sort((a, b) => b.fraction - a.fraction);
      containers.sort((a, b) => fullness(b) - fullness(a));
      const data: ResourceUsageData = {
        ...base,
        metricsAvailable: true,
        podsWithoutMetrics,
        containers: containers.slice(0, MAX_CONTAINERS_IN_DATA),
        totals,
        alarms,
        sampledAt,
      };
      const evidence = evidenceOf(containers, podsWithoutMetrics);
      const missing = podsWithoutMetrics.length
        ? `; no metrics yet for ${listSome(podsWithoutMetrics, 2)}`
        : '';

      if (containers.length === 0) {
        return finding(
          'unknown',
          `No metrics yet for the ${plural(seen.pods.length, 'pod')} ${where} (metrics-server samples every 15-60s)`,
          data,
          evidence,
        );
      }
      if (alarms.length) {
        return finding(
          'warn',
          `${plural(alarms.length, 'container limit')} nearly reached ${where}: ${listSome(
            alarms.map((a) => a.text),
            2,
          )}${missing}`,
          data,
          evidence,
        );
      }
      const top = containers[0];
      const highest =
        top && fullness(top) > 0
          ? `; fullest: ${top.pod}/${top.container} at ${percent(fullness(top))} of its ${
              (top.memoryOfLimit ?? 0) >= (top.cpuOfLimit ?? 0) ? 'memory' : 'CPU'
            } limit`
          : '; no limits set';
      return finding(
        'ok',
        `${plural(seen.pods.length - podsWithoutMetrics.length, 'pod')} ${where} use ${formatCpu(totals.cpu)} CPU and ${formatMemory(totals.memory)} memory${highest}${missing}`,
        data,
        evidence,
      );
    },
  });
}

function nameOf(pod: V1Pod): string {
  return pod.metadata?.name ?? '';
}

function usageOf(pod: V1Pod, sample: NonNullable<PodMetrics['containers']>[number]): ContainerUsage {
  const name = sample.name ?? '';
  const spec = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].find(
    (c) => c.name === name,
  );
  const requests = spec?.resources?.requests ?? {};
  const limits = spec?.resources?.limits ?? {};
  const cpu = quantityOrUndefined(sample.usage?.cpu) ?? 0;
  const memory = quantityOrUndefined(sample.usage?.memory) ?? 0;
  const cpuLimit = positiveOrNull(quantityOrUndefined(limits.cpu));
  const memoryLimit = positiveOrNull(quantityOrUndefined(limits.memory));
  return {
    pod: nameOf(pod),
    container: name,
    cpu,
    memory,
    cpuRequest: positiveOrNull(quantityOrUndefined(requests.cpu)),
    cpuLimit,
    memoryRequest: positiveOrNull(quantityOrUndefined(requests.memory)),
    memoryLimit,
    cpuOfLimit: cpuLimit === null ? null : cpu / cpuLimit,
    memoryOfLimit: memoryLimit === null ? null : memory / memoryLimit,
  };
}

function positiveOrNull(value: number | undefined): number | null {
  return value === undefined || value <= 0 ? null : value;
}

function fullness(c: ContainerUsage): number {
  return Math.max(c.cpuOfLimit ?? 0, c.memoryOfLimit ?? 0);
}

function percent(fraction: number): string {
  return `${Math.round(fraction * 100)}%`;
}

function evidenceOf(containers: ContainerUsage[], podsWithoutMetrics: string[]): Evidence[] {
  const evidence: Evidence[] = [];
  if (containers.length) {
    const shown = containers.slice(0, MAX_ROWS);
    evidence.push({
      kind: 'table',
      title:
        containers.length > shown.length
          ? `Usage (fullest ${shown.length} of ${containers.length} containers)`
          : 'Usage',
      columns: ['POD', 'CONTAINER', 'CPU', 'CPU/LIMIT', 'MEMORY', 'MEMORY/LIMIT', 'REQUESTS', 'LIMITS'],
      rows: shown.map((c) => [
        c.pod,
        c.container,
        formatCpu(c.cpu),
        c.cpuOfLimit === null ? '-' : percent(c.cpuOfLimit),
        formatMemory(c.memory),
        c.memoryOfLimit === null ? '-' : percent(c.memoryOfLimit),
        `cpu ${c.cpuRequest === null ? '-' : formatCpu(c.cpuRequest)}, memory ${c.memoryRequest === null ? '-' : formatMemory(c.memoryRequest)}`,
        `cpu ${c.cpuLimit === null ? '-' : formatCpu(c.cpuLimit)}, memory ${c.memoryLimit === null ? '-' : formatMemory(c.memoryLimit)}`,
      ]),
    });
  }
  if (podsWithoutMetrics.length) {
    evidence.push({
      kind: 'text',
      title: 'Pods without metrics yet',
      text: listSome(podsWithoutMetrics, MAX_ROWS),
    });
  }
  return evidence;
}
