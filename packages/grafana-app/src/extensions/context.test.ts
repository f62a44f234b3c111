// Context → labels, and labels → runbooks and input: pure functions, no UI and no service.
import { dateTime } from '@grafana/data';
import { describe, expect, it } from 'vitest';
import type { RunbookView } from '../api/types';
import {
  alertIncident,
  hasUsableContext,
  interpolate,
  labelsFromExpr,
  labelsFromSeries,
  panelIncident,
} from './context-labels';
import { matchRunbooks, prefillInput } from './matching';

const frame = (labels: Array<Record<string, string> | undefined>) => ({
  fields: [{ name: 'Time' }, ...labels.map((l, i) => ({ name: `Value ${i}`, ...(l ? { labels: l } : {}) }))],
});

describe('labels from query results', () => {
  it("collects every field's labels, each distinct value once, in order", () => {
    const data = {
      series: [
        frame([{ agent: 'generation-agent', job: 'agents' }, undefined]),
        frame([{ agent: 'requirements-agent', job: 'agents' }]),
      ],
    };
    expect(labelsFromSeries(data)).toEqual({
      agent: ['generation-agent', 'requirements-agent'],
      job: ['agents'],
    });
  });

  it('skips what is not a label set instead of throwing', () => {
    expect(labelsFromSeries(undefined)).toEqual({});
    expect(labelsFromSeries({ series: [null, { fields: [{ labels: { a: 1, b: 'x' } }, 'odd'] }] })).toEqual({
      b: ['x'],
    });
  });
});

describe('labels from PromQL matchers', () => {
  it('reads equality matchers of every selector, with any quoting', () => {
    expect(
      labelsFromExpr(
        'sum(rate(http_requests_total{job="api", route=\'/generate\', code!="200"}[5m])) / on() up{job=`api`}',
      ),
    ).toEqual({ job: ['api'], route: ['/generate'] });
  });

  it('takes =~ of literals (a multi-value variable) and ignores regexes and negations', () => {
    expect(
      labelsFromExpr('up{agent=~"generation-agent|requirements-agent", pod=~"api-.*", env!~"dev"}'),
    ).toEqual({ agent: ['generation-agent', 'requirements-agent'] });
  });

  it('unescapes quoted values', () => {
    expect(labelsFromExpr('x{msg="say \\"hi\\""}')).toEqual({ msg: ['say "hi"'] });
    expect(labelsFromExpr('http_requests_total{route="/runs/{id}", code="500"}')).toEqual({
      route: ['/runs/{id}'],
      code: ['500'],
    });
  });

  it('leaves out a value whose template variable was not resolved', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template
    expect(labelsFromExpr('up{agent="$agent", pod="${pod}", x="[[x]]", job="api"}')).toEqual({
      job: ['api'],
    });
  });

  it('finds nothing in an expression without selectors', () => {
    expect(labelsFromExpr('sum(rate(errors_total[5m]))')).toEqual({});
  });
});

describe('template variables', () => {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template
  it('resolves $x, ${x}, ${x:fmt} and [[x]] from scoped variables first, then the dashboard', () => {
    const scoped = { agent: { text: 'generation-agent', value: 'generation-agent' } };
    expect(
      interpolate(
        // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template
        'up{agent="$agent", job="${job}", env="${env:raw}", x="[[agent]]", y="$unknown"}',
        scoped,
        {
          agent: 'ignored',
          job: 'agents',
          env: 'prod',
        },
      ),
    ).toBe('up{agent="generation-agent", job="agents", env="prod", x="generation-agent", y="$unknown"}');
  });

  it('joins a multi-value variable with | (as Grafana formats it for =~)', () => {
    expect(interpolate('up{agent=~"$agent"}', {}, { agent: ['a', 'b'] })).toBe('up{agent=~"a|b"}');
  });
});

const panelContext = {
  pluginId: 'timeseries',
  id: 4,
  title: 'Agent replicas',
  timeRange: { from: 'now-1h', to: 'now' },
  timeZone: 'utc',
  dashboard: { uid: 'agents', title: 'AI-Web-Test Agents', tags: ['agents'] },
  targets: [
    { refId: 'A', expr: 'ALERTS{alertname="AgentReplicasLow", agent="$agent"}' },
    { refId: 'B', expr: 'up{job="hidden"}', hide: true },
  ],
  scopedVars: {},
};

