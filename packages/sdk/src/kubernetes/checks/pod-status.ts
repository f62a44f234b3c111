import { z } from 'zod';
import { type Evidence, type FindingStatus, finding, worstStatus } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import type { KubernetesCluster } from '../cluster';
import { formatAge } from './age';
import {
  CONFIG_REASONS,
  type ContainerView,
  IMAGE_PULL_REASONS,
  type PodView,
  restartsColumn,
  viewPod,
} from './pod-view';
import { clip, listSome, MAX_ROWS, plural } from './wording';

/** Options of {@link podStatus}. */
export const PodStatusOptions = z.object({
  /** Namespace of the pods. */
  namespace: z.string().min(1),
  /** Label selector of the pods, as `kubectl get pods -l` takes it, e.g. `app=requirements-agent`. */
  selector: z.string().min(1),
  /** Restarts a ready pod may have before the check warns. @default 3 */
  maxRestarts: z.number().int().nonnegative().default(3),
});
export type PodStatusOptions = z.output<typeof PodStatusOptions>;
export type PodStatusOptionsInput = z.input<typeof PodStatusOptions>;

/** One thing wrong with a pod, in words for the summary. */
export type PodProblem = {
  pod: string;
  container: string | null;
  /** `CrashLoopBackOff`, `ImagePullBackOff`, `OOMKilled`, `CreateContainerConfigError`, `NotReady`, `Restarts`, … */
  reason: string;
  severity: 'warn' | 'fail';
  text: string;
};

/** What {@link podStatus} found. */
export type PodStatusData = {
  namespace: string;
  selector: string;
  /** Pods that should be running: matched, not being deleted, not finished. */
  expected: number;
  ready: number;
  /** Pods the selector matched, including terminating and finished ones. */
  matched: number;
  /** At most 100 pods, sorted by name. */
  pods: PodView[];
  problems: PodProblem[];
};

/**
 * What {@link podStatus} read, and all its judgement needs: every pod the selector matched, and when it
 * looked (for the ages in the evidence). Replaying it with another `maxRestarts` judges the same pods again.
 */
export type PodStatusObservation = {
  /** Milliseconds since the epoch when the pods were listed. */
  now: number;
  /** Every matched pod, sorted by name. */
  pods: PodView[];
};

const KIND = 'k8s.pod-status';
const MAX_PODS_IN_DATA = 100;

/**
 * Like `kubectl get pods -l <selector>` read by someone on call: which pods are ready, and why the others
 * are not.
 *
 * - `fail` when no pod matches, when fewer pods are ready than should be running, or when any pod is
 *   crash-looping, cannot pull its image, cannot create its container (config error), or was OOMKilled
 *   and is not ready.
 * - `warn` when all are ready but one has restarted more than `maxRestarts` times or was OOMKilled earlier.
 * - `ok` when every pod that should run is ready.
 *
 * Pods being deleted (a rollout's old pods) and finished pods (`Succeeded`, or `Failed` such as evicted
 * ones, which their controller has replaced) are listed but not counted.
 *
 * Replayable: `read` lists the pods ({@link PodStatusObservation}), `judge` applies `maxRestarts`.
 */
export function podStatus(
  cluster: KubernetesCluster,
  params: PodStatusOptionsInput,
): ReplayableCheck<PodStatusData, PodStatusObservation> {
  const p = parseOptions(KIND, PodStatusOptions, params);
  return defineCheck({
    kind: KIND,
    description: `Pods ${p.selector} in ${p.namespace}: ready, restarts, crash loops, image pulls, OOM kills`,
    async read(ctx): Promise<PodStatusObservation> {
      cluster.assertContext();
      const list = await cluster.call(
        `list pods ${p.selector} in ${p.namespace}`,
        (options) =>
          cluster.core.listNamespacedPod({ namespace: p.namespace, labelSelector: p.selector }, options),
        { signal: ctx.signal },
      );
      const now = Date.now();
      return { now, pods: list.items.map(viewPod).sort((a, b) => a.name.localeCompare(b.name)) };
    },
    judge({ now, pods: views }) {
      const where = `in ${p.namespace} (${p.selector})`;
      const base = {
        namespace: p.namespace,
        selector: p.selector,
        matched: views.length,
        pods: views.slice(0, MAX_PODS_IN_DATA),
      };
      if (views.length === 0) {
        return finding('fail', `No pods match ${p.selector} in ${p.namespace}`, {
          ...base,
          expected: 0,
          ready: 0,
          problems: [],
        });
      }

      const counted = views.filter((v) => !v.terminating && !v.finished);
      const ready = counted.filter((v) => v.ready).length;
      const problems = views
        .filter((v) => !v.terminating && !v.finished)
        .flatMap((v) => problemsOf(v, p.maxRestarts));
      const statuses: FindingStatus[] = problems.map((x) => x.severity);
      if (counted.length === 0 || ready < counted.length) statuses.push('fail');
      const status = worstStatus(statuses);

      const uncounted = views.length - counted.length;
      const head =
        counted.length === 0
          ? `No running pods ${where}: ${plural(uncounted, 'pod')} terminating or finished`
          : `${ready}/${counted.length} pods ready ${where}`;
      const shown = problems.filter((x) => x.severity === status);
      const summary = shown.length ? `${head}: ${listSome(shown.map((x) => x.text))}` : head;

      return finding(
        status,
        summary,
        { ...base, expected: counted.length, ready, problems },
        evidenceOf(views, problems, now),
      );
    },
  });
}

