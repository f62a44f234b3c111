import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { matchesLabels, selectorFromObject } from './label-selector';
import type { KubeObject, KubeObjectInput } from './object-store';
import type { ResourceType } from './resources';
import { StatusError } from './status-error';

/**
 * What the API server's registry strategies do to an object on its way into storage: defaulting
 * (what `kubectl get -o yaml` shows but nobody wrote), the create-time reset of `status`, and the
 * validation that answers `422 Invalid`. Only the fields the simulator's clients and controllers
 * look at are covered; everything else passes through untouched.
 */

type Obj = Record<string, unknown>;

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The child map at `key`, created when absent. */
function child(parent: Obj, key: string): Obj {
  const value = parent[key];
  if (isObject(value)) return value;
  const created: Obj = {};
  parent[key] = created;
  return created;
}

function setDefault(target: Obj, key: string, value: unknown): void {
  if (target[key] === undefined || target[key] === null) target[key] = value;
}

const typeKey = (t: ResourceType) => `${t.group}/${t.resource}`;

/** A create through the API starts with the status the server gives a new object, whatever the body says. */
export function prepareForCreate(type: ResourceType, obj: KubeObjectInput): KubeObjectInput {
  if (!type.hasStatus) return obj;
  const status: Record<string, Obj> = {
    '/pods': { phase: 'Pending' },
    '/namespaces': { phase: 'Active' },
    '/services': { loadBalancer: {} },
  };
  return { ...obj, status: status[typeKey(type)] ?? {} };
}

/** Fills in the defaults the API server sets (mutates and returns `obj`); idempotent, so it runs on every write. */
export function applyDefaults(type: ResourceType, obj: KubeObjectInput): KubeObjectInput {
  const spec = isObject(obj.spec) ? obj.spec : undefined;
  switch (typeKey(type)) {
    case '/namespaces': {
      const meta = child(obj as Obj, 'metadata');
      if (typeof meta.name === 'string') child(meta, 'labels')['kubernetes.io/metadata.name'] = meta.name;
      setDefault(child(obj as Obj, 'spec'), 'finalizers', ['kubernetes']);
      break;
    }
    case '/pods':
      if (spec) defaultPodSpec(spec);
      break;
    case '/services':
      if (spec) defaultServiceSpec(spec, obj);
      break;
    case '/secrets':
      setDefault(obj as Obj, 'type', 'Opaque');
      break;
    case 'apps/deployments':
      if (spec) {
        setDefault(spec, 'replicas', 1);
        const strategy = child(spec, 'strategy');
        setDefault(strategy, 'type', 'RollingUpdate');
        if (strategy.type === 'RollingUpdate') {
          const rolling = child(strategy, 'rollingUpdate');
          setDefault(rolling, 'maxUnavailable', '25%');
          setDefault(rolling, 'maxSurge', '25%');
        }
        setDefault(spec, 'revisionHistoryLimit', 10);
        setDefault(spec, 'progressDeadlineSeconds', 600);
        defaultTemplate(spec);
      }
      break;
    case 'apps/statefulsets':
      if (spec) {
        setDefault(spec, 'replicas', 1);
        setDefault(spec, 'podManagementPolicy', 'OrderedReady');
        setDefault(spec, 'updateStrategy', { type: 'RollingUpdate', rollingUpdate: { partition: 0 } });
        setDefault(spec, 'revisionHistoryLimit', 10);
        defaultTemplate(spec);
      }
      break;
    case 'apps/replicasets':
      if (spec) {
        setDefault(spec, 'replicas', 1);
        defaultTemplate(spec);
      }
      break;
  }
  return obj;
}

function defaultTemplate(spec: Obj): void {
  const template = spec.template;
  if (isObject(template) && isObject(template.spec)) defaultPodSpec(template.spec);
}

