import { type LabelSelectorObject, matchesLabels, selectorFromObject } from '../label-selector';
import type { KubeObject } from '../object-store';
import { PODS, REPLICASETS } from '../resources';
import { StatusError } from '../status-error';
import type { Controller, ControllerContext } from './controller';
import {
  isPodActive,
  isPodReady,
  maxRestarts,
  msUntilAvailable,
  podPhase,
  readySince,
} from './pod-readiness';
import { type PodTemplateSpec, podFromTemplate, randomSuffix } from './pod-template';
import { earliest, reconcileEach, sameJson } from './reconcile';

const COMPONENT = 'replicaset-controller';
/** Pods with a lower cost are deleted first when a ReplicaSet scales down. */
const DELETION_COST = 'controller.kubernetes.io/pod-deletion-cost';

export interface ReplicaSetSpec {
  replicas?: number;
  minReadySeconds?: number;
  selector?: LabelSelectorObject;
  template?: PodTemplateSpec;
}

export interface ReplicaSetStatus {
  replicas: number;
  fullyLabeledReplicas?: number;
  readyReplicas?: number;
  availableReplicas?: number;
  observedGeneration?: number;
}

export const rsSpec = (rs: KubeObject): ReplicaSetSpec => (rs.spec ?? {}) as ReplicaSetSpec;
export const rsStatus = (rs: KubeObject): Partial<ReplicaSetStatus> =>
  (rs.status ?? {}) as Partial<ReplicaSetStatus>;
/** `spec.replicas`, which the API server defaults to 1. */
export const rsReplicas = (rs: KubeObject): number => rsSpec(rs).replicas ?? 1;

/**
 * kube-controller-manager's ReplicaSet controller: keeps `spec.replicas` active pods per ReplicaSet,
 * creating `<rs>-<5 chars>` pods from the template and deleting the least valuable ones first, and
 * reports how many exist, are ready and are available. It manages only pods it controls (owner
 * reference), releasing those whose labels no longer match its selector; it adopts no orphans.
 */
export function replicaSetController(ctx: ControllerContext): Controller {
  return {
    name: 'replicaset',
    sync(now) {
      const podsByOwner = new Map<string, KubeObject[]>();
      for (const pod of ctx.store.list(PODS).items) {
        const owner = pod.metadata.ownerReferences?.find((r) => r.controller === true)?.uid;
        if (owner !== undefined) podsByOwner.set(owner, [...(podsByOwner.get(owner) ?? []), pod]);
      }
      const podsOf = (rs: KubeObject) => podsByOwner.get(rs.metadata.uid) ?? [];
      const excess = (rs: KubeObject) => podsOf(rs).filter(isPodActive).length - rsReplicas(rs);
      // Scale-downs first, so that a rolling update's old pods go before its new ones come.
      const sets = ctx.store
        .list(REPLICASETS)
        .items.sort((a, b) => Number(excess(b) > 0) - Number(excess(a) > 0));
      return reconcileEach(sets, (rs) => reconcileReplicaSet(ctx, rs, podsOf(rs), now));
    },
  };
}

/** `controlled`: the pods this ReplicaSet controls, as listed at the start of the sync. */
function reconcileReplicaSet(
  ctx: ControllerContext,
  rs: KubeObject,
  controlled: KubeObject[],
  now: number,
): number | undefined {
  const selector = selectorFromObject(rsSpec(rs).selector);
  let owned = controlled;

  // A pod relabelled out of the selector (to take it out of service for debugging) is let go.
  for (const pod of owned.filter((p) => !matchesLabels(selector, p.metadata.labels))) {
    release(ctx, pod, rs);
  }
  owned = owned.filter((p) => matchesLabels(selector, p.metadata.labels));

  // The API server refuses a template its own selector does not match; creating pods that would be
  // released at once would never end, so such a ReplicaSet only reports status.
  const template = rsSpec(rs).template ?? {};
  if (rs.metadata.deletionTimestamp === undefined && matchesLabels(selector, template.metadata?.labels)) {
    const active = owned.filter(isPodActive);
    const diff = active.length - rsReplicas(rs);
    if (diff < 0) {
      for (let i = 0; i < -diff; i++) {
        const pod = createPod(ctx, rs);
        if (pod) owned.push(pod);
      }
    } else if (diff > 0) {
      for (const pod of podsToDelete(active, diff)) {
        deletePod(ctx, rs, pod);
        owned = owned.filter((p) => p.metadata.uid !== pod.metadata.uid);
      }
    }
  }
  return writeStatus(ctx, rs, owned, now);
}

function createPod(ctx: ControllerContext, rs: KubeObject): KubeObject | undefined {
  const template = rsSpec(rs).template ?? {};
  // A random suffix can clash with an existing pod; a real API server retries generateName the same way.
  for (let attempt = 0; attempt < 5; attempt++) {
    const name = `${rs.metadata.name}-${randomSuffix()}`;
    try {
      const pod = podFromTemplate(template, rs, name);
      // Real pods get their names from `generateName`, which stays in their metadata.
      pod.metadata = { ...pod.metadata, generateName: `${rs.metadata.name}-` };
      const created = ctx.store.create(PODS, pod);
      ctx.events.record(rs, 'Normal', 'SuccessfulCreate', `Created pod: ${name}`, COMPONENT);
      return created;
    } catch (e) {
      if (e instanceof StatusError && e.reason === 'AlreadyExists') continue;
      // No FailedCreate event: recording one on every retry would itself be a change that wakes the loop.
      throw e;
    }
  }
  return undefined;
}

