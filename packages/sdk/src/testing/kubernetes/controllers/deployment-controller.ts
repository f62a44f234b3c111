import type { KubeObject } from '../object-store';
import { DEPLOYMENTS, PODS, REPLICASETS } from '../resources';
import { StatusError } from '../status-error';
import type { Controller, ControllerContext } from './controller';
import {
  calculateStatus,
  compactStatus,
  condition,
  type DeploymentSpec,
  type DeploymentStatus,
  deploymentComplete,
  deploymentProgressing,
  deploymentSpec,
  deploymentStatus,
  deploymentTimedOut,
  desiredReplicas,
  getCondition,
  hasProgressDeadline,
  maxSurge,
  maxUnavailable,
  progressDeadline,
  Reason,
  removeCondition,
  setCondition,
} from './deployment-progress';
import { podPhase } from './pod-readiness';
import {
  controllerRef,
  isControlledBy,
  POD_TEMPLATE_HASH_LABEL,
  podTemplateHash,
  templatesEqual,
  withLabels,
} from './pod-template';
import { byCreation, reconcileEach, sameJson } from './reconcile';
import { type ReplicaSetSpec, rsReplicas, rsSpec, rsStatus } from './replicaset-controller';

const COMPONENT = 'deployment-controller';
export const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';
export const REVISION_HISTORY_ANNOTATION = 'deployment.kubernetes.io/revision-history';
export const DESIRED_REPLICAS_ANNOTATION = 'deployment.kubernetes.io/desired-replicas';
export const MAX_REPLICAS_ANNOTATION = 'deployment.kubernetes.io/max-replicas';
/** A Deployment's annotations that its ReplicaSets do not get: they are per ReplicaSet, or kubectl's own. */
const NOT_COPIED = new Set([
  'kubectl.kubernetes.io/last-applied-configuration',
  REVISION_ANNOTATION,
  REVISION_HISTORY_ANNOTATION,
  DESIRED_REPLICAS_ANNOTATION,
  MAX_REPLICAS_ANNOTATION,
  'deprecated.deployment.rollback.to',
]);
/** How long `revision-history` may grow (kube-controller-manager's limit). */
const MAX_REVISION_HISTORY_CHARS = 2000;

/**
 * kube-controller-manager's Deployment controller: one ReplicaSet per pod template (`<name>-<hash>`),
 * revisions, RollingUpdate within maxSurge/maxUnavailable, Recreate, pause, proportional scaling,
 * history cleanup, status and the `Available`/`Progressing` conditions with the progress deadline.
 * It manages the ReplicaSets it controls and adopts none.
 */
export function deploymentController(ctx: ControllerContext): Controller {
  return {
    name: 'deployment',
    sync(now) {
      return reconcileEach(ctx.store.list(DEPLOYMENTS).items, (d) => new DeploymentSync(ctx, now, d).run());
    },
  };
}

/** `deployment.kubernetes.io/revision` of a Deployment or ReplicaSet; 0 when absent or not a number. */
export function revisionOf(obj: KubeObject): number {
  const n = Number(obj.metadata.annotations?.[REVISION_ANNOTATION] ?? '');
  return Number.isInteger(n) ? n : 0;
}

const isActive = (rs: KubeObject) => rsReplicas(rs) > 0;
const total = (sets: KubeObject[], of: (rs: KubeObject) => number | undefined) =>
  sets.reduce((n, rs) => n + (of(rs) ?? 0), 0);
/** Oldest first; creation times have whole seconds, so the revision breaks ties before the name does. */
const oldestFirst = (a: KubeObject, b: KubeObject) =>
  a.metadata.creationTimestamp.localeCompare(b.metadata.creationTimestamp) ||
  revisionOf(a) - revisionOf(b) ||
  byCreation(a, b);

/** One reconcile of one Deployment (`syncDeployment`). Every write replaces the object it holds. */
class DeploymentSync {
  #d: KubeObject;
  /** The ReplicaSets this Deployment controls, by uid, kept current after each write. */
  readonly #sets = new Map<string, KubeObject>();
  #newUid: string | undefined;

  constructor(
    private readonly ctx: ControllerContext,
    private readonly now: number,
    d: KubeObject,
  ) {
    this.#d = d;
  }

  get #spec(): DeploymentSpec {
    return deploymentSpec(this.#d);
  }

