import { RESOURCE_TYPES, type ResourceType } from './resources';

/**
 * The discovery documents (`/api`, `/apis`, `/apis/{group}`, `/api/v1`, `/apis/{group}/{version}`),
 * derived from the served resource types. Clients read them to map a kind to its URL (kubectl,
 * `KubernetesObjectApi`), so names, `namespaced` and verbs must match what the server routes.
 */

/** Types `kubectl get all` lists: the workload types of the core and apps groups (not metrics.k8s.io's `pods`). */
const ALL_CATEGORY = new Set([
  '/pods',
  '/services',
  'apps/deployments',
  'apps/statefulsets',
  'apps/replicasets',
]);

/** Verbs and kinds of the subresources, as the real server lists them. */
const SUBRESOURCES: Record<string, { verbs: string[]; kind?: string; group?: string; version?: string }> = {
  status: { verbs: ['get', 'patch', 'update'] },
  scale: { verbs: ['get', 'patch', 'update'], kind: 'Scale', group: 'autoscaling', version: 'v1' },
  log: { verbs: ['get'] },
};

interface GroupVersion {
  groupVersion: string;
  version: string;
}

/** `GET /api`: the core group's versions. */
export function apiVersions(serverAddress: string): Record<string, unknown> {
  return {
    kind: 'APIVersions',
    versions: coreVersions(),
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

/** `GET /apis`: every named group with its versions and preferred version. */
export function apiGroupList(): Record<string, unknown> {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: namedGroups().map(groupEntry) };
}

/** `GET /apis/{group}`, or undefined when the group is not served. */
export function apiGroup(group: string): Record<string, unknown> | undefined {
  if (!namedGroups().includes(group)) return undefined;
  return { kind: 'APIGroup', apiVersion: 'v1', ...groupEntry(group) };
}

/** `GET /api/v1` or `GET /apis/{group}/{version}`, or undefined when that group/version is not served. */
export function apiResourceList(group: string, version: string): Record<string, unknown> | undefined {
  const types = RESOURCE_TYPES.filter((t) => t.group === group && t.version === version);
  if (types.length === 0) return undefined;
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: group === '' ? version : `${group}/${version}`,
    resources: types.flatMap((t) => [resourceEntry(t), ...t.subresources.map((s) => subresourceEntry(t, s))]),
  };
}

function resourceEntry(t: ResourceType): Record<string, unknown> {
  return {
    name: t.resource,
    singularName: t.singular,
    namespaced: t.namespaced,
    kind: t.kind,
    verbs: t.verbs,
    ...(t.shortNames ? { shortNames: t.shortNames } : {}),
    ...(ALL_CATEGORY.has(`${t.group}/${t.resource}`) ? { categories: ['all'] } : {}),
  };
}

function subresourceEntry(t: ResourceType, sub: string): Record<string, unknown> {
  const info = SUBRESOURCES[sub] ?? { verbs: ['get'] };
  return {
    name: `${t.resource}/${sub}`,
    singularName: '',
    namespaced: t.namespaced,
    ...(info.group ? { group: info.group, version: info.version } : {}),
    kind: info.kind ?? t.kind,
    verbs: info.verbs,
  };
}

function coreVersions(): string[] {
  return [...new Set(RESOURCE_TYPES.filter((t) => t.group === '').map((t) => t.version))];
}

function namedGroups(): string[] {
  return [...new Set(RESOURCE_TYPES.filter((t) => t.group !== '').map((t) => t.group))];
}

function groupEntry(group: string): {
  name: string;
  versions: GroupVersion[];
  preferredVersion: GroupVersion;
} {
  const versions = [...new Set(RESOURCE_TYPES.filter((t) => t.group === group).map((t) => t.version))].map(
    (version) => ({ groupVersion: `${group}/${version}`, version }),
  );
  return { name: group, versions, preferredVersion: versions[0] as GroupVersion };
}
