/**
 * The app's provisioned dashboards (plugin.json `includes`), generated from the compact descriptions below so the
 * five stay consistent: same variables, same datasource reference, same action panel, a layout that cannot overlap.
 *
 * Regenerate the committed JSON after editing: `node src/dashboards/build-dashboards.ts` (from packages/grafana-app),
 * then `npx biome format --write src/dashboards/*.json`. dashboards.test.ts fails while the two differ.
 *
 * Every metric is one the operations manual (operational-runbooks.md) names in an alert or a query, and every
 * threshold is one of its numbers; where the manual names no metric for something its dashboards show (PgBouncer
 * pool usage, the Redis request queue, Selenium Grid capacity, the current model provider, A/B test results) there
 * is no panel rather than an invented metric.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Dashboard JSON schema version of Grafana 12. */
export const SCHEMA_VERSION = 41;
/** Type of the nested panel plugin that shows runbook buttons. */
export const ACTION_PANEL_TYPE = 'aiwebtest-runbookactions-panel';
/** Grafana's `${name}` / `${name:format}` variable syntax, which only looks like a JavaScript placeholder. */
const grafanaVar = (name: string, format?: string) => `\${${name}${format ? `:${format}` : ''}}`;
/** Every query goes to the Prometheus data source the viewer picks, never to a fixed uid. */
const DATASOURCE = { type: 'prometheus', uid: grafanaVar('datasource') } as const;

type Color = 'green' | 'yellow' | 'orange' | 'red';
/** Threshold steps, lowest first: `[base colour, [value, colour], …]`. */
type Steps = [Color, ...[number, Color][]];

interface Query {
  expr: string;
  legend?: string;
}

interface PanelSpec {
  type: 'timeseries' | 'stat' | 'gauge' | 'table';
  title: string;
  /** Says what the manual expects, so the numbers are readable without it. */
  description: string;
  queries: Query[];
  /** Grafana unit id. @default "short" */
  unit?: string;
  steps: Steps;
  min?: number;
  max?: number;
  /** Value → text (and colour) for 0/1 health gauges. */
  mappings?: Record<string, [string, Color]>;
  /** Width in grid columns (24 in all). */
  w: number;
  /** @default 8 for time series and tables, 5 for stats and gauges */
  h?: number;
}

/**
 * One button of the action panel, in the panel's options shape (panels/runbook-actions/options.ts): `inputs` maps
 * runbook input fields to literals or dashboard variables (`$namespace`, `${agent:text}`).
 */
export interface ActionSpec {
  label: string;
  runbookId: string;
  mode: 'diagnose' | 'plan' | 'execute';
  inputs: Record<string, string>;
}

type Variable =
  | { kind: 'textbox'; name: string; label: string; value: string; description: string }
  | {
      kind: 'custom';
      name: string;
      label: string;
      description: string;
      /** `[text, value]`: the text is what runbooks take, the value what the metrics' labels hold. */
      options: [string, string][];
    };

interface DashboardSpec {
  file: string;
  uid: string;
  name: string;
  area: string;
  description: string;
  variables: Variable[];
  actions: ActionSpec[];
  /** Rows of panels, left to right; a row's widths add up to at most 24. */
  rows: PanelSpec[][];
}

const NAMESPACE: Variable = {
  kind: 'textbox',
  name: 'namespace',
  label: 'Namespace',
  value: 'aiwebtest',
  description: 'Kubernetes namespace of AI-Web-Test, passed to the runbooks',
};

/** What most runbooks take from a dashboard: the namespace variable. */
const NAMESPACE_INPUT = { namespace: '$namespace' };
/** The agent-failure input from the Agents dashboard: the deployment name is the `agent` variable's text. */
const AGENT_INPUT = { agent: grafanaVar('agent', 'text'), namespace: '$namespace' };
/** The ML runbooks' input from the ML Monitoring dashboard. */
const MODEL_INPUT = { model: '$model', namespace: '$namespace' };

/** A button of the action panel in one mode; the runbook takes the namespace unless `inputs` says otherwise. */
const action =
  (mode: ActionSpec['mode']) =>
  (label: string, runbookId: string, inputs: Record<string, string> = NAMESPACE_INPUT): ActionSpec => ({
    label,
    runbookId,
    mode,
    inputs,
  });