describe('a panel context', () => {
  it('labels from results and resolved matchers, tags, time range, and the run context to send', () => {
    const incident = panelIncident(
      {
        ...panelContext,
        data: {
          series: [frame([{ agent: 'generation-agent', instance: 'node-1' }])],
          timeRange: {
            from: dateTime('2026-11-28T02:00:00Z'),
            to: dateTime('2026-11-28T03:00:00Z'),
          },
        },
      },
      { variables: { agent: 'generation-agent', datasource: 'prometheus' } },
    );
    expect(incident.labels).toEqual({
      agent: ['generation-agent'],
      instance: ['node-1'],
      alertname: ['AgentReplicasLow'],
    });
    expect(incident.tags).toEqual(['agents']);
    expect(incident.runContext).toEqual({
      source: 'grafana',
      dashboard: { uid: 'agents', title: 'AI-Web-Test Agents', url: '/d/agents' },
      panel: { id: 4, title: 'Agent replicas' },
      timeRange: { from: '2026-11-28T02:00:00.000Z', to: '2026-11-28T03:00:00.000Z' },
      labels: { agent: 'generation-agent', instance: 'node-1', alertname: 'AgentReplicasLow' },
      variables: { agent: 'generation-agent', datasource: 'prometheus' },
    });
  });

  it("uses Grafana's interpolation when given, and resolves a relative time range now", () => {
    const before = Date.now();
    const incident = panelIncident(panelContext, {
      replace: (text) => text.replaceAll('$agent', 'requirements-agent'),
    });
    expect(incident.labels).toEqual({ alertname: ['AgentReplicasLow'], agent: ['requirements-agent'] });
    const range = incident.runContext.timeRange ?? { from: '', to: '' };
    expect(Date.parse(range.to) - Date.parse(range.from)).toBeCloseTo(3_600_000, -3);
    expect(Date.parse(range.to)).toBeGreaterThanOrEqual(before - 1000);
  });

  it('sends only single-valued labels (the service takes one value per label)', () => {
    const incident = panelIncident({
      data: { series: [frame([{ agent: 'a' }, { agent: 'b', job: 'agents' }])] },
    });
    expect(incident.labels).toEqual({ agent: ['a', 'b'], job: ['agents'] });
    expect(incident.runContext.labels).toEqual({ job: 'agents' });
  });

  it('a panel with no labels and no tags has nothing to match; tags alone are enough', () => {
    const empty = panelIncident({ ...panelContext, targets: [{ refId: 'A', expr: 'sum(up)' }] });
    expect(empty.labels).toEqual({});
    expect(hasUsableContext({ ...empty, tags: [] })).toBe(false);
    expect(hasUsableContext(empty)).toBe(true); // the dashboard's tag "agents"
    expect(hasUsableContext(panelIncident({}))).toBe(false);
    expect(panelIncident(undefined).runContext).toEqual({ source: 'grafana' });
  });

  it('keeps within the service bounds: at most 64 labels', () => {
    const many = Object.fromEntries(Array.from({ length: 80 }, (_, i) => [`l${i}`, `v${i}`]));
    const incident = panelIncident({ data: { series: [frame([many])] } });
    expect(Object.keys(incident.labels)).toHaveLength(80);
    expect(Object.keys(incident.runContext.labels ?? {})).toHaveLength(64);
  });
});

describe('an alert instance context', () => {
  it("takes the instance's labels, activeAt and fingerprint", () => {
    const incident = alertIncident({
      instance: {
        labels: { alertname: 'AgentReplicasLow', agent: 'requirements-agent' },
        annotations: { summary: 'low' },
        activeAt: '2026-11-28T03:00:00Z',
        fingerprint: 'abc123',
      },
      rule: { name: 'AgentReplicasLow', labels: { team: 'platform' } },
    });
    expect(incident.labels).toEqual({
      team: ['platform'],
      alertname: ['AgentReplicasLow'],
      agent: ['requirements-agent'],
    });
    expect(incident.runContext).toEqual({
      source: 'grafana',
      alert: {
        fingerprint: 'abc123',
        labels: { team: 'platform', alertname: 'AgentReplicasLow', agent: 'requirements-agent' },
        startsAt: '2026-11-28T03:00:00Z',
      },
      labels: { team: 'platform', alertname: 'AgentReplicasLow', agent: 'requirements-agent' },
    });
  });

  it('names the alert after its rule when the instance has no alertname; nothing without either', () => {
    expect(alertIncident({ instance: {}, rule: { name: 'HighLatency' } }).labels).toEqual({
      alertname: ['HighLatency'],
    });
    expect(hasUsableContext(alertIncident({ instance: { labels: {} } }))).toBe(false);
    expect(hasUsableContext(alertIncident(undefined))).toBe(false);
  });
});

