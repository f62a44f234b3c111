import type { LabelSelectorObject } from './label-selector';
import type { KubeObject } from './object-store';
import { badRequest, StatusError } from './status-error';

/** The `autoscaling/v1 Scale` a workload's `/scale` subresource reads and writes. */
export interface Scale {
  kind: 'Scale';
  apiVersion: 'autoscaling/v1';
  metadata: {
    name: string;
    namespace?: string;
    uid: string;
    resourceVersion: string;
    creationTimestamp: string;
  };
  spec: { replicas: number };
  status: { replicas: number; selector: string };
}

const record = (v: unknown): Record<string, unknown> =>
  v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

/** The Scale view of a Deployment, StatefulSet or ReplicaSet: its desired and current replicas and its selector as text. */
export function scaleOf(workload: KubeObject): Scale {
  const spec = record(workload.spec);
  const status = record(workload.status);
  const { name, namespace, uid, resourceVersion, creationTimestamp } = workload.metadata;
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: { name, ...(namespace ? { namespace } : {}), uid, resourceVersion, creationTimestamp },
    spec: { replicas: typeof spec.replicas === 'number' ? spec.replicas : 1 },
    status: {
      replicas: typeof status.replicas === 'number' ? status.replicas : 0,
      selector: formatSelector(spec.selector as LabelSelectorObject | undefined),
    },
  };
}

/**
 * The workload with the replicas a written Scale asks for. The Scale's `resourceVersion` (when given)
 * becomes the workload's, so the store's optimistic concurrency check applies to scale writes too.
 */
export function workloadWithScale(workload: KubeObject, scale: unknown, name: string): KubeObject {
  const body = record(scale);
  const meta = record(body.metadata);
  if (meta.name !== undefined && meta.name !== name) {
    throw badRequest(
      `the name of the object (${String(meta.name)}) does not match the name on the URL (${name})`,
    );
  }
  if (
    body.spec !== undefined &&
    (typeof body.spec !== 'object' || body.spec === null || Array.isArray(body.spec))
  ) {
    throw badRequest('Scale in version "v1" cannot be handled as a Scale: spec must be an object');
  }
  // An absent `spec.replicas` is 0, as Go's zero value makes it on the real server.
  const replicas = record(body.spec).replicas ?? 0;
  if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
    throw new StatusError(
      422,
      'Invalid',
      `Scale.autoscaling "${name}" is invalid: spec.replicas: Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`,
      {
        name,
        group: 'autoscaling',
        kind: 'Scale',
        causes: [
          {
            reason: 'FieldValueInvalid',
            field: 'spec.replicas',
            message: 'must be greater than or equal to 0',
          },
        ],
      },
    );
  }
  const resourceVersion = typeof meta.resourceVersion === 'string' ? meta.resourceVersion : undefined;
  return {
    ...workload,
    metadata: { ...workload.metadata, ...(resourceVersion ? { resourceVersion } : {}) },
    spec: { ...record(workload.spec), replicas },
  };
}

/** `metav1.FormatLabelSelector`: `app=web,tier in (a,b),!legacy`, requirements sorted by key. */
export function formatSelector(selector: LabelSelectorObject | undefined): string {
  if (!selector) return '';
  const parts: { key: string; text: string }[] = Object.entries(selector.matchLabels ?? {}).map(
    ([key, value]) => ({
      key,
      text: `${key}=${value}`,
    }),
  );
  for (const e of selector.matchExpressions ?? []) {
    const values = [...(e.values ?? [])].sort().join(',');
    const text =
      e.operator === 'In'
        ? `${e.key} in (${values})`
        : e.operator === 'NotIn'
          ? `${e.key} notin (${values})`
          : e.operator === 'Exists'
            ? e.key
            : `!${e.key}`;
    parts.push({ key: e.key, text });
  }
  return parts
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((p) => p.text)
    .join(',');
}
