import type { KubeObject } from './object-store';
import type { ResourceType } from './resources';
import { badRequest } from './status-error';

/** One term of a field selector: `status.phase=Running` or `spec.nodeName!=node-1`. */
export interface FieldRequirement {
  field: string;
  operator: '=' | '!=';
  value: string;
}

/** A parsed field selector: every term must hold. An empty selector matches everything. */
export type FieldSelector = FieldRequirement[];

type Extract = (obj: KubeObject) => unknown;

const at =
  (...path: string[]): Extract =>
  (obj) => {
    let node: unknown = obj;
    for (const key of path)
      node = node && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
    return node;
  };

/**
 * The fields each type can be selected on, as the real API server registers them (its
 * `GetAttrs`/`AddFieldLabelConversionFunc` lists). Every type supports `metadata.name` and
 * `metadata.namespace`; any other field is a `400 BadRequest`.
 */
const FIELDS: Record<string, Record<string, Extract>> = {
  '/pods': {
    'spec.nodeName': at('spec', 'nodeName'),
    'spec.restartPolicy': at('spec', 'restartPolicy'),
    'spec.schedulerName': at('spec', 'schedulerName'),
    'spec.serviceAccountName': at('spec', 'serviceAccountName'),
    'spec.hostNetwork': (o) => String(Boolean(at('spec', 'hostNetwork')(o))),
    'status.phase': at('status', 'phase'),
    'status.podIP': at('status', 'podIP'),
    'status.nominatedNodeName': at('status', 'nominatedNodeName'),
  },
  '/events': {
    'involvedObject.kind': at('involvedObject', 'kind'),
    'involvedObject.namespace': at('involvedObject', 'namespace'),
    'involvedObject.name': at('involvedObject', 'name'),
    'involvedObject.uid': at('involvedObject', 'uid'),
    'involvedObject.apiVersion': at('involvedObject', 'apiVersion'),
    'involvedObject.resourceVersion': at('involvedObject', 'resourceVersion'),
    'involvedObject.fieldPath': at('involvedObject', 'fieldPath'),
    reason: at('reason'),
    reportingComponent: at('reportingComponent'),
    source: at('source', 'component'),
    type: at('type'),
  },
  '/namespaces': { 'status.phase': at('status', 'phase') },
  '/nodes': { 'spec.unschedulable': (o) => String(Boolean(at('spec', 'unschedulable')(o))) },
  '/secrets': { type: at('type') },
  'apps/replicasets': { 'status.replicas': (o) => String(at('status', 'replicas')(o) ?? 0) },
};

const COMMON: Record<string, Extract> = {
  'metadata.name': at('metadata', 'name'),
  'metadata.namespace': at('metadata', 'namespace'),
};

function extractor(type: ResourceType, field: string): Extract | undefined {
  return COMMON[field] ?? FIELDS[`${type.group}/${type.resource}`]?.[field];
}

/**
 * Parses the `fieldSelector` query parameter (`a=b`, `a==b`, `a!=b`, joined by commas; `\` escapes
 * `,`, `=`, `!` and `\` in values) and checks every field is one the type supports.
 */
export function parseFieldSelector(text: string | undefined, type: ResourceType): FieldSelector {
  if (!text?.trim()) return [];
  return splitUnescaped(text, ',').map((term) => {
    const requirement = parseTerm(term, text);
    if (!extractor(type, requirement.field))
      throw badRequest(`field label not supported: ${requirement.field}`);
    return requirement;
  });
}

/** True when `obj` satisfies every term. Absent fields compare as the empty string, as in the API. */
export function matchesFields(selector: FieldSelector, type: ResourceType, obj: KubeObject): boolean {
  return selector.every(({ field, operator, value }) => {
    const raw = extractor(type, field)?.(obj);
    const actual = raw === undefined || raw === null ? '' : String(raw);
    return operator === '=' ? actual === value : actual !== value;
  });
}

function parseTerm(term: string, text: string): FieldRequirement {
  // The first operator in the term wins; `!=` and `==` are tried before `=` at each position.
  for (let i = 0; i < term.length; i++) {
    if (term[i] === '\\') {
      i++;
      continue;
    }
    for (const op of ['!=', '==', '='] as const) {
      if (term.startsWith(op, i)) {
        const field = term.slice(0, i).trim();
        if (!field) throw badRequest(`invalid selector: '${text}'; can't understand '${term}'`);
        const value = unescapeValue(term.slice(i + op.length));
        return { field, operator: op === '!=' ? '!=' : '=', value };
      }
    }
  }
  throw badRequest(`invalid selector: '${text}'; can't understand '${term}'`);
}

function splitUnescaped(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (ch === '\\' && i + 1 < text.length) {
      current += ch + text[++i];
    } else if (ch === separator) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts;
}

function unescapeValue(value: string): string {
  return value.replace(/\\([\\,=!])/g, '$1');
}
