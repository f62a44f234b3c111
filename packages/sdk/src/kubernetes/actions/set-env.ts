import type {
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1PodTemplateSpec,
  V1StatefulSet,
} from '@kubernetes/client-node';
import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { NonRetriableError, RunbookError } from '../../core/errors';
import type { Json } from '../../core/json';
import { parseOptions } from '../../core/parse-options';
import type { Change } from '../../core/plan';
import { isSecretName, REDACTED } from '../../core/redact';
import type { StepContext } from '../../core/step';
import { type Action, defineAction } from '../../core/step';
import { type KubernetesCluster, k8sRef, type WorkloadKind } from '../cluster';
import { NamespaceName, ObjectName, WorkloadKindSchema } from '../options';
import { listRevisions, templatesEqual } from '../revisions';
import { REDACTED_NEW_VALUE } from './diff';
import {
  awaitRollout,
  describeWorkload,
  patchWorkload,
  plainJson,
  readWorkload,
  type Workload,
} from './workload';

const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/** Options of {@link setEnv}. */
export const SetEnvOptions = z.object({
  /** Namespace of the workload; must be one the cluster's `namespaces` option allows. */
  namespace: NamespaceName,
  /** Name of the Deployment or StatefulSet. */
  name: ObjectName,
  /** @default "Deployment" */
  kind: WorkloadKindSchema.default('Deployment'),
  /** The container to change (regular or init). @default every container, as `kubectl set env` without `-c` */
  container: z.string().min(1).optional(),
  /** Variables to set; `null` removes one. */
  env: z
    .record(
      z.string().regex(ENV_NAME, 'expected an environment variable name (letters, digits, "_", "-", ".")'),
      z.string().nullable(),
    )
    .refine((env) => Object.keys(env).length > 0, 'expected at least one variable'),
  /**
   * Allow replacing or removing a variable whose value comes from `valueFrom` (a Secret or ConfigMap
   * reference): by default that is refused, since a literal would silently detach it. @default false
   */
  allowValueFrom: z.boolean().default(false),
  /** How long verify waits for the rollout to be done. @default "5m" */
  timeout: Duration.default('5m'),
});
export type SetEnvOptions = z.output<typeof SetEnvOptions>;
export type SetEnvOptionsInput = z.input<typeof SetEnvOptions>;

/** The pod template's list a container is in: `spec.containers` or `spec.initContainers`. */
export type ContainerList = 'containers' | 'initContainers';

/**
 * One variable of one container, before and after. No member name may look like a secret to the engine's
 * redactor (`secret`, `token`, …): it would replace the member's value in the stored plan, which is the
 * plan apply and revert get.
 */
export type EnvEdit = {
  list: ContainerList;
  container: string;
  /** The variable's name. */
  name: string;
  /**
   * The entry before (`{value}` or `{valueFrom}`), `null` when absent. The value of a secret-looking name
   * is `[REDACTED]`; revert then reads it back from the rollout history.
   */
  before: Json;
  /**
   * The value after, `null` when removed. For a secret-looking name `[REDACTED: new value]`, which differs
   * from the `[REDACTED]` before: the engine, re-planning after a crash, takes a fresh `before` equal to
   * this `after` as "the apply took effect", so equal markers would skip an apply that never happened.
   */
  after: string | null;
  /** The name looks like a secret (`*_PASSWORD`, `*_TOKEN`, …): its values are not in the plan. */
  masked: boolean;
};

/** What a set-env plan fixes. */
export type SetEnvParams = {
  namespace: string;
  name: string;
  kind: WorkloadKind;
  edits: EnvEdit[];
  /**
   * Where revert finds the values before (for secret-looking names, and values the engine redacted): the
   * ReplicaSet (Deployment) or ControllerRevision (StatefulSet) running the template at plan time.
   */
  history: string | null;
  timeoutMs: number;
};

const KIND = 'k8s.set-env';

