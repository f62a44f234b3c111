/**
 * A TemplateSrv double for the host page: a dashboard's variables with their current values, and
 * Grafana's interpolation of `$name`, `${name}`, `${name:format}` and `[[name]]` (panel-scoped variables
 * first, then the dashboard's). Unknown variables stay as written, as in Grafana. Multi-value variables
 * are formatted like Grafana does for the few formats a panel's inputs use (`csv`, `pipe`/`regex`, `json`;
 * glob `{a,b}` by default).
 */
import type { ScopedVars, TimeRange, TypedVariableModel } from '@grafana/data';
import type { TemplateSrv } from '@grafana/runtime';
import type { HostVariable } from './state.ts';

const VARIABLE = /\$(\w+)|\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]/g;

function format(value: string | string[], how: string | undefined): string {
  if (!Array.isArray(value)) return how === 'json' ? JSON.stringify(value) : value;
  switch (how) {
    case 'csv':
      return value.join(',');
    case 'pipe':
    case 'regex':
      return value.join('|');
    case 'json':
      return JSON.stringify(value);
    default:
      return value.length === 1 ? (value[0] ?? '') : `{${value.join(',')}}`;
  }
}

/** The value of a scoped variable (`{ text, value }`). */
function scopedValue(scoped: ScopedVars | undefined, name: string): string | string[] | undefined {
  const value = scoped?.[name]?.value;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
    return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  return undefined;
}

/** A TemplateSrv over `variables`; `set` changes them (as picking another value in the dashboard does). */
export function createTemplateSrv(initial: HostVariable[] = []) {
  let variables = [...initial];
  const srv: TemplateSrv = {
    getVariables: () =>
      variables.map(
        (v) =>
          ({
            name: v.name,
            type: 'custom',
            label: v.name,
            multi: Array.isArray(v.value),
            current: { text: v.value, value: v.value, selected: true },
            options: [],
          }) as unknown as TypedVariableModel,
      ),
    replace(target, scopedVars, how) {
      if (!target) return '';
      return target.replace(
        VARIABLE,
        (whole, a?: string, b?: string, bf?: string, c?: string, cf?: string) => {
          const name = a ?? b ?? c ?? '';
          const value = scopedValue(scopedVars, name) ?? variables.find((v) => v.name === name)?.value;
          if (value === undefined) return whole;
          return format(value, bf ?? cf ?? (typeof how === 'string' ? how : undefined));
        },
      );
    },
    containsTemplate: (target) =>
      !!target &&
      [...target.matchAll(VARIABLE)].some((m) => variables.some((v) => v.name === (m[1] ?? m[2] ?? m[4]))),
    updateTimeRange: (_range: TimeRange) => {},
  };
  return {
    srv,
    set(next: HostVariable[]) {
      variables = [...next];
    },
  };
}