/** What is wrong with one pod that should be running, most telling reason first. */
function problemsOf(view: PodView, maxRestarts: number): PodProblem[] {
  const problems: PodProblem[] = [];
  const multi = view.containers.length > 1;
  const who = (c: ContainerView) => (multi ? `${view.name}/${c.name}` : view.name);
  const add = (c: ContainerView | null, reason: string, severity: 'warn' | 'fail', text: string) =>
    problems.push({ pod: view.name, container: c?.name ?? null, reason, severity, text });

  for (const c of view.containers) {
    const lastReason = c.lastTerminated?.reason ?? null;
    const oom = c.reason === 'OOMKilled' || lastReason === 'OOMKilled';
    if (c.state === 'waiting' && c.reason === 'CrashLoopBackOff') {
      const last = lastReason ? `, last ${lastReason}${exitText(c.lastTerminated?.exitCode)}` : '';
      add(
        c,
        'CrashLoopBackOff',
        'fail',
        `${who(c)} CrashLoopBackOff (${plural(c.restarts, 'restart')}${last})`,
      );
    } else if (c.state === 'waiting' && c.reason && IMAGE_PULL_REASONS.has(c.reason)) {
      add(c, c.reason, 'fail', `${who(c)} ${c.reason}${c.message ? `: ${clip(c.message, 120)}` : ''}`);
    } else if (c.state === 'waiting' && c.reason && CONFIG_REASONS.has(c.reason)) {
      add(c, c.reason, 'fail', `${who(c)} ${c.reason}${c.message ? `: ${clip(c.message, 120)}` : ''}`);
    } else if (oom && !c.ready) {
      add(c, 'OOMKilled', 'fail', `${who(c)} OOMKilled (${plural(c.restarts, 'restart')}), not ready`);
    } else if (c.state === 'terminated' && c.exitCode !== 0 && !c.ready && !c.init) {
      add(c, c.reason ?? 'Error', 'fail', `${who(c)} ${c.reason ?? 'terminated'}${exitText(c.exitCode)}`);
    } else if (oom) {
      add(
        c,
        'OOMKilled',
        'warn',
        `${who(c)} was OOMKilled earlier (${plural(c.restarts, 'restart')}), ready again`,
      );
    } else if (c.restarts > maxRestarts) {
      add(c, 'Restarts', 'warn', `${who(c)} restarted ${c.restarts} times (more than ${maxRestarts})`);
    }
  }
  if (!view.ready && !problems.some((x) => x.severity === 'fail')) {
    add(null, 'NotReady', 'fail', `${view.name} not ready (${view.status})`);
  }
  return problems;
}

function exitText(code: number | null | undefined): string {
  return code === null || code === undefined ? '' : ` exit ${code}`;
}

function evidenceOf(views: PodView[], problems: PodProblem[], now: number): Evidence[] {
  const evidence: Evidence[] = [
    {
      kind: 'table',
      title: 'Pods',
      columns: ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE', 'NODE'],
      rows: views
        .slice(0, MAX_ROWS)
        .map((v) => [
          v.name,
          `${v.readyContainers}/${v.totalContainers}`,
          v.status,
          restartsColumn(v, now),
          formatAge(v.createdAt, now),
          v.node ?? '<none>',
        ]),
    },
  ];
  const notable = views.flatMap((v) =>
    v.containers
      .filter((c) => c.state !== 'running' || c.restarts > 0 || c.lastTerminated)
      .map((c) => ({ pod: v.name, c })),
  );
  if (notable.length) {
    evidence.push({
      kind: 'table',
      title: 'Containers not running cleanly',
      columns: ['POD', 'CONTAINER', 'STATE', 'REASON', 'EXIT CODE', 'RESTARTS', 'LAST STATE', 'MESSAGE'],
      rows: notable
        .slice(0, MAX_ROWS)
        .map(({ pod, c }) => [
          pod,
          c.init ? `${c.name} (init)` : c.name,
          c.state,
          c.reason,
          c.exitCode,
          c.restarts,
          c.lastTerminated
            ? `${c.lastTerminated.reason ?? 'Terminated'}${exitText(c.lastTerminated.exitCode)}`
            : null,
          c.message,
        ]),
    });
  }
  const hidden = Math.max(views.length - MAX_ROWS, 0) + Math.max(notable.length - MAX_ROWS, 0);
  if (hidden > 0 || problems.length) {
    const lines = problems.slice(0, MAX_ROWS).map((x) => `${x.severity.toUpperCase()} ${x.text}`);
    if (hidden > 0) lines.push(`(${hidden} more rows not shown)`);
    evidence.push({ kind: 'text', title: 'Reasons', text: lines.join('\n') });
  }
  return evidence;
}
