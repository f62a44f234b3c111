import type { KubeObject } from './object-store';
import type { ResourceType } from './resources';

/**
 * Server-side printing: the `meta.k8s.io` `Table` kubectl asks for (`Accept: application/json;as=Table;…`)
 * so that `kubectl get` shows the usual columns (READY, STATUS, RESTARTS, AGE…) instead of only NAME.
 * Columns follow the real server's printers for the types a lab operator looks at; other types get the
 * real server's default (Name, Created At). `priority: 1` columns are the ones `-o wide` adds.
 */

interface Column {
  name: string;
  type: 'string' | 'integer' | 'date';
  format?: 'name';
  priority?: number;
  cell: (o: KubeObject, now: number) => string | number;
}

/** `application/json;as=Table;v=v1;g=meta.k8s.io` in an Accept header: the Table version asked for, if any. */
export function tableVersionAccepted(accept: string | undefined): 'v1' | 'v1beta1' | undefined {
  for (const part of (accept ?? '').split(',')) {
    const params = new Map(
      part
        .split(';')
        .slice(1)
        .map((p) => p.trim().split('=') as [string, string]),
    );
    if (params.get('as') !== 'Table' || params.get('g') !== 'meta.k8s.io') continue;
    const version = params.get('v');
    if (version === 'v1' || version === 'v1beta1') return version;
  }
  return undefined;
}

/** The Table for these objects; rows carry the object's metadata (or the whole object when `includeObject=Object`). */
export function toTable(
  type: ResourceType,
  objects: KubeObject[],
  options: {
    version: 'v1' | 'v1beta1';
    resourceVersion: string;
    includeObject: string | null;
    continue?: string;
  },
): Record<string, unknown> {
  const now = Date.now();
  const columns = COLUMNS[`${type.group}/${type.resource}`] ?? DEFAULT_COLUMNS;
  return {
    kind: 'Table',
    apiVersion: `meta.k8s.io/${options.version}`,
    metadata: {
      resourceVersion: options.resourceVersion,
      ...(options.continue ? { continue: options.continue } : {}),
    },
    columnDefinitions: columns.map(({ name, type: t, format, priority }) => ({
      name,
      type: t,
      format: format ?? '',
      description: '',
      priority: priority ?? 0,
    })),
    rows: objects.map((o) => ({
      cells: columns.map((c) => c.cell(o, now)),
      object: rowObject(o, options.includeObject, options.version),
    })),
  };
}

function rowObject(o: KubeObject, include: string | null, version: string): unknown {
  if (include === 'None') return undefined;
  if (include === 'Object') return o;
  return { kind: 'PartialObjectMetadata', apiVersion: `meta.k8s.io/${version}`, metadata: o.metadata };
}

// --- cells -------------------------------------------------------------------------------------------

type Any = Record<string, unknown>;
const at = (o: unknown, ...path: string[]): unknown =>
  path.reduce<unknown>((node, key) => (node && typeof node === 'object' ? (node as Any)[key] : undefined), o);
const num = (v: unknown) => (typeof v === 'number' ? v : 0);
const list = (v: unknown): Any[] => (Array.isArray(v) ? (v as Any[]) : []);

const name: Column = { name: 'Name', type: 'string', format: 'name', cell: (o) => o.metadata.name };
const age: Column = {
  name: 'Age',
  type: 'string',
  cell: (o, now) => since(o.metadata.creationTimestamp, now),
};

/** Go's `duration.HumanDuration`, which every `AGE` column uses. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8)
    return hours % 24 === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${hours % 24}h`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 365 * 2) return `${days}d`;
  const years = Math.floor(days / 365);
  if (hours < 24 * 365 * 8) return days % 365 === 0 ? `${years}y` : `${years}y${days % 365}d`;
  return `${years}y`;
}

function since(timestamp: unknown, now: number): string {
  if (typeof timestamp !== 'string') return '<unknown>';
  return humanDuration(now - Date.parse(timestamp));
}

const containers = (spec: unknown) => list(at(spec, 'containers'));
const templateColumns = (): Column[] => [
  {
    name: 'Containers',
    type: 'string',
    priority: 1,
    cell: (o) =>
      containers(at(o, 'spec', 'template', 'spec'))
        .map((c) => c.name)
        .join(','),
  },
  {
    name: 'Images',
    type: 'string',
    priority: 1,
    cell: (o) =>
      containers(at(o, 'spec', 'template', 'spec'))
        .map((c) => c.image)
        .join(','),
  },
];

/** kubectl's pod STATUS: the phase, overridden by a container's waiting or terminated reason, or `Terminating`. */
function podStatus(pod: KubeObject): string {
  if (pod.metadata.deletionTimestamp) return 'Terminating';
  let reason = String(at(pod, 'status', 'reason') ?? at(pod, 'status', 'phase') ?? 'Unknown');
  for (const c of list(at(pod, 'status', 'containerStatuses'))) {
    const waiting = at(c, 'state', 'waiting', 'reason');
    const terminated = at(c, 'state', 'terminated', 'reason');
    if (typeof waiting === 'string' && waiting) reason = waiting;
    else if (typeof terminated === 'string' && terminated) reason = terminated;
  }
  return reason;
}

