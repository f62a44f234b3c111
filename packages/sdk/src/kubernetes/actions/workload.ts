import type { V1Deployment, V1Pod, V1PodTemplateSpec, V1StatefulSet } from '@kubernetes/client-node';
import { formatMillis } from '../../core/duration';
import { RunbookError } from '../../core/errors';
import { type Cell, type Evidence, type Finding, finding } from '../../core/finding';
import type { Json } from '../../core/json';
import { sleep } from '../../core/sleep';
import type { KubernetesCluster, RequestOptions, WorkloadKind } from '../cluster';
import { isKubernetesApiError } from '../errors';
import { controlledBy, listRevisions, selectorText, templatesEqual } from '../revisions';
import { type RolloutStatus, rolloutStatus } from '../rollout-status';

// ---- reading and writing workloads ---------------------------------------------------------------------

/** A workload as read from the API. */
export type Workload = V1Deployment | V1StatefulSet;

/** `Deployment ns/name`, for messages. */
export function describeWorkload(kind: WorkloadKind, namespace: string, name: string): string {
  return `${kind} ${namespace}/${name}`;
}

/** Reads a Deployment or StatefulSet. */
export function readWorkload(
  cluster: KubernetesCluster,
  kind: WorkloadKind,
  namespace: string,
  name: string,
  options: RequestOptions,
): Promise<Workload> {
  const what = `read ${describeWorkload(kind, namespace, name)}`;
  return kind === 'Deployment'
    ? cluster.call(what, (o) => cluster.apps.readNamespacedDeployment({ name, namespace }, o), options)
    : cluster.call(what, (o) => cluster.apps.readNamespacedStatefulSet({ name, namespace }, o), options);
}

/** Patches a Deployment or StatefulSet with the given patch format; returns the object as stored. */
export function patchWorkload(
  cluster: KubernetesCluster,
  kind: WorkloadKind,
  namespace: string,
  name: string,
  body: unknown,
  options: RequestOptions & { contentType: NonNullable<RequestOptions['contentType']> },
): Promise<Workload> {
  const what = `patch ${describeWorkload(kind, namespace, name)}`;
  return kind === 'Deployment'
    ? cluster.call(what, (o) => cluster.apps.patchNamespacedDeployment({ name, namespace, body }, o), options)
    : cluster.call(
        what,
        (o) => cluster.apps.patchNamespacedStatefulSet({ name, namespace, body }, o),
        options,
      );
}

/** Thrown when a paused Deployment is asked to restart or roll back (kubectl refuses both). */
export function pausedError(message: string, namespace: string, name: string): RunbookError {
  return new RunbookError('K8S_PAUSED', message, { retriable: false, details: { namespace, name } });
}

