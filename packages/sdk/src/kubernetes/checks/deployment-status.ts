import type { V1Deployment, V1StatefulSet } from '@kubernetes/client-node';
import { z } from 'zod';
import { type Cell, type Evidence, type FindingStatus, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { type Check, defineCheck } from '../../core/step';
import type { KubernetesCluster } from '../cluster';
import { type RolloutState, rolloutStatus } from '../rollout-status';
import { formatAge, isoOf } from './age';
import { clip, isNotFound } from './wording';

/** Options of {@link deploymentStatus}. */
export const DeploymentStatusOptions = z.object({
  /** Namespace of the workload. */
  namespace: z.string().min(1),
  /** Name of the Deployment or StatefulSet. */
  name: z.string().min(1),
  /** Which kind of workload. @default "Deployment" */
  kind: z.enum(['Deployment', 'StatefulSet']).default('Deployment'),
});
export type DeploymentStatusOptions = z.output<typeof DeploymentStatusOptions>;
export type DeploymentStatusOptionsInput = z.input<typeof DeploymentStatusOptions>;

/** A condition of the workload (`Available`, `Progressing`, `ReplicaFailure`). */
export type WorkloadCondition = {
  type: string;
  status: string;
  reason: string | null;
  message: string | null;
  lastUpdate: string | null;
};

/** What {@link deploymentStatus} found. */
export type DeploymentStatusData = {
  namespace: string;
  name: string;
  kind: 'Deployment' | 'StatefulSet';
  found: boolean;
  /** kubectl's judgement; `null` when the workload was not found or has no rollout status (`OnDelete`). */
  state: RolloutState | null;
  /** kubectl's words, e.g. `Waiting for deployment "x" rollout to finish: 1 of 3 updated replicas are available...`. */
  message: string;
  paused: boolean;
  generation: number;
  observedGeneration: number;
  /** Desired replicas (`spec.replicas`). */
  replicas: number;
  currentReplicas: number;
  updatedReplicas: number;
  readyReplicas: number;
  availableReplicas: number;
  unavailableReplicas: number;
  conditions: WorkloadCondition[];
  /** StatefulSet only: `status.currentRevision` and `status.updateRevision`. */
  currentRevision: string | null;
  updateRevision: string | null;
};

const KIND = 'k8s.deployment-status';

/**
 * Like `kubectl rollout status deployment/<name>` (or `statefulset/<name>`), judged once instead of waited for.
 *
 * - `ok` when the rollout is done.
 * - `warn` while it progresses (not observed yet, replicas still updating, old ones terminating, new ones not
 *   yet available).
 * - `fail` when it failed (`Progressing` condition with reason `ProgressDeadlineExceeded`), when the
 *   Deployment is paused with unavailable replicas (nothing will bring them back until it is resumed), or when
 *   the workload does not exist.
 * - `unknown` for a StatefulSet with the `OnDelete` update strategy, which has no rollout status.
 */
export function deploymentStatus(
  cluster: KubernetesCluster,
  params: DeploymentStatusOptionsInput,
): Check<DeploymentStatusData> {
  const p = parseOptions(KIND, DeploymentStatusOptions, params);
  const ref = `${p.kind.toLowerCase()}/${p.name}`;
  return defineCheck({
    kind: KIND,
    description: `Rollout status of ${ref} in ${p.namespace}`,
    async run(ctx) {
      cluster.assertContext();
      let workload: V1Deployment | V1StatefulSet;
      try {
        workload = await cluster.call(
          `read ${ref} in ${p.namespace}`,
          (options) =>
            p.kind === 'Deployment'
              ? cluster.apps.readNamespacedDeployment({ name: p.name, namespace: p.namespace }, options)
              : cluster.apps.readNamespacedStatefulSet({ name: p.name, namespace: p.namespace }, options),
          { signal: ctx.signal },
        );
      } catch (e) {
        if (!isNotFound(e)) throw e;
        return finding('fail', `${p.kind} ${p.name} not found in ${p.namespace}`, {
          ...emptyData(p),
          message: `${p.kind} ${p.name} not found`,
        });
      }

      const judged = rolloutStatus(workload, p.kind);
      const paused = p.kind === 'Deployment' && (workload as V1Deployment).spec?.paused === true;
      const unavailable =
        (workload as V1Deployment).status?.unavailableReplicas ??
        Math.max(judged.replicas - judged.availableReplicas, 0);
      const conditions = (workload.status?.conditions ?? []).map(
        (c): WorkloadCondition => ({
          type: c.type,
          status: c.status,
          reason: c.reason ?? null,
          message: c.message ? clip(c.message, 300) : null,
          lastUpdate: isoOf(
            (c as { lastUpdateTime?: Date }).lastUpdateTime ??
              (c as { lastTransitionTime?: Date }).lastTransitionTime,
          ),
        }),
      );
      const sts = p.kind === 'StatefulSet' ? (workload as V1StatefulSet) : undefined;
      const onDelete = sts !== undefined && sts.spec?.updateStrategy?.type === 'OnDelete';
      const data: DeploymentStatusData = {
        namespace: p.namespace,
        name: p.name,
        kind: p.kind,
        found: true,
        state: onDelete ? null : judged.state,
        message: judged.message,
        paused,
        generation: judged.generation,
        observedGeneration: judged.observedGeneration,
        replicas: judged.replicas,
        currentReplicas: judged.currentReplicas,
        updatedReplicas: judged.updatedReplicas,
        readyReplicas: judged.readyReplicas,
        availableReplicas: judged.availableReplicas,
        unavailableReplicas: unavailable,
        conditions,
        currentRevision: sts?.status?.currentRevision ?? null,
        updateRevision: sts?.status?.updateRevision ?? null,
      };
      // The columns of `kubectl get deployment`: during a rollout old and new pods both count in `current`.
      const counts = `desired ${judged.replicas}, current ${judged.currentReplicas}, up-to-date ${judged.updatedReplicas}, ready ${judged.readyReplicas}, available ${judged.availableReplicas}`;
      const evidence = evidenceOf(data, workload, p.kind);

      let status: FindingStatus;
      let summary: string;
      if (onDelete) {
        status = 'unknown';
        summary = `${ref} in ${p.namespace} uses the OnDelete update strategy, which has no rollout status (${counts})`;
      } else if (paused && unavailable > 0) {
        status = 'fail';
        summary = `${ref} in ${p.namespace} is paused with ${unavailable} unavailable replica${unavailable === 1 ? '' : 's'} (${counts}); nothing changes until it is resumed (kubectl rollout resume)`;
      } else if (judged.state === 'failed') {
        status = 'fail';
        const progressing = conditions.find((c) => c.type === 'Progressing');
        summary = `${judged.message}${progressing?.message ? `: ${progressing.message}` : ''} (${counts})`;
      } else if (judged.state === 'progressing') {
        status = 'warn';
        summary = `${judged.message} (${counts}${paused ? ', paused' : ''})`;
      } else {
        status = 'ok';
        summary = `${judged.message} (${counts}${paused ? ', paused' : ''})`;
      }
      return finding(status, summary, data, evidence);
    },
  });
}

function emptyData(p: DeploymentStatusOptions): DeploymentStatusData {
  return {
    namespace: p.namespace,
    name: p.name,
    kind: p.kind,
    found: false,
    state: null,
    message: '',
    paused: false,
    generation: 0,
    observedGeneration: 0,
    replicas: 0,
    currentReplicas: 0,
    updatedReplicas: 0,
    readyReplicas: 0,
    availableReplicas: 0,
    unavailableReplicas: 0,
    conditions: [],
    currentRevision: null,
    updateRevision: null,
  };
}

function evidenceOf(
  data: DeploymentStatusData,
  workload: V1Deployment | V1StatefulSet,
  kind: 'Deployment' | 'StatefulSet',
): Evidence[] {
  const now = Date.now();
  const columns = ['DESIRED', 'CURRENT', 'UP-TO-DATE', 'READY', 'AVAILABLE', 'GENERATION', 'OBSERVED', 'AGE'];
  const row: Cell[] = [
    data.replicas,
    data.currentReplicas,
    data.updatedReplicas,
    data.readyReplicas,
    data.availableReplicas,
    data.generation,
    data.observedGeneration,
    formatAge(workload.metadata?.creationTimestamp, now),
  ];
  if (kind === 'StatefulSet') {
    const sts = workload as V1StatefulSet;
    columns.push('STRATEGY', 'PARTITION', 'CURRENT REVISION', 'UPDATE REVISION');
    row.push(
      sts.spec?.updateStrategy?.type ?? 'RollingUpdate',
      sts.spec?.updateStrategy?.rollingUpdate?.partition ?? 0,
      data.currentRevision ?? '',
      data.updateRevision ?? '',
    );
  } else {
    columns.push('PAUSED');
    row.push(data.paused);
  }
  const evidence: Evidence[] = [
    { kind: 'table', title: `${kind} ${data.namespace}/${data.name}`, columns, rows: [row] },
    { kind: 'text', title: 'kubectl rollout status', text: data.message },
  ];
  if (data.conditions.length) {
    evidence.push({
      kind: 'table',
      title: 'Conditions',
      columns: ['TYPE', 'STATUS', 'REASON', 'MESSAGE', 'LAST UPDATE'],
      rows: data.conditions.map((c) => [
        c.type,
        c.status,
        c.reason,
        c.message,
        c.lastUpdate ? `${formatAge(c.lastUpdate, now)} ago` : null,
      ]),
    });
  }
  return evidence;
}
