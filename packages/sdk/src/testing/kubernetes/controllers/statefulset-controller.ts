import type { LabelSelectorObject } from '../label-selector';
import type { KubeObject } from '../object-store';
import { CONTROLLERREVISIONS, PODS, STATEFULSETS } from '../resources';
import { StatusError } from '../status-error';
import type { Controller, ControllerContext } from './controller';
import { isPodTerminating, isRunningAndReady, msUntilAvailable, podPhase } from './pod-readiness';
import {
  controllerRef,
  isControlledBy,
  type PodTemplateSpec,
  podFromTemplate,
  shortHash,
  templatesEqual,
} from './pod-template';
import { byCreation, earliest, reconcileEach, sameJson } from './reconcile';

const COMPONENT = 'statefulset-controller';
/** Pod label naming the ControllerRevision the pod was made from. */
export const REVISION_HASH_LABEL = 'controller-revision-hash';
export const POD_NAME_LABEL = 'statefulset.kubernetes.io/pod-name';
export const POD_INDEX_LABEL = 'apps.kubernetes.io/pod-index';
/** ControllerRevision label with the hash part of its name. */
const HASH_LABEL = 'controller.kubernetes.io/hash';

export interface StatefulSetSpec {
  replicas?: number;
  selector?: LabelSelectorObject;
  template?: PodTemplateSpec;
  serviceName?: string;
  podManagementPolicy?: 'OrderedReady' | 'Parallel' | string;
  updateStrategy?: {
    type?: 'RollingUpdate' | 'OnDelete' | string;
    rollingUpdate?: { partition?: number; [field: string]: unknown };
  };
  revisionHistoryLimit?: number;
  minReadySeconds?: number;
  ordinals?: { start?: number };
  volumeClaimTemplates?: { metadata?: { name?: string } }[];
}

export interface StatefulSetStatus {
  observedGeneration?: number;
  replicas: number;
  readyReplicas?: number;
  currentReplicas?: number;
  updatedReplicas?: number;
  availableReplicas: number;
  currentRevision?: string;
  updateRevision?: string;
  collisionCount: number;
}

/**
 * kube-controller-manager's StatefulSet controller: pods `<name>-<ordinal>` with stable identity, one
 * ControllerRevision per template, OrderedReady (one pod at a time, each waiting for its predecessors to be
 * Running and Ready) or Parallel management, scale-down from the highest ordinal, and RollingUpdate (from
 * the highest ordinal down to `partition`, one pod at a time) or OnDelete updates. PersistentVolumeClaims
 * are not simulated: pods only name the claims their volumeClaimTemplates would give them.
 */
export function statefulSetController(ctx: ControllerContext): Controller {
  return {
    name: 'statefulset',
    sync(now) {
      return reconcileEach(ctx.store.list(STATEFULSETS).items, (set) => reconcileStatefulSet(ctx, set, now));
    },
  };
}

const specOf = (set: KubeObject): StatefulSetSpec => (set.spec ?? {}) as StatefulSetSpec;
/** The ControllerRevision a pod was made from. */
const podRevision = (pod: KubeObject) => pod.metadata.labels?.[REVISION_HASH_LABEL];
const isHealthy = (pod: KubeObject) => isRunningAndReady(pod) && !isPodTerminating(pod);

function reconcileStatefulSet(ctx: ControllerContext, stored: KubeObject, now: number): number | undefined {
  const set = applyDefaults(ctx, stored);
  const { current, update, collisionCount } = syncRevisions(ctx, set);
  let wake: number | undefined;
  if (set.metadata.deletionTimestamp === undefined) {
    wake = updatePods(ctx, set, current, update, now);
  }
  const pods = ownedPods(ctx, set);
  const { status, wake: availableAt } = computeStatus(set, pods, current, update, collisionCount, now);
  if (!sameJson(set.status ?? {}, status)) {
    ctx.store.update(STATEFULSETS, { ...set, status }, { subresource: 'status' });
  }
  truncateHistory(ctx, set, pods, status);
  return earliest(wake, availableAt);
}

/** What the API server fills in on create; written with a normal update (which bumps `generation`). */
function applyDefaults(ctx: ControllerContext, set: KubeObject): KubeObject {
  const spec = structuredClone(specOf(set));
  spec.replicas ??= 1;
  spec.podManagementPolicy ||= 'OrderedReady';
  if (!spec.updateStrategy?.type) {
    spec.updateStrategy = { ...spec.updateStrategy, type: 'RollingUpdate' };
    spec.updateStrategy.rollingUpdate ??= {};
  }
  const rolling = spec.updateStrategy.rollingUpdate;
  if (spec.updateStrategy.type === 'RollingUpdate' && rolling) rolling.partition ??= 0;
  spec.revisionHistoryLimit ??= 10;
  if (sameJson(spec, specOf(set))) return set;
  return ctx.store.update(STATEFULSETS, { ...set, spec });
}