/** The current time as kubectl writes `restartedAt`: RFC 3339, whole seconds. */
export function rfc3339Now(now: number = Date.now()): string {
  return new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Plain JSON of an object read through the typed client (dates become RFC 3339 strings, `undefined`s go). */
export function plainJson<T>(value: T): Json {
  return value === undefined ? null : (JSON.parse(JSON.stringify(value)) as Json);
}

// ---- waiting for a rollout -----------------------------------------------------------------------------

/** Waiting reasons of a container that will not get better by waiting: the rollout is failing. */
const FAILING_REASONS = new Set([
  'CrashLoopBackOff',
  'ImagePullBackOff',
  'ErrImagePull',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
]);

/** One container of the new revision that is failing, and why. */
export type FailingContainer = {
  pod: string;
  container: string;
  /** `CrashLoopBackOff`, `ImagePullBackOff`, `ErrImagePull`, `OOMKilled`, … */
  reason: string;
  message: string;
  restarts: number;
};

/** What a wait for a rollout saw. */
export type RolloutWaitData = {
  kind: WorkloadKind;
  namespace: string;
  name: string;
  /** `done`, `progressing` (the time ran out), `failed`, or `unknown` when the workload could not be read. */
  state: RolloutStatus['state'] | 'unknown';
  /** kubectl's words for the last status seen. */
  message: string;
  elapsedMs: number;
  /** Replica counts of the last status seen. */
  replicas: number;
  updatedReplicas: number;
  readyReplicas: number;
  availableReplicas: number;
  /** Containers of the new revision's pods that are failing (crash loop, image pull, OOM kill). */
  failing: FailingContainer[];
};

/**
 * First and longest pause between two looks at a rollout: quick at first (a restart of a small, healthy
 * deployment is over in tens of milliseconds on the simulator and in seconds on a cluster), doubling to
 * once a second, so a long rollout costs one read a second.
 */
export const ROLLOUT_POLL = { firstMs: 5, maxMs: 1_000 } as const;

/** Options of {@link awaitRollout}. */
export interface AwaitRolloutOptions {
  timeoutMs: number;
  signal: AbortSignal;
  /**
   * A further condition for "done" beyond kubectl's (the replica count a scale asked for, say): returns
   * why it is not met yet, or `undefined` when it is. A `fail` return ends the wait as failed.
   */
  alsoRequire?: (
    workload: Workload,
    status: RolloutStatus,
  ) => { wait: string } | { fail: string } | undefined;
}

/**
 * Waits until a rollout is done as `kubectl rollout status` judges it, polling with the step's signal,
 * and never longer than `timeoutMs`. Returns:
 * - `ok` when done (and `alsoRequire` holds);
 * - `fail` as soon as the rollout fails (`ProgressDeadlineExceeded`), or pods of the new revision are
 *   crash-looping, failing to pull their image, or OOM-killed — the summary names the reason; or when the
 *   time runs out, with kubectl's last message;
 * - `unknown` when the workload could not be read until the time ran out (the API was unavailable).
 * Throws only the signal's reason when it aborts, and errors that say the workload is gone or forbidden.
 */
export async function awaitRollout(
  cluster: KubernetesCluster,
  target: { kind: WorkloadKind; namespace: string; name: string },
  options: AwaitRolloutOptions,
): Promise<Finding<RolloutWaitData>> {
  const { kind, namespace, name } = target;
  const label = describeWorkload(kind, namespace, name);
  const started = Date.now();
  const deadline = started + options.timeoutMs;
  // Requests stop at the deadline too, so a slow API cannot stretch the wait past the timeout.
  const request = { signal: AbortSignal.any([options.signal, AbortSignal.timeout(options.timeoutMs)]) };
  let delay: number = ROLLOUT_POLL.firstMs;
  let last: RolloutStatus | undefined;
  let lastError: string | undefined;
  let pods: V1Pod[] = [];

  const result = (
    status: 'ok' | 'fail' | 'unknown',
    state: RolloutWaitData['state'],
    summary: string,
    failing: FailingContainer[] = [],
  ): Finding<RolloutWaitData> => {
    const data: RolloutWaitData = {
      kind,
      namespace,
      name,
      state,
      message: last?.message ?? lastError ?? '',
      elapsedMs: Date.now() - started,
      replicas: last?.replicas ?? 0,
      updatedReplicas: last?.updatedReplicas ?? 0,
      readyReplicas: last?.readyReplicas ?? 0,
      availableReplicas: last?.availableReplicas ?? 0,
      failing,
    };
    return finding(status, summary, data, rolloutEvidence(data, pods));
  };

  for (;;) {
    options.signal.throwIfAborted();
    let workload: Workload | undefined;
    try {
      workload = await readWorkload(cluster, kind, namespace, name, request);
      lastError = undefined;
    } catch (e) {
      // A transient API failure is waited out; a missing or forbidden workload is not.
      if (options.signal.aborted) throw options.signal.reason;
      if (!isKubernetesApiError(e) || !e.retriable) throw e;
      lastError = e.message;
    }
    if (workload) {
      last = rolloutStatus(workload, kind);
      const extra = last.state === 'done' ? options.alsoRequire?.(workload, last) : undefined;
      if (last.state === 'done' && extra === undefined) {
        pods = [];
        return result('ok', 'done', `${label}: ${last.message}`);
      }
      if (extra && 'fail' in extra) return result('fail', 'failed', `${label}: ${extra.fail}`);
      if (last.state === 'failed') {
        pods = await newRevisionPods(cluster, kind, workload, request).catch(() => []);
        const failing = failingContainers(pods);
        const why = failing.length > 0 ? `; failing pods: ${describeFailing(failing)}` : '';
        return result('fail', 'failed', `${label}: ${last.message}${why}`, failing);
      }
      pods = await newRevisionPods(cluster, kind, workload, request).catch(() => {
        if (options.signal.aborted) throw options.signal.reason;
        return pods;
      });
      const failing = failingContainers(pods);
      if (failing.length > 0) {
        return result(
          'fail',
          'failed',
          `${label}: pods of the new revision are failing: ${describeFailing(failing)}`,
          failing,
        );
      }
      if (extra && 'wait' in extra) last = { ...last, state: 'progressing', message: extra.wait };
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      const waited = formatMillis(options.timeoutMs);
      // Unknown only when the rollout was never seen; a read cut off at the deadline still fails on what was seen.
      if (!last && lastError) {
        return result(
          'unknown',
          'unknown',
          `${label}: could not read the rollout for ${waited}: ${lastError}`,
        );
      }
      return result(
        'fail',
        'progressing',
        `${label}: rollout not done after ${waited}: ${last?.message ?? lastError ?? 'no status'}${warningOf(pods)}`,
      );
    }
    await sleep(Math.min(delay, left), options.signal);
    delay = Math.min(delay * 2, ROLLOUT_POLL.maxMs);
  }
}

/**
 * The pods of the workload's newest revision: for a Deployment, those of the ReplicaSet whose template is
 * the Deployment's (or the highest revision while the controller has not created it yet); for a
 * StatefulSet, those labelled with its `updateRevision`.
 */
export async function newRevisionPods(
  cluster: KubernetesCluster,
  kind: WorkloadKind,
  workload: Workload,
  options: RequestOptions,
): Promise<V1Pod[]> {
  const namespace = workload.metadata?.namespace ?? '';
  let owner: string | undefined;
  let labelSelector: string;
  if (kind === 'Deployment') {
    const deployment = workload as V1Deployment;
    const revisions = await listRevisions(cluster, namespace, deployment, options);
    const template = deployment.spec?.template as V1PodTemplateSpec;
    const current = revisions.find((r) => templatesEqual(r.template, template)) ?? revisions.at(-1);
    if (!current) return [];
    owner = current.replicaSet.metadata?.uid;
    labelSelector = selectorText(current.replicaSet.spec?.selector);
  } else {
    const sts = workload as V1StatefulSet;
    owner = sts.metadata?.uid;
    const revision = sts.status?.updateRevision;
    labelSelector = [selectorText(sts.spec?.selector), revision ? `controller-revision-hash=${revision}` : '']
      .filter(Boolean)
      .join(',');
  }
  const list = await cluster.call(
    `list pods of ${describeWorkload(kind, namespace, workload.metadata?.name ?? '')}`,
    (o) => cluster.core.listNamespacedPod({ namespace, ...(labelSelector ? { labelSelector } : {}) }, o),
    options,
  );
  return list.items.filter((p) => owner && controlledBy(p.metadata?.ownerReferences, owner));
}

/** Containers (init and regular) that are crash-looping, cannot pull their image, or were OOM-killed. */
export function failingContainers(pods: V1Pod[]): FailingContainer[] {
  const out: FailingContainer[] = [];
  for (const pod of pods) {
    const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
    for (const c of statuses) {
      const waiting = c.state?.waiting;
      const terminated = c.state?.terminated ?? c.lastState?.terminated;
      // An OOM kill in the past of a container that is ready again is history, not a failing rollout.
      const oom = terminated?.reason === 'OOMKilled' && !c.ready;
      if ((waiting?.reason && FAILING_REASONS.has(waiting.reason)) || oom) {
        const reason = waiting?.reason && FAILING_REASONS.has(waiting.reason) ? waiting.reason : 'OOMKilled';
        const parts = [
          waiting?.message,
          oom && reason !== 'OOMKilled'
            ? `last terminated: OOMKilled (exit code ${terminated?.exitCode})`
            : '',
          !oom && terminated?.reason
            ? `last terminated: ${terminated.reason} (exit code ${terminated.exitCode})`
            : '',
        ].filter((p): p is string => !!p);
        out.push({
          pod: pod.metadata?.name ?? '',
          container: c.name,
          reason,
          message: parts.join('; '),
          restarts: c.restartCount ?? 0,
        });
      }
    }
  }
  return out;
}

function describeFailing(failing: FailingContainer[]): string {
  const shown = failing
    .slice(0, 3)
    .map((f) => `${f.pod}/${f.container} ${f.reason}${f.message ? ` (${f.message})` : ''}`);
  return `${shown.join('; ')}${failing.length > 3 ? `; and ${failing.length - 3} more` : ''}`;
}

/** kubectl's "(Warning: …)" suffix: an unschedulable pod or a waiting container, when there is one. */
function warningOf(pods: V1Pod[]): string {
  for (const pod of pods) {
    const unschedulable = pod.status?.conditions?.find(
      (c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable',
    );
    if (unschedulable) return ` (Warning: ${unschedulable.message ?? 'Unschedulable'})`;
    for (const c of pod.status?.containerStatuses ?? []) {
      const waiting = c.state?.waiting;
      if (waiting?.reason && waiting.reason !== 'ContainerCreating') {
        return ` (Warning: ${waiting.reason}${waiting.message ? ` - ${waiting.message}` : ''})`;
      }
    }
  }
  return '';
}

function rolloutEvidence(data: RolloutWaitData, pods: V1Pod[]): Evidence[] {
  const evidence: Evidence[] = [
    {
      kind: 'text',
      title: `rollout status ${data.kind.toLowerCase()}/${data.name}`,
      text: data.message,
    },
  ];
  if (pods.length > 0) {
    const rows: Cell[][] = pods.map((p) => {
      const statuses = p.status?.containerStatuses ?? [];
      const ready = statuses.filter((c) => c.ready).length;
      const restarts = statuses.reduce((n, c) => n + (c.restartCount ?? 0), 0);
      const waiting = statuses.find((c) => c.state?.waiting?.reason)?.state?.waiting?.reason;
      return [
        p.metadata?.name ?? '',
        `${ready}/${statuses.length}`,
        waiting ?? p.status?.phase ?? '',
        restarts,
      ];
    });
    evidence.push({
      kind: 'table',
      title: 'pods of the new revision',
      columns: ['pod', 'ready', 'status', 'restarts'],
      rows,
    });
  }
  return evidence;
}