const COLUMNS: Record<string, Column[]> = {
  '/pods': [
    name,
    {
      name: 'Ready',
      type: 'string',
      cell: (o) => {
        const statuses = list(at(o, 'status', 'containerStatuses'));
        return `${statuses.filter((c) => c.ready === true).length}/${containers(o.spec).length}`;
      },
    },
    { name: 'Status', type: 'string', cell: podStatus },
    {
      name: 'Restarts',
      type: 'string',
      cell: (o) =>
        String(list(at(o, 'status', 'containerStatuses')).reduce((n, c) => n + num(c.restartCount), 0)),
    },
    age,
    { name: 'IP', type: 'string', priority: 1, cell: (o) => String(at(o, 'status', 'podIP') ?? '<none>') },
    { name: 'Node', type: 'string', priority: 1, cell: (o) => String(at(o, 'spec', 'nodeName') ?? '<none>') },
  ],
  'apps/deployments': [
    name,
    {
      name: 'Ready',
      type: 'string',
      cell: (o) => `${num(at(o, 'status', 'readyReplicas'))}/${num(at(o, 'spec', 'replicas'))}`,
    },
    { name: 'Up-to-date', type: 'integer', cell: (o) => num(at(o, 'status', 'updatedReplicas')) },
    { name: 'Available', type: 'integer', cell: (o) => num(at(o, 'status', 'availableReplicas')) },
    age,
    ...templateColumns(),
  ],
  'apps/replicasets': [
    name,
    { name: 'Desired', type: 'integer', cell: (o) => num(at(o, 'spec', 'replicas')) },
    { name: 'Current', type: 'integer', cell: (o) => num(at(o, 'status', 'replicas')) },
    { name: 'Ready', type: 'integer', cell: (o) => num(at(o, 'status', 'readyReplicas')) },
    age,
    ...templateColumns(),
  ],
  'apps/statefulsets': [
    name,
    {
      name: 'Ready',
      type: 'string',
      cell: (o) => `${num(at(o, 'status', 'readyReplicas'))}/${num(at(o, 'spec', 'replicas'))}`,
    },
    age,
    ...templateColumns(),
  ],
  '/nodes': [
    name,
    {
      name: 'Status',
      type: 'string',
      cell: (o) => {
        const ready = list(at(o, 'status', 'conditions')).find((c) => c.type === 'Ready');
        const state = ready?.status === 'True' ? 'Ready' : ready ? 'NotReady' : 'Unknown';
        return at(o, 'spec', 'unschedulable') === true ? `${state},SchedulingDisabled` : state;
      },
    },
    { name: 'Roles', type: 'string', cell: () => '<none>' },
    age,
    {
      name: 'Version',
      type: 'string',
      cell: (o) => String(at(o, 'status', 'nodeInfo', 'kubeletVersion') ?? ''),
    },
  ],
  '/namespaces': [
    name,
    { name: 'Status', type: 'string', cell: (o) => String(at(o, 'status', 'phase') ?? '') },
    age,
  ],
  '/services': [
    name,
    { name: 'Type', type: 'string', cell: (o) => String(at(o, 'spec', 'type') ?? 'ClusterIP') },
    { name: 'Cluster-IP', type: 'string', cell: (o) => String(at(o, 'spec', 'clusterIP') ?? '<none>') },
    { name: 'External-IP', type: 'string', cell: () => '<none>' },
    {
      name: 'Port(s)',
      type: 'string',
      cell: (o) =>
        list(at(o, 'spec', 'ports'))
          .map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ''}/${p.protocol ?? 'TCP'}`)
          .join(',') || '<none>',
    },
    age,
  ],
  '/events': [
    {
      name: 'Last Seen',
      type: 'string',
      cell: (o, now) => since(o.lastTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp, now),
    },
    { name: 'Type', type: 'string', cell: (o) => String(o.type ?? '') },
    { name: 'Reason', type: 'string', cell: (o) => String(o.reason ?? '') },
    {
      name: 'Object',
      type: 'string',
      cell: (o) =>
        `${String(at(o, 'involvedObject', 'kind') ?? '').toLowerCase()}/${at(o, 'involvedObject', 'name')}`,
    },
    { name: 'Message', type: 'string', cell: (o) => String(o.message ?? '') },
    { ...name, priority: 1 },
  ],
  '/configmaps': [
    name,
    { name: 'Data', type: 'integer', cell: (o) => Object.keys((o.data as Any | undefined) ?? {}).length },
    age,
  ],
  '/secrets': [
    name,
    { name: 'Type', type: 'string', cell: (o) => String(o.type ?? 'Opaque') },
    { name: 'Data', type: 'integer', cell: (o) => Object.keys((o.data as Any | undefined) ?? {}).length },
    age,
  ],
};

const DEFAULT_COLUMNS: Column[] = [
  name,
  { name: 'Created At', type: 'date', cell: (o) => o.metadata.creationTimestamp },
];
