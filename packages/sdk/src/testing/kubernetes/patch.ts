import { isDeepStrictEqual } from 'node:util';
import { badRequest, StatusError } from './status-error';

/**
 * The three patch formats the API server accepts, applied the way it applies them. Each takes the
 * stored object and the decoded request body and returns a new object; nothing is changed in place.
 * Failures are `StatusError`s with the code the real server answers: a body that is not a patch of
 * that format is `400 BadRequest`, a well-formed patch that does not apply to the object is `422 Invalid`.
 */

type JsonObject = Record<string, unknown>;

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A patch that cannot be applied to this object (apiserver answers 422 for these). */
const doesNotApply = (message: string) =>
  new StatusError(
    422,
    'Invalid',
    `the server rejected our request due to an error in our request: ${message}`,
  );

// --- RFC 6902 JSON Patch ------------------------------------------------------------------------------

/** One RFC 6902 operation. */
export interface JsonPatchOperation {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  value?: unknown;
  from?: string;
}

/** Applies an RFC 6902 JSON Patch (`application/json-patch+json`). */
export function applyJsonPatch<T>(document: T, patch: unknown): T {
  if (!Array.isArray(patch)) {
    throw badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  }
  let doc: unknown = structuredClone(document);
  for (const operation of patch) {
    if (!isObject(operation)) throw badRequest(`invalid JSON Patch operation: ${JSON.stringify(operation)}`);
    doc = applyOperation(doc, operation);
  }
  return doc as T;
}

function applyOperation(doc: unknown, operation: JsonObject): unknown {
  const { op } = operation;
  const path = pointer(operation.path, op, 'path');
  switch (op) {
    case 'add':
      return add(doc, path, requireValue(operation), 'add');
    case 'remove':
      return remove(doc, path, 'remove');
    case 'replace':
      get(doc, path, 'replace'); // must exist
      return add(remove(doc, path, 'replace'), path, requireValue(operation), 'replace');
    case 'move': {
      const from = pointer(operation.from, op, 'from');
      if (path.length > from.length && from.every((t, i) => t === path[i])) {
        throw doesNotApply('move operation does not apply: a value cannot be moved into one of its children');
      }
      const value = get(doc, from, 'move');
      return add(remove(doc, from, 'move'), path, value, 'move');
    }
    case 'copy': {
      const from = pointer(operation.from, op, 'from');
      return add(doc, path, structuredClone(get(doc, from, 'copy')), 'copy');
    }
    case 'test': {
      const actual = get(doc, path, 'test');
      if (!isDeepStrictEqual(actual, requireValue(operation))) {
        throw doesNotApply(`testing value ${String(operation.path)} failed: test failed`);
      }
      return doc;
    }
    default:
      throw doesNotApply(`Unexpected kind: ${String(op)}`);
  }
}

function requireValue(operation: JsonObject): unknown {
  if (!Object.hasOwn(operation, 'value')) {
    throw doesNotApply(`${String(operation.op)} operation does not apply: missing value`);
  }
  return structuredClone(operation.value);
}

/** Splits a JSON Pointer (RFC 6901) into unescaped tokens; `~1` is `/` and `~0` is `~`, in that order. */
function pointer(text: unknown, op: unknown, member: string): string[] {
  if (typeof text !== 'string')
    throw doesNotApply(`${String(op)} operation does not apply: missing ${member}`);
  if (text === '') return [];
  if (!text.startsWith('/')) throw doesNotApply(`JSON pointer must be empty or start with a "/": ${text}`);
  return text
    .slice(1)
    .split('/')
    .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
}

const ARRAY_INDEX = /^(0|[1-9]\d*)$/;

function missing(op: string, tokens: string[]): StatusError {
  return doesNotApply(`${op} operation does not apply: doc is missing path: /${tokens.join('/')}`);
}

function get(doc: unknown, tokens: string[], op: string): unknown {
  let node = doc;
  for (const token of tokens) {
    if (Array.isArray(node) && ARRAY_INDEX.test(token) && Number(token) < node.length)
      node = node[Number(token)];
    else if (isObject(node) && Object.hasOwn(node, token)) node = node[token];
    else throw missing(op, tokens);
  }
  return node;
}

