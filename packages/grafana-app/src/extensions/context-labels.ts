/**
 * What a dashboard panel or an alert instance tells about an incident, read from the context Grafana gives
 * an extension link: labels (from the panel's query results, from the label matchers of its queries with
 * template variables resolved, or the alert's own), the dashboard's tags, its variables and the time range.
 *
 * Pure functions, no React and no @grafana/ui. The context comes from Grafana at run time and differs
 * between versions, so every field is read defensively: a missing or odd field is skipped, never thrown on
 * (zod is not bundled into the plugin for this one reader).
 */
import { dateMath } from '@grafana/data';
import type { RunContextInput } from '../api/client';

/** Label name → its distinct values in the order they were found (a panel may show several series). */
export type ContextLabels = Record<string, string[]>;

/** A template variable's value: one, or several for a multi-value variable. */
export type VariableValue = string | string[];

/** Interpolates Grafana template variables (`$agent`, `${agent}`, `[[agent]]`) in a query expression. */
export type Interpolate = (text: string, scopedVars?: Record<string, unknown>) => string;

/** What the modal and the matching work with, from a panel or an alert. */
export interface IncidentContext {
  /** Where it came from: a dashboard panel or an alert instance. */
  kind: 'panel' | 'alert';
  /** The labels found, every distinct value of each. */
  labels: ContextLabels;
  /** The dashboard's tags (none for an alert). */
  tags: string[];
  /** Dashboard template variables, resolved (none for an alert). */
  variables: Record<string, VariableValue>;
  /** What is sent to the service with each run (`context`), within the service's bounds. */
  runContext: RunContextInput;
}

// The service's bounds on a run context (packages/sdk/src/server/routes/run-input.ts): beyond them it
// answers 400, so a panel with many series must be cut down here rather than fail.
const MAX_ENTRIES = 64;
const MAX_NAME = 200;
const MAX_VALUE = 1000;
const MAX_VARIABLE_VALUES = 100;
const MAX_TITLE = 500;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** Adds `value` to `labels[name]` unless it is there already (or unusable). */
function add(labels: ContextLabels, name: string, value: string): void {
  if (!name || name.length > MAX_NAME || value === '' || value.length > MAX_VALUE) return;
  const values = labels[name];
  if (!values) labels[name] = [value];
  else if (!values.includes(value)) values.push(value);
}

/** Merges label sets; earlier sets' values come first. */
export function mergeLabels(...sets: ContextLabels[]): ContextLabels {
  const out: ContextLabels = {};
  for (const set of sets)
    for (const [name, values] of Object.entries(set)) for (const v of values) add(out, name, v);
  return out;
}

/** The labels of a panel's query results: every field's `labels` of every frame in `data.series`. */
export function labelsFromSeries(data: unknown): ContextLabels {
  const labels: ContextLabels = {};
  const series = isRecord(data) && Array.isArray(data.series) ? data.series : [];
  for (const frame of series) {
    const fields = isRecord(frame) && Array.isArray(frame.fields) ? frame.fields : [];
    for (const field of fields) {
      if (!isRecord(field) || !isRecord(field.labels)) continue;
      for (const [name, value] of Object.entries(field.labels)) {
        const text = str(value);
        if (text !== undefined) add(labels, name, text);
      }
    }
  }
  return labels;
}

