import { canonicalJson, type Json } from '../../core/json';
import { isSecretName, REDACTED, REDACTED_NEW_VALUE } from '../../core/redact';

export { REDACTED_NEW_VALUE };

/** One field that differs between two objects. */
export type FieldDiff = { field: string; before: Json; after: Json };

/**
 * What a plan shows as the new value of a secret that changes. It must differ from {@link REDACTED} (the
 * value before): the engine decides that an interrupted apply took effect when a fresh plan's `before`
 * equals the interrupted plan's `after`, so equal markers would make a crash look like success.
 */

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
 *
 * Values are compared as they are, so a changed secret is a difference, but shown masked: a secret field
 * changes from `[REDACTED]` to {@link REDACTED_NEW_VALUE}, and values shown whole (a list or object only
 * one side has) go through {@link maskSecretEnv}, since the engine's redactor only sees keys, and the
 * secret in `{name: DB_PASSWORD, value: …}` is under the key `value`.
 */
export function diffJson(before: Json, after: Json, prefix: string, options: DiffOptions = {}): FieldDiff[] {
  const secret = options.secret ?? ((keys) => keys.some(isSecretName));
  const out: FieldDiff[] = [];
  walk(before ?? null, after ?? null, prefix, [], secret, out);
  return out;
}

/**
 * A copy of `value` in which every entry of an `env` list (a container's environment) whose name looks
 * like a secret (`DB_PASSWORD`, `API_TOKEN`, …) has its literal `value` replaced by `[REDACTED]`
 * (`valueFrom` references are kept: they name a Secret, they hold none). Everything a Kubernetes action
 * puts in a plan's changes or params that may contain a pod template goes through this.
 */
export function maskSecretEnv<T extends Json>(value: T): T {
  return mask(value, false) as T;
}

/** `value` masked; `inEnv` when it is itself the list under an `env` key. */
function mask(value: Json, inEnv: boolean): Json {
  if (Array.isArray(value)) return value.map((item) => (inEnv ? maskEntry(item) : mask(item, false)));
  if (!isMap(value)) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, member]) => [key, mask(member, key === 'env' && Array.isArray(member))]),
  );
}

function maskEntry(entry: Json): Json {
  if (isSecretEnvEntry(entry)) return { ...entry, value: REDACTED };
  return mask(entry, false);
}

/** An `env` entry holding a literal, non-empty value under a secret-looking name. */
export function isSecretEnvEntry(entry: Json): entry is { name: string; value: string } {
  return (
    isMap(entry) &&
    typeof entry.name === 'string' &&
    isSecretName(entry.name) &&
    typeof entry.value === 'string' &&
    entry.value !== ''
  );
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
  if (secret(keys)) {
    out.push({
      field,
      before: before === null ? null : REDACTED,
      after: after === null ? null : before === null ? REDACTED : REDACTED_NEW_VALUE,
    });
    return;
  }
  // A whole list or object (one side only, or a list compared whole) may hold env entries, or be an env list.
  const isEnv = keys.at(-1) === 'env';
  out.push({
    field,
    before: mask(before, isEnv && Array.isArray(before)),
    after: mask(after, isEnv && Array.isArray(after)),
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
