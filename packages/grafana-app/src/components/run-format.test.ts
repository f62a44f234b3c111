import { describe, expect, it } from 'vitest';
import { contextFacts, eventSummary, formatDuration, statusText } from './run-format';

describe('run-format', () => {
  it('words statuses and durations', () => {
    expect(statusText('waiting_approval')).toBe('waiting for approval');
    expect(statusText('succeeded')).toBe('succeeded');
    expect(formatDuration('2026-11-28T03:00:00.000Z', '2026-11-28T03:00:00.450Z')).toBe('450 ms');
    expect(formatDuration('2026-11-28T03:00:00.000Z', '2026-11-28T03:00:12.340Z')).toBe('12.3 s');
    expect(formatDuration('2026-11-28T03:00:00.000Z', '2026-11-28T03:04:05.000Z')).toBe('4 min 5 s');
    expect(formatDuration('2026-11-28T03:00:00.000Z', null)).toBeNull();
  });

  it('summarizes an event from its data', () => {
    const base = { seq: 1, ts: '2026-11-28T03:00:00.000Z', actor: 'ada' };
    expect(
      eventSummary({ ...base, kind: 'step.check', data: { status: 'warn', summary: 'p95 is 610 ms' } }),
    ).toBe('p95 is 610 ms');
    expect(eventSummary({ ...base, kind: 'run.ended', data: { status: 'succeeded' } })).toBe(
      'status succeeded',
    );
    expect(
      eventSummary({ ...base, kind: 'approval.break-glass', data: { reason: 'outage', breakGlass: true } }),
    ).toBe('reason: outage · break-glass');
    expect(eventSummary({ ...base, kind: 'run.failed', data: { error: { message: 'boom' } } })).toBe('boom');
    expect(eventSummary({ ...base, kind: 'run.created' })).toBe('');
  });

  it('lists the context facts that are present, with safe links only', () => {
    expect(contextFacts(null)).toEqual([]);
    const facts = contextFacts({
      source: 'grafana',
      dashboard: { uid: 'abc', title: 'API latency', url: '/d/abc/api-latency' },
      panel: { id: 4, title: 'p95' },
      alert: { labels: { alertname: 'HighLatency', service: 'api' }, generatorURL: 'javascript:alert(1)' },
      timeRange: { from: 'now-1h', to: 'now' },
      labels: { incident: 'INC-1' },
    });
    expect(facts).toEqual([
      { label: 'Source', text: 'grafana' },
      { label: 'Dashboard', text: 'API latency', href: '/d/abc/api-latency' },
      { label: 'Panel', text: 'p95' },
      { label: 'Alert', text: 'HighLatency · service=api' },
      { label: 'Time range', text: 'now-1h → now' },
      { label: 'Labels', text: 'incident=INC-1' },
    ]);
  });

  it('links a dashboard URL only when it stays on this origin or is an http(s) URL', () => {
    const href = (url: string) => contextFacts({ dashboard: { uid: 'u', url } })[0]?.href;
    expect(href('/d/abc/api-latency?orgId=1')).toBe('/d/abc/api-latency?orgId=1');
    expect(href('https://grafana.example.com/d/abc')).toBe('https://grafana.example.com/d/abc');
    // Browsers read these as `//evil.com/…`: another host, so no link (and never an internal one).
    expect(href('/\\evil.com/d/abc')).toBeUndefined();
    expect(href('/\\\\evil.com')).toBeUndefined();
    expect(href('//evil.com/d/abc')).toBeUndefined();
    expect(href('/\t/evil.com')).toBeUndefined();
    expect(href('https://evil.com\\@grafana/d')).toBeUndefined();
    expect(href('javascript:alert(1)')).toBeUndefined();
    // The fact itself stays, without the link.
    expect(contextFacts({ dashboard: { title: 'API', url: '/\\evil.com' } })).toEqual([
      { label: 'Dashboard', text: 'API' },
    ]);
  });
});
