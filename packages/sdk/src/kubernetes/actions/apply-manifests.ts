import type { V1ObjectMeta } from '@kubernetes/client-node';
import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { InputValidationError, NonRetriableError } from '../../core/errors';
import { type Evidence, type Finding, finding, worstStatus } from '../../core/finding';
import { canonicalJson, type Json, sha256 } from '../../core/json';
import { parseOptions } from '../../core/parse-options';
import type { Change } from '../../core/plan';
import { createRedactor, isSecretName, REDACTED } from '../../core/redact';
import { type ResourceRef, resourceRef } from '../../core/resource';
import type { StepContext } from '../../core/step';
import { type Action, defineAction } from '../../core/step';
import { type KubernetesCluster, k8sRef, type WorkloadKind } from '../cluster';
import { isKubernetesApiError } from '../errors';
import { NamespaceName, ObjectName } from '../options';
import { diffJson, isSecretEnvEntry, maskSecretEnv } from './diff';
import { awaitRollout, plainJson } from './workload';

const Manifest = z.looseObject({
  apiVersion: z.string().min(1),
  kind: z.string().min(1),
  metadata: z.looseObject({ name: ObjectName, namespace: NamespaceName.optional() }),
});

/** Options of {@link applyManifests}. */
export const ApplyManifestsOptions = z.object({
  /** Parsed manifests (objects with `apiVersion`, `kind`, `metadata.name`), e.g. from `loadAllYaml`. */
  manifests: z.array(Manifest).min(1, 'expected at least one manifest'),
  /** Namespace of namespaced manifests that name none. @default none: every namespaced manifest must name its namespace */
  namespace: NamespaceName.optional(),
  /** `fieldManager` of every write. @default "aiwebtest-runbooks" */
  fieldManager: z.string().min(1).max(128).default('aiwebtest-runbooks'),
  /**
   * `kind`: Namespaces first, then quotas and accounts, Secrets and ConfigMaps, claims, Services, then
   * workloads, then what routes to them; the given order within a kind and for kinds not listed (last).
   * `given`: exactly the given order. @default "kind"
   */
  order: z.enum(['kind', 'given']).default('kind'),
  /** How long verify waits for all workloads' rollouts. @default "5m" */
  timeout: Duration.default('5m'),
});
export type ApplyManifestsOptions = z.output<typeof ApplyManifestsOptions>;
export type ApplyManifestsOptionsInput = z.input<typeof ApplyManifestsOptions>;

/** What the plan decided for one object. */
export type PlannedObject = {
  apiVersion: string;
  kind: string;
  /** `null` for cluster-scoped objects (Namespaces). */
  namespace: string | null;
  name: string;
  action: 'create' | 'update' | 'unchanged';
  /** The live `resourceVersion` an update replaces: a newer one makes the apply a 409 Conflict. */
  resourceVersion: string | null;
  /** Annotations the server's controllers own (`deployment.kubernetes.io/*`), kept on replace. */
  keep: Record<string, string>;
  /** SHA-256 of the desired object: the manifest applied must be the one planned. */
  digest: string;
  /**
   * The live object before an update (server-managed fields dropped), for revert, as canonical JSON text;
   * `null` when not restorable. Text, because the engine redacts every non-empty member under a
   * secret-looking key of a stored plan, whatever its type: a volume's `secret: {secretName}` or
   * `automountServiceAccountToken: false` would come back to revert as `[REDACTED]`. Only objects that hold
   * no secret are stored (see `holdsSecrets`), and the text survives the redactor unchanged.
   */
  previous: string | null;
  /** False for updates revert cannot undo: Secrets, and objects holding values that look like secrets. */
  restorable: boolean;
};

/** What an apply-manifests plan fixes. */
export type ApplyManifestsParams = {
  objects: PlannedObject[];
  fieldManager: string;
  timeoutMs: number;
};

/** What `apply()` did, in order. */
export type ApplyManifestsApplied = {
  created: string[];
  updated: string[];
};

const KIND = 'k8s.apply-manifests';

/**
 * The kinds applyManifests writes, by API group (`""` is the core group): built-in kinds that are always
 * namespaced. An allowlist, not a list of cluster-scoped kinds to refuse: the client drops the namespace
 * from the URL of a cluster-scoped kind, so any kind missing from a denylist (ClusterIssuer, FlowSchema, a
 * custom resource) would be written cluster-wide although its manifest names an allowed namespace. The
 * group counts too: a custom resource may reuse a built-in kind's name.
 */
