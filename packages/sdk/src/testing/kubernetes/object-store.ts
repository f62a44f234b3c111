import { randomBytes, randomUUID } from 'node:crypto';
import { canonicalJson } from '../../core/json';
import { apiVersionOf, NAMESPACES, RESOURCE_TYPES, type ResourceType } from './resources';
import { alreadyExists, conflict, gone, invalid, notFound } from './status-error';

/** Object metadata as the simulator keeps it (the fields it manages, plus anything else given). */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  generateName?: string;
  uid: string;
  resourceVersion: string;
  generation: number;
  creationTimestamp: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  [field: string]: unknown;
}

/** An entry of `metadata.ownerReferences`: the object that owns this one (a Pod's ReplicaSet, …). */
export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** A stored object: `apiVersion`, `kind`, `metadata`, and whatever else its kind has (spec, status, data…). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

/** What callers hand in: metadata fields the store manages are optional. */
export type KubeObjectInput = {
  apiVersion?: string;
  kind?: string;
  metadata?: Partial<ObjectMeta>;
  [field: string]: unknown;
};

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatchEvent {
  type: WatchEventType;
  object: KubeObject;
}

export interface WriteOptions {
  /** Validate and compute the result without storing it (`?dryRun=All`). */
  dryRun?: boolean;
}

export interface UpdateOptions extends WriteOptions {
  /** `status` to write only `.status` (the `/status` subresource); otherwise status is kept as stored. */
  subresource?: 'status';
}

interface Recorded extends WatchEvent {
  resourceVersion: number;
  typeKey: string;
}

/** How many past events a watch can resume from before it gets `410 Gone`. */
const HISTORY = 5000;

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const keyOf = (t: ResourceType) => `${t.group}/${t.resource}`;
const clone = <T>(v: T): T => structuredClone(v);

/** Freezes an object and everything in it; already frozen parts are skipped (they are shared snapshots). */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * The simulator's etcd: typed objects with the API server's bookkeeping (uid, a cluster-wide
 * `resourceVersion`, `generation` bumped on spec changes, optimistic concurrency, garbage collection
 * of owned objects, a watch history). What goes in is copied. `get`/`find` hand out a copy to change and
 * write back; `list`, watch events and write results hand out deep-frozen snapshots shared by every
 * reader (copying every object on every list made controller passes quadratic). Either way no caller can
 * change
 * stored state behind the store's back.
 */
export class ObjectStore {
  #rv = 0;
  readonly #objects = new Map<string, Map<string, KubeObject>>();
  readonly #history: Recorded[] = [];
  readonly #watchers = new Set<{ typeKey: string; namespace?: string; listener: (e: WatchEvent) => void }>();
  readonly #changeListeners = new Set<(type: ResourceType, event: WatchEvent) => void>();

  constructor() {
    for (const t of RESOURCE_TYPES) this.#objects.set(keyOf(t), new Map());
  }