const diagnose = action('diagnose');
const plan = action('plan');
const execute = action('execute');

/** What a panel may set besides its title, description, queries, thresholds and width. */
type PanelExtras = Pick<PanelSpec, 'unit' | 'min' | 'max' | 'mappings' | 'h'>;

/**
 * A builder for one panel type: `(title, description, queries, steps, w, extras)`. A lone string is one query
 * without a legend.
 */
const panelOf =
  (type: PanelSpec['type']) =>
  (
    title: string,
    description: string,
    queries: string | Query[],
    steps: Steps,
    w: number,
    extras: PanelExtras = {},
  ): PanelSpec => ({
    type,
    title,
    description,
    queries: typeof queries === 'string' ? [{ expr: queries }] : queries,
    steps,
    w,
    ...extras,
  });
const stat = panelOf('stat');
const timeseries = panelOf('timeseries');
const gauge = panelOf('gauge');
const table = panelOf('table');

/** One query drawn with a legend. */
const series = (expr: string, legend: string): Query[] => [{ expr, legend }];

/** Healthy at 1, red below (`*_up`, `*_health`). */
const HEALTHY_AT_1: Steps = ['red', [1, 'green']];
/** Red from 1 (detections, counts that should stay 0). */
const ALERT_AT_1: Steps = ['green', [1, 'red']];
/** Axis of a 0..1 value. */
const RATIO = { min: 0, max: 1 };
/** Axis of a value that cannot be negative. */
const FROM_0 = { min: 0 };

const up = (down: string, upText: string): Record<string, [string, Color]> => ({
  '0': [down, 'red'],
  '1': [upText, 'green'],
});
const UP = up('down', 'up');

const p95 = (bucket: string) => `histogram_quantile(0.95, sum by (le) (rate(${bucket}[$__rate_interval])))`;

const ERROR_RATIO =
  'sum(rate(http_request_duration_seconds_count{status=~"5.."}[$__rate_interval])) / sum(rate(http_request_duration_seconds_count[$__rate_interval]))';