const NAMESPACED_KINDS: Record<string, readonly string[]> = {
  '': [
    'ConfigMap',
    'Endpoints',
    'LimitRange',
    'PersistentVolumeClaim',
    'Pod',
    'PodTemplate',
    'ReplicationController',
    'ResourceQuota',
    'Secret',
    'Service',
    'ServiceAccount',
  ],
  apps: ['DaemonSet', 'Deployment', 'ReplicaSet', 'StatefulSet'],
  autoscaling: ['HorizontalPodAutoscaler'],
  batch: ['CronJob', 'Job'],
  'coordination.k8s.io': ['Lease'],
  'discovery.k8s.io': ['EndpointSlice'],
  'networking.k8s.io': ['Ingress', 'NetworkPolicy'],
  policy: ['PodDisruptionBudget'],
  'rbac.authorization.k8s.io': ['Role', 'RoleBinding'],
};

/**
 * How applyManifests treats a kind: `namespaced` (its namespace must be allowed), `namespace` (a core
 * Namespace: its name must be allowed), or `refused` (cluster-scoped, or not known to be namespaced).
 */
function scopeOf(apiVersion: string, kind: string): 'namespaced' | 'namespace' | 'refused' {
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.lastIndexOf('/')) : '';
  if (group === '' && kind === 'Namespace') return 'namespace';
  return NAMESPACED_KINDS[group]?.includes(kind) ? 'namespaced' : 'refused';
}

/**
 * How long undoing a partial apply may take. The step's own signal cannot bound it: after a timeout or a
 * cancellation that signal is already aborted, and the undo would fail on its first request. Each request
 * is bounded by the cluster's `requestTimeout` besides.
 */
const PARTIAL_UNDO_TIMEOUT_MS = 60_000;

/** Install order by kind: what others refer to comes first, what routes to workloads last. */
const KIND_ORDER = [
  'Namespace',
  'ResourceQuota',
  'LimitRange',
  'NetworkPolicy',
  'ServiceAccount',
  'Role',
  'RoleBinding',
  'Secret',
  'ConfigMap',
  'PersistentVolumeClaim',
  'Service',
  'Deployment',
  'StatefulSet',
  'DaemonSet',
  'ReplicaSet',
  'Job',
  'CronJob',
  'HorizontalPodAutoscaler',
  'PodDisruptionBudget',
  'Ingress',
];

/** Metadata the API server manages: never part of a desired state, never a difference. */
const SERVER_METADATA = [
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'managedFields',
  'selfLink',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
];
const SERVER_ANNOTATION = /^deployment\.kubernetes\.io\//;
/** Service fields the API server allocates when the manifest leaves them out (afresh on every dry run). */
const SERVICE_ALLOCATED = ['clusterIP', 'clusterIPs', 'healthCheckNodePort'];
const IGNORED_ANNOTATIONS = new Set(['kubectl.kubernetes.io/last-applied-configuration']);

type Desired = { apiVersion: string; kind: string; metadata: V1ObjectMeta & { name: string } } & Record<
  string,
  unknown
>;