function add(doc: unknown, tokens: string[], value: unknown, op: string): unknown {
  if (tokens.length === 0) return value;
  const parent = get(doc, tokens.slice(0, -1), op);
  const last = tokens.at(-1) as string;
  if (Array.isArray(parent)) {
    const index = last === '-' ? parent.length : ARRAY_INDEX.test(last) ? Number(last) : -1;
    if (index < 0 || index > parent.length) {
      throw doesNotApply(`${op} operation does not apply: index out of bounds: /${tokens.join('/')}`);
    }
    parent.splice(index, 0, value);
  } else if (isObject(parent)) {
    parent[last] = value;
  } else {
    throw missing(op, tokens);
  }
  return doc;
}

function remove(doc: unknown, tokens: string[], op: string): unknown {
  if (tokens.length === 0)
    throw doesNotApply(`${op} operation does not apply: cannot remove the whole document`);
  get(doc, tokens, op);
  const parent = get(doc, tokens.slice(0, -1), op);
  const last = tokens.at(-1) as string;
  if (Array.isArray(parent)) parent.splice(Number(last), 1);
  else delete (parent as JsonObject)[last];
  return doc;
}

// --- RFC 7386 JSON Merge Patch -------------------------------------------------------------------------

/** Applies an RFC 7386 JSON Merge Patch (`application/merge-patch+json`): objects merge, `null` deletes, anything else replaces. */
export function applyMergePatch<T>(target: T, patch: unknown): T {
  return mergeValue(structuredClone(target), patch) as T;
}

function mergeValue(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const result: JsonObject = isObject(target) ? target : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergeValue(result[key], value);
  }
  return result;
}

// --- Kubernetes strategic merge patch ------------------------------------------------------------------

/**
 * How a list field merges, from the `patchStrategy`/`patchMergeKey` tags of the Kubernetes Go types.
 * Lists without a tag (tolerations, args, command, envFrom, …) are replaced whole.
 */
type ListStrategy = { merge: 'key'; key: string } | { merge: 'primitive' } | { merge: 'replace' };

const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  imagePullSecrets: 'name',
  hostAliases: 'ip',
  resourceClaims: 'name',
  schedulingGates: 'name',
  topologySpreadConstraints: 'topologyKey',
  conditions: 'type',
  ownerReferences: 'uid',
};

const CONTAINER_LISTS = new Set(['containers', 'initContainers', 'ephemeralContainers']);

/** `path` is the chain of field names from the object's root to the map holding `field`. */
function listStrategy(path: readonly string[], field: string): ListStrategy {
  const parent = path.at(-1);
  if (field === 'ports') {
    if (parent !== undefined && CONTAINER_LISTS.has(parent)) return { merge: 'key', key: 'containerPort' };
    if (path.length === 1 && parent === 'spec') return { merge: 'key', key: 'port' }; // Service
    return { merge: 'replace' };
  }
  if (field === 'finalizers' && path.length === 1 && parent === 'metadata') return { merge: 'primitive' };
  if (field === 'addresses' && path.length === 1 && parent === 'status') return { merge: 'key', key: 'type' }; // Node
  const key = MERGE_KEYS[field];
  return key ? { merge: 'key', key } : { merge: 'replace' };
}

const DELETE = Symbol('delete');
const SET_ORDER = '$setElementOrder/';
const DELETE_FROM = '$deleteFromPrimitiveList/';

/**
 * Applies a Kubernetes strategic merge patch (`application/strategic-merge-patch+json`), as `kubectl
 * patch`, `kubectl set env` and `kubectl rollout restart` send them: maps merge recursively and `null`
 * deletes a key; lists of containers, env vars, volumes, ports… merge by their key while other lists are
 * replaced; the directives `$patch: replace|delete` (on maps and list items), `$retainKeys`,
 * `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>` are honoured.
 */
export function applyStrategicMergePatch<T extends object>(original: T, patch: unknown): T {
  if (!isObject(patch)) throw badRequest('strategic merge patch must be a JSON object');
  const merged = mergeMap(structuredClone(original) as JsonObject, patch, []);
  return (merged === DELETE ? {} : merged) as T;
}

