import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { arch } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { ApiFaults } from './api-faults';
import { type ApiPath, parseApiPath, type ResourcePath } from './api-path';
import {
  type DeleteOptions,
  dryRun,
  isObject,
  isTrue,
  mediaType,
  methodNotAllowed,
  notFoundPath,
  type Request,
  readDeleteOptions,
  readObject,
  readPatch,
  requireVerb,
  sendError,
  sendJson,
  sendText,
} from './api-request';
import { apiGroup, apiGroupList, apiResourceList, apiVersions } from './discovery';
import type { UpgradeHandler } from './exec-server';
import { matchesFields, parseFieldSelector } from './field-selector';
import { matchesLabels, parseLabelSelector } from './label-selector';
import { paginate, parseLimit } from './list-page';
import { type KubeObject, type KubeObjectInput, ObjectStore } from './object-store';
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch } from './patch';
import { type PodLogSource, parsePodLogOptions, renderPodLog } from './pod-log';
import { apiVersionOf, PODS, RESOURCE_TYPES, type ResourceType } from './resources';
import { scaleOf, workloadWithScale } from './scale';
import { badRequest, StatusError } from './status-error';
import { applyDefaults, prepareForCreate, validate } from './strategy';
import { tableVersionAccepted, toTable } from './table';
import { startWatch, type WatchStream } from './watch-stream';

/** How to run the simulated API server. */
export const ApiServerOptions = z.object({
  /** The objects it serves (its etcd). */
  store: z.instanceof(ObjectStore),
  /** Where `GET …/pods/{name}/log` reads container logs from. @default none: an existing pod's log is empty */
  logs: z.custom<PodLogSource>((v) => typeof v === 'function', 'logs must be a function').optional(),
  /** Injected API faults (errors, latency) consulted on every request. @default none */
  faults: z.instanceof(ApiFaults).optional(),
  /** Interface to listen on. @default "127.0.0.1" */
  host: z.string().min(1).default('127.0.0.1'),
  /** Port to listen on; 0 picks a free one. @default 0 */
  port: z.number().int().min(0).max(65535).default(0),
  /**
   * How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK event. A real server sends about
   * one a minute; the simulator's time is compressed. @default "1s"
   */
  bookmarkInterval: Duration.default('1s'),
  /** Serves WebSocket upgrades (`pods/exec`); without it every upgrade is refused. @default none */
  upgrade: z.custom<UpgradeHandler>((v) => typeof v === 'function', 'upgrade must be a function').optional(),
});
export type ApiServerOptions = z.input<typeof ApiServerOptions>;

/** A running simulated API server. */
export interface ApiServer {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Ends open watches cleanly, closes every connection and stops listening. Idempotent. */
  close(): Promise<void>;
}

/** Types whose DELETE answers with the object (graceful deletion / `ReturnDeletedObject`); the others answer a Status. */
const DELETE_RETURNS_OBJECT = new Set(['/pods', '/services', '/namespaces']);

/**
 * Starts an HTTP server that speaks the Kubernetes REST API over an {@link ObjectStore}, closely enough
 * for the unmodified `@kubernetes/client-node` (and `kubectl get/patch/scale/delete`): discovery, CRUD,
 * the three patch formats, label and field selectors, paging, watch, `/status`, `/scale`, `/log`,
 * `dryRun=All`, and errors as `Status` objects with the real codes and reasons.
 */
