import type { V1Deployment, V1PodTemplateSpec } from '@kubernetes/client-node';
import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { NonRetriableError, RunbookError } from '../../core/errors';
import { canonicalJson, type Json, sha256 } from '../../core/json';
import { parseOptions } from '../../core/parse-options';
import type { Change } from '../../core/plan';
import type { ResourceRef } from '../../core/resource';
import type { StepContext } from '../../core/step';
import { type Action, defineAction } from '../../core/step';
import { type KubernetesCluster, k8sRef } from '../cluster';
import { NamespaceName, ObjectName } from '../options';
import {
  listRevisions,
  REVISION_ANNOTATION,
  type Revision,
  revisionOf,
  templatesEqual,
  templateWithoutHash,
} from '../revisions';
import { diffJson } from './diff';
import { awaitRollout, patchWorkload, pausedError, readWorkload } from './workload';

/** Options of {@link rolloutUndo}. */
export const RolloutUndoOptions = z.object({
  /** Namespace of the Deployment; must be one the cluster's `namespaces` option allows. */
  namespace: NamespaceName,
  /** Name of the Deployment. */
  name: ObjectName,
  /** The revision to go back to; `0` or absent means the previous one (the second-highest), as kubectl. */
  toRevision: z.number().int().min(0).optional(),
  /** How long verify waits for the rollout to be done. @default "5m" */
  timeout: Duration.default('5m'),
});
export type RolloutUndoOptions = z.output<typeof RolloutUndoOptions>;
export type RolloutUndoOptionsInput = z.input<typeof RolloutUndoOptions>;

/** What an undo plan fixes. */
export type RolloutUndoParams = {
  namespace: string;
  name: string;
  /** The revision running at plan time. */
  fromRevision: number | null;
  /** Its ReplicaSet: what revert rolls back to. */
  fromReplicaSet: string | null;
  /** The revision rolled back to. */
  toRevision: number;
  /** Its ReplicaSet and uid, re-read at apply time. */
  replicaSet: string;
  replicaSetUid: string;
  /**
   * SHA-256 of the patch planned (template and annotations). The patch itself is rebuilt from the ReplicaSet
   * at apply time, since the engine redacts secret-looking text in stored plans; a different digest then
   * means the world changed since the plan.
   */
  patchDigest: string;
  timeoutMs: number;
};

const KIND = 'k8s.rollout-undo';

/**
 * Annotations kubectl keeps from the Deployment (and does not copy from the ReplicaSet) on a rollback:
 * `annotationsToSkip` in kubectl's rollback.go.
 */
const DEPLOYMENT_OWN_ANNOTATIONS = [
  'kubectl.kubernetes.io/last-applied-configuration',
  REVISION_ANNOTATION,
  'deployment.kubernetes.io/revision-history',
  'deployment.kubernetes.io/desired-replicas',
  'deployment.kubernetes.io/max-replicas',
  'deprecated.deployment.rollback.to',
];

/**
 * `kubectl rollout undo deployment/NAME [--to-revision=N]`, with kubectl's rollback semantics:
 * the history is the ReplicaSets the Deployment controls, numbered by `deployment.kubernetes.io/revision`;
 * the target is `toRevision`, or the second-highest revision; a paused Deployment is refused; when the
 * target's template already equals the Deployment's (ignoring `pod-template-hash`) there is nothing to do
 * (an empty plan: "skipped rollback"). The change is a JSON patch replacing `/spec/template` with the
 * target's template (hash label removed) and `/metadata/annotations` with the target ReplicaSet's
 * annotations plus the Deployment's own (`last-applied-configuration`, `revision`, `revision-history`,
 * `desired-replicas`, `max-replicas`), exactly as kubectl builds it.
 *
 * - **plan** says `revision N → M` and lists every difference of the templates (images, env, annotations,
 *   resources, …; values of secret-looking env names redacted) and of the Deployment's annotations.
 * - **apply** re-reads the target ReplicaSet, rebuilds the patch and applies it only if it is the planned one.
 * - **verify** waits for the rollout to be done (fail fast on crash loops, image pulls, OOM kills).
 * - **revert** rolls back again, to the ReplicaSet that ran before (revision N).
 *
 * Risk `high` (it changes what code runs), not destructive: the history keeps the way back.
 */