function mergeMap(original: JsonObject, patch: JsonObject, path: string[]): JsonObject | typeof DELETE {
  const directive = patch.$patch;
  if (directive === 'delete') return DELETE;
  if (directive === 'replace') return stripDirectives(patch) as JsonObject;
  if (directive !== undefined && directive !== 'merge') {
    throw badRequest(`Unknown patch type: ${String(directive)} in map: ${JSON.stringify(patch)}`);
  }
  const result = original;
  const retainKeys = patch.$retainKeys;
  if (retainKeys !== undefined) {
    if (!Array.isArray(retainKeys)) throw badRequest('$retainKeys must be a list of field names');
    for (const key of Object.keys(result)) if (!retainKeys.includes(key)) delete result[key];
  }
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) continue;
    if (value === null) {
      delete result[key];
    } else if (isObject(value)) {
      const current = result[key];
      const merged = mergeMap(isObject(current) ? current : {}, value, [...path, key]);
      if (merged === DELETE) delete result[key];
      else result[key] = merged;
    } else if (Array.isArray(value)) {
      const current = Array.isArray(result[key]) ? (result[key] as unknown[]) : [];
      result[key] = mergeList(current, value, path, key);
    } else {
      result[key] = value;
    }
  }
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith(DELETE_FROM)) deleteFromPrimitiveList(result, key.slice(DELETE_FROM.length), value);
  }
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith(SET_ORDER)) setElementOrder(result, key.slice(SET_ORDER.length), value, path);
  }
  return result;
}

function mergeList(original: unknown[], patch: unknown[], path: string[], field: string): unknown[] {
  const strategy = listStrategy(path, field);
  if (strategy.merge === 'replace') return structuredClone(patch);
  if (strategy.merge === 'primitive') {
    const result = [...original];
    for (const item of patch) if (!result.some((o) => isDeepStrictEqual(o, item))) result.push(item);
    return result;
  }
  const itemPath = [...path, field];
  // `{$patch: replace}` as a list item means "the list is exactly the other items".
  if (patch.some((item) => isObject(item) && item.$patch === 'replace')) {
    return patch.filter((item) => !(isObject(item) && item.$patch === 'replace')).map(stripDirectives);
  }
  const result = [...original];
  for (const item of patch) {
    if (!isObject(item)) {
      throw badRequest(
        `unable to merge a ${typeof item} into the list "${field}", which merges by "${strategy.key}"`,
      );
    }
    if (!Object.hasOwn(item, strategy.key)) {
      throw badRequest(`map: ${JSON.stringify(item)} does not contain declared merge key: ${strategy.key}`);
    }
    const sameKey = (o: unknown) => isObject(o) && isDeepStrictEqual(o[strategy.key], item[strategy.key]);
    if (item.$patch === 'delete') {
      for (let i = result.length - 1; i >= 0; i--) if (sameKey(result[i])) result.splice(i, 1);
      continue;
    }
    const index = result.findIndex(sameKey);
    const merged = mergeMap(index >= 0 ? (result[index] as JsonObject) : {}, item, itemPath);
    if (merged === DELETE) continue;
    if (index >= 0) result[index] = merged;
    else result.push(merged);
  }
  return result;
}

function deleteFromPrimitiveList(target: JsonObject, field: string, values: unknown): void {
  if (!Array.isArray(values)) throw badRequest(`${DELETE_FROM}${field} must be a list`);
  const list = target[field];
  if (!Array.isArray(list)) return;
  target[field] = list.filter((item) => !values.some((v) => isDeepStrictEqual(v, item)));
}

/**
 * Reorders `target[field]` as `$setElementOrder` lists it. Items the order does not mention (those only
 * the server had) keep their slots; the mentioned ones fill the remaining slots in the given order.
 */
function setElementOrder(target: JsonObject, field: string, order: unknown, path: string[]): void {
  if (!Array.isArray(order)) throw badRequest(`${SET_ORDER}${field} must be a list`);
  const list = target[field];
  if (!Array.isArray(list)) return;
  const strategy = listStrategy(path, field);
  const identity = (item: unknown) =>
    strategy.merge === 'key' && isObject(item) ? item[strategy.key] : item;
  const rank = (item: unknown) => order.findIndex((o) => isDeepStrictEqual(identity(o), identity(item)));
  const slots = list.flatMap((item, i) => (rank(item) >= 0 ? [i] : []));
  const ordered = slots.map((i) => list[i]).sort((a, b) => rank(a) - rank(b));
  const result = [...list];
  slots.forEach((slot, i) => {
    result[slot] = ordered[i];
  });
  target[field] = result;
}

/** A patch's map without `$` directives (for content that replaces or is added rather than merged). */
function stripDirectives(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripDirectives);
  if (!isObject(value)) return value;
  const out: JsonObject = {};
  for (const [key, v] of Object.entries(value)) if (!key.startsWith('$')) out[key] = stripDirectives(v);
  return out;
}