const specs: DashboardSpec[] = [
  {
    file: 'agents.json',
    uid: 'aiwebtest-agents',
    name: 'Agents',
    area: 'agents',
    description: 'The six AI-Web-Test agents and the OpenRouter API they call (runbooks 1, 2, 6 and 7).',
    variables: [
      NAMESPACE,
      {
        kind: 'custom',
        name: 'agent',
        label: 'Agent',
        description:
          'The agent: its deployment name (for runbooks) and its `agent` label (for metrics, underscores)',
        options: ['requirements', 'generation', 'execution', 'observation', 'analysis', 'evolution'].map(
          (a): [string, string] => [`${a}-agent`, `${a}_agent`],
        ),
      },
    ],
    actions: [
      diagnose('Diagnose agent', 'agent-failure', AGENT_INPUT),
      plan('Plan agent restart', 'agent-failure', AGENT_INPUT),
      execute('Restart agent', 'agent-failure', AGENT_INPUT),
      diagnose('Diagnose generation quality', 'generation-agent-failure'),
      diagnose('Diagnose OpenRouter outage', 'openrouter-outage'),
      diagnose('Diagnose OpenRouter rate limit', 'openrouter-rate-limit'),
    ],
    rows: [
      [
        stat(
          'Agent health: $agent',
          'Runbook 1 alert: agent_health == 0.',
          'agent_health{agent="$agent"}',
          HEALTHY_AT_1,
          6,
          {
            mappings: UP,
          },
        ),
        stat(
          'Healthy agents',
          'Agents reporting agent_health 1, of the six.',
          'sum(agent_health)',
          ['red', [6, 'green']],
          6,
        ),
        stat(
          'OpenRouter API',
          'Runbook 6 alert: openrouter_api_up == 0 (switch to the fallback model).',
          'min(openrouter_api_up)',
          HEALTHY_AT_1,
          6,
          { mappings: UP },
        ),
        stat(
          'OpenRouter rate-limit errors',
          'Runbook 7 alert: openrouter_api_rate_limit_errors > 10.',
          'sum(openrouter_api_rate_limit_errors)',
          ['green', [10, 'red']],
          6,
        ),
      ],
      [
        timeseries(
          'Agent health',
          '1 while an agent answers its health check, 0 when it does not (runbook 1).',
          series('agent_health', '{{agent}}'),
          HEALTHY_AT_1,
          12,
          RATIO,
        ),
        timeseries(
          'Confidence score',
          'Runbook 2: alert below 0.7; should be above 0.85 after recovery.',
          series('agent_confidence', '{{agent}}'),
          ['red', [0.7, 'yellow'], [0.85, 'green']],
          12,
          { unit: 'percentunit', ...RATIO },
        ),
      ],
      [
        timeseries(
          'OpenRouter request rate',
          'Runbook 7: should stay below the 50/min limit; throttle at 80% of it (40/min).',
          series('sum(rate(openrouter_api_requests_total[$__rate_interval])) * 60', 'requests'),
          ['green', [40, 'yellow'], [50, 'red']],
          8,
          { unit: 'reqpm', ...FROM_0 },
        ),
        timeseries(
          'OpenRouter errors',
          'Runbook 6: failed OpenRouter calls per minute.',
          series('sum(rate(openrouter_api_errors_total[$__rate_interval])) * 60', 'errors'),
          ALERT_AT_1,
          8,
          FROM_0,
        ),
        timeseries(
          'OpenRouter p95 latency',
          'Runbook 8: above 10 s, switch to a faster model or enable caching.',
          series(p95('openrouter_api_duration_seconds_bucket'), 'p95'),
          ['green', [10, 'red']],
          8,
          { unit: 's', ...FROM_0 },
        ),
      ],
    ],
  },
  {
    file: 'database.json',
    uid: 'aiwebtest-database',
    name: 'Database',
    area: 'database',
    description: 'PostgreSQL behind PgBouncer: connection loss and slow queries (runbooks 4 and 5).',
    variables: [NAMESPACE],
    actions: [
      diagnose('Diagnose connection loss', 'postgres-connection-loss'),
      plan('Plan connection recovery', 'postgres-connection-loss'),
      diagnose('Diagnose slow queries', 'database-performance'),
      plan('Plan query clean-up', 'database-performance'),
    ],
    rows: [
      [
        stat('PostgreSQL', 'Runbook 4 alert: pg_up == 0.', 'min(pg_up)', HEALTHY_AT_1, 8, {
          mappings: UP,
          h: 6,
        }),
        timeseries(
          'PostgreSQL up',
          'pg_up over time: when connectivity was lost and came back (runbook 4).',
          series('pg_up', '{{instance}}'),
          HEALTHY_AT_1,
          16,
          { ...RATIO, h: 6 },
        ),
      ],
      [
        timeseries(
          'API p95 latency (recorded)',
          'Runbook 5 alert: http_request_duration_p95 > 5000 ms (runbook 8 from 2000 ms).',
          series('http_request_duration_p95', 'p95'),
          ['green', [2000, 'yellow'], [5000, 'red']],
          12,
          { unit: 'ms', ...FROM_0 },
        ),
        timeseries(
          'API p95 latency',
          'From the request histogram: slow queries show here first; above 5 s see runbook 5.',
          series(p95('http_request_duration_seconds_bucket'), 'p95'),
          ['green', [2, 'yellow'], [5, 'red']],
          12,
          { unit: 's', ...FROM_0 },
        ),
      ],
    ],
  },
  {
    file: 'api.json',
    uid: 'aiwebtest-api',
    name: 'API',
    area: 'api',
    description:
      'Latency and errors of the AI-Web-Test API, system and security health (runbooks 8, 12 and 13).',
    variables: [NAMESPACE],
    actions: [
      diagnose('Diagnose high latency', 'api-high-latency'),
      plan('Plan latency fix', 'api-high-latency'),
      diagnose('Diagnose OpenRouter outage', 'openrouter-outage'),
      diagnose('Diagnose security incident', 'security-breach'),
      diagnose('Diagnose system failure', 'system-failure'),
    ],
    rows: [
      [
        stat(
          'p95 latency',
          'Runbook 8: alert above 2 s; should drop below 500 ms after recovery.',
          p95('http_request_duration_seconds_bucket'),
          ['green', [0.5, 'yellow'], [2, 'red']],
          6,
          { unit: 's' },
        ),
        stat(
          'Error rate',
          'Runbook 13: should be below 1%; above 10% is a P1 incident.',
          ERROR_RATIO,
          ['green', [0.01, 'yellow'], [0.1, 'red']],
          6,
          { unit: 'percentunit' },
        ),
        stat(
          'System health',
          'Runbook 13 alert: system_health == 0 (complete system failure).',
          'min(system_health)',
          HEALTHY_AT_1,
          6,
          { mappings: UP },
        ),
        stat(
          'Security incident',
          'Runbook 12 alert: security_incident_detected == 1.',
          'max(security_incident_detected)',
          ALERT_AT_1,
          6,
          { mappings: { '0': ['none', 'green'], '1': ['detected', 'red'] } },
        ),
      ],
      [
        timeseries(
          'Latency p50 / p95 / p99',
          'Runbook 8: p95 above 2 s is an incident; the target after recovery is below 500 ms.',
          [0.5, 0.95, 0.99].map((q) => ({
            expr: `histogram_quantile(${q}, sum by (le) (rate(http_request_duration_seconds_bucket[$__rate_interval])))`,
            legend: `p${Math.round(q * 100)}`,
          })),
          ['green', [0.5, 'yellow'], [2, 'red']],
          12,
          { unit: 's', ...FROM_0 },
        ),
        timeseries(
          'Error rate',
          'Share of requests answered 5xx: below 1% is normal, above 10% a P1 incident.',
          series(ERROR_RATIO, '5xx'),
          ['green', [0.01, 'yellow'], [0.1, 'red']],
          12,
          { unit: 'percentunit', ...FROM_0 },
        ),
      ],
      [
        timeseries(
          'p95 latency (recorded)',
          'The alerting series: above 2000 ms runbook 8, above 5000 ms runbook 5.',
          series('http_request_duration_p95', 'p95'),
          ['green', [2000, 'yellow'], [5000, 'red']],
          12,
          { unit: 'ms', ...FROM_0 },
        ),
        timeseries(
          'OpenRouter p95 latency',
          'Runbook 8 step 5: an LLM slower than 10 s explains slow API calls.',
          series(p95('openrouter_api_duration_seconds_bucket'), 'p95'),
          ['green', [10, 'red']],
          12,
          { unit: 's', ...FROM_0 },
        ),
      ],
    ],
  },
  {
    file: 'test-execution.json',
    uid: 'aiwebtest-test-execution',
    name: 'Test Execution',
    area: 'test-execution',
    description: 'Test executions and the execution agent: stuck and slow runs (runbooks 3 and 9).',
    variables: [NAMESPACE],
    actions: [
      diagnose('Diagnose stuck executions', 'execution-agent-failure'),
      plan('Plan execution agent restart', 'agent-failure', {
        agent: 'execution-agent',
        namespace: '$namespace',
      }),
      diagnose('Diagnose slow tests', 'test-execution-high-latency'),
      plan('Plan Selenium scale-up', 'test-execution-high-latency'),
    ],
    rows: [
      [
        stat(
          'Execution time p95',
          'Runbook 9: alert above 300 s; should drop below 120 s after recovery.',
          'max(test_execution_duration_p95)',
          ['green', [120, 'yellow'], [300, 'red']],
          8,
          { unit: 's' },
        ),
        stat(
          'Longest running execution',
          'Runbook 3 alert: test_execution_duration > 600 (stuck for more than 10 minutes).',
          'max(test_execution_duration)',
          ['green', [300, 'yellow'], [600, 'red']],
          8,
          { unit: 's' },
        ),
        stat(
          'Executions over 10 minutes',
          'Runbook 3: executions past the 10-minute timeout are stuck and get cancelled.',
          'count(test_execution_duration > 600) or vector(0)',
          ALERT_AT_1,
          8,
        ),
      ],
      [
        timeseries(
          'Execution time p95',
          'Runbook 9: expected below 120 s, an incident above 300 s.',
          series('test_execution_duration_p95', 'p95'),
          ['green', [120, 'yellow'], [300, 'red']],
          12,
          { unit: 's', ...FROM_0 },
        ),
        timeseries(
          'Running execution durations',
          'Runbook 3: an execution running past 600 s is stuck.',
          'test_execution_duration',
          ['green', [600, 'red']],
          12,
          { unit: 's', ...FROM_0 },
        ),
      ],
      [
        table(
          'Longest running executions',
          'The ten longest test executions now; past 600 s they are stuck (runbook 3).',
          'topk(10, test_execution_duration)',
          ['green', [300, 'yellow'], [600, 'red']],
          24,
          { unit: 's' },
        ),
      ],
    ],
  },
  {
    file: 'ml-monitoring.json',
    uid: 'aiwebtest-ml-monitoring',
    name: 'ML Monitoring',
    area: 'ml',
    description: 'Model accuracy, data drift and generation confidence (runbooks 10 and 11).',
    variables: [
      NAMESPACE,
      {
        kind: 'custom',
        name: 'model',
        label: 'Model',
        description: 'The MLflow registered model the runbooks roll back or retrain',
        options: [['generation_model', 'generation_model']],
      },
    ],
    actions: [
      diagnose('Diagnose accuracy drop', 'model-accuracy-drop', MODEL_INPUT),
      plan('Plan model rollback', 'model-accuracy-drop', MODEL_INPUT),
      diagnose('Diagnose data drift', 'data-drift', MODEL_INPUT),
      plan('Plan retraining', 'data-drift', MODEL_INPUT),
    ],
    rows: [
      [
        gauge(
          'Model accuracy',
          'Runbook 10 alert: model_accuracy < 0.85.',
          'min(model_accuracy)',
          ['red', [0.85, 'green']],
          8,
          { unit: 'percentunit', ...RATIO, h: 6 },
        ),
        stat(
          'Data drift',
          'Runbook 11 alert: model_data_drift_detected == 1.',
          'max(model_data_drift_detected)',
          ALERT_AT_1,
          8,
          { mappings: { '0': ['none', 'green'], '1': ['drift', 'red'] }, h: 6 },
        ),
        stat(
          'Generation confidence',
          'Runbooks 2 and 10: generated tests are low quality below 0.7; healthy above 0.85.',
          'agent_confidence{agent="generation_agent"}',
          ['red', [0.7, 'yellow'], [0.85, 'green']],
          8,
          { unit: 'percentunit', h: 6 },
        ),
      ],
      [
        timeseries(
          'Model accuracy',
          'Runbook 10: alert below 0.85; should recover above 0.85 after rollback or retraining.',
          'model_accuracy',
          ['red', [0.85, 'green']],
          12,
          { unit: 'percentunit', ...RATIO },
        ),
        timeseries(
          'Data drift detected',
          'Runbook 11: 1 while the latest drift report finds drifted features.',
          'model_data_drift_detected',
          ALERT_AT_1,
          12,
          RATIO,
        ),
      ],
    ],
  },
];

