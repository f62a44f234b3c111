import type {
  V1Deployment,
  V1LabelSelector,
  V1OwnerReference,
  V1PodTemplateSpec,
  V1ReplicaSet,
} from '@kubernetes/client-node';
import { canonicalJson, type Json } from '../core/json';
import type { KubernetesCluster, RequestOptions } from './cluster';

/** The annotation the Deployment controller numbers its ReplicaSets (and the Deployment) with. */
export const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';
/** The label the Deployment controller adds to each ReplicaSet's template and pods. */
export const POD_TEMPLATE_HASH_LABEL = 'pod-template-hash';

/** One entry of a Deployment's rollout history: a ReplicaSet it owns and the template it runs. */
export interface Revision {
  /** From the ReplicaSet's `deployment.kubernetes.io/revision` annotation. */
  revision: number;
  replicaSet: V1ReplicaSet;
  /** The ReplicaSet's pod template (with its `pod-template-hash` label, as stored). */
  template: V1PodTemplateSpec;
}

/**
 * A Deployment's rollout history as kubectl reads it: the ReplicaSets in its namespace matching its
 * selector and controlled by it (an owner reference with its uid; `controller: true`, or unset for
 * objects written by tools that omit it), each with the revision from its annotation. ReplicaSets
 * without a valid revision are left out, as kubectl does. Sorted by revision, ascending.
 */
export async function listRevisions(
  cluster: KubernetesCluster,
  namespace: string,
  deployment: V1Deployment,
  options: RequestOptions,
): Promise<Revision[]> {
  const uid = deployment.metadata?.uid;
  const name = deployment.metadata?.name ?? '';
  const labelSelector = selectorText(deployment.spec?.selector);
  const list = await cluster.call(
    `list ReplicaSets of Deployment ${namespace}/${name}`,
    (opts) =>
      cluster.apps.listNamespacedReplicaSet({ namespace, ...(labelSelector ? { labelSelector } : {}) }, opts),
    options,
  );
  const revisions: Revision[] = [];
  for (const rs of list.items) {
    if (!uid || !controlledBy(rs.metadata?.ownerReferences, uid)) continue;
    const revision = revisionOf(rs.metadata?.annotations);
    if (revision === undefined || !rs.spec?.template) continue;
    revisions.push({ revision, replicaSet: rs, template: rs.spec.template });
  }
  return revisions.sort((a, b) => a.revision - b.revision);
}

/** The revision number in an object's annotations, or `undefined` when absent or not a whole number. */
export function revisionOf(annotations: Record<string, string> | undefined): number | undefined {
  const text = annotations?.[REVISION_ANNOTATION];
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  return Number(text);
}

/** Whether an object is controlled by the owner with `uid`. */
export function controlledBy(owners: V1OwnerReference[] | undefined, uid: string): boolean {
  return (owners ?? []).some((o) => o.uid === uid && o.controller !== false);
}

/**
 * Whether two pod templates are equal ignoring the `pod-template-hash` label, as kubectl's
 * `equalIgnoreHash` decides before a rollback. Like Kubernetes' semantic equality, an empty map or list
 * equals an absent one.
 */
export function templatesEqual(a: V1PodTemplateSpec, b: V1PodTemplateSpec): boolean {
  const normal = (t: V1PodTemplateSpec) => canonicalJson(compact(templateWithoutHash(t)) ?? {});
  return normal(a) === normal(b);
}

/**
 * A pod template as plain JSON (timestamps as RFC 3339 strings) without the `pod-template-hash` label:
 * what a rollback writes back into the Deployment, as kubectl does.
 */
export function templateWithoutHash(template: V1PodTemplateSpec): Json {
  const out = JSON.parse(JSON.stringify(template ?? {})) as {
    metadata?: { labels?: Record<string, string> };
  };
  if (out.metadata?.labels) delete out.metadata.labels[POD_TEMPLATE_HASH_LABEL];
  return out as Json;
}

/** Drops `null`s, empty objects and empty arrays, recursively; `undefined` for a value that is all empty. */
function compact(value: unknown): Json | undefined {
  if (value === null || value === undefined) return undefined;
  if (Array.isArray(value)) {
    const items = value.map(compact).filter((v): v is Json => v !== undefined);
    return items.length === 0 ? undefined : items;
  }
  if (typeof value === 'object') {
    const out: Record<string, Json> = {};
    for (const [k, v] of Object.entries(value)) {
      const c = compact(v);
      if (c !== undefined) out[k] = c;
    }
    return Object.keys(out).length === 0 ? undefined : out;
  }
  return value as Json;
}

/**
 * A label selector as the `labelSelector` query parameter spells it:
 * `a=b,c in (d,e),f notin (g),h,!i`. Empty for no selector.
 */
export function selectorText(selector: V1LabelSelector | undefined): string {
  if (!selector) return '';
  const parts = Object.entries(selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of selector.matchExpressions ?? []) {
    const values = [...(e.values ?? [])].sort().join(',');
    if (e.operator === 'In') parts.push(`${e.key} in (${values})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${values})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}