export function rolloutUndo(
  cluster: KubernetesCluster,
  options: RolloutUndoOptionsInput,
): Action<RolloutUndoParams, null> {
  const o = parseOptions(KIND, RolloutUndoOptions, options);
  const target = k8sRef(o.namespace, 'Deployment', o.name);
  const label = `Deployment ${o.namespace}/${o.name}`;
  return defineAction<RolloutUndoParams, null>({
    kind: KIND,
    target,
    risk: 'high',
    destructive: false,
    description: `Roll ${label} back to ${o.toRevision ? `revision ${o.toRevision}` : 'its previous revision'} (kubectl rollout undo)`,

    async plan(ctx) {
      cluster.assertMayChange(o.namespace);
      const deployment = (await readWorkload(cluster, 'Deployment', o.namespace, o.name, {
        signal: ctx.signal,
      })) as V1Deployment;
      // Paused first, as kubectl does: "paused" is the answer even when there is nothing to roll back to.
      if (deployment.spec?.paused) {
        throw pausedError(
          `Refused to roll back ${label}: you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume deployment/${o.name}' and try again.`,
          o.namespace,
          o.name,
        );
      }
      const revisions = await listRevisions(cluster, o.namespace, deployment, { signal: ctx.signal });
      const to = pickRevision(revisions, o.toRevision ?? 0, o.name);
      const template = deployment.spec?.template as V1PodTemplateSpec;
      const from =
        revisions.find((r) => templatesEqual(r.template, template)) ??
        revisions.find((r) => r.revision === revisionOf(deployment.metadata?.annotations));
      const fromRevision = from?.revision ?? revisionOf(deployment.metadata?.annotations) ?? null;
      const params: RolloutUndoParams = {
        namespace: o.namespace,
        name: o.name,
        fromRevision,
        fromReplicaSet: from?.replicaSet.metadata?.name ?? null,
        toRevision: to.revision,
        replicaSet: to.replicaSet.metadata?.name ?? '',
        replicaSetUid: to.replicaSet.metadata?.uid ?? '',
        patchDigest: '',
        timeoutMs: toMillis(o.timeout),
      };
      if (templatesEqual(to.template, template)) {
        return {
          summary: `${label}: skipped rollback (current template already matches revision ${to.revision})`,
          changes: [],
          params,
        };
      }
      const patch = rollbackPatch(deployment, to);
      return {
        summary: `Roll back ${label} from revision ${fromRevision ?? 'unknown'} to revision ${to.revision}: its pods are replaced`,
        changes: rollbackChanges(target, deployment, patch),
        params: { ...params, patchDigest: digest(patch) },
      };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      cluster.assertMayChange(p.namespace);
      const { deployment, revision } = await readTarget(cluster, p, p.replicaSet, ctx);
      if (revision.replicaSet.metadata?.uid !== p.replicaSetUid) {
        throw stalePlan(`ReplicaSet ${p.replicaSet} was replaced since the plan`, p);
      }
      if (deployment.spec?.paused) {
        throw pausedError(
          `Refused to roll back Deployment ${p.namespace}/${p.name}: it was paused after the plan. Resume it first with 'kubectl rollout resume deployment/${p.name}'.`,
          p.namespace,
          p.name,
        );
      }
      const patch = rollbackPatch(deployment, revision);
      if (digest(patch) !== p.patchDigest) {
        throw stalePlan('the Deployment or the target revision changed since the plan', p);
      }
      await applyRollback(cluster, p, deployment, patch, ctx);
      return null;
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      return awaitRollout(
        cluster,
        { kind: 'Deployment', namespace: p.namespace, name: p.name },
        { timeoutMs: p.timeoutMs, signal: ctx.signal },
      );
    },

    async revert(ctx, applied) {
      const p = applied.plan.params;
      cluster.assertMayChange(p.namespace);
      if (!p.fromReplicaSet) {
        throw new NonRetriableError(
          `Cannot undo the rollback of Deployment ${p.namespace}/${p.name}: no ReplicaSet ran its template at plan time (revision ${p.fromRevision ?? 'unknown'}). Roll it forward by hand.`,
          { code: 'K8S_REVERT_IMPOSSIBLE' },
        );
      }
      const { deployment, revision } = await readTarget(cluster, p, p.fromReplicaSet, ctx);
      if (templatesEqual(revision.template, deployment.spec?.template as V1PodTemplateSpec)) return;
      await applyRollback(cluster, p, deployment, rollbackPatch(deployment, revision), ctx);
      ctx.log(`rolled Deployment ${p.namespace}/${p.name} back to ReplicaSet ${p.fromReplicaSet}`);
    },
  });
}