/**
 * A full redeploy, as `kubectl apply -f` of a set of manifests does it for a disaster recovery, but with a
 * plan: each object is created when absent and replaced when present (PUT: the manifest is the whole truth).
 *
 * - **guard**: only built-in kinds known to be namespaced (Deployment, Service, ConfigMap, Secret, Role, …)
 *   and Namespaces are accepted; every object's namespace must be allowed (a Namespace object counts as its
 *   own). Anything else (ClusterRole, ClusterIssuer, custom resources) is refused when the action is
 *   defined; apply and revert check the plan's objects again. All before any request.
 * - **plan** uses server-side dry run (`dryRun=All`) of the create or replace, so defaults and validation
 *   are the server's, and shows per object `create` (the object), `update` (each changed field, a deep diff
 *   of the dry-run result against the live object, ignoring status and server-managed metadata), or nothing
 *   when unchanged. Secret data and the values of secret-named env variables are `[REDACTED]`. Fields the
 *   server allocates (a Service's `clusterIP`, `nodePort`s) are left out of a create unless the manifest
 *   sets them, so planning an unchanged world twice gives the same plan (and hash). Nothing is written.
 *   Objects in a Namespace this apply creates are shown as given: the server cannot dry-run them before
 *   their namespace exists.
 * - **apply** creates or replaces in order, the replace carrying the live `resourceVersion` the plan saw: if
 *   an object changed since the plan, that is a 409 Conflict and nothing further is applied; what this apply
 *   already changed is undone (best effort, within its own time limit: also after a timeout or a
 *   cancellation) before the error is thrown. The manifests written are this action's own, checked
 *   against the plan's digests (they are not stored with the run: Secrets).
 * - **verify** waits for the rollouts of every Deployment and StatefulSet written, within `timeout` in total.
 * - **revert** deletes what was created and replaces what was updated with its previous version, in reverse
 *   order. Secrets (and objects holding secret-looking values: a string under a secret-looking key, a
 *   secret-named env variable) are not stored, so an update of one cannot be reverted: revert restores the
 *   rest and then fails naming them.
 *
 * Risk `high`, **destructive**: a replace drops every field the manifest does not set (including changes
 * made by hand or by other tools) and a changed Secret cannot be restored, so policy asks for approval.
 */
