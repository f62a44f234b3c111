// @vitest-environment node
// The provisioned dashboards: their files against plugin.json and the generator, their structure, their PromQL
// (checked by the real promtool), their metric names against the operations manual, and their action panel.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { normalizeOptions } from '../panels/runbook-actions/options';
import { ACTION_PANEL_TYPE, buildDashboards } from './build-dashboards';

const dashboardsDir = dirname(fileURLToPath(import.meta.url));
const srcDir = join(dashboardsDir, '..');
const repoRoot = join(srcDir, '../../..');
const MANUAL = '/work/shared/seeds/operational-runbooks.md';
const PROMTOOL = '/usr/bin/promtool';
/** Grafana's reference to the `datasource` variable (a Grafana placeholder, not a JavaScript one). */
const DATASOURCE_VAR = `\${datasource}`;

const readJson = (path: string): unknown => JSON.parse(readFileSync(path, 'utf8'));
const manual = readFileSync(MANUAL, 'utf8');

/**
 * The manual's 13 runbooks by the id the pack gives them (kebab-case of the title, as `agent-failure` for
 * runbook 1); the titles are checked against the manual below.
 */
const KNOWN_RUNBOOKS: Record<string, { number: number; title: string }> = {
  'agent-failure': { number: 1, title: 'Requirements Agent Failure' },
  'generation-agent-failure': { number: 2, title: 'Generation Agent Failure' },
  'execution-agent-failure': { number: 3, title: 'Execution Agent Failure' },
  'postgres-connection-loss': { number: 4, title: 'PostgreSQL Connection Loss' },
  'database-performance': { number: 5, title: 'Database Performance Issues' },
  'openrouter-outage': { number: 6, title: 'OpenRouter API Complete Outage' },
  'openrouter-rate-limit': { number: 7, title: 'OpenRouter API Rate Limit' },
  'api-high-latency': { number: 8, title: 'API High Latency (p95 >2s)' },
  'test-execution-high-latency': { number: 9, title: 'Test Execution High Latency' },
  'model-accuracy-drop': { number: 10, title: 'Model Accuracy Drop' },
  'data-drift': { number: 11, title: 'Data Drift Detected' },
  'security-breach': { number: 12, title: 'Security Breach Detected' },
  'system-failure': { number: 13, title: 'Complete System Failure' },
};

/** Every metric the manual names in a Prometheus alert or query; the extraction below must find exactly these. */
const MANUAL_METRICS = [
  'agent_confidence',
  'agent_health',
  'http_request_duration_p95',
  'http_request_duration_seconds_bucket',
  'model_accuracy',
  'model_data_drift_detected',
  'openrouter_api_duration_seconds_bucket',
  'openrouter_api_errors_total',
  'openrouter_api_rate_limit_errors',
  'openrouter_api_requests_total',
  'openrouter_api_up',
  'pg_up',
  'security_incident_detected',
  'system_health',
  'test_execution_duration',
  'test_execution_duration_p95',
];

const PROMQL_WORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'inf',
  'nan',
  'atan2',
  'group_left',
  'group_right',
]);

/**
 * Metric names in a PromQL expression: identifiers that are not functions (followed by `(`), keywords, label
 * names (inside `{}` or `by (…)`), strings, durations (`[5m]`) or parts of numbers.
 */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = [...stripped.matchAll(/(?<![\w.:])[A-Za-z_:][\w:]*(?![\w:]|\s*\()/g)].map((m) => m[0]);
  return names.filter((n) => !PROMQL_WORDS.has(n.toLowerCase()));
}