/**
 * `kubectl set env`: a strategic-merge patch of the pod template that merges containers by name and env
 * entries by name (`{name, $patch: delete}` removes one), so other variables and containers are untouched.
 *
 * - **plan** lists each variable that changes, per container, as
 *   `spec.template.spec.containers[name=app].env[name=FOO]: before → after` (unchanged ones are left out).
 *   Values of secret-looking names (`DB_PASSWORD`, `API_TOKEN`, …) are not in the plan (`[REDACTED]` →
 *   `[REDACTED: new value]`): the value written comes from this action's options at apply time (checked
 *   against the plan), so no secret is stored with the run. A variable set from `valueFrom` is refused unless `allowValueFrom`.
 * - **verify** waits for the rollout to be done (fail fast on crash loops, image pulls, OOM kills).
 * - **revert** restores each variable as it was (removing added ones), reading redacted values back from
 *   the ReplicaSet / ControllerRevision that ran the old template.
 *
 * Risk `medium`, not destructive.
 */
export function setEnv(cluster: KubernetesCluster, options: SetEnvOptionsInput): Action<SetEnvParams, null> {
  const o = parseOptions(KIND, SetEnvOptions, options);
  const target = k8sRef(o.namespace, o.kind, o.name);
  const label = describeWorkload(o.kind, o.namespace, o.name);
  return defineAction<SetEnvParams, null>({
    kind: KIND,
    target,
    risk: 'medium',
    destructive: false,
    description: `Set environment variables of ${label} (kubectl set env)`,

    async plan(ctx) {
      cluster.assertMayChange(o.namespace);
      const workload = await readWorkload(cluster, o.kind, o.namespace, o.name, { signal: ctx.signal });
      const template = workload.spec?.template as V1PodTemplateSpec;
      const edits = planEdits(template, o, label);
      const changes: Change[] = edits.map((e) => ({
        target,
        field: envField(e),
        before: e.before === null ? null : displayBefore(e.before),
        after: e.after,
      }));
      const history = edits.length > 0 ? await historyOf(cluster, o.kind, workload, ctx) : null;
      const names = [...new Set(edits.map((e) => e.name))];
      return {
        summary:
          edits.length === 0
            ? `${label}: the environment already is as asked`
            : `Set ${names.join(', ')} on ${label} (${changes.length} change${changes.length === 1 ? '' : 's'}): its pods are replaced`,
        changes,
        params: {
          namespace: o.namespace,
          name: o.name,
          kind: o.kind,
          edits,
          history,
          timeoutMs: toMillis(o.timeout),
        },
      };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      cluster.assertMayChange(p.namespace);
      const entries = p.edits.map((e) => {
        if (e.after === null) return { edit: e, entry: { name: e.name, $patch: 'delete' } };
        const value = valueToWrite(e, o.env[e.name], label);
        const hadValueFrom = isObject(e.before) && e.before.valueFrom !== undefined;
        return { edit: e, entry: { name: e.name, value, ...(hadValueFrom ? { valueFrom: null } : {}) } };
      });
      await patchEnv(cluster, p, entries, ctx);
      return null;
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      return awaitRollout(cluster, p, { timeoutMs: p.timeoutMs, signal: ctx.signal });
    },

    async revert(ctx, applied) {
      const p = applied.plan.params;
      cluster.assertMayChange(p.namespace);
      let history: V1PodTemplateSpec | undefined;
      const entries = [];
      for (const e of p.edits) {
        if (e.before === null) {
          entries.push({ edit: e, entry: { name: e.name, $patch: 'delete' } });
          continue;
        }
        const before = e.before as { value?: string; valueFrom?: Json };
        if (before.valueFrom !== undefined) {
          entries.push({ edit: e, entry: { name: e.name, valueFrom: before.valueFrom, value: null } });
          continue;
        }
        let value = before.value ?? '';
        if (e.masked || value.includes(REDACTED)) {
          history ??= await readHistory(cluster, p, ctx);
          const old = history ? findEnv(history, e.list, e.container, e.name) : undefined;
          if (old?.value === undefined) {
            throw new NonRetriableError(
              `Cannot restore ${e.name} of container ${e.container} in ${label}: its old value was not stored with the plan (it looks like a secret) and the ${p.kind === 'Deployment' ? 'ReplicaSet' : 'ControllerRevision'} "${p.history ?? '?'}" that ran the old template is gone. Set it by hand.`,
              { code: 'K8S_REVERT_IMPOSSIBLE' },
            );
          }
          value = old.value;
        }
        entries.push({ edit: e, entry: { name: e.name, value } });
      }
      await patchEnv(cluster, p, entries, ctx);
      ctx.log(`restored ${p.edits.length} environment variable(s) of ${label}`);
    },
  });
}