const runbook = (id: string, extra: Partial<RunbookView> = {}): RunbookView => ({
  id,
  title: id,
  severity: 'P2',
  triggers: [],
  input: { type: 'object', properties: {} },
  ...extra,
});

describe('matching runbooks', () => {
  const scale = runbook('scale-agent', {
    triggers: [{ kind: 'alert', match: { alertname: 'AgentReplicasLow' } }],
  });
  const specific = runbook('restart-generation', {
    severity: 'P3',
    triggers: [{ kind: 'alert', match: { alertname: 'AgentReplicasLow', agent: 'generation-agent' } }],
  });
  const db = runbook('failover-database', {
    severity: 'P1',
    tags: ['Database'],
    triggers: [{ kind: 'alert', match: { alertname: 'PostgresDown' } }],
  });
  const any = runbook('match-all', { triggers: [{ kind: 'alert', match: {} }] });
  const all = [db, scale, any, specific];

  it('a runbook matches when every label of one trigger is in the context; more labels rank first', () => {
    const result = matchRunbooks(all, { alertname: ['AgentReplicasLow'], agent: ['generation-agent', 'x'] });
    expect(result.matching.map((m) => [m.runbook.id, m.reason])).toEqual([
      [
        'restart-generation',
        { kind: 'trigger', match: { alertname: 'AgentReplicasLow', agent: 'generation-agent' } },
      ],
      ['scale-agent', { kind: 'trigger', match: { alertname: 'AgentReplicasLow' } }],
    ]);
    // A trigger without labels says nothing about this panel: it is among the others.
    expect(result.others.map((r) => r.id)).toEqual(['failover-database', 'match-all']);
  });

  it('a missing or different label value does not match', () => {
    expect(matchRunbooks(all, { alertname: ['agentreplicaslow'] }).matching).toEqual([]);
    expect(matchRunbooks([specific], { alertname: ['AgentReplicasLow'] }).matching).toEqual([]);
  });

  it('runbooks sharing a dashboard tag come after trigger matches; with nothing, all are others', () => {
    const result = matchRunbooks(all, { alertname: ['AgentReplicasLow'] }, ['database']);
    expect(result.matching.map((m) => m.runbook.id)).toEqual(['scale-agent', 'failover-database']);
    expect(result.matching[1]?.reason).toEqual({ kind: 'tag', tags: ['Database'] });
    expect(matchRunbooks(all, {}).others.map((r) => r.id)).toEqual(all.map((r) => r.id));
  });
});

describe('prefilling the input', () => {
  const schema = {
    type: 'object',
    properties: {
      agent: { type: 'string', enum: ['generation-agent', 'requirements-agent'] },
      replicas: { type: 'integer', minimum: 1, default: 2 },
      reason: { type: 'string', maxLength: 5 },
      debug: { type: 'boolean', default: false },
    },
    required: ['agent'],
  };

  it('gives input properties named like a label that label’s value as default', () => {
    const { schema: out, filled } = prefillInput(schema, {
      agent: ['generation-agent'],
      replicas: ['3'],
      debug: ['true'],
      job: ['agents'],
    });
    expect(filled).toEqual({ agent: 'generation-agent', replicas: '3', debug: 'true' });
    expect(out).toEqual({
      ...schema,
      properties: {
        agent: { ...schema.properties.agent, default: 'generation-agent' },
        replicas: { ...schema.properties.replicas, default: 3 },
        reason: schema.properties.reason,
        debug: { ...schema.properties.debug, default: true },
      },
    });
    expect(schema.properties.agent).not.toHaveProperty('default'); // the original is left alone
  });

  it('skips values the property does not take, and labels with several values; falls back to variables', () => {
    const { filled } = prefillInput(
      schema,
      { agent: ['unknown-agent'], replicas: ['2.5'], reason: ['far too long'] },
      { agent: 'requirements-agent' },
    );
    expect(filled).toEqual({ agent: 'requirements-agent' });
    expect(prefillInput(schema, { agent: ['generation-agent', 'requirements-agent'] }).filled).toEqual({});
    expect(prefillInput(undefined, { agent: ['x'] })).toEqual({ schema: {}, filled: {} });
  });
});