function thresholds(steps: Steps) {
  const [base, ...rest] = steps;
  return {
    mode: 'absolute',
    steps: [{ color: base, value: null }, ...rest.map(([value, color]) => ({ color, value }))],
  };
}

function mappings(map: PanelSpec['mappings']) {
  if (!map) return [];
  const options = Object.fromEntries(
    Object.entries(map).map(([value, [text, color]], index) => [value, { text, color, index }]),
  );
  return [{ type: 'value', options }];
}

function options(spec: PanelSpec) {
  const reduceOptions = { calcs: ['lastNotNull'], fields: '', values: false };
  switch (spec.type) {
    case 'timeseries':
      return {
        legend: { displayMode: 'list', placement: 'bottom', showLegend: true, calcs: [] },
        tooltip: { mode: 'multi', sort: 'desc' },
      };
    case 'stat':
      return {
        reduceOptions,
        colorMode: 'background',
        graphMode: 'area',
        justifyMode: 'auto',
        orientation: 'auto',
        textMode: 'auto',
        showPercentChange: false,
        wideLayout: true,
      };
    case 'gauge':
      return { reduceOptions, orientation: 'auto', showThresholdLabels: false, showThresholdMarkers: true };
    case 'table':
      return { showHeader: true, cellHeight: 'sm', sortBy: [{ displayName: 'Value', desc: true }] };
  }
}