function defaultPodSpec(spec: Obj): void {
  setDefault(spec, 'restartPolicy', 'Always');
  setDefault(spec, 'dnsPolicy', 'ClusterFirst');
  setDefault(spec, 'schedulerName', 'default-scheduler');
  setDefault(spec, 'terminationGracePeriodSeconds', 30);
  setDefault(spec, 'securityContext', {});
  for (const list of ['initContainers', 'containers']) {
    const containers = spec[list];
    if (!Array.isArray(containers)) continue;
    for (const c of containers) {
      if (!isObject(c)) continue;
      setDefault(c, 'imagePullPolicy', pullPolicyFor(c.image));
      setDefault(c, 'terminationMessagePath', '/dev/termination-log');
      setDefault(c, 'terminationMessagePolicy', 'File');
      setDefault(c, 'resources', {});
      if (Array.isArray(c.ports)) for (const p of c.ports) if (isObject(p)) setDefault(p, 'protocol', 'TCP');
    }
  }
}

/** `Always` for `:latest` or untagged images, `IfNotPresent` otherwise (by digest or by another tag). */
function pullPolicyFor(image: unknown): string {
  if (typeof image !== 'string') return 'IfNotPresent';
  if (image.includes('@')) return 'IfNotPresent';
  const lastPart = image.split('/').at(-1) ?? image;
  const tag = lastPart.includes(':') ? lastPart.split(':').at(-1) : undefined;
  return tag === undefined || tag === 'latest' ? 'Always' : 'IfNotPresent';
}

function defaultServiceSpec(spec: Obj, obj: KubeObjectInput): void {
  setDefault(spec, 'type', 'ClusterIP');
  setDefault(spec, 'sessionAffinity', 'None');
  if (spec.type !== 'ExternalName') {
    // The real allocator hands out a free address; one derived from the name is stable across updates.
    const hash = createHash('sha256').update(`${obj.metadata?.namespace}/${obj.metadata?.name}`).digest();
    setDefault(spec, 'clusterIP', `10.96.${hash[0]}.${(hash[1] ?? 0) % 254 || 1}`);
    setDefault(spec, 'clusterIPs', [spec.clusterIP]);
    setDefault(spec, 'ipFamilies', ['IPv4']);
    setDefault(spec, 'ipFamilyPolicy', 'SingleStack');
    setDefault(spec, 'internalTrafficPolicy', 'Cluster');
  }
  if (Array.isArray(spec.ports)) {
    for (const p of spec.ports) {
      if (!isObject(p)) continue;
      setDefault(p, 'protocol', 'TCP');
      setDefault(p, 'targetPort', p.port);
    }
  }
}

// --- validation ----------------------------------------------------------------------------------------

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/**
 * Rejects what the real API server would reject with `422 Invalid` for the fields clients rely on:
 * labels, pod containers, workload selectors and templates (and selector immutability), service ports.
 * `old` is the stored object on an update.
 */
export function validate(type: ResourceType, obj: KubeObjectInput, old?: KubeObject): void {
  const errors: { field: string; message: string }[] = [];
  const fail = (field: string, message: string) => errors.push({ field, message });
  validateLabels(obj.metadata?.labels, 'metadata.labels', fail);
  const spec = isObject(obj.spec) ? obj.spec : undefined;
  switch (typeKey(type)) {
    case '/pods':
      validatePodSpec(spec, 'spec', fail);
      break;
    case '/services':
      validateServicePorts(spec, fail);
      break;
    case 'apps/deployments':
    case 'apps/statefulsets':
    case 'apps/replicasets':
      validateWorkload(spec, old, fail);
      break;
  }
  if (errors.length === 0) return;
  const name = obj.metadata?.name ?? '';
  const texts = errors.map((e) => `${e.field}: ${e.message}`);
  const summary = texts.length === 1 ? texts[0] : `[${texts.join(', ')}]`;
  throw new StatusError(422, 'Invalid', `${type.kind} "${name}" is invalid: ${summary}`, {
    name,
    group: type.group,
    kind: type.kind,
    causes: errors.map((e) => ({ reason: 'FieldValueInvalid', message: e.message, field: e.field })),
  });
}

