/**
 * A runbook input's JSON Schema (draft 2020-12, as zod's `toJSONSchema` with `io: 'input'` writes it) turned
 * into form fields, their initial values, client-side validation and the input object to send. Pure: no React,
 * no @grafana/ui, so that most of the form's behaviour is unit-tested without the cost of the UI.
 */

/** A JSON Schema node, as far as the form reads it. */
export interface SchemaNode {
  type?: string | string[];
  title?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, SchemaNode>;
  required?: string[];
  items?: SchemaNode;
  minItems?: number;
  maxItems?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  anyOf?: SchemaNode[];
  oneOf?: SchemaNode[];
}

interface FieldBase {
  /** The property name. */
  key: string;
  /** The dotted path from the input's root (`target.namespace`): the field's identity and the name in messages. */
  name: string;
  /** What the form shows: the schema's title, else the property name. */
  label: string;
  description?: string;
  required: boolean;
  default?: unknown;
}

/** A text field; `format`/`pattern`/lengths checked on the client. */
export interface StringField extends FieldBase {
  kind: 'string';
  minLength?: number;
  maxLength?: number;
  pattern?: string;
}
/** A choice among the schema's `enum` (or a single `const`). */
export interface EnumField extends FieldBase {
  kind: 'enum';
  options: Array<string | number | boolean>;
}
/** A number field (`integer` requires a whole number). */
export interface NumberField extends FieldBase {
  kind: 'number' | 'integer';
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
}
/** An on/off switch. */
export interface BooleanField extends FieldBase {
  kind: 'boolean';
}
/** A list of strings (tags input). */
export interface TagsField extends FieldBase {
  kind: 'tags';
  minItems?: number;
  maxItems?: number;
  itemPattern?: string;
  itemOptions?: string[];
}
/** A nested object, shown as a fieldset. */
export interface ObjectField extends FieldBase {
  kind: 'object';
  fields: FormField[];
}
/**
 * A value of one of several simple types (`anyOf`/`oneOf`, or a `type` list): typed as text and read as the
 * first type it parses as; `note` says which types are accepted.
 */
export interface UnionField extends FieldBase {
  kind: 'union';
  types: SimpleType[];
  note: string;
}
/** Anything else (arrays of objects, maps): typed as JSON. */
export interface JsonField extends FieldBase {
  kind: 'json';
  note: string;
}

export type FormField =
  | StringField
  | EnumField
  | NumberField
  | BooleanField
  | TagsField
  | ObjectField
  | UnionField
  | JsonField;

type SimpleType = 'string' | 'number' | 'integer' | 'boolean' | 'null';
const SIMPLE_TYPES = new Set<string>(['string', 'number', 'integer', 'boolean', 'null']);

/** A field's value while it is edited: raw text for text and number fields, so that bad text can be reported. */
export type FieldValue = string | boolean | string[] | number | undefined;
/** The form's values by field name (dotted path); objects have no value of their own. */
export type FormValues = Record<string, FieldValue>;
/** Problems by field name; `''` holds those that belong to no field. */
export type FormErrors = Record<string, string>;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The simple types a node allows, or undefined when it is not (only) simple types. */
function simpleTypes(node: SchemaNode): SimpleType[] | undefined {
  const alternatives = node.anyOf ?? node.oneOf;
  if (alternatives) {
    const all = alternatives.flatMap((alt) => simpleTypes(alt) ?? ['?']);
    return all.every((t) => SIMPLE_TYPES.has(t)) ? [...new Set(all as SimpleType[])] : undefined;
  }
  if (node.const !== undefined && node.type === undefined) return undefined;
  const types = Array.isArray(node.type) ? node.type : node.type ? [node.type] : [];
  return types.length > 0 && types.every((t) => SIMPLE_TYPES.has(t)) ? (types as SimpleType[]) : undefined;
}