// A label matcher inside a PromQL/LogQL selector: name, operator, quoted value ("…", '…' or `…`).
const MATCHER = /([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)/g;
// A selector's braces; quoted values may hold braces themselves (`agent="${agent}"`, `route="/{id}"`).
const SELECTOR = /\{((?:[^{}"'`]|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)*)\}/g;
// A regex value made only of these is a literal: `agent=~"generation-agent"` is an equality.
const REGEX_META = /[.*+?^${}()|[\]\\]/;
// A template variable left unresolved (`$agent`, `${agent}`, `[[agent]]`) is not a label value.
const UNRESOLVED = /\$\w|\$\{|\[\[/;

function unquote(quoted: string): string {
  const body = quoted.slice(1, -1);
  return quoted.startsWith('`') ? body : body.replace(/\\(.)/g, '$1');
}

/**
 * The equality label matchers of the selectors in a PromQL or LogQL expression:
 * `up{job="agents", agent="generation-agent"}` → `{ job: ['agents'], agent: ['generation-agent'] }`.
 * `=~` counts when its value is a literal or an alternation of literals (`a|b`, as a multi-value
 * variable becomes); `!=` and `!~` say what the panel is not about, and are left out.
 */
export function labelsFromExpr(expr: string): ContextLabels {
  const labels: ContextLabels = {};
  for (const selector of expr.matchAll(SELECTOR)) {
    for (const m of (selector[1] ?? '').matchAll(MATCHER)) {
      const [, name = '', op, quoted = ''] = m;
      const value = unquote(quoted);
      if (UNRESOLVED.test(value)) continue;
      if (op === '=') add(labels, name, value);
      else if (op === '=~') {
        const alternatives = value.split('|');
        if (alternatives.every((a) => a !== '' && !REGEX_META.test(a))) {
          for (const a of alternatives) add(labels, name, a);
        }
      }
    }
  }
  return labels;
}

const VARIABLE = /\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)/g;

/** The text of a scoped variable (`{ text, value }`) or of a variable value. */
function variableText(value: unknown): VariableValue | undefined {
  if (isRecord(value)) return variableText(value.value ?? value.text);
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) {
    const texts = value.filter((v): v is string => typeof v === 'string');
    return texts.length === value.length ? texts : undefined;
  }
  return undefined;
}

/**
 * Replaces `$name`, `${name}`, `${name:format}` and `[[name]]` with the panel's scoped variables, else the
 * dashboard's; a multi-value variable becomes `a|b` (as Grafana formats it for a regex matcher). Unknown
 * variables are left as they are. Used when Grafana's own TemplateSrv is not there.
 */
export function interpolate(
  text: string,
  scopedVars: Record<string, unknown> = {},
  variables: Record<string, VariableValue> = {},
): string {
  return text.replace(VARIABLE, (whole, a?: string, b?: string, c?: string) => {
    const name = a ?? b ?? c ?? '';
    const value = name in scopedVars ? variableText(scopedVars[name]) : variables[name];
    if (value === undefined) return whole;
    return Array.isArray(value) ? value.join('|') : value;
  });
}

/** The query expressions of a panel's targets (`expr` for Prometheus and Loki, `query`/`rawSql` otherwise). */
function targetExpressions(targets: unknown): string[] {
  if (!Array.isArray(targets)) return [];
  const out: string[] = [];
  for (const target of targets) {
    if (!isRecord(target) || target.hide === true) continue;
    for (const key of ['expr', 'query']) {
      const text = str(target[key]);
      if (text) out.push(text);
    }
  }
  return out;
}

/** The labels in a panel's queries, with template variables resolved by `replace`. */
export function labelsFromTargets(targets: unknown, replace: (text: string) => string): ContextLabels {
  return mergeLabels(...targetExpressions(targets).map((expr) => labelsFromExpr(replace(expr))));
}

/** A time as an ISO string: Grafana's DateTime (a moment), a Date, epoch ms, or relative text like `now-1h`. */
function toIso(value: unknown, roundUp: boolean, timeZone?: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? new Date(value).toISOString() : undefined;
  try {
    const parsed = dateMath.parse(value as string | Date, roundUp, timeZone);
    return parsed?.isValid() ? parsed.toISOString() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The panel's time range as ISO times: the absolute range of its query results when present, else its raw
 * range (`now-6h` … `now`) resolved now.
 */
export function timeRangeOf(context: Record<string, unknown>): { from: string; to: string } | undefined {
  const timeZone = str(context.timeZone);
  const data = isRecord(context.data) ? context.data : undefined;
  for (const range of [data?.timeRange, context.timeRange]) {
    if (!isRecord(range)) continue;
    const from = toIso(range.from, false, timeZone);
    const to = toIso(range.to, true, timeZone);
    if (from && to) return { from, to };
  }
  return undefined;
}

/** Labels with one value each, at most the service's number of entries: what a run's `context.labels` takes. */
export function singleValued(labels: ContextLabels): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, values] of Object.entries(labels)) {
    if (values.length === 1 && values[0] !== undefined) out[name] = values[0];
    if (Object.keys(out).length >= MAX_ENTRIES) break;
  }
  return out;
}

function boundedVariables(variables: Record<string, VariableValue>): Record<string, VariableValue> {
  const out: Record<string, VariableValue> = {};
  for (const [name, value] of Object.entries(variables).slice(0, MAX_ENTRIES)) {
    if (!name || name.length > MAX_NAME) continue;
    const values = (Array.isArray(value) ? value : [value]).filter((v) => v.length <= MAX_VALUE);
    out[name] = Array.isArray(value) ? values.slice(0, MAX_VARIABLE_VALUES) : (values[0] ?? '');
  }
  return out;
}

const cut = (text: string | undefined, max = MAX_TITLE) =>
  text === undefined ? undefined : text.slice(0, max);

/** Options of {@link panelIncident}. */
export interface PanelIncidentOptions {
  /**
   * Grafana's variable interpolation (TemplateSrv.replace), which knows the dashboard's variables.
   * @default the built-in {@link interpolate} over `scopedVars` and `variables`
   */
  replace?: Interpolate;
  /** The dashboard's template variables, resolved. @default {} */
  variables?: Record<string, VariableValue>;
}

/**
 * What a dashboard panel's extension context (`PluginExtensionPanelContext`) says: labels from its query
 * results and from its queries' matchers, the dashboard's tags and variables, the time range, and the run
 * context to send.
 */
export function panelIncident(context: unknown, options: PanelIncidentOptions = {}): IncidentContext {
  const ctx = isRecord(context) ? context : {};
  const scopedVars = isRecord(ctx.scopedVars) ? ctx.scopedVars : {};
  const variables = options.variables ?? {};
  const replace = (text: string): string => {
    if (options.replace) {
      try {
        return options.replace(text, scopedVars);
      } catch {
        // Fall through to the built-in interpolation.
      }
    }
    return interpolate(text, scopedVars, variables);
  };
  // Query results first: they are what the panel shows, the matchers only what it asked for.
  const labels = mergeLabels(labelsFromSeries(ctx.data), labelsFromTargets(ctx.targets, replace));
  const dashboard = isRecord(ctx.dashboard) ? ctx.dashboard : {};
  const tags = Array.isArray(dashboard.tags)
    ? dashboard.tags.filter((t): t is string => typeof t === 'string')
    : [];
  const uid = str(dashboard.uid);
  const panelId = typeof ctx.id === 'number' || typeof ctx.id === 'string' ? ctx.id : undefined;
  const timeRange = timeRangeOf(ctx);
  const single = singleValued(labels);
  const bounded = boundedVariables(variables);
  const runContext: RunContextInput = {
    source: 'grafana',
    ...(uid
      ? {
          dashboard: {
            uid: uid.slice(0, MAX_NAME),
            ...(str(dashboard.title) ? { title: cut(str(dashboard.title)) } : {}),
            url: `/d/${encodeURIComponent(uid)}`,
          },
        }
      : {}),
    ...(panelId !== undefined && panelId !== ''
      ? { panel: { id: panelId, ...(str(ctx.title) ? { title: cut(str(ctx.title)) } : {}) } }
      : {}),
    ...(timeRange ? { timeRange } : {}),
    ...(Object.keys(single).length > 0 ? { labels: single } : {}),
    ...(Object.keys(bounded).length > 0 ? { variables: bounded } : {}),
  };
  return { kind: 'panel', labels, tags, variables, runContext };
}

/** A label set (`{ name: value }`) as read from an alert, string values only. */
function stringRecord(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isRecord(value)) return out;
  for (const [k, v] of Object.entries(value)) if (typeof v === 'string') out[k] = v;
  return out;
}

/**
 * What an alert instance's extension context says (Grafana passes `{ instance, rule }`, the instance with its
 * `labels`, `annotations` and `activeAt`): its labels, and the run context with the alert in it.
 */
export function alertIncident(context: unknown): IncidentContext {
  const ctx = isRecord(context) ? context : {};
  const instance = isRecord(ctx.instance) ? ctx.instance : isRecord(ctx.alert) ? ctx.alert : {};
  const rule = isRecord(ctx.rule) ? ctx.rule : {};
  // The instance's labels include the rule's; the rule's are the fallback for an instance without them.
  const own = stringRecord(instance.labels);
  const all = { ...stringRecord(rule.labels), ...own };
  if (!('alertname' in all) && str(rule.name)) all.alertname = str(rule.name) ?? '';
  const labels: ContextLabels = {};
  for (const [k, v] of Object.entries(all)) add(labels, k, v);
  const single = singleValued(labels);
  const startsAt = str(instance.activeAt) ?? str(instance.startsAt);
  const fingerprint = str(instance.fingerprint);
  const runContext: RunContextInput = {
    source: 'grafana',
    alert: {
      ...(fingerprint ? { fingerprint: fingerprint.slice(0, 200) } : {}),
      labels: single,
      ...(startsAt ? { startsAt: startsAt.slice(0, 100) } : {}),
    },
    ...(Object.keys(single).length > 0 ? { labels: single } : {}),
  };
  return { kind: 'alert', labels, tags: [], variables: {}, runContext };
}

/** True when there is something to match runbooks on: a label, or a dashboard tag. */
export function hasUsableContext(incident: Pick<IncidentContext, 'labels' | 'tags'>): boolean {
  return Object.keys(incident.labels).length > 0 || incident.tags.length > 0;
}
