import { z } from 'zod';
import { InputValidationError } from '../core/errors';
import type { Json } from '../core/json';
import type { RunMode } from '../core/step';

// Prometheus label names; annotations follow the same rule in practice.
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const LabelName = z.string().regex(LABEL_NAME, 'must be a label name ([a-zA-Z_][a-zA-Z0-9_]*)');

/** `{{ labels.agent }}`, `{{annotations.summary}}`: the only placeholders input templates may hold. */
const PLACEHOLDER = /\{\{(.*?)\}\}/g;
const REFERENCE = /^\s*(labels|annotations)\.([a-zA-Z_][a-zA-Z0-9_]*)\s*$/;

/** Alertmanager anchors its regex matchers; so do we, so that `.*_agent` cannot match a substring. */
function anchored(source: string): RegExp {
  return new RegExp(`^(?:${source})$`);
}

/** Every placeholder of `text` that is not `labels.<name>` or `annotations.<name>`. */
function badPlaceholders(text: string): string[] {
  return [...text.matchAll(PLACEHOLDER)].filter((m) => !REFERENCE.test(m[1] ?? '')).map((m) => m[0]);
}

/** Calls `visit` on every string of a JSON value with its path below `path`. */
function eachString(
  value: unknown,
  path: (string | number)[],
  visit: (s: string, p: (string | number)[]) => void,
) {
  if (typeof value === 'string') visit(value, path);
  else if (Array.isArray(value)) {
    value.forEach((v, i) => {
      eachString(v, [...path, i], visit);
    });
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) eachString(v, [...path, k], visit);
  }
}

/** One rule turning matching alerts into runs of a runbook. */
export const AlertRoute = z.strictObject({
  /** Unique; shown in audit entries and alert records. Lowercase letters, digits and `-`. */
  name: z.string().regex(/^[a-z0-9-]{1,63}$/, 'must be 1 to 63 lowercase letters, digits or "-"'),
  /** Labels that must equal these values; all must hold. @default {} (no equality condition) */
  match: z.record(LabelName, z.string()).default({}),
  /** Labels that must match these regexes, anchored like Alertmanager's (`^(?:…)$`). @default {} */
  matchRegex: z
    .record(
      LabelName,
      z.string().refine(
        (source) => {
          try {
            anchored(source);
            return true;
          } catch {
            return false;
          }
        },
        { message: 'must be a valid regular expression' },
      ),
    )
    .default({}),
  /** The runbook to run; must be loaded (checked when the server is created). */
  runbook: z.string().min(1).max(200),
  /**
   * The runbook's input. Strings may hold `{{ labels.<name> }}` and `{{ annotations.<name> }}`; an alert
   * without that label or annotation is reported unroutable. @default {}
   */
  input: z
    .record(z.string(), z.json())
    .default({})
    .superRefine((input, ctx) => {
      eachString(input, [], (text, path) => {
        for (const bad of badPlaceholders(text)) {
          ctx.addIssue({
            code: 'custom',
            path,
            message: `${bad} is not a known placeholder; use {{ labels.<name> }} or {{ annotations.<name> }}`,
          });
        }
      });
    }),
  /**
   * `diagnose`: checks only. `plan`: checks and a plan, nothing applied. `ask`: execute, but every plan waits
   * for a person's approval. `execute`: applies within the approval policy and remediation budgets.
   * @default "diagnose"
   */
  mode: z.enum(['diagnose', 'plan', 'ask', 'execute']).default('diagnose'),
  /** Keep looking for further matching routes after this one. @default false (the first match wins) */
  continue: z.boolean().default(false),
});
/** One alert route, as written in the config file. */
export type AlertRoute = z.input<typeof AlertRoute>;

/** The `alerts` section of the service config: how Alertmanager alerts become runs. */
export const AlertRouting = z.strictObject({
  /** Tried in order; the first match wins unless it says `continue: true`. @default [] */
  routes: z
    .array(AlertRoute)
    .default([])
    .superRefine((routes, ctx) => {
      const seen = new Map<string, number>();
      routes.forEach((route, i) => {
        const first = seen.get(route.name);
        if (first !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: [i, 'name'],
            message: `is already the name of routes.${first}; route names must be unique`,
          });
        } else seen.set(route.name, i);
      });
    }),
});
/** Routing of Alertmanager alerts to runbooks. */
export type AlertRouting = z.input<typeof AlertRouting>;

/** What routing looks at in an alert. */
export interface RoutableAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** A route ready for matching: regexes compiled once. */
export interface CompiledRoute {
  name: string;
  runbook: string;
  /** The engine's mode: `ask` runs as `execute` with every plan waiting for approval. */
  mode: RunMode;
  approval: 'always' | undefined;
  /** Whether later routes are tried after this one matched. */
  continue: boolean;
  matches(alert: RoutableAlert): boolean;
  /** The input for `alert`, or the reason it cannot be built (a missing label or annotation). */
  render(alert: RoutableAlert): { input: Json } | { reason: string };
}

/** The routes of a validated routing config, in order. */
export function compileRouting(routing: z.output<typeof AlertRouting> | undefined): CompiledRoute[] {
  return (routing?.routes ?? []).map((route) => {
    const regexes = Object.entries(route.matchRegex).map(
      ([label, source]) => [label, anchored(source)] as const,
    );
    return {
      name: route.name,
      runbook: route.runbook,
      mode: route.mode === 'ask' ? 'execute' : route.mode,
      approval: route.mode === 'ask' ? 'always' : undefined,
      continue: route.continue,
      matches: (alert) =>
        Object.entries(route.match).every(([label, value]) => alert.labels[label] === value) &&
        // A missing label is the empty string to Alertmanager's matchers; same here.
        regexes.every(([label, regex]) => regex.test(alert.labels[label] ?? '')),
      render: (alert) => renderInput(route.input as Json, alert),
    };
  });
}

/** Fills the placeholders of every string in `template`. */
function renderInput(template: Json, alert: RoutableAlert): { input: Json } | { reason: string } {
  const missing: string[] = [];
  const fill = (value: Json): Json => {
    if (typeof value === 'string') {
      return value.replace(PLACEHOLDER, (whole, inner: string) => {
        const [, namespace, name] = REFERENCE.exec(inner) ?? [];
        const found = namespace && name ? alert[namespace as 'labels' | 'annotations'][name] : undefined;
        if (found === undefined) {
          missing.push(`${namespace}.${name}`);
          return whole;
        }
        return found;
      });
    }
    if (Array.isArray(value)) return value.map(fill);
    if (value && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fill(v as Json)]));
    }
    return value;
  };
  const input = fill(template);
  if (missing.length > 0) {
    return { reason: `the alert has no ${[...new Set(missing)].join(', ')}, which the route's input uses` };
  }
  return { input };
}

/**
 * Throws an {@link InputValidationError} naming `alerts.routes.<i>.runbook` for each route whose runbook is
 * not among `known`: a typo must stop the service at start-up, not drop alerts at 3 a.m.
 */
export function checkRoutedRunbooks(routing: AlertRouting | undefined, known: readonly string[]): void {
  const issues = (routing?.routes ?? []).flatMap((route, i) =>
    known.includes(route.runbook)
      ? []
      : [
          {
            path: `alerts.routes.${i}.runbook`,
            message: `no runbook "${route.runbook}" is loaded; loaded: ${[...known].sort().join(', ') || 'none'}`,
          },
        ],
  );
  if (issues.length > 0) throw new InputValidationError('alert routing', issues);
}