function fieldOf(key: string, name: string, node: SchemaNode, required: boolean): FormField {
  const base: FieldBase = {
    key,
    name,
    label: node.title ?? key,
    required,
    ...(node.description ? { description: node.description } : {}),
    ...(node.default !== undefined ? { default: node.default } : {}),
  };
  const enumValues = node.enum ?? (node.const !== undefined ? [node.const] : undefined);
  if (enumValues?.every((v) => ['string', 'number', 'boolean'].includes(typeof v))) {
    return { ...base, kind: 'enum', options: enumValues as Array<string | number | boolean> };
  }
  const types = simpleTypes(node);
  // A nullable field (`string | null`) is the simple field: leaving it empty leaves it out.
  const nonNull = types?.filter((t) => t !== 'null');
  if (nonNull && nonNull.length === 1) {
    const [type] = nonNull;
    if (type === 'string') {
      return {
        ...base,
        kind: 'string',
        ...pick(node, ['minLength', 'maxLength', 'pattern']),
      };
    }
    if (type === 'number' || type === 'integer') {
      return {
        ...base,
        kind: type,
        ...pick(node, ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum']),
      };
    }
    if (type === 'boolean') return { ...base, kind: 'boolean' };
  }
  if (types && types.length > 1) {
    const shown = types.map((t) => (t === 'integer' ? 'whole number' : t)).join(' or ');
    return { ...base, kind: 'union', types, note: `Accepts a ${shown}; typed as text.` };
  }
  const type = Array.isArray(node.type) ? undefined : node.type;
  if (type === 'array' && node.items && simpleTypes(node.items)?.join() === 'string') {
    const items = node.items;
    return {
      ...base,
      kind: 'tags',
      ...pick(node, ['minItems', 'maxItems']),
      ...(items.pattern ? { itemPattern: items.pattern } : {}),
      ...(items.enum ? { itemOptions: items.enum.map(String) } : {}),
    };
  }
  if (type === 'object' && node.properties) {
    return { ...base, kind: 'object', fields: fieldsOf(node, name) };
  }
  return { ...base, kind: 'json', note: 'Typed as JSON.' };
}

function pick<K extends keyof SchemaNode>(node: SchemaNode, keys: K[]): Pick<SchemaNode, K> {
  const out: Partial<SchemaNode> = {};
  for (const k of keys) if (node[k] !== undefined) out[k] = node[k];
  return out as Pick<SchemaNode, K>;
}

function fieldsOf(node: SchemaNode, prefix: string): FormField[] {
  const required = new Set(node.required ?? []);
  return Object.entries(node.properties ?? {}).map(([key, child]) =>
    fieldOf(key, prefix ? `${prefix}.${key}` : key, isRecord(child) ? child : {}, required.has(key)),
  );
}

/** The form fields of a runbook's input schema (an object schema; anything else has no fields). */
export function schemaToFields(schema: unknown): FormField[] {
  if (!isRecord(schema)) return [];
  return fieldsOf(schema as SchemaNode, '');
}

/** Every field, nested ones included, depth first. */
export function flattenFields(fields: FormField[]): FormField[] {
  return fields.flatMap((f) => (f.kind === 'object' ? [f, ...flattenFields(f.fields)] : [f]));
}

function initialValue(field: FormField): FieldValue {
  const d = field.default;
  switch (field.kind) {
    case 'boolean':
      return typeof d === 'boolean' ? d : undefined;
    case 'tags':
      return Array.isArray(d) ? d.map(String) : [];
    case 'enum':
      return d as FieldValue;
    case 'json':
      return d === undefined ? '' : JSON.stringify(d);
    case 'object':
      return undefined;
    default:
      return d === undefined || d === null ? '' : String(d);
  }
}

/** The values a new form starts with: the schema's defaults, else empty. */
export function initialValues(fields: FormField[]): FormValues {
  const values: FormValues = {};
  for (const f of flattenFields(fields)) if (f.kind !== 'object') values[f.name] = initialValue(f);
  return values;
}

/** True when the user gave the field no value (so an optional field is left out of the input). */
function isEmpty(field: FormField, value: FieldValue): boolean {
  if (value === undefined) return true;
  if (field.kind === 'tags') return (value as string[]).length === 0 && field.default === undefined;
  return typeof value === 'string' && value.trim() === '';
}

type Parsed = { ok: true; value: unknown } | { ok: false; message: string };

function parseNumber(field: NumberField, text: string): Parsed {
  const n = Number(text.trim());
  if (!Number.isFinite(n)) return { ok: false, message: `${field.name} must be a number.` };
  if (field.kind === 'integer' && !Number.isInteger(n))
    return { ok: false, message: `${field.name} must be a whole number.` };
  if (field.minimum !== undefined && n < field.minimum)
    return { ok: false, message: `${field.name} must be at least ${field.minimum}.` };
  if (field.maximum !== undefined && n > field.maximum)
    return { ok: false, message: `${field.name} must be at most ${field.maximum}.` };
  if (field.exclusiveMinimum !== undefined && n <= field.exclusiveMinimum)
    return { ok: false, message: `${field.name} must be greater than ${field.exclusiveMinimum}.` };
  if (field.exclusiveMaximum !== undefined && n >= field.exclusiveMaximum)
    return { ok: false, message: `${field.name} must be less than ${field.exclusiveMaximum}.` };
  return { ok: true, value: n };
}

function matches(pattern: string, text: string): boolean {
  try {
    return new RegExp(pattern, 'u').test(text);
  } catch {
    // A pattern JavaScript cannot compile is left to the service, which checks it with zod.
    return true;
  }
}

function parseString(field: StringField, text: string): Parsed {
  const length = [...text].length;
  if (field.minLength !== undefined && length < field.minLength)
    return { ok: false, message: `${field.name} must be at least ${field.minLength} characters.` };
  if (field.maxLength !== undefined && length > field.maxLength)
    return { ok: false, message: `${field.name} must be at most ${field.maxLength} characters.` };
  if (field.pattern !== undefined && !matches(field.pattern, text))
    return { ok: false, message: `${field.name} must match the pattern ${field.pattern}.` };
  return { ok: true, value: text };
}

function parseTags(field: TagsField, tags: string[]): Parsed {
  if (field.minItems !== undefined && tags.length < field.minItems)
    return { ok: false, message: `${field.name} needs at least ${field.minItems} entries.` };
  if (field.maxItems !== undefined && tags.length > field.maxItems)
    return { ok: false, message: `${field.name} takes at most ${field.maxItems} entries.` };
  const pattern = field.itemPattern;
  const bad = pattern === undefined ? undefined : tags.find((t) => !matches(pattern, t));
  if (bad !== undefined)
    return { ok: false, message: `${field.name}: "${bad}" must match the pattern ${pattern}.` };
  const options = field.itemOptions;
  const unknown = options === undefined ? undefined : tags.find((t) => !options.includes(t));
  if (unknown !== undefined && options)
    return { ok: false, message: `${field.name}: "${unknown}" must be one of ${options.join(', ')}.` };
  return { ok: true, value: tags };
}

function parseUnion(field: UnionField, text: string): Parsed {
  const trimmed = text.trim();
  for (const type of field.types) {
    if (type === 'null' && trimmed === 'null') return { ok: true, value: null };
    if (type === 'boolean' && (trimmed === 'true' || trimmed === 'false'))
      return { ok: true, value: trimmed === 'true' };
    if ((type === 'number' || type === 'integer') && trimmed !== '' && Number.isFinite(Number(trimmed))) {
      const n = Number(trimmed);
      if (type === 'number' || Number.isInteger(n)) return { ok: true, value: n };
    }
  }
  if (field.types.includes('string')) return { ok: true, value: text };
  return { ok: false, message: `${field.name} must be a ${field.types.join(' or ')}.` };
}

function parseValue(field: FormField, value: FieldValue): Parsed {
  switch (field.kind) {
    case 'string':
      return parseString(field, String(value));
    case 'number':
    case 'integer':
      return typeof value === 'number' ? { ok: true, value } : parseNumber(field, String(value));
    case 'boolean':
      return { ok: true, value: value === true };
    case 'enum':
      return field.options.includes(value as string | number | boolean)
        ? { ok: true, value }
        : { ok: false, message: `${field.name} must be one of ${field.options.join(', ')}.` };
    case 'tags':
      return parseTags(field, value as string[]);
    case 'union':
      return parseUnion(field, String(value));
    case 'json':
      try {
        return { ok: true, value: JSON.parse(String(value)) };
      } catch {
        return { ok: false, message: `${field.name} must be valid JSON.` };
      }
    case 'object':
      return { ok: true, value: undefined };
  }
}

/** True when any field inside an object field has a value (so an optional object is sent). */
function hasAnyValue(field: ObjectField, values: FormValues): boolean {
  return flattenFields(field.fields).some(
    (f) => f.kind !== 'object' && f.kind !== 'boolean' && !isEmpty(f, values[f.name]),
  );
}

function build(fields: FormField[], values: FormValues, errors: FormErrors): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of fields) {
    if (field.kind === 'object') {
      if (!field.required && !hasAnyValue(field, values)) continue;
      out[field.key] = build(field.fields, values, errors);
      continue;
    }
    const value = values[field.name];
    if (isEmpty(field, value) && !(field.kind === 'boolean' && field.required)) {
      if (field.required) errors[field.name] = `${field.name} is required.`;
      continue;
    }
    const parsed = parseValue(field, value);
    if (parsed.ok) out[field.key] = parsed.value;
    else errors[field.name] = parsed.message;
  }
  return out;
}

