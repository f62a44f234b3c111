import { canonicalJson, type Json } from '../../core/json';
import { isSecretName, REDACTED } from '../../core/redact';

/** One field that differs between two objects. */
export type FieldDiff = { field: string; before: Json; after: Json };

/** Options of {@link diffJson}. */
export interface DiffOptions {
  /**
   * Whether the values under a field are secret and must be shown as `[REDACTED]`. Gets the path's
   * keys (and list entry names). @default any key or entry name that looks like a secret (`DB_PASSWORD`…)
   */
  secret?: (keys: readonly string[]) => boolean;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/**
 * The fields that differ between `before` and `after`, deepest first where both sides have a value: maps
 * are compared key by key, lists whose items all have a `name` (containers, env, volumes, ports…) item by
 * item as `containers[name=app]`, other lists whole. Keys that are not identifiers are quoted
 * (`annotations["a/b"]`). A field only one side has shows `null` on the other.
 */
export function diffJson(before: Json, after: Json, prefix: string, options: DiffOptions = {}): FieldDiff[] {
  const secret = options.secret ?? ((keys) => keys.some(isSecretName));
  const out: FieldDiff[] = [];
  walk(before ?? null, after ?? null, prefix, [], secret, out);
  return out;
}

function walk(
  before: Json,
  after: Json,
  field: string,
  keys: string[],
  secret: (keys: readonly string[]) => boolean,
  out: FieldDiff[],
): void {
  if (canonicalJson(before) === canonicalJson(after)) return;
  if (isMap(before) && isMap(after)) {
    const all = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    for (const key of all) {
      walk(before[key] ?? null, after[key] ?? null, join(field, key), [...keys, key], secret, out);
    }
    return;
  }
  if (isNamedList(before) && isNamedList(after)) {
    const names = [...new Set([...before, ...after].map((item) => item.name as string))];
    for (const name of names) {
      const b = before.find((item) => item.name === name) ?? null;
      const a = after.find((item) => item.name === name) ?? null;
      walk(b, a, `${field}[name=${name}]`, [...keys, name], secret, out);
    }
    return;
  }
  const hidden = secret(keys);
  out.push({
    field,
    before: hidden && before !== null ? REDACTED : before,
    after: hidden && after !== null ? REDACTED : after,
  });
}

function join(field: string, key: string): string {
  const part = IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
  return field === '' ? part.replace(/^\./, '') : `${field}${part}`;
}

function isMap(v: Json): v is { [key: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNamedList(v: Json): v is { [key: string]: Json }[] {
  return (
    Array.isArray(v) &&
    v.length > 0 &&
    v.every((item) => isMap(item) && typeof item.name === 'string') &&
    new Set(v.map((item) => (item as { name: string }).name)).size === v.length
  );
}
