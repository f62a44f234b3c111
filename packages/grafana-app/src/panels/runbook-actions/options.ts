/**
 * The panel's options as saved in the dashboard JSON, and their validation. Dashboard JSON is outside
 * input (hand-edited, imported, provisioned): {@link normalizeOptions} keeps the well-formed actions and
 * names what is wrong with the others, so one broken action never hides the rest. Pure (no Grafana import),
 * tested without rendering.
 */

/** What a button does: look only, show the plan, or plan, confirm and execute. */
export type ActionMode = 'diagnose' | 'plan' | 'execute';

export const ACTION_MODES: readonly ActionMode[] = ['diagnose', 'plan', 'execute'];

/** One runbook input field and where its value comes from. */
export interface InputMapping {
  /** The runbook input field (a top-level property of the runbook's input schema). */
  field: string;
  /**
   * A literal (`generation-agent`, `3`, `true`) or text with dashboard variables (`$agent`, `${agent}`,
   * `[[agent]]`), resolved when the button is clicked. Empty leaves the field out, so the runbook's
   * default applies.
   * @default ''
   */
  value: string;
}

/** One button of the panel. */
export interface ActionConfig {
  /** The button's text. @default the runbook id */
  label: string;
  /** The runbook the button runs. */
  runbookId: string;
  /** @default 'diagnose' */
  mode: ActionMode;
  /** The runbook's input, field by field. @default [] */
  inputs: InputMapping[];
}

/** The panel's options. */
export interface RunbookActionsOptions {
  /** The buttons, in order. @default [] */
  actions: ActionConfig[];
}

/** A problem with one configured action, as the panel shows it. */
export interface OptionProblem {
  /** Index of the action in `actions`. */
  index: number;
  /** The field path, e.g. `actions[1].mode`. */
  path: string;
  message: string;
}

const FIELD = /^[A-Za-z_][A-Za-z0-9_-]{0,99}$/;
const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The valid actions of raw panel options, and a problem for each invalid one (which is left out).
 * Accepts `inputs` as a list of `{ field, value }` or as an object `{ field: value }` (easier to hand-write).
 */
export function normalizeOptions(raw: unknown): { actions: ActionConfig[]; problems: OptionProblem[] } {
  const problems: OptionProblem[] = [];
  const list = isRecord(raw) ? raw.actions : undefined;
  if (list === undefined) return { actions: [], problems };
  if (!Array.isArray(list)) {
    return {
      actions: [],
      problems: [{ index: -1, path: 'actions', message: 'expected a list of actions' }],
    };
  }
  const actions: ActionConfig[] = [];
  for (const [index, item] of (list as unknown[]).entries()) {
    const at = `actions[${index}]`;
    const fail = (path: string, message: string) => {
      problems.push({ index, path: `${at}${path}`, message });
    };
    if (!isRecord(item)) {
      fail('', 'expected an object with runbookId, mode, label and inputs');
      continue;
    }
    const runbookId = typeof item.runbookId === 'string' ? item.runbookId.trim() : '';
    if (!runbookId) {
      fail('.runbookId', 'expected the id of a runbook');
      continue;
    }
    const mode = item.mode ?? 'diagnose';
    if (typeof mode !== 'string' || !ACTION_MODES.includes(mode as ActionMode)) {
      fail('.mode', `expected one of ${ACTION_MODES.join(', ')}, got ${JSON.stringify(mode)}`);
      continue;
    }
    if (item.label !== undefined && typeof item.label !== 'string') {
      fail('.label', 'expected text');
      continue;
    }
    const inputs = normalizeInputs(item.inputs);
    if (typeof inputs === 'string') {
      fail('.inputs', inputs);
      continue;
    }
    actions.push({
      label: typeof item.label === 'string' && item.label.trim() ? item.label.trim() : runbookId,
      runbookId,
      mode: mode as ActionMode,
      inputs,
    });
  }
  return { actions, problems };
}

/** The input mappings of one action, or what is wrong with them. */
function normalizeInputs(raw: unknown): InputMapping[] | string {
  if (raw === undefined || raw === null) return [];
  const entries: Array<[unknown, unknown]> = Array.isArray(raw)
    ? raw.map((m: unknown) => (isRecord(m) ? [m.field, m.value ?? ''] : [undefined, undefined]))
    : isRecord(raw)
      ? Object.entries(raw)
      : [];
  if (!Array.isArray(raw) && !isRecord(raw)) return 'expected a list of { field, value } or an object';
  const seen = new Set<string>();
  const mappings: InputMapping[] = [];
  for (const [field, value] of entries) {
    if (typeof field !== 'string' || !FIELD.test(field)) {
      return `expected field names like "agent" (letters, digits, _ and -), got ${JSON.stringify(field)}`;
    }
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      return `expected the value of "${field}" to be text (a literal or $variable)`;
    }
    if (seen.has(field)) return `field "${field}" is mapped twice`;
    seen.add(field);
    mappings.push({ field, value: String(value) });
  }
  return mappings;
}

/**
 * The actions as the panel editor edits them: every object item kept with defaults filled in, including
 * ones still being written (no runbook yet, an input row without a field name), which {@link normalizeOptions}
 * would leave out of the panel.
 */
export function editableActions(raw: unknown): ActionConfig[] {
  if (!Array.isArray(raw)) return [];
  return raw.filter(isRecord).map((item) => ({
    label: typeof item.label === 'string' ? item.label : '',
    runbookId: typeof item.runbookId === 'string' ? item.runbookId : '',
    mode: ACTION_MODES.includes(item.mode as ActionMode) ? (item.mode as ActionMode) : 'diagnose',
    inputs: Array.isArray(item.inputs)
      ? item.inputs.filter(isRecord).map((m) => ({
          field: typeof m.field === 'string' ? m.field : '',
          value: typeof m.value === 'string' ? m.value : m.value === undefined ? '' : String(m.value),
        }))
      : isRecord(item.inputs)
        ? Object.entries(item.inputs).map(([field, value]) => ({ field, value: String(value ?? '') }))
        : [],
  }));
}