/** kubectl's `deploymentRevision`: the given revision, or the second-highest. */
function pickRevision(revisions: Revision[], toRevision: number, name: string): Revision {
  if (toRevision > 0) {
    const found = revisions.find((r) => r.revision === toRevision);
    if (!found) {
      throw new NonRetriableError(
        `Deployment ${name}: unable to find specified revision ${toRevision} in history (it has: ${revisions.map((r) => r.revision).join(', ') || 'none'}).`,
        { code: 'K8S_REVISION_NOT_FOUND' },
      );
    }
    return found;
  }
  const previous = revisions.at(-2);
  if (!previous) {
    throw new NonRetriableError(`no rollout history found for deployment "${name}"`, {
      code: 'K8S_REVISION_NOT_FOUND',
    });
  }
  return previous;
}

type RollbackPatch = { template: Json; annotations: Record<string, string> };

/** The template and annotations kubectl's rollback writes. */
function rollbackPatch(deployment: V1Deployment, to: Revision): RollbackPatch {
  const own = deployment.metadata?.annotations ?? {};
  const annotations: Record<string, string> = {};
  for (const key of DEPLOYMENT_OWN_ANNOTATIONS) {
    const value = own[key];
    if (value !== undefined) annotations[key] = value;
  }
  for (const [key, value] of Object.entries(to.replicaSet.metadata?.annotations ?? {})) {
    if (!DEPLOYMENT_OWN_ANNOTATIONS.includes(key)) annotations[key] = value;
  }
  return { template: templateWithoutHash(to.template), annotations };
}

function digest(patch: RollbackPatch): string {
  return sha256(canonicalJson(patch));
}

function rollbackChanges(target: ResourceRef, deployment: V1Deployment, patch: RollbackPatch): Change[] {
  const current = templateWithoutHash(deployment.spec?.template as V1PodTemplateSpec);
  const template = diffJson(current, patch.template, 'spec.template');
  const annotations = diffJson(
    (deployment.metadata?.annotations ?? {}) as Json,
    patch.annotations,
    'metadata.annotations',
  );
  return [...template, ...annotations].map((d) => ({ target, ...d }));
}

async function readTarget(
  cluster: KubernetesCluster,
  p: RolloutUndoParams,
  replicaSet: string,
  ctx: StepContext,
): Promise<{ deployment: V1Deployment; revision: Revision }> {
  const deployment = (await readWorkload(cluster, 'Deployment', p.namespace, p.name, {
    signal: ctx.signal,
  })) as V1Deployment;
  const revisions = await listRevisions(cluster, p.namespace, deployment, { signal: ctx.signal });
  const revision = revisions.find((r) => r.replicaSet.metadata?.name === replicaSet);
  if (!revision) throw stalePlan(`ReplicaSet ${replicaSet} is no longer in its history`, p);
  return { deployment, revision };
}

/** kubectl's JSON patch; `add` for annotations when the Deployment has none (a `replace` of a missing member fails). */
async function applyRollback(
  cluster: KubernetesCluster,
  p: RolloutUndoParams,
  deployment: V1Deployment,
  patch: RollbackPatch,
  ctx: StepContext,
): Promise<void> {
  const annotationsOp = deployment.metadata?.annotations ? 'replace' : 'add';
  await patchWorkload(
    cluster,
    'Deployment',
    p.namespace,
    p.name,
    [
      { op: 'replace', path: '/spec/template', value: patch.template },
      { op: annotationsOp, path: '/metadata/annotations', value: patch.annotations },
    ],
    { signal: ctx.signal, contentType: 'application/json-patch+json' },
  );
}

function stalePlan(why: string, p: RolloutUndoParams): RunbookError {
  return new RunbookError(
    'STALE_PLAN',
    `Rollback of Deployment ${p.namespace}/${p.name} to revision ${p.toRevision} not applied: ${why}. Plan again.`,
    { details: { namespace: p.namespace, name: p.name, toRevision: p.toRevision } },
  );
}