function planEdits(template: V1PodTemplateSpec, o: SetEnvOptions, label: string): EnvEdit[] {
  const lists: [ContainerList, V1Container[]][] = [
    ['containers', template?.spec?.containers ?? []],
    ['initContainers', template?.spec?.initContainers ?? []],
  ];
  const selected = lists.flatMap(([list, containers]) =>
    containers.filter((c) => o.container === undefined || c.name === o.container).map((c) => ({ list, c })),
  );
  if (selected.length === 0) {
    const names = lists.flatMap(([, cs]) => cs.map((c) => c.name));
    throw new NonRetriableError(
      `${label} has no container named "${o.container}" (it has: ${names.join(', ') || 'none'}). Fix the \`container\` option.`,
      { code: 'K8S_NO_SUCH_CONTAINER' },
    );
  }
  const edits: EnvEdit[] = [];
  for (const { list, c } of selected) {
    for (const [name, value] of Object.entries(o.env)) {
      const existing = c.env?.find((e) => e.name === name);
      if (value === null && !existing) continue;
      if (value !== null && existing && existing.valueFrom === undefined && existing.value === value)
        continue;
      if (existing?.valueFrom !== undefined && !o.allowValueFrom) {
        throw new NonRetriableError(
          `Refused to ${value === null ? 'remove' : 'overwrite'} ${name} of container ${c.name} in ${label}: its value comes from ${describeValueFrom(existing)}. Change the referenced object instead, or pass allowValueFrom: true to replace the reference.`,
          { code: 'K8S_VALUE_FROM' },
        );
      }
      const masked = isSecretName(name);
      edits.push({
        list,
        container: c.name,
        name,
        before: existing ? beforeOf(existing, masked) : null,
        after: value === null ? null : masked ? REDACTED_NEW_VALUE : value,
        masked,
      });
    }
  }
  return edits;
}

function beforeOf(entry: V1EnvVar, masked: boolean): Json {
  if (entry.valueFrom !== undefined) return { valueFrom: plainJson(entry.valueFrom) };
  return { value: masked && entry.value ? REDACTED : (entry.value ?? '') };
}

/** The plan shows the value (or the reference) the variable had. */
function displayBefore(before: Json): Json {
  const b = before as { value?: string; valueFrom?: Json };
  return b.valueFrom !== undefined ? { valueFrom: b.valueFrom } : (b.value ?? '');
}

function describeValueFrom(entry: V1EnvVar): string {
  const from = entry.valueFrom;
  if (from?.secretKeyRef) return `Secret ${from.secretKeyRef.name}/${from.secretKeyRef.key}`;
  if (from?.configMapKeyRef) return `ConfigMap ${from.configMapKeyRef.name}/${from.configMapKeyRef.key}`;
  if (from?.fieldRef) return `field ${from.fieldRef.fieldPath}`;
  if (from?.resourceFieldRef) return `resource ${from.resourceFieldRef.resource}`;
  return 'a valueFrom reference';
}

function envField(e: EnvEdit): string {
  return `spec.template.spec.${e.list}[name=${e.container}].env[name=${e.name}]`;
}

