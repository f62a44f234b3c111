import { badRequest } from './status-error';

/** One requirement of a label selector, the form both the string and the object syntax reduce to. */
export interface Requirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values: string[];
}

/** A parsed selector: every requirement must hold. An empty selector matches everything. */
export type LabelSelector = Requirement[];

/** `metav1.LabelSelector` as it appears in specs (`spec.selector` of a Deployment). */
export interface LabelSelectorObject {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/**
 * Parses the `labelSelector` query syntax: `app=web,tier!=db,env in (a,b),!legacy,track`.
 * Throws a `400 BadRequest` Status naming the part it could not read.
 */
export function parseLabelSelector(text: string | undefined): LabelSelector {
  const out: LabelSelector = [];
  if (!text?.trim()) return out;
  for (const part of splitTopLevel(text)) out.push(parseRequirement(part.trim(), text));
  return out;
}

const SET = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/;
const EQUALITY = /^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/;
const ABSENT = /^!\s*([\w./-]+)$/;
const PRESENT = /^([\w./-]+)$/;

function parseRequirement(p: string, text: string): Requirement {
  const set = p.match(SET);
  if (set) {
    const values = (set[3] ?? '')
      .split(',')
      .map((v) => v.trim())
      .filter(Boolean);
    return { key: set[1] as string, operator: set[2] === 'in' ? 'In' : 'NotIn', values };
  }
  const eq = p.match(EQUALITY);
  if (eq)
    return { key: eq[1] as string, operator: eq[2] === '!=' ? 'NotIn' : 'In', values: [eq[3] as string] };
  const absent = p.match(ABSENT);
  if (absent) return { key: absent[1] as string, operator: 'DoesNotExist', values: [] };
  const present = p.match(PRESENT);
  if (present) return { key: present[1] as string, operator: 'Exists', values: [] };
  throw badRequest(`unable to parse requirement: "${p}" in label selector "${text}"`);
}

/** Converts a spec's `LabelSelector` object; `null`/absent selects nothing, `{}` everything (as in the API). */
export function selectorFromObject(selector: LabelSelectorObject | null | undefined): LabelSelector | null {
  if (!selector) return null;
  const out: LabelSelector = Object.entries(selector.matchLabels ?? {}).map(([key, value]) => ({
    key,
    operator: 'In' as const,
    values: [value],
  }));
  for (const e of selector.matchExpressions ?? []) {
    if (!['In', 'NotIn', 'Exists', 'DoesNotExist'].includes(e.operator)) {
      throw badRequest(`"${e.operator}" is not a valid label selector operator`);
    }
    out.push({ key: e.key, operator: e.operator as Requirement['operator'], values: e.values ?? [] });
  }
  return out;
}

/** True when `labels` satisfy every requirement. A `null` selector (absent in a spec) matches nothing. */
export function matchesLabels(
  selector: LabelSelector | null,
  labels: Record<string, string> | undefined,
): boolean {
  if (selector === null) return false;
  const l = labels ?? {};
  return selector.every((r) => {
    const has = Object.hasOwn(l, r.key);
    switch (r.operator) {
      case 'In':
        return has && r.values.includes(l[r.key] as string);
      case 'NotIn':
        return !has || !r.values.includes(l[r.key] as string);
      case 'Exists':
        return has;
      default:
        return !has; // DoesNotExist
    }
  });
}

/** Splits on commas that are not inside `( … )`. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts;
}
