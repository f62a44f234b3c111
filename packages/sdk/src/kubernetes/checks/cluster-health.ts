import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { type Cell, type FindingStatus, finding, worstStatus } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import type { KubernetesCluster } from '../cluster';
import { isKubernetesApiError } from '../errors';
import { apiMessage, clip, listSome } from './wording';

/** Options of {@link clusterHealth}. */
export const ClusterHealthOptions = z.object({
  /** Warn when `/version` takes longer than this to answer. @default "1s" */
  slowAfter: Duration.default('1s'),
});
export type ClusterHealthOptions = z.output<typeof ClusterHealthOptions>;
export type ClusterHealthOptionsInput = z.input<typeof ClusterHealthOptions>;

/** What {@link clusterHealth} found. */
export type ClusterHealthData = {
  /** The kubeconfig context checked. */
  context: string;
  /** `/version` answered. */
  reachable: boolean;
  /** Why it did not: the Kubernetes reason (`ServiceUnavailable`, `Unreachable`, `Timeout`, `Forbidden`, …). */
  reason: string | null;
  /** HTTP status of the failed answer; 0 when none came. */
  httpStatus: number | null;
  error: string | null;
  /** How long `/version` took, in milliseconds. */
  latencyMs: number | null;
  version: { gitVersion: string; platform: string } | null;
  nodes: { total: number; ready: number; notReady: string[] } | null;
  /** Why the nodes could not be listed, when the API answered `/version` but not that. */
  nodesError: string | null;
};

/**
 * What {@link clusterHealth} read: the probe's answers as in {@link ClusterHealthData}, and why the nodes
 * could not be listed. Replaying it with another `slowAfter` judges the recorded latency again.
 */
export type ClusterHealthObservation = ClusterHealthData & {
  /** The Kubernetes reason the node list failed with (`Forbidden`, …); `null` when it did not fail. */
  nodesReason: string | null;
};

const KIND = 'k8s.cluster-health';

/**
 * Like `kubectl cluster-info` and `kubectl get nodes`: is the API server answering, how fast, and are the
 * nodes ready. A health check reports instead of throwing: only the context guard and cancellation throw.
 *
 * - `fail` when `/version` does not answer successfully (unreachable, timeout, 5xx, 401/403, …), with the
 *   Kubernetes reason in the summary; or when no node is ready.
 * - `warn` when `/version` is slower than `slowAfter`, or some (not all) nodes are not ready.
 * - `unknown` when the API answered but the nodes could not be listed (no permission, say).
 * - `ok` otherwise.
 *
 * Replayable: `read` probes ({@link ClusterHealthObservation}), `judge` applies `slowAfter`.
 */
export function clusterHealth(
  cluster: KubernetesCluster,
  params: ClusterHealthOptionsInput = {},
): ReplayableCheck<ClusterHealthData, ClusterHealthObservation> {
  const p = parseOptions(KIND, ClusterHealthOptions, params);
  const slowMs = toMillis(p.slowAfter);
  return defineCheck({
    kind: KIND,
    description: `Kubernetes API of context "${cluster.context}" answers, and its nodes are ready`,
    async read(ctx): Promise<ClusterHealthObservation> {
      cluster.assertContext();
      const seen: ClusterHealthObservation = {
        context: cluster.context,
        reachable: false,
        reason: null,
        httpStatus: null,
        error: null,
        latencyMs: null,
        version: null,
        nodes: null,
        nodesError: null,
        nodesReason: null,
      };
      const started = performance.now();
      try {
        const version = await cluster.call(
          'GET /version',
          (options) => cluster.version.getCode({}, options),
          {
            signal: ctx.signal,
          },
        );
        seen.latencyMs = Math.round(performance.now() - started);
        seen.reachable = true;
        seen.version = { gitVersion: version.gitVersion, platform: version.platform };
      } catch (e) {
        if (ctx.signal.aborted) throw e;
        seen.latencyMs = Math.round(performance.now() - started);
        seen.reason = isKubernetesApiError(e) ? e.reason : 'Error';
        seen.httpStatus = isKubernetesApiError(e) ? e.status : null;
        seen.error = clip(apiMessage(e), 300);
        return seen;
      }
      try {
        const list = await cluster.call('list nodes', (options) => cluster.core.listNode({}, options), {
          signal: ctx.signal,
        });
        const notReady = list.items
          .filter((n) => !n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
          .map((n) => n.metadata?.name ?? '');
        const total = list.items.length;
        seen.nodes = { total, ready: total - notReady.length, notReady };
      } catch (e) {
        if (ctx.signal.aborted) throw e;
        seen.nodesError = clip(apiMessage(e), 300);
        seen.nodesReason = isKubernetesApiError(e) ? e.reason : 'Error';
      }
      return seen;
    },
    judge({ nodesReason, ...data }) {
      if (!data.reachable) {
        const how = data.httpStatus ? `${data.reason}, HTTP ${data.httpStatus}` : data.reason;
        return finding(
          'fail',
          `Kubernetes API of context "${data.context}" is not healthy: GET /version failed (${how}): ${data.error}`,
          data,
          [table(data)],
        );
      }
      const statuses: FindingStatus[] = [];
      const parts: string[] = [
        `Kubernetes API of context "${data.context}" answers (${data.version?.gitVersion ?? '?'}, ${formatMillis(data.latencyMs ?? 0)})`,
      ];
      if ((data.latencyMs ?? 0) > slowMs) {
        statuses.push('warn');
        parts[0] = `${parts[0]}, slower than ${formatMillis(slowMs)}`;
      }
      if (data.nodes) {
        const { total, notReady } = data.nodes;
        if (total === 0 || notReady.length === total) statuses.push('fail');
        else if (notReady.length) statuses.push('warn');
        parts.push(
          `${total - notReady.length}/${total} nodes ready${notReady.length ? ` (not ready: ${listSome(notReady)})` : ''}`,
        );
      } else {
        statuses.push('unknown');
        parts.push(`nodes could not be listed (${nodesReason}): ${data.nodesError}`);
      }
      return finding(worstStatus(statuses), parts.join('; '), data, [table(data)]);
    },
  });
}

function table(data: ClusterHealthData) {
  const rows: Cell[][] = [
    [
      'GET /version',
      data.reachable ? 'ok' : `failed: ${data.reason}`,
      data.reachable ? `${data.version?.gitVersion} (${data.version?.platform})` : data.error,
      data.latencyMs,
    ],
  ];
  if (data.nodes) {
    rows.push([
      'nodes Ready',
      `${data.nodes.ready}/${data.nodes.total}`,
      data.nodes.notReady.length ? `not ready: ${listSome(data.nodes.notReady, 10)}` : null,
      null,
    ]);
  } else if (data.nodesError) {
    rows.push(['nodes Ready', 'unknown', data.nodesError, null]);
  }
  return {
    kind: 'table' as const,
    title: `Cluster "${data.context}"`,
    columns: ['PROBE', 'RESULT', 'DETAIL', 'LATENCY (ms)'],
    rows,
  };
}
