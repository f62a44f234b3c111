/**
 * Which runbooks fit a panel or an alert, and the input a chosen runbook starts with. Pure: no React.
 */
import type { RunbookView } from '../api/types';
import type { ContextLabels, VariableValue } from './context-labels';

type Trigger = RunbookView['triggers'][number];

/** Why a runbook is offered. */
export type MatchReason =
  /** Every label of one of its triggers is in the context with that value. */
  | { kind: 'trigger'; match: Trigger['match'] }
  /** One of its tags is one of the dashboard's tags. */
  | { kind: 'tag'; tags: string[] };

/** A runbook offered for the context, with why. */
export interface RunbookMatch {
  runbook: RunbookView;
  reason: MatchReason;
}

/** The runbooks that fit the context (best first), and all the others (the on-call engineer may know better). */
export interface RunbookMatches {
  matching: RunbookMatch[];
  others: RunbookView[];
}

/** The first trigger of the runbook whose labels are all in the context with those values. */
export function matchingTrigger(runbook: RunbookView, labels: ContextLabels): Trigger | undefined {
  return runbook.triggers.find((trigger) => {
    const wanted = Object.entries(trigger.match);
    // A trigger with no labels would match everything: it says nothing about this panel.
    return wanted.length > 0 && wanted.every(([name, value]) => labels[name]?.includes(value) ?? false);
  });
}

const SEVERITY_RANK: Record<RunbookView['severity'], number> = { P0: 0, P1: 1, P2: 2, P3: 3 };

/**
 * Splits the catalog: runbooks with a trigger matched by the labels come first (more matched labels first,
 * then by severity), then runbooks sharing a tag with the dashboard, then the rest in catalog order.
 */
export function matchRunbooks(
  runbooks: readonly RunbookView[],
  labels: ContextLabels,
  tags: readonly string[] = [],
): RunbookMatches {
  const byTrigger: Array<RunbookMatch & { size: number }> = [];
  const byTag: RunbookMatch[] = [];
  const others: RunbookView[] = [];
  const dashboardTags = new Set(tags.map((t) => t.toLowerCase()));
  for (const runbook of runbooks) {
    const trigger = matchingTrigger(runbook, labels);
    if (trigger) {
      byTrigger.push({
        runbook,
        reason: { kind: 'trigger', match: trigger.match },
        size: Object.keys(trigger.match).length,
      });
      continue;
    }
    const shared = (runbook.tags ?? []).filter((t) => dashboardTags.has(t.toLowerCase()));
    if (shared.length > 0) byTag.push({ runbook, reason: { kind: 'tag', tags: shared } });
    else others.push(runbook);
  }
  byTrigger.sort(
    (a, b) => b.size - a.size || SEVERITY_RANK[a.runbook.severity] - SEVERITY_RANK[b.runbook.severity],
  );
  return { matching: [...byTrigger.map(({ size: _size, ...m }) => m), ...byTag], others };
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** `text` as a value the schema node takes (an enum choice, a number, a boolean or a string), or undefined. */
function valueFor(node: Record<string, unknown>, text: string): unknown {
  if (Array.isArray(node.enum)) return node.enum.find((choice) => String(choice) === text);
  const types = Array.isArray(node.type) ? node.type : [node.type];
  if (types.includes('string')) {
    const max = typeof node.maxLength === 'number' ? node.maxLength : Number.POSITIVE_INFINITY;
    const min = typeof node.minLength === 'number' ? node.minLength : 0;
    return text.length >= min && text.length <= max ? text : undefined;
  }
  if (types.includes('integer') || types.includes('number')) {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n)) return undefined;
    return types.includes('number') || Number.isInteger(n) ? n : undefined;
  }
  if (types.includes('boolean') && (text === 'true' || text === 'false')) return text === 'true';
  return undefined;
}

/** A runbook's input schema with context values as defaults, and which fields were filled from what. */
export interface Prefilled {
  schema: Record<string, unknown>;
  /** Input property → the context value it starts with. */
  filled: Record<string, string>;
}

/**
 * The runbook's input JSON Schema with each top-level property whose name is a context label (or, failing
 * that, a single-valued dashboard variable) given that value as its `default`, so the input form starts
 * with it and the user can still change it. A label with several values, or a value the property does
 * not accept (not one of its choices, not a number), is left out: the form then starts as the runbook says.
 */
export function prefillInput(
  schema: unknown,
  labels: ContextLabels,
  variables: Record<string, VariableValue> = {},
): Prefilled {
  if (!isRecord(schema) || !isRecord(schema.properties)) {
    return { schema: isRecord(schema) ? schema : {}, filled: {} };
  }
  const properties: Record<string, unknown> = { ...schema.properties };
  const filled: Record<string, string> = {};
  for (const [name, node] of Object.entries(schema.properties)) {
    if (!isRecord(node)) continue;
    const variable = variables[name];
    const candidates = [
      labels[name]?.length === 1 ? labels[name][0] : undefined,
      typeof variable === 'string' ? variable : variable?.length === 1 ? variable[0] : undefined,
    ];
    for (const text of candidates) {
      if (text === undefined) continue;
      const value = valueFor(node, text);
      if (value === undefined) continue;
      properties[name] = { ...node, default: value };
      filled[name] = text;
      break;
    }
  }
  return { schema: { ...schema, properties }, filled };
}
