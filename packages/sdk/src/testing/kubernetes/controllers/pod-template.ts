import { randomInt } from 'node:crypto';
import { canonicalJson } from '../../../core/json';
import type { KubeObject, KubeObjectInput, OwnerReference } from '../object-store';

/** The label a Deployment adds to its ReplicaSets' selectors, templates and pods. */
export const POD_TEMPLATE_HASH_LABEL = 'pod-template-hash';

/**
 * The API server's alphabet for generated name suffixes, which the controllers also use to encode hashes:
 * no vowels and no 0/1/3, so that a name never spells a word nor has look-alike characters.
 */
const ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** `spec.template` of a Deployment, ReplicaSet or StatefulSet. */
export interface PodTemplateSpec {
  metadata?: {
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    finalizers?: string[];
    [field: string]: unknown;
  };
  spec?: Record<string, unknown>;
}

/** 32-bit FNV-1a over the UTF-8 bytes of `text` (the hash kube-controller-manager uses for names). */
function fnv32a(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h;
}

/**
 * A stable 10-character name suffix for a value: the FNV-1a hash's decimal digits encoded like
 * `rand.SafeEncodeString`, so it looks like a real `pod-template-hash` (`66b6c48dd5`). A collision count
 * (after a name clash with a different object) changes the result, as in the controllers.
 */
export function shortHash(value: unknown, collisionCount?: number): string {
  const text = canonicalJson(value) + (collisionCount ? `#${collisionCount}` : '');
  const digits = String(fnv32a(text)).padStart(10, '0');
  return [...digits].map((d) => ALPHABET[d.charCodeAt(0) % ALPHABET.length]).join('');
}

/** `pod-template-hash` of a template; the label itself does not take part, so the hash is a fixpoint. */
export function podTemplateHash(template: PodTemplateSpec, collisionCount?: number): string {
  return shortHash(withoutHashLabel(template), collisionCount);
}

/**
 * Whether two templates describe the same pods, ignoring `pod-template-hash` (which a ReplicaSet's copy
 * has and the Deployment's does not). Like the API machinery's semantic equality, empty and absent
 * label maps, annotation maps and lists count as equal.
 */
export function templatesEqual(a: PodTemplateSpec | undefined, b: PodTemplateSpec | undefined): boolean {
  return canonicalJson(withoutHashLabel(a ?? {})) === canonicalJson(withoutHashLabel(b ?? {}));
}

/** A copy of the template with `extraLabels` added to its labels. */
export function withLabels(template: PodTemplateSpec, extraLabels: Record<string, string>): PodTemplateSpec {
  const copy = structuredClone(template);
  copy.metadata = { ...copy.metadata, labels: { ...copy.metadata?.labels, ...extraLabels } };
  return copy;
}

function withoutHashLabel(template: PodTemplateSpec): unknown {
  const copy = structuredClone(template);
  if (copy.metadata) {
    const labels = { ...copy.metadata.labels };
    delete labels[POD_TEMPLATE_HASH_LABEL];
    copy.metadata.labels = labels;
  }
  const cleaned = dropEmpty(copy) as PodTemplateSpec;
  // ObjectMeta is a struct in Go, so an empty one is the same as none.
  if (cleaned.metadata && Object.keys(cleaned.metadata).length === 0) delete cleaned.metadata;
  return cleaned;
}

/** Removes nulls, empty arrays and empty string maps (in Go's API types each is the same as absent). */
function dropEmpty(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropEmpty);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, member] of Object.entries(value)) {
      const cleaned = dropEmpty(member);
      if (cleaned === null) continue; // a JSON null is an unset pointer
      if (Array.isArray(cleaned) && cleaned.length === 0) continue;
      if (isEmptyStringMap(key, cleaned)) continue;
      out[key] = cleaned;
    }
    return out;
  }
  return value;
}

// Only maps known to be `map[string]string` are dropped when empty: `emptyDir: {}` is a set pointer, not nil.
const STRING_MAPS = new Set(['labels', 'annotations', 'nodeSelector']);

function isEmptyStringMap(key: string, value: unknown): boolean {
  return (
    STRING_MAPS.has(key) &&
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    Object.keys(value).length === 0
  );
}

/** The owner reference a controller puts on what it creates (the garbage collector follows it). */
export function controllerRef(owner: KubeObject): OwnerReference {
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name,
    uid: owner.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** True when `owner` is the controller of `obj` (its owner reference with `controller: true`). */
export function isControlledBy(obj: KubeObject, owner: KubeObject): boolean {
  return (obj.metadata.ownerReferences ?? []).some(
    (r) => r.controller === true && r.uid === owner.metadata.uid,
  );
}

/** `n` random characters as the API server appends to a `generateName` (`web-7d4b9c-x2k8p`). */
export function randomSuffix(n = 5): string {
  let out = '';
  for (let i = 0; i < n; i++) out += ALPHABET[randomInt(ALPHABET.length)];
  return out;
}

/**
 * A Pod for `owner` from its template: the template's labels, annotations, finalizers and spec, and a
 * controller owner reference. The status is what the API server gives a new pod (`Pending`); the kubelet
 * takes it from there.
 */
export function podFromTemplate(
  template: PodTemplateSpec,
  owner: KubeObject,
  name: string,
  extraLabels: Record<string, string> = {},
): KubeObjectInput {
  const meta = template.metadata ?? {};
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: owner.metadata.namespace ?? 'default',
      labels: { ...meta.labels, ...extraLabels },
      ...(meta.annotations && Object.keys(meta.annotations).length > 0
        ? { annotations: { ...meta.annotations } }
        : {}),
      ...(meta.finalizers?.length ? { finalizers: [...meta.finalizers] } : {}),
      ownerReferences: [controllerRef(owner)],
    },
    spec: structuredClone(template.spec ?? {}),
    status: { phase: 'Pending' },
  };
}