// ---- revisions ----

/** A revision's `data`: the strategic-merge patch that restores its template, as kubectl rollout undo applies it. */
function revisionData(template: PodTemplateSpec): { spec: { template: Record<string, unknown> } } {
  return { spec: { template: { ...structuredClone(template), $patch: 'replace' } } };
}

function templateOfRevision(revision: KubeObject): PodTemplateSpec {
  const data = revision.data as { spec?: { template?: Record<string, unknown> } } | undefined;
  const { $patch: _, ...template } = data?.spec?.template ?? {};
  return template as PodTemplateSpec;
}

const revisionNumber = (revision: KubeObject) => Number(revision.revision ?? 0);

function ownedRevisions(ctx: ControllerContext, set: KubeObject): KubeObject[] {
  return ctx.store
    .list(CONTROLLERREVISIONS, set.metadata.namespace)
    .items.filter((r) => isControlledBy(r, set))
    .sort((a, b) => revisionNumber(a) - revisionNumber(b) || byCreation(a, b));
}

/**
 * The current revision (what `status.currentRevision` names; the update revision when there is none yet)
 * and the update revision (the template now in the spec). A template equal to an older revision's reuses
 * that revision, renumbered to the newest, as a rollback does.
 */
function syncRevisions(
  ctx: ControllerContext,
  set: KubeObject,
): { current: KubeObject; update: KubeObject; collisionCount: number } {
  const revisions = ownedRevisions(ctx, set);
  const template = specOf(set).template ?? {};
  const next = Math.max(0, ...revisions.map(revisionNumber)) + 1;
  let collisionCount = (set.status as Partial<StatefulSetStatus> | undefined)?.collisionCount ?? 0;
  const equal = revisions.filter((r) => templatesEqual(templateOfRevision(r), template));
  const lastEqual = equal[equal.length - 1];
  let update: KubeObject;
  if (lastEqual && lastEqual.metadata.uid === revisions[revisions.length - 1]?.metadata.uid) {
    update = lastEqual;
  } else if (lastEqual) {
    update = ctx.store.update(CONTROLLERREVISIONS, { ...lastEqual, revision: next });
  } else {
    ({ revision: update, collisionCount } = createRevision(ctx, set, template, next, collisionCount));
  }
  const currentName = (set.status as Partial<StatefulSetStatus> | undefined)?.currentRevision;
  const current = revisions.find((r) => r.metadata.name === currentName) ?? update;
  return { current: current.metadata.uid === update.metadata.uid ? update : current, update, collisionCount };
}

function createRevision(
  ctx: ControllerContext,
  set: KubeObject,
  template: PodTemplateSpec,
  revision: number,
  collisionCount: number,
): { revision: KubeObject; collisionCount: number } {
  const data = revisionData(template);
  for (let count = collisionCount; ; count++) {
    const hash = shortHash(data, count);
    const name = `${set.metadata.name}-${hash}`;
    try {
      const created = ctx.store.create(CONTROLLERREVISIONS, {
        apiVersion: 'apps/v1',
        kind: 'ControllerRevision',
        metadata: {
          name,
          namespace: set.metadata.namespace ?? 'default',
          labels: { ...template.metadata?.labels, [HASH_LABEL]: hash },
          ownerReferences: [controllerRef(set)],
        },
        data,
        revision,
      });
      return { revision: created, collisionCount: count };
    } catch (e) {
      if (!(e instanceof StatusError && e.reason === 'AlreadyExists')) throw e;
      const existing = ctx.store.find(CONTROLLERREVISIONS, set.metadata.namespace, name);
      if (existing && sameJson(existing.data, data)) return { revision: existing, collisionCount: count };
      // Another object has this name: a different hash input gives a different name.
    }
  }
}

/** Deletes the oldest revisions no pod, nor the current or update revision, uses, beyond the history limit. */
function truncateHistory(
  ctx: ControllerContext,
  set: KubeObject,
  pods: KubeObject[],
  status: StatefulSetStatus,
): void {
  const live = new Set([status.currentRevision, status.updateRevision, ...pods.map(podRevision)]);
  const history = ownedRevisions(ctx, set).filter((r) => !live.has(r.metadata.name));
  const excess = history.length - (specOf(set).revisionHistoryLimit ?? 10);
  for (const revision of history.slice(0, Math.max(0, excess))) {
    ctx.store.delete(CONTROLLERREVISIONS, revision.metadata.namespace, revision.metadata.name);
  }
}

