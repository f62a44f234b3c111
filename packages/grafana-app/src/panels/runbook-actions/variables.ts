/**
 * Turning an action's input mappings into a runbook input at click time: dashboard variables are replaced
 * by Grafana's interpolation (the panel's `replaceVariables`, i.e. `getTemplateSrv().replace` with the
 * panel's scoped variables), then each value is converted to the type the runbook's JSON Schema asks for.
 * Pure: the interpolation function is passed in, so this is tested without Grafana.
 */
import type { InputMapping } from './options';

/** Grafana's interpolation: `(text, scopedVars?, format?) => text`. */
export type Interpolate = (value: string, scopedVars?: undefined, format?: string) => string;

/** The result of {@link resolveInput}: the input to send, or the problems that stop the click. */
export interface ResolvedInput {
  input: Record<string, unknown>;
  /** One line per field that could not be resolved; nothing is sent while there is any. */
  problems: string[];
  /** The dashboard variables the mappings used, with their values (recorded in the run's context). */
  variables: Record<string, string>;
}

// `$name`, `${name}`, `${name:format}`, `[[name]]`, `[[name:format]]`, as Grafana's template service reads them.
const VARIABLE = /\$(\w+)|\$\{(\w+)(?:[.:][^}]*)?\}|\[\[(\w+)(?::\w+)?\]\]/g;

/** The names of the dashboard variables `text` refers to, in order, without repeats. */
export function variablesIn(text: string): string[] {
  const names: string[] = [];
  for (const match of text.matchAll(VARIABLE)) {
    const name = match[1] ?? match[2] ?? match[3];
    if (name && !names.includes(name)) names.push(name);
  }
  return names;
}

type JsonType = 'string' | 'number' | 'integer' | 'boolean' | 'array' | 'object' | undefined;

/** The JSON type a runbook input field declares (the first non-null one of a type list or anyOf). */
export function fieldType(schema: Record<string, unknown> | undefined, field: string): JsonType {
  const properties = schema?.properties;
  if (typeof properties !== 'object' || properties === null) return undefined;
  const node = (properties as Record<string, unknown>)[field];
  return typeOf(node);
}

function typeOf(node: unknown): JsonType {
  if (typeof node !== 'object' || node === null) return undefined;
  const n = node as { type?: unknown; anyOf?: unknown; oneOf?: unknown; enum?: unknown; const?: unknown };
  const types = Array.isArray(n.type) ? n.type : [n.type];
  const first = types.find((t) => typeof t === 'string' && t !== 'null');
  if (typeof first === 'string') return first as JsonType;
  for (const alternatives of [n.anyOf, n.oneOf]) {
    if (Array.isArray(alternatives)) {
      for (const alternative of alternatives) {
        const t = typeOf(alternative);
        if (t) return t;
      }
    }
  }
  const sample = Array.isArray(n.enum) ? n.enum[0] : n.const;
  if (typeof sample === 'number') return 'number';
  if (typeof sample === 'boolean') return 'boolean';
  if (typeof sample === 'string') return 'string';
  return undefined;
}

/** The names of the fields a runbook's input schema declares. */
export function schemaFields(schema: Record<string, unknown> | undefined): string[] {
  const properties = schema?.properties;
  return typeof properties === 'object' && properties !== null ? Object.keys(properties) : [];
}

/**
 * The runbook input for `mappings`: each value interpolated (multi-value variables of array fields as a
 * JSON list), then converted to the field's type. Empty values are left out (the runbook default applies).
 * A variable the dashboard does not define stays as written after interpolation: that is a problem, never
 * sent as a literal `$agent`.
 */
export function resolveInput(
  mappings: readonly InputMapping[],
  schema: Record<string, unknown> | undefined,
  interpolate: Interpolate,
): ResolvedInput {
  const input: Record<string, unknown> = {};
  const problems: string[] = [];
  const variables: Record<string, string> = {};
  for (const { field, value } of mappings) {
    const type = fieldType(schema, field);
    const names = variablesIn(value);
    const text =
      names.length === 0 ? value : interpolate(value, undefined, type === 'array' ? 'json' : undefined);
    const unresolved = variablesIn(text).filter((name) => names.includes(name));
    if (unresolved.length > 0) {
      problems.push(`${field}: the dashboard has no variable ${unresolved.map((n) => `$${n}`).join(', ')}`);
      continue;
    }
    for (const name of names) variables[name] = interpolate(`\${${name}}`);
    if (text.trim() === '') continue;
    const converted = convert(text.trim(), type);
    if ('problem' in converted) problems.push(`${field}: ${converted.problem}`);
    else input[field] = converted.value;
  }
  return { input, problems, variables };
}

function convert(text: string, type: JsonType): { value: unknown } | { problem: string } {
  switch (type) {
    case 'number':
    case 'integer': {
      const n = Number(text);
      if (!Number.isFinite(n)) return { problem: `expected a number, got "${text}"` };
      if (type === 'integer' && !Number.isInteger(n))
        return { problem: `expected a whole number, got "${text}"` };
      return { value: n };
    }
    case 'boolean': {
      const t = text.toLowerCase();
      if (t === 'true') return { value: true };
      if (t === 'false') return { value: false };
      return { problem: `expected true or false, got "${text}"` };
    }
    case 'array': {
      if (text.startsWith('[')) {
        try {
          const list = JSON.parse(text) as unknown;
          if (Array.isArray(list)) return { value: list };
        } catch {
          // Not JSON: read as a comma-separated list below.
        }
      }
      return {
        value: text
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== ''),
      };
    }
    case 'object': {
      try {
        const object = JSON.parse(text) as unknown;
        if (typeof object === 'object' && object !== null && !Array.isArray(object)) return { value: object };
      } catch {
        // Reported below.
      }
      return { problem: `expected a JSON object, got "${text}"` };
    }
    default:
      return { value: text };
  }
}
