import type { V1Deployment } from '@kubernetes/client-node';
import { z } from 'zod';
import { type Evidence, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { type Check, defineCheck } from '../../core/step';
import type { KubernetesCluster } from '../cluster';
import { listRevisions, POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, type Revision } from '../revisions';
import { formatAge, isoOf } from './age';
import { clip, isNotFound, MAX_ROWS, plural } from './wording';

/** Options of {@link rolloutHistory}. */
export const RolloutHistoryOptions = z.object({
  /** Namespace of the Deployment. */
  namespace: z.string().min(1),
  /** Name of the Deployment. */
  name: z.string().min(1),
});
export type RolloutHistoryOptions = z.output<typeof RolloutHistoryOptions>;
export type RolloutHistoryOptionsInput = z.input<typeof RolloutHistoryOptions>;

/** One revision of a Deployment: one of its ReplicaSets. */
export type RevisionView = {
  revision: number;
  /** The `kubernetes.io/change-cause` annotation (set by `kubectl annotate` or `--record`). */
  changeCause: string | null;
  images: { container: string; image: string }[];
  /** The `pod-template-hash` label of the revision's ReplicaSet and pods. */
  podTemplateHash: string | null;
  replicaSet: string;
  createdAt: string | null;
  /** Pods of this revision now. */
  replicas: number;
  readyReplicas: number;
  /** The revision the Deployment runs (its `deployment.kubernetes.io/revision`). */
  current: boolean;
};

/** What {@link rolloutHistory} found. */
export type RolloutHistoryData = {
  namespace: string;
  name: string;
  found: boolean;
  /** The revision the Deployment runs; `null` when it has none yet. */
  current: number | null;
  /** What `kubectl rollout undo` would go back to: the newest revision before the current one. */
  previous: number | null;
  /** Oldest first; at most the newest 50. */
  revisions: RevisionView[];
};

const KIND = 'k8s.rollout-history';
const CHANGE_CAUSE_ANNOTATION = 'kubernetes.io/change-cause';

/**
 * Like `kubectl rollout history deployment/<name>`, with what each revision ran: images, pod-template-hash,
 * when it was created, and which one is current.
 *
 * - `ok` when the Deployment has revisions (even just one: the summary then says there is nothing to roll
 *   back to).
 * - `unknown` when it has no ReplicaSet yet (the controller has not acted on it).
 * - `fail` when the Deployment does not exist.
 */
export function rolloutHistory(
  cluster: KubernetesCluster,
  params: RolloutHistoryOptionsInput,
): Check<RolloutHistoryData> {
  const p = parseOptions(KIND, RolloutHistoryOptions, params);
  const ref = `deployment/${p.name}`;
  return defineCheck({
    kind: KIND,
    description: `Rollout history of ${ref} in ${p.namespace}`,
    async run(ctx) {
      cluster.assertContext();
      const base = { namespace: p.namespace, name: p.name };
      let deployment: V1Deployment;
      try {
        deployment = await cluster.call(
          `read ${ref} in ${p.namespace}`,
          (options) =>
            cluster.apps.readNamespacedDeployment({ name: p.name, namespace: p.namespace }, options),
          { signal: ctx.signal },
        );
      } catch (e) {
        if (!isNotFound(e)) throw e;
        return finding('fail', `Deployment ${p.name} not found in ${p.namespace}`, {
          ...base,
          found: false,
          current: null,
          previous: null,
          revisions: [],
        });
      }
      const revisions = await listRevisions(cluster, p.namespace, deployment, { signal: ctx.signal });
      const annotated = Number(deployment.metadata?.annotations?.[REVISION_ANNOTATION]);
      const current =
        Number.isInteger(annotated) && revisions.some((r) => r.revision === annotated)
          ? annotated
          : (revisions.at(-1)?.revision ?? null);
      const previous =
        current === null ? null : (revisions.filter((r) => r.revision < current).at(-1)?.revision ?? null);
      const views = revisions.map((r) => viewRevision(r, current));
      const data: RolloutHistoryData = {
        ...base,
        found: true,
        current,
        previous,
        revisions: views.slice(-MAX_ROWS),
      };
      if (views.length === 0 || current === null) {
        return finding(
          'unknown',
          `${ref} in ${p.namespace} has no revisions yet (no ReplicaSet found)`,
          data,
        );
      }
      const now = Date.now();
      const describe = (revision: number) => {
        const v = views.find((x) => x.revision === revision);
        if (!v) return `${revision}`;
        const images = v.images.map((i) => `${i.container}=${i.image}`).join(', ');
        return `${revision} (${images}${v.createdAt ? `, ${formatAge(v.createdAt, now)} ago` : ''}${v.changeCause ? `, "${clip(v.changeCause, 60)}"` : ''})`;
      };
      const summary =
        previous === null
          ? `${ref} in ${p.namespace}: ${plural(views.length, 'revision')}; current ${describe(current)}; nothing earlier to roll back to`
          : `${ref} in ${p.namespace}: ${plural(views.length, 'revision')}; current ${describe(current)}; previous ${describe(previous)}`;
      return finding('ok', summary, data, evidenceOf(views, now));
    },
  });
}

function viewRevision(r: Revision, current: number | null): RevisionView {
  const rs = r.replicaSet;
  const changeCause =
    rs.metadata?.annotations?.[CHANGE_CAUSE_ANNOTATION] ??
    r.template.metadata?.annotations?.[CHANGE_CAUSE_ANNOTATION];
  return {
    revision: r.revision,
    changeCause: changeCause ? clip(changeCause, 300) : null,
    images: (r.template.spec?.containers ?? []).map((c) => ({ container: c.name, image: c.image ?? '' })),
    podTemplateHash: rs.metadata?.labels?.[POD_TEMPLATE_HASH_LABEL] ?? null,
    replicaSet: rs.metadata?.name ?? '',
    createdAt: isoOf(rs.metadata?.creationTimestamp),
    replicas: rs.status?.replicas ?? 0,
    readyReplicas: rs.status?.readyReplicas ?? 0,
    current: r.revision === current,
  };
}

function evidenceOf(views: RevisionView[], now: number): Evidence[] {
  const shown = views.slice(-MAX_ROWS);
  return [
    {
      kind: 'table',
      title:
        views.length > shown.length ? `Revisions (newest ${shown.length} of ${views.length})` : 'Revisions',
      columns: ['REVISION', 'CURRENT', 'CHANGE-CAUSE', 'IMAGES', 'POD-TEMPLATE-HASH', 'REPLICAS', 'CREATED'],
      rows: shown.map((v) => [
        v.revision,
        v.current ? '*' : '',
        v.changeCause ?? '<none>',
        v.images.map((i) => `${i.container}=${i.image}`).join(', '),
        v.podTemplateHash,
        `${v.readyReplicas}/${v.replicas}`,
        v.createdAt ? `${formatAge(v.createdAt, now)} ago` : null,
      ]),
    },
  ];
}
