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

/** The agent-failure input from the Agents dashboard: the deployment name is the `agent` variable's text. */
const AGENT_INPUT = { agent: grafanaVar('agent', 'text'), namespace: '$namespace' };

const up = (down: string, upText: string): Record<string, [string, Color]> => ({
  '0': [down, 'red'],
  '1': [upText, 'green'],
});

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
      {
        label: 'Diagnose agent',
        runbookId: 'agent-failure',
        mode: 'diagnose',
        inputs: AGENT_INPUT,
      },
      {
        label: 'Plan agent restart',
        runbookId: 'agent-failure',
        mode: 'plan',
        inputs: AGENT_INPUT,
      },
      {
        label: 'Restart agent',
        runbookId: 'agent-failure',
        mode: 'execute',
        inputs: AGENT_INPUT,
      },
      {
        label: 'Diagnose generation quality',
        runbookId: 'generation-agent-failure',
        mode: 'diagnose',
        inputs: { namespace: '$namespace' },
      },
      {
        label: 'Diagnose OpenRouter outage',
        runbookId: 'openrouter-outage',
        mode: 'diagnose',
        inputs: { namespace: '$namespace' },
      },
      {
        label: 'Diagnose OpenRouter rate limit',
        runbookId: 'openrouter-rate-limit',
        mode: 'diagnose',
        inputs: { namespace: '$namespace' },
      },
    ],
    rows: [
      [
        {
          type: 'stat',
          title: 'Agent health: $agent',
          description: 'Runbook 1 alert: agent_health == 0.',
          queries: [{ expr: 'agent_health{agent="$agent"}' }],
          steps: ['red', [1, 'green']],
          mappings: up('down', 'up'),
          w: 6,
        },
        {
          type: 'stat',
          title: 'Healthy agents',
          description: 'Agents reporting agent_health 1, of the six.',
          queries: [{ expr: 'sum(agent_health)' }],
          steps: ['red', [6, 'green']],
          w: 6,
        },
        {
          type: 'stat',
          title: 'OpenRouter API',
          description: 'Runbook 6 alert: openrouter_api_up == 0 (switch to the fallback model).',
          queries: [{ expr: 'min(openrouter_api_up)' }],
          steps: ['red', [1, 'green']],
          mappings: up('down', 'up'),
          w: 6,
        },
        {
          type: 'stat',
          title: 'OpenRouter rate-limit errors',
          description: 'Runbook 7 alert: openrouter_api_rate_limit_errors > 10.',
          queries: [{ expr: 'sum(openrouter_api_rate_limit_errors)' }],
          steps: ['green', [10, 'red']],
          w: 6,
        },
      ],
      [
        {
          type: 'timeseries',
          title: 'Agent health',
          description: '1 while an agent answers its health check, 0 when it does not (runbook 1).',
          queries: [{ expr: 'agent_health', legend: '{{agent}}' }],
          steps: ['red', [1, 'green']],
          min: 0,
          max: 1,
          w: 12,
        },
        {
          type: 'timeseries',
          title: 'Confidence score',
          description: 'Runbook 2: alert below 0.7; should be above 0.85 after recovery.',
          queries: [{ expr: 'agent_confidence', legend: '{{agent}}' }],
          unit: 'percentunit',
          steps: ['red', [0.7, 'yellow'], [0.85, 'green']],
          min: 0,
          max: 1,
          w: 12,
        },
      ],
      [
        {
          type: 'timeseries',
          title: 'OpenRouter request rate',
          description: 'Runbook 7: should stay below the 50/min limit; throttle at 80% of it (40/min).',
          queries: [
            { expr: 'sum(rate(openrouter_api_requests_total[$__rate_interval])) * 60', legend: 'requests' },
          ],
          unit: 'reqpm',
          steps: ['green', [40, 'yellow'], [50, 'red']],
          min: 0,
          w: 8,
        },
        {
          type: 'timeseries',
          title: 'OpenRouter errors',
          description: 'Runbook 6: failed OpenRouter calls per minute.',
          queries: [
            { expr: 'sum(rate(openrouter_api_errors_total[$__rate_interval])) * 60', legend: 'errors' },
          ],
          unit: 'short',
          steps: ['green', [1, 'red']],
          min: 0,
          w: 8,
        },
        {
          type: 'timeseries',
          title: 'OpenRouter p95 latency',
          description: 'Runbook 8: above 10 s, switch to a faster model or enable caching.',
          queries: [{ expr: p95('openrouter_api_duration_seconds_bucket'), legend: 'p95' }],
          unit: 's',
          steps: ['green', [10, 'red']],
          min: 0,
          w: 8,
        },
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
      {
        label: 'Diagnose connection loss',
        runbookId: 'postgres-connection-loss',
        mode: 'diagnose',
        inputs: { namespace: '$namespace' },
      },
      {
        label: 'Plan connection recovery',
        runbookId: 'postgres-connection-loss',
        mode: 'plan',
        inputs: { namespace: '$namespace' },
      },
      {
        label: 'Diagnose slow queries',
        runbookId: 'database-performance',
        mode: 'diagnose',
        inputs: { namespace: '$namespace' },
      },
      {
        label: 'Plan query clean-up',
        runbookId: 'database-performance',
        mode: 'plan',
        inputs: { namespace: '$namespace' },
      },
    ],
    rows: [
      [
        {
          type: 'stat',
          title: 'PostgreSQL',
          description: 'Runbook 4 alert: pg_up == 0.',
          queries: [{ expr: 'min(pg_up)' }],
          steps: ['red', [1, 'green']],
          mappings: up('down', 'up'),
          w: 8,
          h: 6,
        },
        {
          type: 'timeseries',
          title: 'PostgreSQL up',
          description: 'pg_up over time: when connectivity was lost and came back (runbook 4).',
          queries: [{ expr: 'pg_up', legend: '{{instance}}' }],
          steps: ['red', [1, 'green']],
          min: 0,
          max: 1,
          w: 16,
          h: 6,
        },
      ],
      [
        {
          type: 'timeseries',
          title: 'API p95 latency (recorded)',
          description: 'Runbook 5 alert: http_request_duration_p95 > 5000 ms (runbook 8 from 2000 ms).',
          queries: [{ expr: 'http_request_duration_p95', legend: 'p95' }],
          unit: 'ms',
          steps: ['green', [2000, 'yellow'], [5000, 'red']],
          min: 0,
          w: 12,
        },
        {
          type: 'timeseries',
          title: 'API p95 latency',
          description: 'From the request histogram: slow queries show here first; above 5 s see runbook 5.',
          queries: [{ expr: p95('http_request_duration_seconds_bucket'), legend: 'p95' }],
          unit: 's',
          steps: ['green', [2, 'yellow'], [5, 'red']],
          min: 0,
          w: 12,
        },
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
      {
        label: 'Diagnose high latency',
        runbookId: 'api-high-latency',
        mode: 'diagnose',
        inputs: { namespace: '$namespace' },
      },
      {
        label: 'Plan latency fix',
        runbookId: 'api-high-latency',
        mode: 'plan',
        inputs: { namespace: '$namespace' },
      },
      {
        label: 'Diagnose OpenRouter outage',
        runbookId: 'openrouter-outage',
        mode: 'diagnose',
        inputs: { namespace: '$namespace' },
      },
      {
        label: 'Diagnose security incident',
        runbookId: 'security-breach',
        mode: 'diagnose',
        inputs: { namespace: '$namespace' },
      },
      {
        label: 'Diagnose system failure',
        runbookId: 'system-failure',
        mode: 'diagnose',
        inputs: { namespace: '$namespace' },
      },
    ],
    rows: [
      [
        {
          type: 'stat',
          title: 'p95 latency',
          description: 'Runbook 8: alert above 2 s; should drop below 500 ms after recovery.',
          queries: [{ expr: p95('http_request_duration_seconds_bucket') }],
          unit: 's',
          steps: ['green', [0.5, 'yellow'], [2, 'red']],
          w: 6,
        },
        {
          type: 'stat',
          title: 'Error rate',
          description: 'Runbook 13: should be below 1%; above 10% is a P1 incident.',
          queries: [{ expr: ERROR_RATIO }],
          unit: 'percentunit',
          steps: ['green', [0.01, 'yellow'], [0.1, 'red']],
          w: 6,
        },
        {
          type: 'stat',
          title: 'System health',
          description: 'Runbook 13 alert: system_health == 0 (complete system failure).',
          queries: [{ expr: 'min(system_health)' }],
          steps: ['red', [1, 'green']],
          mappings: up('down', 'up'),
          w: 6,
        },
        {
          type: 'stat',
          title: 'Security incident',
          description: 'Runbook 12 alert: security_incident_detected == 1.',
          queries: [{ expr: 'max(security_incident_detected)' }],
          steps: ['green', [1, 'red']],
          mappings: { '0': ['none', 'green'], '1': ['detected', 'red'] },
          w: 6,
        },
      ],
      [
        {
          type: 'timeseries',
          title: 'Latency p50 / p95 / p99',
          description: 'Runbook 8: p95 above 2 s is an incident; the target after recovery is below 500 ms.',
          queries: [0.5, 0.95, 0.99].map((q) => ({
            expr: `histogram_quantile(${q}, sum by (le) (rate(http_request_duration_seconds_bucket[$__rate_interval])))`,
            legend: `p${Math.round(q * 100)}`,
          })),
          unit: 's',
          steps: ['green', [0.5, 'yellow'], [2, 'red']],
          min: 0,
          w: 12,
        },
        {
          type: 'timeseries',
          title: 'Error rate',
          description: 'Share of requests answered 5xx: below 1% is normal, above 10% a P1 incident.',
          queries: [{ expr: ERROR_RATIO, legend: '5xx' }],
          unit: 'percentunit',
          steps: ['green', [0.01, 'yellow'], [0.1, 'red']],
          min: 0,
          w: 12,
        },
      ],
      [
        {
          type: 'timeseries',
          title: 'p95 latency (recorded)',
          description: 'The alerting series: above 2000 ms runbook 8, above 5000 ms runbook 5.',
          queries: [{ expr: 'http_request_duration_p95', legend: 'p95' }],
          unit: 'ms',
          steps: ['green', [2000, 'yellow'], [5000, 'red']],
          min: 0,
          w: 12,
        },
        {
          type: 'timeseries',
          title: 'OpenRouter p95 latency',
          description: 'Runbook 8 step 5: an LLM slower than 10 s explains slow API calls.',
          queries: [{ expr: p95('openrouter_api_duration_seconds_bucket'), legend: 'p95' }],
          unit: 's',
          steps: ['green', [10, 'red']],
          min: 0,
          w: 12,
        },
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
      {
        label: 'Diagnose stuck executions',
        runbookId: 'execution-agent-failure',
        mode: 'diagnose',
        inputs: { namespace: '$namespace' },
      },
      {
        label: 'Plan execution agent restart',
        runbookId: 'agent-failure',
        mode: 'plan',
        inputs: { agent: 'execution-agent', namespace: '$namespace' },
      },
      {
        label: 'Diagnose slow tests',
        runbookId: 'test-execution-high-latency',
        mode: 'diagnose',
        inputs: { namespace: '$namespace' },
      },
      {
        label: 'Plan Selenium scale-up',
        runbookId: 'test-execution-high-latency',
        mode: 'plan',
        inputs: { namespace: '$namespace' },
      },
    ],
    rows: [
      [
        {
          type: 'stat',
          title: 'Execution time p95',
          description: 'Runbook 9: alert above 300 s; should drop below 120 s after recovery.',
          queries: [{ expr: 'max(test_execution_duration_p95)' }],
          unit: 's',
          steps: ['green', [120, 'yellow'], [300, 'red']],
          w: 8,
        },
        {
          type: 'stat',
          title: 'Longest running execution',
          description: 'Runbook 3 alert: test_execution_duration > 600 (stuck for more than 10 minutes).',
          queries: [{ expr: 'max(test_execution_duration)' }],
          unit: 's',
          steps: ['green', [300, 'yellow'], [600, 'red']],
          w: 8,
        },
        {
          type: 'stat',
          title: 'Executions over 10 minutes',
          description: 'Runbook 3: executions past the 10-minute timeout are stuck and get cancelled.',
          queries: [{ expr: 'count(test_execution_duration > 600) or vector(0)' }],
          steps: ['green', [1, 'red']],
          w: 8,
        },
      ],
      [
        {
          type: 'timeseries',
          title: 'Execution time p95',
          description: 'Runbook 9: expected below 120 s, an incident above 300 s.',
          queries: [{ expr: 'test_execution_duration_p95', legend: 'p95' }],
          unit: 's',
          steps: ['green', [120, 'yellow'], [300, 'red']],
          min: 0,
          w: 12,
        },
        {
          type: 'timeseries',
          title: 'Running execution durations',
          description: 'Runbook 3: an execution running past 600 s is stuck.',
          queries: [{ expr: 'test_execution_duration' }],
          unit: 's',
          steps: ['green', [600, 'red']],
          min: 0,
          w: 12,
        },
      ],
      [
        {
          type: 'table',
          title: 'Longest running executions',
          description: 'The ten longest test executions now; past 600 s they are stuck (runbook 3).',
          queries: [{ expr: 'topk(10, test_execution_duration)' }],
          unit: 's',
          steps: ['green', [300, 'yellow'], [600, 'red']],
          w: 24,
        },
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
      {
        label: 'Diagnose accuracy drop',
        runbookId: 'model-accuracy-drop',
        mode: 'diagnose',
        inputs: { model: '$model', namespace: '$namespace' },
      },
      {
        label: 'Plan model rollback',
        runbookId: 'model-accuracy-drop',
        mode: 'plan',
        inputs: { model: '$model', namespace: '$namespace' },
      },
      {
        label: 'Diagnose data drift',
        runbookId: 'data-drift',
        mode: 'diagnose',
        inputs: { model: '$model', namespace: '$namespace' },
      },
      {
        label: 'Plan retraining',
        runbookId: 'data-drift',
        mode: 'plan',
        inputs: { model: '$model', namespace: '$namespace' },
      },
    ],
    rows: [
      [
        {
          type: 'gauge',
          title: 'Model accuracy',
          description: 'Runbook 10 alert: model_accuracy < 0.85.',
          queries: [{ expr: 'min(model_accuracy)' }],
          unit: 'percentunit',
          steps: ['red', [0.85, 'green']],
          min: 0,
          max: 1,
          w: 8,
          h: 6,
        },
        {
          type: 'stat',
          title: 'Data drift',
          description: 'Runbook 11 alert: model_data_drift_detected == 1.',
          queries: [{ expr: 'max(model_data_drift_detected)' }],
          steps: ['green', [1, 'red']],
          mappings: { '0': ['none', 'green'], '1': ['drift', 'red'] },
          w: 8,
          h: 6,
        },
        {
          type: 'stat',
          title: 'Generation confidence',
          description: 'Runbooks 2 and 10: generated tests are low quality below 0.7; healthy above 0.85.',
          queries: [{ expr: 'agent_confidence{agent="generation_agent"}' }],
          unit: 'percentunit',
          steps: ['red', [0.7, 'yellow'], [0.85, 'green']],
          w: 8,
          h: 6,
        },
      ],
      [
        {
          type: 'timeseries',
          title: 'Model accuracy',
          description:
            'Runbook 10: alert below 0.85; should recover above 0.85 after rollback or retraining.',
          queries: [{ expr: 'model_accuracy' }],
          unit: 'percentunit',
          steps: ['red', [0.85, 'green']],
          min: 0,
          max: 1,
          w: 12,
        },
        {
          type: 'timeseries',
          title: 'Data drift detected',
          description: 'Runbook 11: 1 while the latest drift report finds drifted features.',
          queries: [{ expr: 'model_data_drift_detected' }],
          steps: ['green', [1, 'red']],
          min: 0,
          max: 1,
          w: 12,
        },
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