function panel(spec: PanelSpec, id: number, gridPos: { x: number; y: number; w: number; h: number }) {
  const instant = spec.type === 'table';
  return {
    id,
    type: spec.type,
    title: spec.title,
    description: spec.description,
    datasource: DATASOURCE,
    gridPos,
    fieldConfig: {
      defaults: {
        unit: spec.unit ?? 'short',
        ...(spec.min === undefined ? {} : { min: spec.min }),
        ...(spec.max === undefined ? {} : { max: spec.max }),
        color: { mode: spec.type === 'timeseries' ? 'palette-classic' : 'thresholds' },
        thresholds: thresholds(spec.steps),
        mappings: mappings(spec.mappings),
        // Time series draw the manual's thresholds as lines: the number to stay under is on the chart.
        ...(spec.type === 'timeseries'
          ? {
              custom: { drawStyle: 'line', lineWidth: 1, fillOpacity: 10, thresholdsStyle: { mode: 'line' } },
            }
          : {}),
      },
      overrides: [],
    },
    options: options(spec),
    targets: spec.queries.map((q, i) => ({
      refId: String.fromCharCode(65 + i),
      datasource: DATASOURCE,
      expr: q.expr,
      legendFormat: q.legend ?? '__auto',
      range: !instant,
      instant,
      ...(instant ? { format: 'table' } : {}),
    })),
    ...(instant ? { transformations: [{ id: 'organize', options: { excludeByName: { Time: true } } }] } : {}),
  };
}