function deletePod(ctx: ControllerContext, rs: KubeObject, pod: KubeObject): void {
  try {
    ctx.store.delete(PODS, pod.metadata.namespace, pod.metadata.name);
  } catch (e) {
    // Already gone is what we wanted.
    if (e instanceof StatusError && e.code === 404) return;
    throw e;
  }
  ctx.events.record(rs, 'Normal', 'SuccessfulDelete', `Deleted pod: ${pod.metadata.name}`, COMPONENT);
}

function release(ctx: ControllerContext, pod: KubeObject, rs: KubeObject): void {
  const ownerReferences = (pod.metadata.ownerReferences ?? []).filter((r) => r.uid !== rs.metadata.uid);
  const metadata = { ...pod.metadata, ownerReferences };
  if (ownerReferences.length === 0) delete (metadata as { ownerReferences?: unknown }).ownerReferences;
  ctx.store.update(PODS, { ...pod, metadata });
}

/**
 * The `count` pods worth least, in kube-controller-manager's order: unscheduled before scheduled,
 * Pending before Unknown before Running, not ready before ready, lower deletion cost first, more pods
 * of the set on the same node first, ready for less time first, more restarts first, newer first.
 */
export function podsToDelete(active: KubeObject[], count: number): KubeObject[] {
  const perNode = new Map<string, number>();
  for (const p of active) {
    const node = nodeOf(p);
    if (node) perNode.set(node, (perNode.get(node) ?? 0) + 1);
  }
  const rank = (p: KubeObject) => perNode.get(nodeOf(p)) ?? 0;
  const ranked = [...active].sort((a, b) => {
    if (nodeOf(a) !== nodeOf(b) && (nodeOf(a) === '' || nodeOf(b) === '')) return nodeOf(a) === '' ? -1 : 1;
    const phase = phaseOrdinal(a) - phaseOrdinal(b);
    if (phase !== 0) return phase;
    if (isPodReady(a) !== isPodReady(b)) return isPodReady(a) ? 1 : -1;
    const cost = deletionCost(a) - deletionCost(b);
    if (cost !== 0) return cost;
    if (rank(a) !== rank(b)) return rank(b) - rank(a);
    if (isPodReady(a) && isPodReady(b)) {
      const since = (readySince(b) ?? 0) - (readySince(a) ?? 0);
      if (since !== 0) return since;
    }
    if (maxRestarts(a) !== maxRestarts(b)) return maxRestarts(b) - maxRestarts(a);
    return b.metadata.creationTimestamp.localeCompare(a.metadata.creationTimestamp);
  });
  return ranked.slice(0, count);
}

const nodeOf = (pod: KubeObject): string => (pod.spec as { nodeName?: string } | undefined)?.nodeName ?? '';

function phaseOrdinal(pod: KubeObject): number {
  const phase = podPhase(pod);
  if (phase === 'Pending' || phase === '') return 0;
  if (phase === 'Unknown') return 1;
  return 2;
}

function deletionCost(pod: KubeObject): number {
  const cost = Number(pod.metadata.annotations?.[DELETION_COST] ?? 0);
  return Number.isFinite(cost) ? cost : 0;
}

/**
 * Writes the status the pods now give (only when it differs, so a settled cluster is quiet) and returns
 * when a ready pod will have been ready for `minReadySeconds`, which changes `availableReplicas`.
 */
function writeStatus(
  ctx: ControllerContext,
  rs: KubeObject,
  owned: KubeObject[],
  now: number,
): number | undefined {
  const spec = rsSpec(rs);
  const minReady = spec.minReadySeconds ?? 0;
  const templateLabels = spec.template?.metadata?.labels ?? {};
  const active = owned.filter(isPodActive);
  let wake: number | undefined;
  let ready = 0;
  let available = 0;
  let fullyLabeled = 0;
  for (const pod of active) {
    if (Object.entries(templateLabels).every(([k, v]) => pod.metadata.labels?.[k] === v)) fullyLabeled++;
    if (isPodReady(pod)) ready++;
    const until = msUntilAvailable(pod, minReady, now);
    if (until === 0) available++;
    else if (until !== undefined) wake = earliest(wake, until);
  }
  // Zero counts are left out, as the API server's `omitempty` does; `replicas` is always there.
  const status: ReplicaSetStatus = {
    replicas: active.length,
    ...(fullyLabeled ? { fullyLabeledReplicas: fullyLabeled } : {}),
    ...(ready ? { readyReplicas: ready } : {}),
    ...(available ? { availableReplicas: available } : {}),
    observedGeneration: rs.metadata.generation,
  };
  // Pods changed, the ReplicaSet did not: its resourceVersion is still current unless someone else wrote it.
  if (!sameJson(rs.status, status))
    ctx.store.update(REPLICASETS, { ...rs, status }, { subresource: 'status' });
  return wake;
}
