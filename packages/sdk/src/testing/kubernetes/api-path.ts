import { type ResourceType, typeForPath } from './resources';

/** What a request path addresses. */
export type ApiPath =
  | { kind: 'root' }
  | { kind: 'version' }
  | { kind: 'health' }
  | { kind: 'apiVersions' }
  | { kind: 'groupList' }
  | { kind: 'group'; group: string }
  | { kind: 'resourceList'; group: string; version: string }
  | ResourcePath;

/** A collection, an object or an object's subresource. */
export interface ResourcePath {
  kind: 'resource';
  type: ResourceType;
  /** Undefined for cluster-scoped types, and for the all-namespaces collection of a namespaced type. */
  namespace?: string;
  name?: string;
  subresource?: string;
  /** A legacy `/watch/…` path: always a watch, whatever the query says. */
  legacyWatch: boolean;
}

const HEALTH = new Set(['healthz', 'readyz', 'livez']);

/**
 * Parses a URL path the way the API server routes it:
 * `/api/v1[/watch][/namespaces/{ns}]/{resource}[/{name}[/{subresource}]]` and the same under
 * `/apis/{group}/{version}`. `namespaces/{name}/status` is the namespace's subresource, not a resource
 * called `status`, because `namespaces/{ns}/{x}` only means "in namespace" when `x` is a namespaced
 * resource. Undefined means 404.
 */
export function parseApiPath(pathname: string): ApiPath | undefined {
  let segments: string[];
  try {
    segments = pathname.split('/').slice(1).map(decodeURIComponent);
  } catch {
    return undefined; // malformed %-escape
  }
  if (segments.at(-1) === '') segments.pop(); // a trailing slash
  const [root, ...rest] = segments;
  if (root === undefined) return { kind: 'root' };
  if (rest.length === 0 && root === 'version') return { kind: 'version' };
  if (rest.length === 0 && HEALTH.has(root)) return { kind: 'health' };
  if (root === 'api') {
    const [version, ...more] = rest;
    if (version === undefined) return { kind: 'apiVersions' };
    return more.length === 0 ? { kind: 'resourceList', group: '', version } : resourcePath('', version, more);
  }
  if (root === 'apis') {
    const [group, version, ...more] = rest;
    if (group === undefined) return { kind: 'groupList' };
    if (version === undefined) return { kind: 'group', group };
    return more.length === 0 ? { kind: 'resourceList', group, version } : resourcePath(group, version, more);
  }
  return undefined;
}

function resourcePath(group: string, version: string, segments: string[]): ResourcePath | undefined {
  let rest = segments;
  const legacyWatch = rest[0] === 'watch';
  if (legacyWatch) rest = rest.slice(1);
  let namespace: string | undefined;
  if (
    rest[0] === 'namespaces' &&
    rest.length >= 3 &&
    typeForPath(group, version, rest[2] as string)?.namespaced
  ) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, subresource, ...extra] = rest;
  if (resource === undefined || extra.length > 0 || namespace === '' || name === '') return undefined;
  const type = typeForPath(group, version, resource);
  if (!type) return undefined;
  // `/api/v1/pods` lists pods in every namespace, but a pod is only addressed inside its namespace.
  if (type.namespaced && namespace === undefined && name !== undefined) return undefined;
  if (subresource !== undefined && (legacyWatch || !type.subresources.includes(subresource)))
    return undefined;
  return {
    kind: 'resource',
    type,
    ...(namespace !== undefined ? { namespace } : {}),
    ...(name !== undefined ? { name } : {}),
    ...(subresource !== undefined ? { subresource } : {}),
    legacyWatch,
  };
}