function variable(v: Variable) {
  if (v.kind === 'textbox') {
    const current = { text: v.value, value: v.value };
    return {
      name: v.name,
      label: v.label,
      description: v.description,
      type: 'textbox',
      query: v.value,
      current,
      options: [{ ...current, selected: true }],
      hide: 0,
    };
  }
  const [first] = v.options;
  return {
    name: v.name,
    label: v.label,
    description: v.description,
    type: 'custom',
    // Grafana's key/value form: `text : value`.
    query: v.options.map(([text, value]) => `${text} : ${value}`).join(','),
    current: first ? { text: first[0], value: first[1] } : {},
    options: v.options.map(([text, value], i) => ({ text, value, selected: i === 0 })),
    multi: false,
    includeAll: false,
    hide: 0,
  };
}

function dashboard(spec: DashboardSpec) {
  const ACTION_HEIGHT = 5;
  const panels: unknown[] = [
    {
      id: 1,
      type: ACTION_PANEL_TYPE,
      title: 'Runbooks',
      description: 'Diagnose, plan and run the operations manual’s runbooks for what this dashboard shows.',
      datasource: DATASOURCE,
      gridPos: { x: 0, y: 0, w: 24, h: ACTION_HEIGHT },
      options: { actions: spec.actions },
      targets: [],
    },
  ];
  let y = ACTION_HEIGHT;
  for (const row of spec.rows) {
    let x = 0;
    let rowHeight = 0;
    for (const p of row) {
      const h = p.h ?? (p.type === 'timeseries' || p.type === 'table' ? 8 : 5);
      panels.push(panel(p, panels.length + 1, { x, y, w: p.w, h }));
      x += p.w;
      rowHeight = Math.max(rowHeight, h);
    }
    y += rowHeight;
  }
  return {
    uid: spec.uid,
    title: `AI-Web-Test ${spec.name}`,
    description: spec.description,
    tags: ['aiwebtest', spec.area],
    schemaVersion: SCHEMA_VERSION,
    version: 1,
    editable: true,
    graphTooltip: 1,
    refresh: '30s',
    time: { from: 'now-6h', to: 'now' },
    timepicker: {},
    timezone: 'browser',
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        },
      ],
    },
    links: [
      {
        title: 'Runbooks',
        type: 'link',
        url: '/a/aiwebtest-runbooks-app',
        icon: 'external link',
        targetBlank: false,
        asDropdown: false,
        includeVars: false,
        keepTime: false,
        tags: [],
      },
    ],
    templating: {
      list: [
        {
          name: 'datasource',
          label: 'Data source',
          type: 'datasource',
          query: 'prometheus',
          current: {},
          options: [],
          regex: '',
          refresh: 1,
          hide: 0,
        },
        ...spec.variables.map(variable),
      ],
    },
    panels,
  };
}

/** The dashboards, by file name under src/dashboards/. */
export function buildDashboards(): { file: string; json: Record<string, unknown> }[] {
  return specs.map((spec) => ({ file: spec.file, json: dashboard(spec) }));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dir = dirname(fileURLToPath(import.meta.url));
  for (const { file, json } of buildDashboards()) {
    writeFileSync(join(dir, file), `${JSON.stringify(json, null, 2)}\n`);
    console.log(`wrote ${join(dir, file)}`);
  }
}