  /** The latest resourceVersion handed out. */
  get resourceVersion(): string {
    return String(this.#rv);
  }

  /** A copy of the object, or `undefined`. */
  find(type: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    const obj = this.#table(type).get(this.#id(type, namespace, name));
    return obj && clone(obj);
  }

  /** A copy of the object; `404 NotFound` when there is none. */
  get(type: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const obj = this.find(type, namespace, name);
    if (!obj) throw notFound(type.resource, type.group, name);
    return obj;
  }

  /**
   * Every object of a type, in one namespace or all; sorted by namespace and name like the API server.
   * The items are frozen snapshots: copy one (`structuredClone`) before changing it.
   */
  list(type: ResourceType, namespace?: string): { items: KubeObject[]; resourceVersion: string } {
    // Table keys are `namespace/name`: sorting by them is the API server's order, without building keys.
    const items = [...this.#table(type).entries()]
      .filter(([, o]) => !type.namespaced || namespace === undefined || o.metadata.namespace === namespace)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => o);
    return { items, resourceVersion: this.resourceVersion };
  }

  create(type: ResourceType, input: KubeObjectInput, options: WriteOptions = {}): KubeObject {
    const meta = input.metadata ?? {};
    let name = meta.name;
    if (!name && meta.generateName)
      name = `${meta.generateName}${randomBytes(3).toString('hex').slice(0, 5)}`;
    if (!name)
      throw invalid(
        type.kind,
        type.group,
        '',
        'metadata.name',
        'Required value: name or generateName is required',
      );
    if (!DNS_SUBDOMAIN.test(name) || name.length > 253) {
      throw invalid(
        type.kind,
        type.group,
        name,
        'metadata.name',
        `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`,
      );
    }
    const namespace = type.namespaced ? (meta.namespace ?? 'default') : undefined;
    if (namespace !== undefined && !this.#table(NAMESPACES).has(this.#id(NAMESPACES, undefined, namespace))) {
      throw notFound('namespaces', '', namespace);
    }
    const id = this.#id(type, namespace, name);
    if (this.#table(type).has(id)) throw alreadyExists(type.resource, type.group, name);
    const obj: KubeObject = {
      ...clone(input),
      apiVersion: apiVersionOf(type),
      kind: type.kind,
      metadata: {
        ...clone(meta),
        name,
        ...(namespace !== undefined ? { namespace } : {}),
        uid: randomUUID(),
        resourceVersion: '',
        generation: 1,
        creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      },
    };
    delete obj.metadata.deletionTimestamp;
    if (options.dryRun)
      return { ...obj, metadata: { ...obj.metadata, resourceVersion: this.resourceVersion } };
    return this.#write(type, id, obj, 'ADDED');
  }

  /**
   * Replaces an object. A `metadata.resourceVersion` that is not the stored one is a `409 Conflict`;
   * none means "last write wins". The main resource keeps the stored status; `/status` changes only status.
   */
  update(type: ResourceType, input: KubeObjectInput, options: UpdateOptions = {}): KubeObject {
    const name = input.metadata?.name ?? '';
    const namespace = type.namespaced ? (input.metadata?.namespace ?? 'default') : undefined;
    const id = this.#id(type, namespace, name);
    const stored = this.#table(type).get(id);
    if (!stored) throw notFound(type.resource, type.group, name);
    const rv = input.metadata?.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== stored.metadata.resourceVersion) {
      throw conflict(type.resource, type.group, name);
    }
    let next: KubeObject;
    if (options.subresource === 'status') {
      next = { ...stored, metadata: { ...stored.metadata }, status: clone(input.status) };
    } else {
      const incoming = clone(input);
      next = {
        ...incoming,
        apiVersion: stored.apiVersion,
        kind: stored.kind,
        metadata: {
          ...(incoming.metadata ?? {}),
          name: stored.metadata.name,
          ...(namespace !== undefined ? { namespace } : {}),
          uid: stored.metadata.uid,
          resourceVersion: stored.metadata.resourceVersion,
          generation: stored.metadata.generation,
          creationTimestamp: stored.metadata.creationTimestamp,
        },
      };
      if (type.hasStatus) {
        if (stored.status === undefined) delete next.status;
        else next.status = stored.status;
      }
      if (specOf(next) !== specOf(stored)) next.metadata.generation = stored.metadata.generation + 1;
    }
    if (options.dryRun) return next;
    return this.#write(type, id, next, 'MODIFIED');
  }

  /**
   * Deletes an object and, like the garbage collector with background propagation, every object it
   * owns (and theirs). Deleting a namespace deletes everything in it.
   */
  delete(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    options: WriteOptions = {},
  ): KubeObject {
    const ns = type.namespaced ? (namespace ?? 'default') : undefined;
    const id = this.#id(type, ns, name);
    const stored = this.#table(type).get(id);
    if (!stored) throw notFound(type.resource, type.group, name);
    if (options.dryRun) return stored;
    this.#table(type).delete(id);
    const gone = this.#record(type, 'DELETED', {
      ...stored,
      metadata: { ...stored.metadata, resourceVersion: String(++this.#rv) },
    });
    this.#collectGarbage(stored, type);
    return gone;
  }

  /**
   * Streams changes to one type (in one namespace or all). With a `resourceVersion` it first replays
   * what happened after it (`410 Gone` when that is no longer in the history); without one (or `"0"`)
   * it starts with an `ADDED` event per existing object, like the API server. Returns the unsubscribe.
   */
  watch(
    type: ResourceType,
    namespace: string | undefined,
    resourceVersion: string | undefined,
    listener: (event: WatchEvent) => void,
  ): () => void {
    const typeKey = keyOf(type);
    const inScope = (o: KubeObject) =>
      !type.namespaced || namespace === undefined || o.metadata.namespace === namespace;
    if (resourceVersion === undefined || resourceVersion === '' || resourceVersion === '0') {
      for (const object of this.list(type, namespace).items) listener({ type: 'ADDED', object });
    } else {
      const since = Number(resourceVersion);
      const oldest = this.#history[0]?.resourceVersion ?? this.#rv + 1;
      if (!Number.isInteger(since) || (since < oldest - 1 && since < this.#rv)) {
        throw gone(`too old resource version: ${resourceVersion} (${oldest - 1})`);
      }
      for (const e of this.#history) {
        if (e.typeKey === typeKey && e.resourceVersion > since && inScope(e.object)) {
          listener({ type: e.type, object: e.object });
        }
      }
    }
    const watcher = {
      typeKey,
      ...(namespace !== undefined && type.namespaced ? { namespace } : {}),
      listener,
    };
    this.#watchers.add(watcher);
    return () => this.#watchers.delete(watcher);
  }

  /** Calls `listener` after every stored change of any type (controllers use it to wake up). */
  onChange(listener: (type: ResourceType, event: WatchEvent) => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  #write(type: ResourceType, id: string, obj: KubeObject, kind: WatchEventType): KubeObject {
    obj.metadata.resourceVersion = String(++this.#rv);
    this.#table(type).set(id, deepFreeze(obj));
    return this.#record(type, kind, obj);
  }

  #record(type: ResourceType, kind: WatchEventType, obj: KubeObject): KubeObject {
    const typeKey = keyOf(type);
    deepFreeze(obj);
    this.#history.push({ type: kind, object: obj, resourceVersion: this.#rv, typeKey });
    if (this.#history.length > HISTORY) this.#history.splice(0, this.#history.length - HISTORY);
    for (const w of [...this.#watchers]) {
      if (w.typeKey === typeKey && (w.namespace === undefined || w.namespace === obj.metadata.namespace)) {
        w.listener({ type: kind, object: obj });
      }
    }
    for (const l of [...this.#changeListeners]) l(type, { type: kind, object: obj });
    return obj;
  }

  #collectGarbage(owner: KubeObject, ownerType: ResourceType): void {
    for (const t of RESOURCE_TYPES) {
      for (const o of [...this.#table(t).values()]) {
        const owned = o.metadata.ownerReferences?.some((r) => r.uid === owner.metadata.uid);
        const inDeletedNamespace =
          ownerType === NAMESPACES && t.namespaced && o.metadata.namespace === owner.metadata.name;
        if (
          (owned || inDeletedNamespace) &&
          this.#table(t).has(this.#id(t, o.metadata.namespace, o.metadata.name))
        ) {
          this.delete(t, o.metadata.namespace, o.metadata.name);
        }
      }
    }
  }

  #table(type: ResourceType): Map<string, KubeObject> {
    const table = this.#objects.get(keyOf(type));
    if (!table) throw new Error(`The simulator does not serve ${type.resource}.${type.group}`);
    return table;
  }

  #id(type: ResourceType, namespace: string | undefined, name: string): string {
    return type.namespaced ? `${namespace ?? 'default'}/${name}` : name;
  }
}

/** Everything but metadata and status, serialized: a change in it bumps `generation`. */
function specOf(obj: KubeObject): string {
  const { metadata: _m, status: _s, ...rest } = obj;
  return canonicalJson(rest);
}