/**
 * The value to write: always this action's own option (so a secret never has to be in the plan), checked
 * against what the plan says, so an approved plan cannot be applied with another value.
 */
function valueToWrite(edit: EnvEdit, option: string | null | undefined, label: string): string {
  const planned = edit.after as string;
  const matches =
    typeof option === 'string' &&
    (edit.masked ? planned === REDACTED_NEW_VALUE : planned === option || planned.includes(REDACTED));
  if (!matches) {
    throw new NonRetriableError(
      `The plan sets ${edit.name} on ${label}, but this action's options ${option === undefined ? 'do not mention it' : 'give it another value'}. Plan again with the same options.`,
      { code: 'STALE_PLAN' },
    );
  }
  return option as string;
}

async function patchEnv(
  cluster: KubernetesCluster,
  p: SetEnvParams,
  entries: { edit: EnvEdit; entry: Record<string, unknown> }[],
  ctx: StepContext,
): Promise<void> {
  const spec: Record<ContainerList, { name: string; env: Record<string, unknown>[] }[]> = {
    containers: [],
    initContainers: [],
  };
  for (const { edit, entry } of entries) {
    let container = spec[edit.list].find((c) => c.name === edit.container);
    if (!container) {
      container = { name: edit.container, env: [] };
      spec[edit.list].push(container);
    }
    container.env.push(entry);
  }
  const patchSpec = Object.fromEntries(Object.entries(spec).filter(([, cs]) => cs.length > 0));
  await patchWorkload(
    cluster,
    p.kind,
    p.namespace,
    p.name,
    { spec: { template: { spec: patchSpec } } },
    { signal: ctx.signal, contentType: 'application/strategic-merge-patch+json' },
  );
}

/** The name of the ReplicaSet / ControllerRevision that runs the workload's current template, if any. */
async function historyOf(
  cluster: KubernetesCluster,
  kind: WorkloadKind,
  workload: Workload,
  ctx: StepContext,
): Promise<string | null> {
  if (kind === 'StatefulSet') {
    const status = (workload as V1StatefulSet).status;
    return status?.updateRevision ?? status?.currentRevision ?? null;
  }
  const deployment = workload as V1Deployment;
  const namespace = deployment.metadata?.namespace ?? '';
  const revisions = await listRevisions(cluster, namespace, deployment, { signal: ctx.signal });
  const template = deployment.spec?.template as V1PodTemplateSpec;
  return revisions.find((r) => templatesEqual(r.template, template))?.replicaSet.metadata?.name ?? null;
}

/** The template the history object holds; `undefined` when it is gone. */
async function readHistory(
  cluster: KubernetesCluster,
  p: SetEnvParams,
  ctx: StepContext,
): Promise<V1PodTemplateSpec | undefined> {
  const name = p.history;
  if (!name) return undefined;
  const request = { signal: ctx.signal };
  const namespace = p.namespace;
  try {
    if (p.kind === 'Deployment') {
      const rs = await cluster.call(
        `read ReplicaSet ${namespace}/${name}`,
        (opts) => cluster.apps.readNamespacedReplicaSet({ name, namespace }, opts),
        request,
      );
      return rs.spec?.template;
    }
    const revision = await cluster.call(
      `read ControllerRevision ${namespace}/${name}`,
      (opts) => cluster.apps.readNamespacedControllerRevision({ name, namespace }, opts),
      request,
    );
    const data = revision.data as { spec?: { template?: V1PodTemplateSpec } } | undefined;
    return data?.spec?.template;
  } catch (e) {
    if (e instanceof RunbookError && e.code === 'K8S_NOT_FOUND') return undefined;
    throw e;
  }
}

function findEnv(
  template: V1PodTemplateSpec,
  list: ContainerList,
  container: string,
  name: string,
): V1EnvVar | undefined {
  return template.spec?.[list]?.find((c) => c.name === container)?.env?.find((e) => e.name === name);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