// ---- pods ----

/** The ordinal in `<set>-<ordinal>`, or -1 for a name that is not one of the set's. */
function ordinalOf(set: KubeObject, pod: KubeObject): number {
  const prefix = `${set.metadata.name}-`;
  const rest = pod.metadata.name.startsWith(prefix) ? pod.metadata.name.slice(prefix.length) : '';
  return /^(0|[1-9]\d*)$/.test(rest) ? Number(rest) : -1;
}

function ownedPods(ctx: ControllerContext, set: KubeObject): KubeObject[] {
  return ctx.store
    .list(PODS, set.metadata.namespace)
    .items.filter((p) => isControlledBy(p, set) && ordinalOf(set, p) >= 0)
    .sort((a, b) => ordinalOf(set, a) - ordinalOf(set, b));
}

function newPod(set: KubeObject, template: PodTemplateSpec, ordinal: number, revision: string) {
  const name = `${set.metadata.name}-${ordinal}`;
  const pod = podFromTemplate(template, set, name, {
    [POD_NAME_LABEL]: name,
    [POD_INDEX_LABEL]: String(ordinal),
    [REVISION_HASH_LABEL]: revision,
  });
  const spec = pod.spec as Record<string, unknown>;
  spec.hostname = name;
  const serviceName = specOf(set).serviceName;
  if (serviceName) spec.subdomain = serviceName;
  // Each pod mounts its own claims, `<template>-<pod>`, in place of same-named template volumes.
  const claims = (specOf(set).volumeClaimTemplates ?? []).flatMap((c) =>
    c.metadata?.name ? [c.metadata.name] : [],
  );
  if (claims.length > 0) {
    const volumes = ((spec.volumes ?? []) as { name: string }[]).filter((v) => !claims.includes(v.name));
    spec.volumes = [
      ...volumes,
      ...claims.map((claim) => ({ name: claim, persistentVolumeClaim: { claimName: `${claim}-${name}` } })),
    ];
  }
  return pod;
}

/**
 * One step of `updateStatefulSet`: (re)creates missing and failed pods, deletes pods beyond the replica
 * count from the highest ordinal, then replaces the highest-ordinal pod not at the update revision. With
 * OrderedReady each step waits for every pod before it to be Running, Ready and available.
 * Returns when a ready pod will become available (for `minReadySeconds`).
 */
function updatePods(
  ctx: ControllerContext,
  set: KubeObject,
  current: KubeObject,
  update: KubeObject,
  now: number,
): number | undefined {
  const spec = specOf(set);
  const start = spec.ordinals?.start ?? 0;
  const replicas = spec.replicas ?? 1;
  const minReady = spec.minReadySeconds ?? 0;
  const monotonic = spec.podManagementPolicy !== 'Parallel';
  const rolling = spec.updateStrategy?.type === 'RollingUpdate';
  const partition = rolling ? (spec.updateStrategy?.rollingUpdate?.partition ?? 0) : 0;

  const slots: (KubeObject | undefined)[] = new Array(replicas).fill(undefined);
  const condemned: KubeObject[] = [];
  for (const pod of ownedPods(ctx, set)) {
    const ordinal = ordinalOf(set, pod);
    if (ordinal >= start && ordinal < start + replicas) slots[ordinal - start] = pod;
    else condemned.push(pod);
  }
  const firstUnhealthy = [...slots, ...condemned].find((p) => p !== undefined && !isHealthy(p));
  let wake: number | undefined;
  /** Whether the pod lets an ordered sequence go on; notes when availability will come. */
  const available = (pod: KubeObject) => {
    const until = msUntilAvailable(pod, minReady, now);
    if (until !== undefined && until > 0) wake = earliest(wake, until);
    return until === 0;
  };

  for (let i = 0; i < slots.length; i++) {
    const ordinal = start + i;
    let pod = slots[i];
    if (pod && (podPhase(pod) === 'Failed' || podPhase(pod) === 'Succeeded')) {
      ctx.events.record(
        set,
        'Warning',
        'RecreatingFailedPod',
        `StatefulSet ${set.metadata.namespace}/${set.metadata.name} is recreating failed Pod ${pod.metadata.name}`,
        COMPONENT,
      );
      deletePod(ctx, set, pod);
      pod = undefined;
    }
    if (!pod) {
      // Ordinals below the partition keep the current revision; the rest get the update revision.
      const revision = rolling && ordinal < partition ? current : update;
      const created = ctx.store.create(
        PODS,
        newPod(set, templateOfRevision(revision), ordinal, revision.metadata.name),
      );
      ctx.events.record(
        set,
        'Normal',
        'SuccessfulCreate',
        `create Pod ${created.metadata.name} in StatefulSet ${set.metadata.name} successful`,
        COMPONENT,
      );
      slots[i] = created;
      if (monotonic) return wake;
      continue;
    }
    if (monotonic && (isPodTerminating(pod) || !isRunningAndReady(pod) || !available(pod))) return wake;
    fixIdentity(ctx, pod, ordinal);
  }

  for (let t = condemned.length - 1; t >= 0; t--) {
    const pod = condemned[t] as KubeObject;
    if (isPodTerminating(pod)) {
      if (monotonic) return wake;
      continue;
    }
    // Ordered scale-down waits for health, except for the pod that is itself the first unhealthy one.
    if (monotonic && pod !== firstUnhealthy && (!isRunningAndReady(pod) || !available(pod))) return wake;
    deletePod(ctx, set, pod);
    if (monotonic) return wake;
  }

  if (!rolling) return wake; // OnDelete: pods change revision only when someone deletes them
  for (let t = slots.length - 1; t >= partition - start && t >= 0; t--) {
    const pod = slots[t] as KubeObject;
    if (podRevision(pod) !== update.metadata.name && !isPodTerminating(pod)) {
      deletePod(ctx, set, pod);
      return wake;
    }
    if (!isHealthy(pod)) return wake;
  }
  return wake;
}