/**
 * Checks the values against what the schema says and builds the input to send: optional fields left empty
 * are left out (the service applies their defaults), numbers are numbers. `errors` is empty when valid.
 */
export function toInput(
  fields: FormField[],
  values: FormValues,
): { input: Record<string, unknown>; errors: FormErrors } {
  const errors: FormErrors = {};
  const input = build(fields, values, errors);
  return { input, errors };
}

/**
 * The service's field problems (`details` of INVALID_INPUT / INVALID_REQUEST: `[{ path, message }]`, paths
 * like `input.target.namespace` or `input.agents[0]`) put on the form's fields: each on the deepest field its
 * path names, the rest under `''`.
 */
export function serviceIssuesToErrors(fields: FormField[], details: unknown): FormErrors {
  const list = Array.isArray(details)
    ? details
    : isRecord(details) && Array.isArray(details.issues)
      ? details.issues
      : [];
  const names = new Set(flattenFields(fields).map((f) => f.name));
  const errors: FormErrors = {};
  const add = (name: string, message: string) => {
    errors[name] = errors[name] ? `${errors[name]} ${message}` : message;
  };
  for (const issue of list) {
    if (!isRecord(issue) || typeof issue.message !== 'string') continue;
    const path = typeof issue.path === 'string' ? issue.path : '';
    // Request-level paths start at the body (`input.x`); the engine's at the input (`x`).
    let name = path.replace(/^input(?=$|\.|\[)\.?/, '').replace(/\[\d+\]/g, '');
    while (name && !names.has(name)) name = name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : '';
    if (name) add(name, issue.message);
    else add('', path ? `${path}: ${issue.message}` : issue.message);
  }
  return errors;
}
