/** The resource types the simulator serves, as the API server's discovery describes them. */
export interface ResourceType {
  /** API group; `''` for the core group. */
  group: string;
  version: string;
  /** Plural name in URLs, e.g. `deployments`. */
  resource: string;
  kind: string;
  /** Singular name, as discovery lists it. */
  singular: string;
  namespaced: boolean;
  shortNames?: string[];
  /** Subresources served, e.g. `status`, `scale`, `log`. */
  subresources: string[];
  /** Verbs served on the collection and its items. */
  verbs: string[];
  /** True when `PUT` on the main resource keeps the stored status (the type has a `/status` subresource). */
  hasStatus: boolean;
}

const ALL = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
const READ = ['get', 'list', 'watch'];

function type(
  group: string,
  version: string,
  resource: string,
  kind: string,
  namespaced: boolean,
  more: Partial<ResourceType> = {},
): ResourceType {
  return {
    group,
    version,
    resource,
    kind,
    singular: kind.toLowerCase(),
    namespaced,
    subresources: [],
    verbs: ALL,
    hasStatus: false,
    ...more,
  };
}

export const NAMESPACES = type('', 'v1', 'namespaces', 'Namespace', false, {
  shortNames: ['ns'],
  subresources: ['status'],
  hasStatus: true,
});
export const NODES = type('', 'v1', 'nodes', 'Node', false, {
  shortNames: ['no'],
  subresources: ['status'],
  hasStatus: true,
});
export const PODS = type('', 'v1', 'pods', 'Pod', true, {
  shortNames: ['po'],
  subresources: ['status', 'log'],
  hasStatus: true,
});
export const EVENTS = type('', 'v1', 'events', 'Event', true, { shortNames: ['ev'] });
export const SERVICES = type('', 'v1', 'services', 'Service', true, {
  shortNames: ['svc'],
  subresources: ['status'],
  hasStatus: true,
});
export const CONFIGMAPS = type('', 'v1', 'configmaps', 'ConfigMap', true, { shortNames: ['cm'] });
export const SECRETS = type('', 'v1', 'secrets', 'Secret', true);
export const DEPLOYMENTS = type('apps', 'v1', 'deployments', 'Deployment', true, {
  shortNames: ['deploy'],
  subresources: ['status', 'scale'],
  hasStatus: true,
});
export const STATEFULSETS = type('apps', 'v1', 'statefulsets', 'StatefulSet', true, {
  shortNames: ['sts'],
  subresources: ['status', 'scale'],
  hasStatus: true,
});
export const REPLICASETS = type('apps', 'v1', 'replicasets', 'ReplicaSet', true, {
  shortNames: ['rs'],
  subresources: ['status', 'scale'],
  hasStatus: true,
});
export const CONTROLLERREVISIONS = type('apps', 'v1', 'controllerrevisions', 'ControllerRevision', true);
export const POD_METRICS = type('metrics.k8s.io', 'v1beta1', 'pods', 'PodMetrics', true, {
  singular: '',
  verbs: READ,
});
export const NODE_METRICS = type('metrics.k8s.io', 'v1beta1', 'nodes', 'NodeMetrics', false, {
  singular: '',
  verbs: READ,
});

/** Every type the simulator serves, in discovery order. */
export const RESOURCE_TYPES: readonly ResourceType[] = [
  NAMESPACES,
  NODES,
  PODS,
  EVENTS,
  SERVICES,
  CONFIGMAPS,
  SECRETS,
  DEPLOYMENTS,
  STATEFULSETS,
  REPLICASETS,
  CONTROLLERREVISIONS,
  POD_METRICS,
  NODE_METRICS,
];

/** `apiVersion` as objects carry it: `v1` for the core group, `group/version` otherwise. */
export function apiVersionOf(t: ResourceType): string {
  return t.group === '' ? t.version : `${t.group}/${t.version}`;
}

/** Finds the served type for an `apiVersion` and `kind` (for manifests and owner references). */
export function typeForKind(apiVersion: string, kind: string): ResourceType | undefined {
  return RESOURCE_TYPES.find((t) => apiVersionOf(t) === apiVersion && t.kind === kind);
}

/** Finds the served type for a URL's group, version and plural resource name. */
export function typeForPath(group: string, version: string, resource: string): ResourceType | undefined {
  return RESOURCE_TYPES.find((t) => t.group === group && t.version === version && t.resource === resource);
}