export async function startApiServer(input: ApiServerOptions): Promise<ApiServer> {
  const options = ApiServerOptions.parse(input);
  const watches = new Set<WatchStream>();
  const closing = new AbortController();
  const bookmarkIntervalMs = toMillis(options.bookmarkInterval);

  const server = createServer((req, res) => {
    // Last resort: `serve` answers every failure itself, but a rejection here must never end the process.
    serve(req, res).catch(() => res.destroy());
  });
  // Keep idle connections open longer than clients do (undici: 4 s), so that the server never closes a
  // connection a client is just reusing: that race makes clients silently retry a request, and a test
  // counting requests (or an injected fault with `times`) would see one request twice.
  server.keepAliveTimeout = 65_000;
  server.on('upgrade', (req, socket, head) => {
    if (options.upgrade) options.upgrade(req, socket, head);
    else socket.destroy();
  });

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    try {
      const url = parseUrl(req.url);
      const effect = options.faults?.take(method, url.pathname);
      if (effect && effect.delayMs > 0) await sleep(effect.delayMs, undefined, { signal: closing.signal });
      if (effect?.error) throw effect.error;
      const path = parseApiPath(url.pathname);
      if (!path) throw notFoundPath();
      const request: Request = { req, res, method, query: url.searchParams };
      if (path.kind === 'resource') await serveResource(request, path);
      else serveInfo(request, path);
    } catch (e) {
      sendError(res, e);
    }
  }

  /** Discovery, `/version`, health checks. */
  function serveInfo(r: Request, path: Exclude<ApiPath, ResourcePath>): void {
    if (r.method !== 'GET') throw methodNotAllowed();
    if (path.kind === 'health') {
      sendText(r.res, 200, 'ok');
      return;
    }
    const { port } = server.address() as AddressInfo;
    let document: unknown;
    switch (path.kind) {
      case 'root':
        document = { paths: rootPaths() };
        break;
      case 'version':
        document = versionInfo();
        break;
      case 'apiVersions':
        document = apiVersions(`${options.host}:${port}`);
        break;
      case 'groupList':
        document = apiGroupList();
        break;
      case 'group':
        document = apiGroup(path.group);
        break;
      case 'resourceList':
        document = apiResourceList(path.group, path.version);
        break;
    }
    if (!document) throw notFoundPath();
    sendJson(r.res, 200, document);
  }

  async function serveResource(r: Request, path: ResourcePath): Promise<void> {
    const { type, name, subresource } = path;
    if (subresource === 'log') return podLog(r, path);
    if (subresource === 'scale') return scale(r, path);
    if (subresource === 'status') return status(r, path);
    if (name === undefined) {
      const allNamespaces = type.namespaced && path.namespace === undefined;
      if (r.method === 'GET') {
        const watch = path.legacyWatch || isTrue(r.query.get('watch'));
        requireVerb(type, watch ? 'watch' : 'list');
        return watch ? watchObjects(r, path) : list(r, path);
      }
      if (r.method === 'POST' && !allNamespaces) {
        requireVerb(type, 'create');
        return create(r, path);
      }
      if (r.method === 'DELETE' && !allNamespaces) {
        requireVerb(type, 'deletecollection');
        return deleteCollection(r, path);
      }
      throw methodNotAllowed();
    }
    if (path.legacyWatch) {
      if (r.method !== 'GET') throw methodNotAllowed();
      requireVerb(type, 'watch');
      return watchObjects(r, path);
    }
    switch (r.method) {
      case 'GET': {
        requireVerb(type, 'get');
        const object = options.store.get(type, path.namespace, name);
        if (sendTable(r, type, [object], options.store.resourceVersion)) return;
        return sendJson(r.res, 200, object);
      }
      case 'PUT':
        requireVerb(type, 'update');
        return update(r, path, name);
      case 'PATCH':
        requireVerb(type, 'patch');
        return patch(r, path, name);
      case 'DELETE':
        requireVerb(type, 'delete');
        return remove(r, path, name);
      default:
        throw methodNotAllowed();
    }
  }

  // --- collections -----------------------------------------------------------------------------------

  function selected(r: Request, path: ResourcePath): KubeObject[] {
    const labels = parseLabelSelector(r.query.get('labelSelector') ?? undefined);
    const fields = parseFieldSelector(r.query.get('fieldSelector') ?? undefined, path.type);
    return options.store
      .list(path.type, path.namespace)
      .items.filter((o) => matchesLabels(labels, o.metadata.labels) && matchesFields(fields, path.type, o));
  }

  function list(r: Request, path: ResourcePath): void {
    const resourceVersion = options.store.resourceVersion;
    const items = selected(r, path);
    const page = paginate(items, {
      limit: parseLimit(r.query.get('limit')),
      continue: r.query.get('continue'),
      resourceVersion,
      filtered: Boolean(r.query.get('labelSelector') || r.query.get('fieldSelector')),
    });
    if (sendTable(r, path.type, page.items, resourceVersion, page.continue)) return;
    sendJson(r.res, 200, {
      kind: `${path.type.kind}List`,
      apiVersion: apiVersionOf(path.type),
      metadata: {
        resourceVersion,
        ...(page.continue ? { continue: page.continue } : {}),
        ...(page.remainingItemCount !== undefined ? { remainingItemCount: page.remainingItemCount } : {}),
      },
      items: page.items,
    });
  }

  function watchObjects(r: Request, path: ResourcePath): void {
    const tableVersion = tableVersionAccepted(r.req.headers.accept);
    const timeout = r.query.get('timeoutSeconds');
    if (timeout !== null && !/^\d+$/.test(timeout))
      throw badRequest(`invalid value for timeoutSeconds: "${timeout}"`);
    const stream = startWatch(options.store, r.res, {
      type: path.type,
      ...(path.namespace !== undefined ? { namespace: path.namespace } : {}),
      ...(path.legacyWatch && path.name !== undefined ? { name: path.name } : {}),
      ...(r.query.get('resourceVersion')
        ? { resourceVersion: r.query.get('resourceVersion') as string }
        : {}),
      labelSelector: parseLabelSelector(r.query.get('labelSelector') ?? undefined),
      fieldSelector: parseFieldSelector(r.query.get('fieldSelector') ?? undefined, path.type),
      ...(timeout !== null && Number(timeout) > 0 ? { timeoutMs: Number(timeout) * 1000 } : {}),
      bookmarks: isTrue(r.query.get('allowWatchBookmarks')),
      bookmarkIntervalMs,
      sendInitialEvents: isTrue(r.query.get('sendInitialEvents')),
      ...(tableVersion
        ? {
            render: (o: KubeObject) =>
              toTable(path.type, [o], {
                version: tableVersion,
                resourceVersion: o.metadata.resourceVersion,
                includeObject: r.query.get('includeObject'),
              }),
          }
        : {}),
    });
    watches.add(stream);
    r.res.on('close', () => watches.delete(stream));
  }

  async function create(r: Request, path: ResourcePath): Promise<void> {
    const { type, namespace } = path;
    const body = await readObject(r, type.kind, apiVersionOf(type));
    const metadata = { ...(body.metadata ?? {}) };
    if (type.namespaced) {
      if (metadata.namespace && metadata.namespace !== namespace) {
        throw badRequest(
          'the namespace of the provided object does not match the namespace sent on the request',
        );
      }
      metadata.namespace = namespace;
    } else {
      delete metadata.namespace;
    }
    const object = applyDefaults(type, prepareForCreate(type, { ...body, metadata }));
    validate(type, object);
    sendJson(r.res, 201, options.store.create(type, object, { dryRun: dryRun(r) }));
  }

  async function deleteCollection(r: Request, path: ResourcePath): Promise<void> {
    const dry = dryRun(r);
    await readDeleteOptions(r);
    const deleted: KubeObject[] = [];
    for (const o of selected(r, path)) {
      // Deleting one object can garbage-collect others in the same collection first.
      if (!options.store.find(path.type, o.metadata.namespace, o.metadata.name)) continue;
      deleted.push(options.store.delete(path.type, o.metadata.namespace, o.metadata.name, { dryRun: dry }));
    }
    // Like the real server's generic registry: the list of what was deleted.
    sendJson(r.res, 200, {
      kind: `${path.type.kind}List`,
      apiVersion: apiVersionOf(path.type),
      metadata: { resourceVersion: options.store.resourceVersion },
      items: deleted,
    });
  }

  // --- single objects --------------------------------------------------------------------------------

  async function update(r: Request, path: ResourcePath, name: string): Promise<void> {
    const { type } = path;
    const body = withIdentity(type, await readObject(r, type.kind, apiVersionOf(type)), path, name);
    const stored = options.store.get(type, path.namespace, name);
    const object = applyDefaults(type, body);
    validate(type, object, stored);
    sendJson(r.res, 200, options.store.update(type, object, { dryRun: dryRun(r) }));
  }

  async function patch(r: Request, path: ResourcePath, name: string): Promise<void> {
    const { type } = path;
    const body = await readPatch(r);
    const stored = options.store.get(type, path.namespace, name);
    const object = applyDefaults(type, patchedObject(type, stored, body, r, path, name));
    validate(type, object, stored);
    sendJson(r.res, 200, options.store.update(type, object, { dryRun: dryRun(r) }));
  }

  async function remove(r: Request, path: ResourcePath, name: string): Promise<void> {
    const { type } = path;
    const dry = dryRun(r);
    const preconditions = (await readDeleteOptions(r)).preconditions;
    const stored = options.store.get(type, path.namespace, name);
    checkPreconditions(type, stored, preconditions);
    const deleted = options.store.delete(type, path.namespace, name, { dryRun: dry });
    if (!DELETE_RETURNS_OBJECT.has(`${type.group}/${type.resource}`)) {
      return sendJson(r.res, 200, {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Success',
        details: { name, group: type.group, kind: type.resource, uid: deleted.metadata.uid },
      });
    }
    sendJson(r.res, 200, asBeingDeleted(type, deleted, r.query.get('gracePeriodSeconds')));
  }

  // --- subresources ----------------------------------------------------------------------------------

  async function status(r: Request, path: ResourcePath): Promise<void> {
    const { type } = path;
    const name = path.name as string;
    switch (r.method) {
      case 'GET':
        return sendJson(r.res, 200, options.store.get(type, path.namespace, name));
      case 'PUT': {
        const body = withIdentity(type, await readObject(r, type.kind, apiVersionOf(type)), path, name);
        return sendJson(
          r.res,
          200,
          options.store.update(type, body, { subresource: 'status', dryRun: dryRun(r) }),
        );
      }
      case 'PATCH': {
        const body = await readPatch(r);
        const stored = options.store.get(type, path.namespace, name);
        const object = patchedObject(type, stored, body, r, path, name);
        return sendJson(
          r.res,
          200,
          options.store.update(type, object, { subresource: 'status', dryRun: dryRun(r) }),
        );
      }
      default:
        throw methodNotAllowed();
    }
  }

  async function scale(r: Request, path: ResourcePath): Promise<void> {
    const { type } = path;
    const name = path.name as string;
    let scaleBody: unknown;
    switch (r.method) {
      case 'GET':
        return sendJson(r.res, 200, scaleOf(options.store.get(type, path.namespace, name)));
      case 'PUT':
        scaleBody = await readObject(r, 'Scale', 'autoscaling/v1');
        break;
      case 'PATCH': {
        const body = await readPatch(r);
        scaleBody = applyPatch(r, scaleOf(options.store.get(type, path.namespace, name)), body);
        break;
      }
      default:
        throw methodNotAllowed();
    }
    const workload = options.store.get(type, path.namespace, name);
    const updated = options.store.update(type, workloadWithScale(workload, scaleBody, name), {
      dryRun: dryRun(r),
    });
    sendJson(r.res, 200, scaleOf(updated));
  }

  function podLog(r: Request, path: ResourcePath): void {
    if (r.method !== 'GET') throw methodNotAllowed();
    const name = path.name as string;
    const namespace = path.namespace as string;
    options.store.get(PODS, namespace, name); // 404 for a pod that does not exist
    const logOptions = parsePodLogOptions(r.query, name);
    const lines =
      options.logs?.(namespace, name, {
        ...(logOptions.container ? { container: logOptions.container } : {}),
        previous: logOptions.previous,
      }) ?? [];
    const text = renderPodLog(lines, logOptions);
    r.res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': text.length });
    r.res.end(text);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;

  let closed: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing.abort();
        for (const w of [...watches]) w.stop();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

// --- what the handlers share --------------------------------------------------------------------------

function parseUrl(raw: string | undefined): URL {
  try {
    return new URL(raw ?? '/', 'http://simulator');
  } catch {
    throw badRequest(`malformed request URL: ${raw}`);
  }
}

/** Answers with a `Table` when the client asked for one (kubectl does); false when it did not. */
function sendTable(
  r: Request,
  type: ResourceType,
  objects: KubeObject[],
  resourceVersion: string,
  continueToken?: string,
): boolean {
  const version = tableVersionAccepted(r.req.headers.accept);
  if (!version) return false;
  const table = toTable(type, objects, {
    version,
    resourceVersion,
    includeObject: r.query.get('includeObject'),
    ...(continueToken ? { continue: continueToken } : {}),
  });
  sendJson(r.res, 200, table, { 'Content-Type': `application/json;as=Table;v=${version};g=meta.k8s.io` });
  return true;
}

/** Applies the patch in the format its Content-Type names (`readPatch` has already refused other types). */
function applyPatch<T extends object>(r: Request, target: T, body: unknown): T {
  switch (mediaType(r)) {
    case 'application/json-patch+json':
      return applyJsonPatch(target, body);
    case 'application/merge-patch+json':
      if (!isObject(body)) throw badRequest('a merge patch must be a JSON object');
      return applyMergePatch(target, body);
    default:
      return applyStrategicMergePatch(target, body);
  }
}

/** The stored object with the patch applied, checked to still be an object with the same name and namespace. */
function patchedObject(
  type: ResourceType,
  stored: KubeObject,
  body: unknown,
  r: Request,
  path: ResourcePath,
  name: string,
): KubeObjectInput {
  const patched: unknown = applyPatch(r, stored, body);
  if (!isObject(patched) || !isObject(patched.metadata)) {
    throw new StatusError(422, 'Invalid', `${type.kind} "${name}" is invalid: metadata: Required value`);
  }
  return withIdentity(type, patched as KubeObjectInput, path, name);
}

/** The body's name and namespace must be the URL's (absent ones are taken from it). */
function withIdentity(
  type: ResourceType,
  body: KubeObjectInput,
  path: ResourcePath,
  name: string,
): KubeObjectInput {
  const metadata = { ...(body.metadata ?? {}) };
  if (metadata.name !== undefined && metadata.name !== name) {
    throw badRequest(
      `the name of the object (${metadata.name}) does not match the name on the URL (${name})`,
    );
  }
  metadata.name = name;
  if (type.namespaced) {
    if (metadata.namespace && metadata.namespace !== path.namespace) {
      throw badRequest(
        'the namespace of the provided object does not match the namespace sent on the request',
      );
    }
    metadata.namespace = path.namespace;
  }
  return { ...body, metadata };
}

function checkPreconditions(
  type: ResourceType,
  stored: KubeObject,
  pre: DeleteOptions['preconditions'],
): void {
  const failed = (what: string, wanted: string, actual: string) =>
    new StatusError(
      409,
      'Conflict',
      `Precondition failed: ${what} in precondition: ${wanted}, ${what} in object meta: ${actual}`,
      {
        name: stored.metadata.name,
        group: type.group,
        kind: type.resource,
      },
    );
  if (pre?.uid && pre.uid !== stored.metadata.uid) throw failed('UID', pre.uid, stored.metadata.uid);
  if (pre?.resourceVersion && pre.resourceVersion !== stored.metadata.resourceVersion) {
    throw failed('ResourceVersion', pre.resourceVersion, stored.metadata.resourceVersion);
  }
}

/** What a graceful delete answers: the object marked for deletion (the simulator removes it at once). */
function asBeingDeleted(type: ResourceType, deleted: KubeObject, gracePeriod: string | null): KubeObject {
  const now = Date.now();
  if (type === PODS) {
    const spec = isObject(deleted.spec) ? deleted.spec : {};
    const grace =
      gracePeriod !== null ? Number(gracePeriod) : Number(spec.terminationGracePeriodSeconds ?? 30);
    return {
      ...deleted,
      metadata: {
        ...deleted.metadata,
        deletionTimestamp: rfc3339(now + grace * 1000),
        deletionGracePeriodSeconds: grace,
      },
    };
  }
  if (type.resource === 'namespaces') {
    return {
      ...deleted,
      metadata: { ...deleted.metadata, deletionTimestamp: rfc3339(now) },
      status: { ...(isObject(deleted.status) ? deleted.status : {}), phase: 'Terminating' },
    };
  }
  return deleted;
}

const rfc3339 = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

function versionInfo(): Record<string, string> {
  return {
    major: '1',
    minor: '31',
    gitVersion: 'v1.31.0-sim',
    gitCommit: '0000000000000000000000000000000000000000',
    gitTreeState: 'clean',
    buildDate: '2024-08-13T00:00:00Z',
    goVersion: 'go1.22.5',
    compiler: 'gc',
    platform: `linux/${arch() === 'x64' ? 'amd64' : arch()}`,
  };
}

function rootPaths(): string[] {
  const groupVersions = new Set(
    RESOURCE_TYPES.map((t) => (t.group === '' ? `/api/${t.version}` : `/apis/${t.group}/${t.version}`)),
  );
  const groups = new Set(RESOURCE_TYPES.filter((t) => t.group !== '').map((t) => `/apis/${t.group}`));
  return ['/api', '/apis', ...groupVersions, ...groups, '/healthz', '/livez', '/readyz', '/version'].sort();
}