/** The expressions of the manual's `Prometheus alert:` lines and `prometheus:9090/api/v1/query?query=` calls. */
function manualExpressions(): string[] {
  const alerts = [...manual.matchAll(/Prometheus alert: `([^`]+)`/g)].map((m) => m[1] as string);
  const queries = [...manual.matchAll(/\/api\/v1\/query\?query=(\S+)/g)].map((m) => m[1] as string);
  return [...alerts, ...queries];
}

const Var = z.object({
  name: z.string().regex(/^\w+$/),
  type: z.string(),
  query: z.string().optional(),
  current: z.unknown(),
});
const GridPos = z
  .object({ x: z.int().min(0), y: z.int().min(0), w: z.int().min(1), h: z.int().min(1) })
  .refine((g) => g.x + g.w <= 24, { message: 'a panel must fit in the 24 grid columns' });
const DatasourceRef = z.strictObject({ type: z.literal('prometheus'), uid: z.literal(DATASOURCE_VAR) });
const Target = z.object({ refId: z.string().min(1), expr: z.string().min(1), datasource: DatasourceRef });
const Action = z.strictObject({
  label: z.string().min(1),
  runbookId: z.string().regex(/^[a-z0-9]+(-[a-z0-9]+)*$/),
  mode: z.enum(['diagnose', 'plan', 'execute']),
  inputs: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]{0,99}$/), z.string()),
});
const Panel = z.discriminatedUnion('type', [
  z.object({
    id: z.int().min(1),
    type: z.literal(ACTION_PANEL_TYPE),
    title: z.string().min(1),
    gridPos: GridPos,
    datasource: DatasourceRef,
    options: z.strictObject({ actions: z.array(Action).min(1) }),
  }),
  z.object({
    id: z.int().min(1),
    type: z.enum(['timeseries', 'stat', 'gauge', 'table']),
    title: z.string().min(1),
    description: z.string().min(1),
    gridPos: GridPos,
    datasource: DatasourceRef,
    targets: z.array(Target).min(1),
    fieldConfig: z.object({
      defaults: z.object({
        unit: z.string(),
        thresholds: z.object({
          mode: z.literal('absolute'),
          steps: z.array(z.object({ color: z.string(), value: z.number().nullable() })).min(1),
        }),
      }),
    }),
  }),
]);
const Dashboard = z.object({
  uid: z.string().regex(/^aiwebtest-[a-z-]+$/),
  title: z.string().startsWith('AI-Web-Test '),
  tags: z.tuple([z.literal('aiwebtest'), z.string().min(1)]),
  schemaVersion: z.int().min(39),
  time: z.object({ from: z.string(), to: z.string() }),
  templating: z.object({ list: z.array(Var) }),
  panels: z.array(Panel).min(2),
});
type Dashboard = z.infer<typeof Dashboard>;
type Panel = z.infer<typeof Panel>;

const pluginJson = z
  .object({
    includes: z.array(z.object({ type: z.string(), name: z.string(), path: z.string().optional() })),
  })
  .parse(readJson(join(srcDir, 'plugin.json')));
const included = pluginJson.includes.filter((i) => i.type === 'dashboard');
// Parsed here, judged in the first test: a file that does not parse fails that test by name, not the whole file.
const parsed = included.map((i) => ({
  path: i.path ?? '',
  name: i.name,
  result: existsSync(join(srcDir, i.path ?? ''))
    ? Dashboard.safeParse(readJson(join(srcDir, i.path ?? '')))
    : null,
}));
const dashboards: { path: string; name: string; dashboard: Dashboard }[] = parsed.flatMap(
  ({ path, name, result }) => (result?.success ? [{ path, name, dashboard: result.data }] : []),
);

const queryPanels = (d: Dashboard) =>
  d.panels.filter((p): p is Extract<Panel, { targets: unknown }> => p.type !== ACTION_PANEL_TYPE);

/** `$name`, `${name}` and `${name:format}` references, by variable name. */
const variableRefs = (text: string) =>
  [...text.matchAll(/\$(?:\{(\w+)(?::\w+)?\}|(\w+))/g)].map((m) => (m[1] ?? m[2]) as string);

/** The variable's current value (what Grafana would send), and Grafana's built-in intervals. */
function substitute(expr: string, d: Dashboard): string {
  const values = new Map<string, string>([
    ['__rate_interval', '5m'],
    ['__interval', '1m'],
    ['__range', '1h'],
  ]);
  for (const v of d.templating.list) {
    const current = z.object({ value: z.string() }).safeParse(v.current);
    if (current.success) values.set(v.name, current.data.value);
  }
  return expr.replace(/\$(?:\{(\w+)(?::\w+)?\}|(\w+))/g, (ref, braced, bare) => {
    const value = values.get(braced ?? bare);
    if (value === undefined) throw new Error(`${d.uid}: ${ref} in "${expr}" is not a dashboard variable`);
    return value;
  });
}

const tmp = mkdtempSync(join(tmpdir(), 'aiwebtest-dashboards-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs `promtool check rules` on recording rules made of `exprs`; returns [exit code, output]. */
function promtoolCheck(name: string, exprs: string[]): [number, string] {
  if (!existsSync(PROMTOOL)) throw new Error(`${PROMTOOL} is missing: install the prometheus package`);
  const file = join(tmp, `${name}.rules.yml`);
  // JSON is YAML: no YAML library needed.
  const rules = exprs.map((expr, i) => ({ record: `aiwebtest:check_${i}`, expr }));
  writeFileSync(file, JSON.stringify({ groups: [{ name, rules }] }, null, 2));
  try {
    return [0, execFileSync(PROMTOOL, ['check', 'rules', file], { encoding: 'utf8', stdio: 'pipe' })];
  } catch (error) {
    const e = error as { status?: number; stdout?: string; stderr?: string };
    return [e.status ?? 1, `${e.stdout ?? ''}${e.stderr ?? ''}`];
  }
}

describe('provisioned dashboards', () => {
  it('exist and match the dashboard schema', () => {
    for (const { path, result } of parsed) {
      expect(result, `${path} is missing`).not.toBeNull();
      if (result && !result.success) expect.fail(`${path}: ${z.prettifyError(result.error)}`);
    }
    expect(dashboards).toHaveLength(parsed.length);
  });

  it('are the files plugin.json includes, no more and no fewer', () => {
    expect(included.length).toBe(5);
    const onDisk = readdirSync(dashboardsDir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => `dashboards/${f}`)
      .sort();
    expect(included.map((i) => i.path).sort()).toEqual(onDisk);
    for (const { name, dashboard } of dashboards) expect(dashboard.title).toBe(name);
  });

  it('equal the generator output', () => {
    const built = buildDashboards();
    expect(built.map((b) => `dashboards/${b.file}`).sort()).toEqual(included.map((i) => i.path).sort());
    for (const { file, json } of built)
      expect(
        readJson(join(dashboardsDir, file)),
        `${file}: run node src/dashboards/build-dashboards.ts`,
      ).toEqual(json);
  });

  it('have unique uids, unique panel ids and panels that do not overlap', () => {
    expect(new Set(dashboards.map((d) => d.dashboard.uid)).size).toBe(dashboards.length);
    for (const { dashboard: d } of dashboards) {
      const ids = d.panels.map((p) => p.id);
      expect(new Set(ids).size, `${d.uid} panel ids`).toBe(ids.length);
      d.panels.forEach((a, i) => {
        for (const b of d.panels.slice(i + 1)) {
          const g = a.gridPos;
          const h = b.gridPos;
          const overlap = g.x < h.x + h.w && h.x < g.x + g.w && g.y < h.y + h.h && h.y < g.y + g.h;
          expect(overlap, `${d.uid}: "${a.title}" overlaps "${b.title}"`).toBe(false);
        }
      });
    }
  });

  it('take every datasource from the one `datasource` variable of type datasource (Prometheus)', () => {
    for (const { path, dashboard: d } of dashboards) {
      const ds = d.templating.list.filter((v) => v.type === 'datasource');
      expect(ds.map((v) => v.name)).toEqual(['datasource']);
      expect(d.templating.list.find((v) => v.name === 'datasource')).toMatchObject({ query: 'prometheus' });
      // The zod schema already pins every panel and target datasource to `${datasource}`; no uid anywhere else.
      const json = readFileSync(join(srcDir, path), 'utf8');
      const uids = [...json.matchAll(/"uid":\s*"([^"]*)"/g)].map((m) => m[1]);
      expect(new Set(uids)).toEqual(new Set([d.uid, DATASOURCE_VAR, '-- Grafana --']));
    }
  });

  it('reference only variables they define', () => {
    for (const { dashboard: d } of dashboards) {
      const names = new Set([
        '__rate_interval',
        '__interval',
        '__range',
        ...d.templating.list.map((v) => v.name),
      ]);
      for (const p of queryPanels(d))
        for (const ref of [p.title, ...p.targets.map((t) => t.expr)].flatMap(variableRefs))
          expect(names.has(ref), `${d.uid} "${p.title}": $${ref}`).toBe(true);
    }
  });

  it('have PromQL that the real promtool accepts', () => {
    for (const { dashboard: d } of dashboards) {
      const exprs = queryPanels(d).flatMap((p) => p.targets.map((t) => substitute(t.expr, d)));
      expect(exprs.length).toBeGreaterThan(3);
      const [status, output] = promtoolCheck(d.uid, exprs);
      expect(status, `${d.uid}: ${output}`).toBe(0);
      expect(output).toContain(`SUCCESS: ${exprs.length} rules found`);
    }
  });

  it('promtool rejects a malformed expression (the check above can fail)', () => {
    const [status, output] = promtoolCheck('broken', ['sum(rate(agent_health[5m])']);
    expect(status).not.toBe(0);
    expect(output).toMatch(/unclosed|parse error|FAILED/i);
  });

  it('finds exactly the listed metrics in the manual', () => {
    expect(new Set(manualExpressions().flatMap(metricNames))).toEqual(new Set(MANUAL_METRICS));
  });

  it('use only metrics the manual names (a histogram `_bucket` brings its `_count` and `_sum`)', () => {
    const known = new Set(MANUAL_METRICS);
    const used = new Set<string>();
    for (const { dashboard: d } of dashboards)
      for (const p of queryPanels(d))
        for (const t of p.targets)
          for (const name of metricNames(t.expr)) {
            used.add(name);
            const family = name.replace(/_(count|sum)$/, '_bucket');
            expect(known.has(name) || known.has(family), `${d.uid} "${p.title}" uses ${name}`).toBe(true);
          }
    // The extraction is not vacuous: the dashboards use most of the manual's metrics.
    expect(used.size).toBeGreaterThanOrEqual(14);
  });

  it('show the manual’s thresholds: p95 latency 2 s, accuracy 0.85, confidence 0.7, stuck executions 600 s', () => {
    const steps = (uid: string, title: string) => {
      const d = dashboards.find((x) => x.dashboard.uid === uid)?.dashboard;
      const p = d && queryPanels(d).find((x) => x.title === title && x.type === 'timeseries');
      return p?.fieldConfig.defaults.thresholds.steps.map((s) => s.value);
    };
    expect(steps('aiwebtest-api', 'Latency p50 / p95 / p99')).toContain(2);
    expect(steps('aiwebtest-api', 'p95 latency (recorded)')).toEqual([null, 2000, 5000]);
    expect(steps('aiwebtest-ml-monitoring', 'Model accuracy')).toEqual([null, 0.85]);
    expect(steps('aiwebtest-agents', 'Confidence score')).toEqual([null, 0.7, 0.85]);
    expect(steps('aiwebtest-agents', 'OpenRouter request rate')).toContain(50);
    expect(steps('aiwebtest-test-execution', 'Running execution durations')).toContain(600);
    expect(steps('aiwebtest-test-execution', 'Execution time p95')).toEqual([null, 120, 300]);
  });

  it('have one action panel at the top, with known runbooks and inputs from the dashboard’s variables', () => {
    for (const { dashboard: d } of dashboards) {
      const actionPanels = d.panels.filter((p) => p.type === ACTION_PANEL_TYPE);
      expect(actionPanels, d.uid).toHaveLength(1);
      const [panel] = actionPanels;
      if (panel?.type !== ACTION_PANEL_TYPE) throw new Error('unreachable');
      expect(panel.gridPos.y, `${d.uid}: the action panel is in the first row`).toBe(0);
      // The panel itself reads these options: none of them may be dropped as malformed.
      const normalized = normalizeOptions(panel.options);
      expect(normalized.problems, d.uid).toEqual([]);
      expect(normalized.actions).toHaveLength(panel.options.actions.length);
      const variables = new Set(d.templating.list.map((v) => v.name));
      for (const action of panel.options.actions) {
        expect(Object.keys(KNOWN_RUNBOOKS), `${d.uid}: ${action.label}`).toContain(action.runbookId);
        for (const value of Object.values(action.inputs))
          for (const ref of variableRefs(value))
            expect(variables.has(ref), `${d.uid} "${action.label}": $${ref}`).toBe(true);
      }
    }
  });

  it('name runbooks as the manual titles them and as the pack defines them', () => {
    for (const { number, title } of Object.values(KNOWN_RUNBOOKS))
      expect(manual).toContain(`### Runbook ${number}: ${title}\n`);
    // Each pack runbook tagged `runbook: N` must carry the id the dashboards use for runbook N.
    const packDir = join(repoRoot, 'packages/examples/src/aiwebtest');
    const byNumber = new Map(Object.entries(KNOWN_RUNBOOKS).map(([id, r]) => [r.number, id]));
    let checked = 0;
    for (const file of readdirSync(packDir).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))) {
      const source = readFileSync(join(packDir, file), 'utf8');
      const id = /\bid:\s*'([a-z0-9-]+)'/.exec(source)?.[1];
      const number = /'runbook:\s*(\d+)'/.exec(source)?.[1];
      if (!id || !number) continue;
      if (byNumber.has(Number(number))) {
        expect(byNumber.get(Number(number)), `${file} (runbook ${number})`).toBe(id);
        checked++;
      }
    }
    expect(checked, 'runbooks 1–13 of the pack').toBe(13);
  });
});