/** Restores the identity labels of a pod someone edited (the controller's `updateStatefulPod`). */
function fixIdentity(ctx: ControllerContext, pod: KubeObject, ordinal: number): void {
  const labels = pod.metadata.labels ?? {};
  if (labels[POD_NAME_LABEL] === pod.metadata.name && labels[POD_INDEX_LABEL] === String(ordinal)) return;
  const metadata = {
    ...pod.metadata,
    labels: { ...labels, [POD_NAME_LABEL]: pod.metadata.name, [POD_INDEX_LABEL]: String(ordinal) },
  };
  ctx.store.update(PODS, { ...pod, metadata });
}

function deletePod(ctx: ControllerContext, set: KubeObject, pod: KubeObject): void {
  try {
    ctx.store.delete(PODS, pod.metadata.namespace, pod.metadata.name);
  } catch (e) {
    if (e instanceof StatusError && e.code === 404) return;
    throw e;
  }
  ctx.events.record(
    set,
    'Normal',
    'SuccessfulDelete',
    `delete Pod ${pod.metadata.name} in StatefulSet ${set.metadata.name} successful`,
    COMPONENT,
  );
}

/**
 * Counts from the pods as they are now, and moves the current revision to the update revision once a
 * rolling update has every pod updated and ready. Also returns when a ready pod becomes available.
 */
function computeStatus(
  set: KubeObject,
  pods: KubeObject[],
  current: KubeObject,
  update: KubeObject,
  collisionCount: number,
  now: number,
): { status: StatefulSetStatus; wake: number | undefined } {
  const minReady = specOf(set).minReadySeconds ?? 0;
  let wake: number | undefined;
  let replicas = 0;
  let ready = 0;
  let available = 0;
  let currentReplicas = 0;
  let updated = 0;
  for (const pod of pods) {
    if (podPhase(pod) !== '') replicas++;
    if (isRunningAndReady(pod)) {
      ready++;
      const until = msUntilAvailable(pod, minReady, now);
      if (until === 0) available++;
      else if (until !== undefined) wake = earliest(wake, until);
    }
    if (podPhase(pod) !== '' && !isPodTerminating(pod)) {
      if (podRevision(pod) === current.metadata.name) currentReplicas++;
      if (podRevision(pod) === update.metadata.name) updated++;
    }
  }
  let currentRevision = current.metadata.name;
  const rolling = specOf(set).updateStrategy?.type === 'RollingUpdate';
  if (rolling && updated === replicas && ready === replicas) {
    currentReplicas = updated;
    currentRevision = update.metadata.name;
  }
  // Zero counts are left out as the API server's `omitempty` does; replicas, availableReplicas and
  // collisionCount are always serialized.
  const status: StatefulSetStatus = {
    observedGeneration: set.metadata.generation,
    replicas,
    ...(ready ? { readyReplicas: ready } : {}),
    ...(currentReplicas ? { currentReplicas } : {}),
    ...(updated ? { updatedReplicas: updated } : {}),
    currentRevision,
    updateRevision: update.metadata.name,
    collisionCount,
    availableReplicas: available,
  };
  return { status, wake };
}