type Fail = (field: string, message: string) => void;

function validateLabels(labels: unknown, field: string, fail: Fail): void {
  if (labels === undefined || labels === null) return;
  if (!isObject(labels)) {
    fail(field, 'Invalid value: must be a map of strings');
    return;
  }
  for (const [key, value] of Object.entries(labels)) {
    const name = key.includes('/') ? key.slice(key.indexOf('/') + 1) : key;
    if (!LABEL_NAME.test(name) || name.length > 63) {
      fail(
        field,
        `Invalid value: "${key}": name part must consist of alphanumeric characters, '-', '_' or '.'`,
      );
    }
    if (typeof value !== 'string' || !LABEL_VALUE.test(value) || value.length > 63) {
      fail(
        field,
        `Invalid value: "${String(value)}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
      );
    }
  }
}

function validatePodSpec(spec: Obj | undefined, field: string, fail: Fail): void {
  const containers = spec?.containers;
  if (!Array.isArray(containers) || containers.length === 0) {
    fail(`${field}.containers`, 'Required value');
    return;
  }
  const seen = new Set<unknown>();
  for (const [i, c] of containers.entries()) {
    const at = `${field}.containers[${i}]`;
    if (!isObject(c)) {
      fail(at, 'Invalid value: must be an object');
      continue;
    }
    if (typeof c.name !== 'string' || c.name === '') fail(`${at}.name`, 'Required value');
    else if (seen.has(c.name)) fail(`${at}.name`, `Duplicate value: "${c.name}"`);
    seen.add(c.name);
    if (typeof c.image !== 'string' || c.image.trim() === '') fail(`${at}.image`, 'Required value');
  }
}

function validateServicePorts(spec: Obj | undefined, fail: Fail): void {
  const ports = spec?.ports;
  if (!Array.isArray(ports)) return;
  ports.forEach((p, i) => {
    const port = isObject(p) ? p.port : undefined;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
      fail(`spec.ports[${i}].port`, `Invalid value: ${String(port)}: must be between 1 and 65535, inclusive`);
    }
  });
}

function validateWorkload(spec: Obj | undefined, old: KubeObject | undefined, fail: Fail): void {
  const replicas = spec?.replicas;
  if (typeof replicas === 'number' && (!Number.isInteger(replicas) || replicas < 0)) {
    fail('spec.replicas', `Invalid value: ${replicas}: must be greater than or equal to 0`);
  }
  const template = isObject(spec?.template) ? spec.template : undefined;
  const templateLabels = isObject(template?.metadata) ? template.metadata.labels : undefined;
  if (!isObject(spec?.selector)) {
    fail('spec.selector', 'Required value');
  } else {
    let selector: ReturnType<typeof selectorFromObject> = null;
    try {
      selector = selectorFromObject(spec.selector);
    } catch (e) {
      fail('spec.selector', `Invalid value: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (selector?.length === 0)
      fail('spec.selector', 'Invalid value: empty selector is invalid for deployment');
    else if (selector && !matchesLabels(selector, templateLabels as Record<string, string> | undefined)) {
      fail(
        'spec.template.metadata.labels',
        `Invalid value: ${JSON.stringify(templateLabels ?? {})}: \`selector\` does not match template \`labels\``,
      );
    }
    const oldSelector = isObject(old?.spec) ? old.spec.selector : undefined;
    if (old && oldSelector !== undefined && !isDeepStrictEqual(oldSelector, spec.selector)) {
      fail('spec.selector', `Invalid value: ${JSON.stringify(spec.selector)}: field is immutable`);
    }
  }
  if (!template) fail('spec.template', 'Required value');
  else {
    validateLabels(templateLabels, 'spec.template.metadata.labels', fail);
    validatePodSpec(isObject(template.spec) ? template.spec : undefined, 'spec.template.spec', fail);
  }
}