export function applyManifests(
  cluster: KubernetesCluster,
  options: ApplyManifestsOptionsInput,
): Action<ApplyManifestsParams, ApplyManifestsApplied> {
  const o = parseOptions(KIND, ApplyManifestsOptions, options);
  const desired = desiredObjects(o);
  const namespaces = [...new Set(desired.map(touchedNamespace))].sort();
  const target = resourceRef('k8s', namespaces.join(','));
  const guard = (planned: PlannedObject[] = []) => {
    for (const ns of namespaces) cluster.assertMayChange(ns);
    // A plan comes back from the store: its objects are checked as the manifests were.
    for (const p of planned) {
      const scope = scopeOf(p.apiVersion, p.kind);
      if (scope === 'refused') throw refusedKind(p.apiVersion, p.kind, p.name);
      cluster.assertMayChange(scope === 'namespace' ? p.name : (p.namespace ?? ''));
    }
  };
  const byKey = new Map(desired.map((d) => [keyOf(d), d]));

  return defineAction<ApplyManifestsParams, ApplyManifestsApplied>({
    kind: KIND,
    target,
    risk: 'high',
    destructive: true,
    description: `Create or replace ${desired.length} object(s) in ${namespaces.join(', ')}`,

    async plan(ctx) {
      guard();
      const planned: PlannedObject[] = [];
      const changes: Change[] = [];
      const newNamespaces = new Set<string>();
      for (const object of desired) {
        const ref = refOf(object);
        if (object.metadata.namespace && newNamespaces.has(object.metadata.namespace)) {
          // Its namespace is created by this apply: the server cannot dry-run it yet, and it cannot exist.
          changes.push({
            target: ref,
            field: '(object)',
            before: null,
            after: shown(object.kind, normalize(object)),
          });
          planned.push(plannedOf(object, 'create', null, {}, null, true));
          continue;
        }
        const live = await readLive(cluster, object, ctx);
        if (!live && object.kind === 'Namespace') newNamespaces.add(object.metadata.name);
        if (!live) {
          const dry = plainJson(
            await cluster.call(
              `dry-run create of ${describe(object)}`,
              (opts) => cluster.objects(opts).create(object, undefined, 'All', o.fieldManager),
              { signal: ctx.signal },
            ),
          );
          assertNamespaced(object, dry);
          changes.push({
            target: ref,
            field: '(object)',
            before: null,
            after: shown(object.kind, withoutAllocated(normalize(dry), object)),
          });
          planned.push(plannedOf(object, 'create', null, {}, null, true));
          continue;
        }
        const keep = serverAnnotations(live);
        const rv = (live as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion ?? null;
        const dry = plainJson(
          await cluster.call(
            `dry-run replace of ${describe(object)}`,
            (opts) =>
              cluster.objects(opts).replace(withMetadata(object, keep, rv), undefined, 'All', o.fieldManager),
            { signal: ctx.signal },
          ),
        );
        assertNamespaced(object, dry);
        const diff = diffJson(normalize(live), normalize(dry), '', { secret: secretFields(object.kind) });
        if (diff.length === 0) {
          planned.push(plannedOf(object, 'unchanged', rv, keep, null, true));
          continue;
        }
        changes.push(...diff.map((d) => ({ target: ref, ...d })));
        const previous = normalize(live);
        const restorable = object.kind !== 'Secret' && !holdsSecrets(previous);
        planned.push(
          plannedOf(object, 'update', rv, keep, restorable ? canonicalJson(previous) : null, restorable),
        );
      }
      const count = (a: PlannedObject['action']) => planned.filter((p) => p.action === a).length;
      const notRestorable = planned
        .filter((p) => p.action === 'update' && !p.restorable)
        .map(describePlanned);
      return {
        summary:
          `Apply ${planned.length} object(s) in ${namespaces.join(', ')}: ${count('create')} to create, ${count('update')} to replace, ${count('unchanged')} unchanged` +
          (notRestorable.length > 0 ? `; revert cannot restore ${notRestorable.join(', ')}` : ''),
        changes,
        params: { objects: planned, fieldManager: o.fieldManager, timeoutMs: toMillis(o.timeout) },
      };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      guard(p.objects);
      const done: { planned: PlannedObject; object: Desired }[] = [];
      const applied: ApplyManifestsApplied = { created: [], updated: [] };
      try {
        for (const planned of p.objects) {
          if (planned.action === 'unchanged') continue;
          const object = byKey.get(keyOfPlanned(planned));
          if (!object || sha256(canonicalJson(object)) !== planned.digest) {
            throw new NonRetriableError(
              `The plan applies ${describePlanned(planned)}, but this action's manifests ${object ? 'differ from the planned one' : 'do not include it'}. Plan again with the same manifests.`,
              { code: 'STALE_PLAN' },
            );
          }
          if (planned.action === 'create') {
            await cluster.call(
              `create ${describe(object)}`,
              (opts) => cluster.objects(opts).create(object, undefined, undefined, p.fieldManager),
              { signal: ctx.signal },
            );
            applied.created.push(describe(object));
          } else {
            await cluster.call(
              `replace ${describe(object)}`,
              (opts) =>
                cluster
                  .objects(opts)
                  .replace(
                    withMetadata(object, planned.keep, planned.resourceVersion),
                    undefined,
                    undefined,
                    p.fieldManager,
                  ),
              { signal: ctx.signal },
            );
            applied.updated.push(describe(object));
          }
          done.push({ planned, object });
        }
      } catch (e) {
        if (done.length > 0) {
          // Not ctx.signal: after a timeout or a cancellation it is aborted, and the undo must still run.
          const signal = AbortSignal.timeout(PARTIAL_UNDO_TIMEOUT_MS);
          const toUndo = done.map((d) => d.planned).reverse();
          const undone = await undo(cluster, toUndo, p.fieldManager, signal).catch(
            (undoError: unknown) =>
              `undo failed: ${undoError instanceof Error ? undoError.message : String(undoError)}`,
          );
          ctx.log(
            `apply stopped after ${done.length} object(s); ${typeof undone === 'string' ? undone : 'undone'}`,
          );
        }
        throw e;
      }
      return applied;
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      const deadline = Date.now() + p.timeoutMs;
      const workloads = p.objects.filter(
        (w) => w.action !== 'unchanged' && (w.kind === 'Deployment' || w.kind === 'StatefulSet'),
      );
      const findings: Finding<Json>[] = [];
      for (const w of workloads) {
        const f = await awaitRollout(
          cluster,
          { kind: w.kind as WorkloadKind, namespace: w.namespace ?? '', name: w.name },
          { timeoutMs: Math.max(0, deadline - Date.now()), signal: ctx.signal },
        );
        findings.push(f as Finding<Json>);
        if (f.status !== 'ok') break;
      }
      const status = worstStatus(findings.map((f) => f.status));
      const rows = findings.map((f) => {
        const d = f.data as { kind: string; namespace: string; name: string; message: string };
        return [`${d.kind.toLowerCase()}/${d.name}`, d.namespace, f.status, d.message];
      });
      const evidence: Evidence[] = [
        { kind: 'table', title: 'rollouts', columns: ['workload', 'namespace', 'status', 'message'], rows },
        ...findings.filter((f) => f.status !== 'ok').flatMap((f) => f.evidence),
      ];
      const bad = findings.find((f) => f.status !== 'ok');
      const summary =
        workloads.length === 0
          ? 'no Deployment or StatefulSet was written: nothing to roll out'
          : bad
            ? bad.summary
            : `${findings.length} rollout(s) done within ${formatMillis(p.timeoutMs)}`;
      return finding(status, summary, { rollouts: findings.map((f) => f.data) }, evidence);
    },

    async revert(ctx, applied) {
      const p = applied.plan.params;
      guard(p.objects);
      const reverse = p.objects.filter((x) => x.action !== 'unchanged').reverse();
      const result = await undo(cluster, reverse, p.fieldManager, ctx.signal);
      if (result.notRestored.length > 0) {
        throw new NonRetriableError(
          `Reverted all but ${result.notRestored.join(', ')}: their previous versions hold secrets and were not stored with the plan. Restore them from their source.`,
          { code: 'K8S_REVERT_INCOMPLETE', details: { notRestored: result.notRestored } },
        );
      }
    },
  });
}

// ---- desired objects -----------------------------------------------------------------------------------

function desiredObjects(o: ApplyManifestsOptions): Desired[] {
  const issues: { path: string; message: string }[] = [];
  const objects = o.manifests.map((m, i) => {
    const object = structuredClone(m) as unknown as Desired;
    const scope = scopeOf(object.apiVersion, object.kind);
    if (scope === 'namespace') {
      delete object.metadata.namespace;
    } else if (scope === 'refused') {
      issues.push({
        path: `manifests[${i}].kind`,
        message: refusedKindMessage(object.apiVersion, object.kind),
      });
    } else {
      object.metadata.namespace ??= o.namespace;
      if (!object.metadata.namespace) {
        issues.push({
          path: `manifests[${i}].metadata.namespace`,
          message: 'required: name the namespace, or give the `namespace` option',
        });
      }
    }
    return object;
  });
  const seen = new Set<string>();
  objects.forEach((object, i) => {
    const key = keyOf(object);
    if (seen.has(key)) issues.push({ path: `manifests[${i}]`, message: `${describe(object)} appears twice` });
    seen.add(key);
  });
  if (issues.length > 0) throw new InputValidationError(`options of ${KIND}`, issues);
  if (o.order === 'given') return objects;
  const rank = (kind: string) => {
    const i = KIND_ORDER.indexOf(kind);
    return i < 0 ? KIND_ORDER.length : i;
  };
  return objects
    .map((object, i) => ({ object, i }))
    .sort((a, b) => rank(a.object.kind) - rank(b.object.kind) || a.i - b.i)
    .map((x) => x.object);
}

function touchedNamespace(object: Desired): string {
  return object.kind === 'Namespace' ? object.metadata.name : (object.metadata.namespace as string);
}

function keyOf(object: {
  apiVersion?: string;
  kind?: string;
  metadata: { namespace?: string; name: string };
}) {
  return `${object.apiVersion}/${object.kind}/${object.metadata.namespace ?? ''}/${object.metadata.name}`;
}

function keyOfPlanned(p: PlannedObject): string {
  return keyOf({
    apiVersion: p.apiVersion,
    kind: p.kind,
    metadata: { namespace: p.namespace ?? undefined, name: p.name },
  });
}

function describe(object: Desired): string {
  const ns = object.metadata.namespace;
  return `${object.kind} ${ns ? `${ns}/` : ''}${object.metadata.name}`;
}

function describePlanned(p: PlannedObject): string {
  return `${p.kind} ${p.namespace ? `${p.namespace}/` : ''}${p.name}`;
}

function refOf(object: Desired): ResourceRef {
  return k8sRef(touchedNamespace(object), object.kind, object.metadata.name);
}

function plannedOf(
  object: Desired,
  action: PlannedObject['action'],
  resourceVersion: string | null,
  keep: Record<string, string>,
  previous: string | null,
  restorable: boolean,
): PlannedObject {
  return {
    apiVersion: object.apiVersion,
    kind: object.kind,
    namespace: object.metadata.namespace ?? null,
    name: object.metadata.name,
    action,
    resourceVersion,
    keep,
    digest: sha256(canonicalJson(object)),
    previous,
    restorable,
  };
}

/** The object with the annotations to keep and the resourceVersion to replace. */
function withMetadata(
  object: Desired,
  keep: Record<string, string>,
  resourceVersion: string | null,
): Desired {
  const copy = structuredClone(object);
  if (Object.keys(keep).length > 0) copy.metadata.annotations = { ...keep, ...copy.metadata.annotations };
  if (resourceVersion) copy.metadata.resourceVersion = resourceVersion;
  return copy;
}

function serverAnnotations(live: unknown): Record<string, string> {
  const annotations =
    (live as { metadata?: { annotations?: Record<string, string> } }).metadata?.annotations ?? {};
  return Object.fromEntries(Object.entries(annotations).filter(([k]) => SERVER_ANNOTATION.test(k)));
}

function refusedKindMessage(apiVersion: string, kind: string): string {
  const known = Object.entries(NAMESPACED_KINDS).flatMap(([group, kinds]) =>
    kinds.map((k) => (group ? `${k} (${group})` : k)),
  );
  return `${kind} is cluster-scoped or not known to be namespaced (${apiVersion}): applyManifests only changes Namespaces and objects of these kinds in allowed namespaces: ${known.join(', ')}`;
}

function refusedKind(apiVersion: string, kind: string, name: string): NonRetriableError {
  return new NonRetriableError(`Refused: ${kind} ${name}: ${refusedKindMessage(apiVersion, kind)}.`, {
    code: 'K8S_REFUSED',
  });
}

/** Defense in depth: the server's answer must agree that the object is namespaced before it is written. */
function assertNamespaced(object: Desired, dry: Json): void {
  const namespace = (dry as { metadata?: { namespace?: string } } | null)?.metadata?.namespace;
  if (object.kind !== 'Namespace' && !namespace) {
    throw new NonRetriableError(
      `Refused: ${object.kind} ${object.metadata.name} is cluster-scoped; applyManifests only changes objects in allowed namespaces.`,
      { code: 'K8S_REFUSED' },
    );
  }
}

// ---- comparing -----------------------------------------------------------------------------------------

/** The object without status and server-managed metadata: what a manifest can say. */
function normalize(object: unknown): Json {
  const copy = plainJson(object) as Record<string, Json> | null;
  if (!copy || typeof copy !== 'object') return null;
  delete copy.status;
  const metadata = copy.metadata as Record<string, Json> | undefined;
  if (metadata) {
    for (const key of SERVER_METADATA) delete metadata[key];
    const annotations = metadata.annotations as Record<string, Json> | undefined;
    if (annotations) {
      for (const key of Object.keys(annotations)) {
        if (SERVER_ANNOTATION.test(key) || IGNORED_ANNOTATIONS.has(key)) delete annotations[key];
      }
      if (Object.keys(annotations).length === 0) delete metadata.annotations;
    }
  }
  return copy;
}

/** For a Secret, everything under `data` and `stringData` is secret; elsewhere, secret-looking keys. */
function secretFields(kind: string): (keys: readonly string[]) => boolean {
  return (keys) =>
    (kind === 'Secret' && (keys[0] === 'data' || keys[0] === 'stringData')) || keys.some(isSecretName);
}

/** A created object as the plan shows it: Secret values and the values of secret-named env variables redacted. */
function shown(kind: string, object: Json): Json {
  const masked = maskSecretEnv(object);
  if (kind !== 'Secret' || !isMap(masked)) return masked;
  const copy = { ...masked };
  for (const field of ['data', 'stringData']) {
    const values = copy[field];
    if (values && typeof values === 'object' && !Array.isArray(values)) {
      copy[field] = Object.fromEntries(Object.keys(values).map((k) => [k, REDACTED]));
    }
  }
  return copy;
}

/**
 * A created object without what the server allocates when the manifest leaves it out (a Service's
 * `clusterIP(s)`, `healthCheckNodePort`, its ports' `nodePort`s): a real API server picks them afresh on
 * every dry run, so showing them would give each plan of the same manifests a new hash, and a plan could
 * never be found unchanged. (`normalize` already drops `status` and metadata such as `uid`,
 * `resourceVersion`, `creationTimestamp`, `managedFields` and `generation`.)
 */
function withoutAllocated(dry: Json, object: Desired): Json {
  if (object.apiVersion !== 'v1' || object.kind !== 'Service') return dry;
  const spec = isMap(dry) ? dry.spec : undefined;
  if (!isMap(spec)) return dry;
  const given = isMap(object.spec) ? object.spec : {};
  for (const field of SERVICE_ALLOCATED) if (given[field] === undefined) delete spec[field];
  const givenPorts = Array.isArray(given.ports) ? given.ports : [];
  if (Array.isArray(spec.ports)) {
    spec.ports.forEach((port, i) => {
      const asked = givenPorts[i];
      if (isMap(port) && !(isMap(asked) && asked.nodePort !== undefined)) delete port.nodePort;
    });
  }
  return dry;
}

const probe = createRedactor();

/**
 * Whether the object holds something that must not be stored with the run, so that an update of it cannot
 * be reverted: a non-empty string right under a secret-looking key (`password: …`), the value of a
 * secret-named env variable, or text the engine's redactor would change (`user:pass@` in a URL…).
 * Non-string members under such keys are not secrets: a volume's `secret: {secretName}` source,
 * `automountServiceAccountToken: false`.
 */
function holdsSecrets(object: Json): boolean {
  const text = canonicalJson(object);
  return probe.redactText(text) !== text || hasSecretValue(object, '');
}

function hasSecretValue(value: Json, key: string): boolean {
  if (typeof value === 'string') return value !== '' && isSecretName(key);
  if (Array.isArray(value)) {
    return value.some((item) => (key === 'env' && isSecretEnvEntry(item)) || hasSecretValue(item, key));
  }
  if (isMap(value)) return Object.entries(value).some(([k, member]) => hasSecretValue(member, k));
  return false;
}

function isMap(v: unknown): v is { [key: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---- requests ------------------------------------------------------------------------------------------

async function readLive(cluster: KubernetesCluster, object: Desired, ctx: StepContext): Promise<unknown> {
  try {
    return await cluster.call(
      `read ${describe(object)}`,
      (opts) =>
        cluster.objects(opts).read({
          apiVersion: object.apiVersion,
          kind: object.kind,
          metadata: {
            name: object.metadata.name,
            ...(object.metadata.namespace ? { namespace: object.metadata.namespace } : {}),
          },
        }),
      { signal: ctx.signal },
    );
  } catch (e) {
    if (isKubernetesApiError(e) && e.status === 404) return undefined;
    throw e;
  }
}

/**
 * Deletes created objects and restores updated ones, in the order given; reports what it could not
 * restore. `signal` bounds it (not necessarily the step's: see PARTIAL_UNDO_TIMEOUT_MS).
 */
async function undo(
  cluster: KubernetesCluster,
  objects: PlannedObject[],
  fieldManager: string,
  signal: AbortSignal,
): Promise<{ notRestored: string[] }> {
  const notRestored: string[] = [];
  for (const p of objects) {
    const header = {
      apiVersion: p.apiVersion,
      kind: p.kind,
      metadata: { name: p.name, ...(p.namespace ? { namespace: p.namespace } : {}) },
    };
    if (p.action === 'create') {
      try {
        await cluster.call(
          `delete ${describePlanned(p)}`,
          (opts) =>
            cluster.objects(opts).delete(header, undefined, undefined, undefined, undefined, 'Background'),
          { signal },
        );
      } catch (e) {
        if (!(isKubernetesApiError(e) && e.status === 404)) throw e;
      }
      continue;
    }
    // The engine also scrubs the values of its configured secrets: text it changed is not the object.
    if (!p.restorable || !p.previous || p.previous.includes(REDACTED)) {
      notRestored.push(describePlanned(p));
      continue;
    }
    const previous = JSON.parse(p.previous) as Desired;
    const live = (await cluster.call(
      `read ${describePlanned(p)}`,
      (opts) => cluster.objects(opts).read(header),
      { signal },
    )) as { metadata?: { resourceVersion?: string } };
    const restored = withMetadata(previous, serverAnnotations(live), live.metadata?.resourceVersion ?? null);
    await cluster.call(
      `restore ${describePlanned(p)}`,
      (opts) => cluster.objects(opts).replace(restored, undefined, undefined, fieldManager),
      { signal },
    );
  }
  return { notRestored };
}