  get #replicas(): number {
    return desiredReplicas(this.#d);
  }

  get #newRS(): KubeObject | undefined {
    return this.#newUid === undefined ? undefined : this.#sets.get(this.#newUid);
  }

  get #oldRSs(): KubeObject[] {
    return [...this.#sets.values()].filter((rs) => rs.metadata.uid !== this.#newUid).sort(oldestFirst);
  }

  get #allRSs(): KubeObject[] {
    const newRS = this.#newRS;
    return newRS ? [...this.#oldRSs, newRS] : this.#oldRSs;
  }

  /** Returns the milliseconds until the progress deadline of a rollout in flight, if any. */
  run(): number | undefined {
    this.#applyDefaults();
    const selector = this.#spec.selector;
    if (
      !selector ||
      (Object.keys(selector.matchLabels ?? {}).length === 0 && !selector.matchExpressions?.length)
    ) {
      this.#refuseSelectingAll();
      return undefined;
    }
    const namespace = this.#d.metadata.namespace;
    for (const rs of this.ctx.store.list(REPLICASETS, namespace).items) {
      if (isControlledBy(rs, this.#d)) this.#sets.set(rs.metadata.uid, rs);
    }
    if (this.#d.metadata.deletionTimestamp !== undefined) {
      this.#findReplicaSets(false);
      this.#syncStatus();
      return undefined;
    }
    this.#checkPausedConditions();
    if (this.#spec.paused || this.#isScalingEvent()) this.#syncScaling();
    else if (this.#spec.strategy?.type === 'Recreate') this.#rolloutRecreate();
    else this.#rolloutRolling();

    const status = deploymentStatus(this.#d);
    if (this.#spec.paused || deploymentComplete(this.#d, status)) return undefined;
    // A deadline already behind us was judged by the rollout path; the scaling path leaves it to the next change.
    const deadline = progressDeadline(this.#d, status);
    return deadline !== undefined && deadline > this.now ? deadline - this.now : undefined;
  }

  /** What the API server fills in on create; written with a normal update (which bumps `generation`). */
  #applyDefaults(): void {
    const spec = structuredClone(this.#spec);
    spec.replicas ??= 1;
    spec.strategy = { ...spec.strategy, type: spec.strategy?.type || 'RollingUpdate' };
    if (spec.strategy.type === 'RollingUpdate') {
      spec.strategy.rollingUpdate = {
        maxUnavailable: spec.strategy.rollingUpdate?.maxUnavailable ?? '25%',
        maxSurge: spec.strategy.rollingUpdate?.maxSurge ?? '25%',
      };
    }
    spec.revisionHistoryLimit ??= 10;
    spec.progressDeadlineSeconds ??= 600;
    if (!sameJson(spec, this.#spec)) this.#d = this.ctx.store.update(DEPLOYMENTS, { ...this.#d, spec });
  }

  #refuseSelectingAll(): void {
    const status = deploymentStatus(this.#d);
    if ((status.observedGeneration ?? 0) >= this.#d.metadata.generation) return;
    // Recorded once per generation, with the status write, so that it cannot keep the cluster busy.
    this.ctx.events.record(
      this.#d,
      'Warning',
      'SelectingAll',
      'This deployment is selecting all pods. A non-empty selector is required.',
      COMPONENT,
    );
    this.#saveStatus({ ...status, observedGeneration: this.#d.metadata.generation });
  }

  /**
   * Finds the new ReplicaSet (the oldest whose template equals the Deployment's) and the old ones, brings
   * the new one's revision to the highest (a rollback to an old template renumbers it), mirrors that on the
   * Deployment, and creates the new ReplicaSet when `create` and there is none.
   */
  #findReplicaSets(create: boolean): void {
    const template = this.#spec.template ?? {};
    const existing = [...this.#sets.values()]
      .sort(oldestFirst)
      .find((rs) => templatesEqual(rsSpec(rs).template, template));
    this.#newUid = existing?.metadata.uid;
    const newRevision = Math.max(0, ...this.#oldRSs.map(revisionOf)) + 1;
    if (existing) this.#syncNewReplicaSet(existing, newRevision);
    else if (create) this.#createNewReplicaSet(newRevision);
  }

  #syncNewReplicaSet(existing: KubeObject, newRevision: number): void {
    const copy = structuredClone(existing);
    const annotationsChanged = this.#setNewReplicaSetAnnotations(copy, newRevision, true);
    const minReady = this.#spec.minReadySeconds ?? 0;
    if (annotationsChanged || (rsSpec(copy).minReadySeconds ?? 0) !== minReady) {
      copy.spec = withMinReadySeconds(rsSpec(copy), minReady);
      this.#put(this.ctx.store.update(REPLICASETS, copy));
    }
    const revision = this.#newRS?.metadata.annotations?.[REVISION_ANNOTATION];
    if (revision !== undefined) this.#setDeploymentRevision(revision);
    // A deployment that had no Progressing condition starts its progress clock now.
    const status = structuredClone(deploymentStatus(this.#d));
    if (hasProgressDeadline(this.#d) && !getCondition(status, 'Progressing')) {
      const message = `Found new replica set "${copy.metadata.name}"`;
      setCondition(status, condition('Progressing', 'True', Reason.foundNewReplicaSet, message, this.now));
      this.#saveStatus(status);
    }
  }

  #createNewReplicaSet(newRevision: number): void {
    const d = this.#d;
    const template = this.#spec.template ?? {};
    const collisionCount = deploymentStatus(d).collisionCount;
    const hash = podTemplateHash(template, collisionCount);
    const rsTemplate = withLabels(template, { [POD_TEMPLATE_HASH_LABEL]: hash });
    const selector = structuredClone(this.#spec.selector ?? {});
    selector.matchLabels = { ...selector.matchLabels, [POD_TEMPLATE_HASH_LABEL]: hash };
    const name = `${d.metadata.name}-${hash}`;
    const rs: KubeObject = {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name,
        namespace: d.metadata.namespace ?? 'default',
        labels: { ...rsTemplate.metadata?.labels },
        annotations: {},
        ownerReferences: [controllerRef(d)],
      } as KubeObject['metadata'],
      spec: withMinReadySeconds(
        { replicas: 0, selector, template: rsTemplate },
        this.#spec.minReadySeconds ?? 0,
      ),
    };
    this.#setNewReplicaSetAnnotations(rs, newRevision, false);
    const replicas = this.#newReplicaSetReplicas(rs, this.#oldRSs);
    (rs.spec as ReplicaSetSpec).replicas = replicas;

    let created: KubeObject;
    let alreadyExists = false;
    try {
      created = this.ctx.store.create(REPLICASETS, rs);
    } catch (e) {
      if (!(e instanceof StatusError && e.reason === 'AlreadyExists')) throw e;
      const found = this.ctx.store.find(REPLICASETS, d.metadata.namespace, name);
      if (!found || !isControlledBy(found, d) || !templatesEqual(rsSpec(found).template, template)) {
        // A different ReplicaSet has the name: count the collision so the next hash differs, and retry.
        this.#saveStatus({ ...deploymentStatus(d), collisionCount: (collisionCount ?? 0) + 1 });
        throw e;
      }
      created = found;
      alreadyExists = true;
    }
    this.#put(created);
    this.#newUid = created.metadata.uid;
    if (!alreadyExists && replicas > 0) {
      this.#event(`Scaled up replica set ${name} from 0 to ${replicas}`);
    }
    this.#setDeploymentRevision(String(newRevision));
    if (!alreadyExists && hasProgressDeadline(this.#d)) {
      const status = structuredClone(deploymentStatus(this.#d));
      const message = `Created new replica set "${name}"`;
      setCondition(status, condition('Progressing', 'True', Reason.newReplicaSetCreated, message, this.now));
      this.#saveStatus(status);
    }
  }

  /**
   * Copies the Deployment's annotations, raises the revision to `newRevision` when lower (keeping the
   * previous numbers in `revision-history` on a rollback) and, for a new ReplicaSet, the replica annotations.
   */
  #setNewReplicaSetAnnotations(rs: KubeObject, newRevision: number, exists: boolean): boolean {
    rs.metadata.annotations ??= {};
    const annotations = rs.metadata.annotations;
    let changed = false;
    for (const [key, value] of Object.entries(this.#d.metadata.annotations ?? {})) {
      if (NOT_COPIED.has(key) || annotations[key] === value) continue;
      annotations[key] = value;
      changed = true;
    }
    const oldRevision = annotations[REVISION_ANNOTATION];
    const oldNumber = oldRevision === undefined ? 0 : Number(oldRevision);
    if (!Number.isInteger(oldNumber)) return false;
    if (oldNumber < newRevision) {
      annotations[REVISION_ANNOTATION] = String(newRevision);
      changed = true;
      if (oldRevision !== undefined) appendRevisionHistory(annotations, oldRevision);
    }
    if (!exists && this.#setReplicasAnnotations(rs)) changed = true;
    return changed;
  }

  #setReplicasAnnotations(rs: KubeObject): boolean {
    rs.metadata.annotations ??= {};
    const annotations = rs.metadata.annotations;
    const desired = String(this.#replicas);
    const max = String(this.#replicas + maxSurge(this.#d));
    if (
      annotations[DESIRED_REPLICAS_ANNOTATION] === desired &&
      annotations[MAX_REPLICAS_ANNOTATION] === max
    ) {
      return false;
    }
    annotations[DESIRED_REPLICAS_ANNOTATION] = desired;
    annotations[MAX_REPLICAS_ANNOTATION] = max;
    return true;
  }

  /** Mirrors the new ReplicaSet's revision on the Deployment (a metadata-only update: no new generation). */
  #setDeploymentRevision(revision: string): void {
    if (this.#d.metadata.annotations?.[REVISION_ANNOTATION] === revision) return;
    const metadata = {
      ...this.#d.metadata,
      annotations: { ...this.#d.metadata.annotations, [REVISION_ANNOTATION]: revision },
    };
    this.#d = this.ctx.store.update(DEPLOYMENTS, { ...this.#d, metadata });
  }

  /** Replicas the new ReplicaSet may have now: all for Recreate; for RollingUpdate, up to the surge limit. */
  #newReplicaSetReplicas(newRS: KubeObject, allRSs: KubeObject[]): number {
    if (this.#spec.strategy?.type === 'Recreate') return this.#replicas;
    const current = total(allRSs, rsReplicas);
    const maxTotal = this.#replicas + maxSurge(this.#d);
    if (current >= maxTotal) return rsReplicas(newRS);
    return rsReplicas(newRS) + Math.min(maxTotal - current, this.#replicas - rsReplicas(newRS));
  }

  #checkPausedConditions(): void {
    if (!hasProgressDeadline(this.#d)) return;
    const status = structuredClone(deploymentStatus(this.#d));
    const current = getCondition(status, 'Progressing');
    // A reported lack of progress stays visible through a pause.
    if (current?.reason === Reason.progressDeadlineExceeded) return;
    const pausedRecorded = current?.reason === Reason.paused;
    if (this.#spec.paused && !pausedRecorded) {
      setCondition(
        status,
        condition('Progressing', 'Unknown', Reason.paused, 'Deployment is paused', this.now),
      );
    } else if (!this.#spec.paused && pausedRecorded) {
      setCondition(
        status,
        condition('Progressing', 'Unknown', Reason.resumed, 'Deployment is resumed', this.now),
      );
    } else return;
    this.#saveStatus(status);
  }

  /** A changed `spec.replicas`: some active ReplicaSet was sized for a different count. */
  #isScalingEvent(): boolean {
    this.#findReplicaSets(false);
    return this.#allRSs.filter(isActive).some((rs) => {
      const desired = rs.metadata.annotations?.[DESIRED_REPLICAS_ANNOTATION];
      return desired !== undefined && Number(desired) !== this.#replicas;
    });
  }

  /** Scaling and pausing: resize without rolling out (`sync`). */
  #syncScaling(): void {
    this.#findReplicaSets(false);
    this.#scale();
    if (this.#spec.paused) this.#cleanup();
    this.#syncStatus();
  }

  /**
   * Distributes a change of `spec.replicas`: all of it to the only active (or the newest) ReplicaSet, or
   * in a rolling update proportionally to each active ReplicaSet's size, leftovers to the largest.
   */
  #scale(): void {
    const newRS = this.#newRS;
    const target = this.#activeOrLatest();
    if (target) {
      if (rsReplicas(target) !== this.#replicas) this.#scaleReplicaSet(target, this.#replicas);
      return;
    }
    if (newRS && this.#isSaturated(newRS)) {
      for (const old of this.#oldRSs.filter(isActive)) this.#scaleReplicaSet(old, 0);
      return;
    }
    if (this.#spec.strategy?.type === 'Recreate') return;

    const active = this.#allRSs.filter(isActive);
    const allowed = this.#replicas > 0 ? this.#replicas + maxSurge(this.#d) : 0;
    const toAdd = allowed - total(active, rsReplicas);
    // Bigger first; among equals, newer first when growing and older first when shrinking.
    active.sort(
      (a, b) => rsReplicas(b) - rsReplicas(a) || (toAdd > 0 ? oldestFirst(b, a) : oldestFirst(a, b)),
    );
    let added = 0;
    const sizes = active.map((rs) => {
      if (toAdd === 0) return rsReplicas(rs);
      const share = this.#proportion(rs, toAdd, added);
      added += share;
      return rsReplicas(rs) + share;
    });
    active.forEach((rs, i) => {
      let size = sizes[i] ?? rsReplicas(rs);
      if (i === 0 && toAdd !== 0) size = Math.max(0, size + toAdd - added);
      this.#scaleReplicaSet(rs, size);
    });
  }

  #activeOrLatest(): KubeObject | undefined {
    const newestOld = [...this.#oldRSs].reverse();
    const newRS = this.#newRS;
    const active = (newRS ? [...newestOld, newRS] : newestOld).filter(isActive);
    if (active.length === 0) return newRS ?? newestOld[0];
    return active.length === 1 ? active[0] : undefined;
  }

  #isSaturated(rs: KubeObject): boolean {
    const desired = Number(rs.metadata.annotations?.[DESIRED_REPLICAS_ANNOTATION]);
    return (
      desired === this.#replicas &&
      rsReplicas(rs) === this.#replicas &&
      (rsStatus(rs).availableReplicas ?? 0) === this.#replicas
    );
  }

  /** This ReplicaSet's share of `toAdd`, from its size relative to the deployment size it was made for. */
  #proportion(rs: KubeObject, toAdd: number, added: number): number {
    if (rsReplicas(rs) === 0 || toAdd === 0 || toAdd === added) return 0;
    const allowed = toAdd - added;
    const fraction = this.#fraction(rs);
    return toAdd > 0 ? Math.min(fraction, allowed) : Math.max(fraction, allowed);
  }

  #fraction(rs: KubeObject): number {
    if (this.#replicas === 0) return -rsReplicas(rs);
    const maxReplicas = this.#replicas + maxSurge(this.#d);
    let before = Number(rs.metadata.annotations?.[MAX_REPLICAS_ANNOTATION]);
    if (!Number.isInteger(before) || before === 0) before = deploymentStatus(this.#d).replicas ?? 0;
    if (before === 0) return 0;
    return Math.round((rsReplicas(rs) * maxReplicas) / before) - rsReplicas(rs);
  }

  #rolloutRolling(): void {
    this.#findReplicaSets(true);
    if (this.#reconcileNewReplicaSet() || this.#reconcileOldReplicaSets()) {
      this.#syncRolloutStatus();
      return;
    }
    if (deploymentComplete(this.#d, deploymentStatus(this.#d))) this.#cleanup();
    this.#syncRolloutStatus();
  }

  /** Scales the new ReplicaSet up within the surge limit (or down, when it has more than wanted). */
  #reconcileNewReplicaSet(): boolean {
    const newRS = this.#newRS;
    if (!newRS || rsReplicas(newRS) === this.#replicas) return false;
    if (rsReplicas(newRS) > this.#replicas) return this.#scaleAndRecord(newRS, this.#replicas);
    return this.#scaleAndRecord(newRS, this.#newReplicaSetReplicas(newRS, this.#allRSs));
  }

  /** Scales old ReplicaSets down as far as availability allows, their unhealthy pods first. */
  #reconcileOldReplicaSets(): boolean {
    const newRS = this.#newRS;
    if (!newRS || total(this.#oldRSs.filter(isActive), rsReplicas) === 0) return false;
    const minAvailable = this.#replicas - maxUnavailable(this.#d);
    const newUnavailable = rsReplicas(newRS) - (rsStatus(newRS).availableReplicas ?? 0);
    const maxScaledDown = total(this.#allRSs, rsReplicas) - minAvailable - newUnavailable;
    if (maxScaledDown <= 0) return false;
    const cleaned = this.#cleanupUnhealthyReplicas(maxScaledDown);
    return cleaned + this.#scaleDownOldForRollingUpdate() > 0;
  }

  /** Removes old replicas that are not available anyway (they count against nothing), oldest sets first. */
  #cleanupUnhealthyReplicas(max: number): number {
    let scaled = 0;
    for (const rs of this.#oldRSs.filter(isActive)) {
      if (scaled >= max) break;
      const unavailable = rsReplicas(rs) - (rsStatus(rs).availableReplicas ?? 0);
      if (unavailable <= 0) continue;
      const count = Math.min(max - scaled, unavailable);
      this.#scaleAndRecord(rs, rsReplicas(rs) - count);
      scaled += count;
    }
    return scaled;
  }

  /** Scales old ReplicaSets down by as many as are available beyond `replicas - maxUnavailable`. */
  #scaleDownOldForRollingUpdate(): number {
    const old = this.#oldRSs.filter(isActive);
    const newRS = this.#newRS;
    const available = total(newRS ? [...old, newRS] : old, (rs) => rsStatus(rs).availableReplicas);
    const minAvailable = this.#replicas - maxUnavailable(this.#d);
    if (available <= minAvailable) return 0;
    const toScale = available - minAvailable;
    let scaled = 0;
    for (const rs of old) {
      if (scaled >= toScale) break;
      const count = Math.min(rsReplicas(rs), toScale - scaled);
      this.#scaleAndRecord(rs, rsReplicas(rs) - count);
      scaled += count;
    }
    return scaled;
  }

  /** Recreate: old ReplicaSets to 0, wait until their pods are gone, then the new one to full size. */
  #rolloutRecreate(): void {
    this.#findReplicaSets(false);
    let scaledDown = false;
    for (const rs of this.#oldRSs.filter(isActive)) {
      if (this.#scaleAndRecord(rs, 0)) scaledDown = true;
    }
    if (scaledDown || this.#oldPodsRunning()) {
      this.#syncRolloutStatus();
      return;
    }
    if (!this.#newRS) this.#findReplicaSets(true);
    const newRS = this.#newRS;
    if (newRS) this.#scaleAndRecord(newRS, this.#replicas);
    if (deploymentComplete(this.#d, deploymentStatus(this.#d))) this.#cleanup();
    this.#syncRolloutStatus();
  }

  #oldPodsRunning(): boolean {
    const old = this.#oldRSs;
    if (total(old, (rs) => rsStatus(rs).replicas) > 0) return true;
    const oldUids = new Set(old.map((rs) => rs.metadata.uid));
    return this.ctx.store
      .list(PODS, this.#d.metadata.namespace)
      .items.some(
        (pod) =>
          (pod.metadata.ownerReferences ?? []).some((r) => r.controller === true && oldUids.has(r.uid)) &&
          podPhase(pod) !== 'Failed' &&
          podPhase(pod) !== 'Succeeded',
      );
  }

  /** Deletes the oldest revisions beyond `revisionHistoryLimit`, only those scaled to 0 and settled. */
  #cleanup(): void {
    const limit = this.#spec.revisionHistoryLimit;
    if (limit === undefined) return;
    const cleanable = this.#oldRSs.filter((rs) => rs.metadata.deletionTimestamp === undefined);
    const excess = cleanable.length - limit;
    if (excess <= 0) return;
    cleanable.sort((a, b) => revisionOf(a) - revisionOf(b) || oldestFirst(a, b));
    for (const rs of cleanable.slice(0, excess)) {
      const status = rsStatus(rs);
      if ((status.replicas ?? 0) !== 0 || rsReplicas(rs) !== 0) continue;
      if (rs.metadata.generation > (status.observedGeneration ?? 0)) continue;
      this.ctx.store.delete(REPLICASETS, rs.metadata.namespace, rs.metadata.name);
      this.#sets.delete(rs.metadata.uid);
    }
  }

  #scaleAndRecord(rs: KubeObject, replicas: number): boolean {
    if (rsReplicas(rs) === replicas) return false;
    return this.#scaleReplicaSet(rs, replicas);
  }

  /** Sets a ReplicaSet's size and replica annotations; records `ScalingReplicaSet` when the size changed. */
  #scaleReplicaSet(rs: KubeObject, replicas: number): boolean {
    const copy = structuredClone(rs);
    const from = rsReplicas(rs);
    const annotationsChanged = this.#setReplicasAnnotations(copy);
    if (from === replicas && !annotationsChanged) return false;
    copy.spec = { ...rsSpec(copy), replicas };
    this.#put(this.ctx.store.update(REPLICASETS, copy));
    if (from === replicas) return false;
    this.#event(
      `Scaled ${from < replicas ? 'up' : 'down'} replica set ${rs.metadata.name} from ${from} to ${replicas}`,
    );
    return true;
  }

  /** Status with the progress judgement (`syncRolloutStatus`). */
  #syncRolloutStatus(): void {
    const d = this.#d;
    const newRS = this.#newRS;
    const next = calculateStatus(d, this.#allRSs, newRS, this.now);
    if (!hasProgressDeadline(d)) removeCondition(next, 'Progressing');
    const current = getCondition(deploymentStatus(d), 'Progressing');
    const settled =
      next.replicas === next.updatedReplicas && current?.reason === Reason.newReplicaSetAvailable;
    const subject = newRS ? `ReplicaSet "${newRS.metadata.name}"` : `Deployment "${d.metadata.name}"`;
    if (hasProgressDeadline(d) && !settled) {
      if (deploymentComplete(d, next)) {
        const message = `${subject} has successfully progressed.`;
        setCondition(
          next,
          condition('Progressing', 'True', Reason.newReplicaSetAvailable, message, this.now),
        );
      } else if (deploymentProgressing(d, next)) {
        // Progress refreshes lastUpdateTime even with an unchanged reason: that is what the deadline counts from.
        const updated = condition(
          'Progressing',
          'True',
          Reason.replicaSetUpdated,
          `${subject} is progressing.`,
          this.now,
        );
        if (current?.status === 'True') updated.lastTransitionTime = current.lastTransitionTime;
        removeCondition(next, 'Progressing');
        setCondition(next, updated);
      } else if (deploymentTimedOut(d, next, this.now)) {
        const message = `${subject} has timed out progressing.`;
        setCondition(
          next,
          condition('Progressing', 'False', Reason.progressDeadlineExceeded, message, this.now),
        );
      }
    }
    removeCondition(next, 'ReplicaFailure');
    this.#saveStatus(next);
  }

  #syncStatus(): void {
    this.#saveStatus(calculateStatus(this.#d, this.#allRSs, this.#newRS, this.now));
  }

  /** Writes the status when it differs from the stored one. */
  #saveStatus(status: DeploymentStatus): void {
    const compact = compactStatus(status);
    if (sameJson(this.#d.status ?? {}, compact)) return;
    this.#d = this.ctx.store.update(DEPLOYMENTS, { ...this.#d, status: compact }, { subresource: 'status' });
  }

  #put(rs: KubeObject): void {
    this.#sets.set(rs.metadata.uid, rs);
  }

  #event(message: string): void {
    this.ctx.events.record(this.#d, 'Normal', 'ScalingReplicaSet', message, COMPONENT);
  }
}

function withMinReadySeconds(spec: ReplicaSetSpec, minReadySeconds: number): ReplicaSetSpec {
  const out = { ...spec };
  if (minReadySeconds > 0) out.minReadySeconds = minReadySeconds;
  else delete out.minReadySeconds;
  return out;
}

/** Appends a superseded revision number to `revision-history`, dropping the oldest past the length limit. */
function appendRevisionHistory(annotations: Record<string, string>, oldRevision: string): void {
  const history = annotations[REVISION_HISTORY_ANNOTATION];
  if (!history) {
    annotations[REVISION_HISTORY_ANNOTATION] = oldRevision;
    return;
  }
  const revisions = history.split(',');
  let length = history.length + oldRevision.length + 1;
  let start = 0;
  while (length > MAX_REVISION_HISTORY_CHARS && start < revisions.length) {
    length -= (revisions[start]?.length ?? 0) + 1;
    start++;
  }
  if (length <= MAX_REVISION_HISTORY_CHARS) {
    annotations[REVISION_HISTORY_ANNOTATION] = [...revisions.slice(start), oldRevision].join(',');
  }
}
