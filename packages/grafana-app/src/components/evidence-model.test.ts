import { describe, expect, it } from 'vitest';
import { formatJson, formatNumber, isWebUrl, sparkline, summarizeSeries, toEvidence } from './evidence-model';

const T0 = Date.UTC(2026, 10, 28, 3, 0, 0);

describe('toEvidence', () => {
  it('reads every kind the SDK defines', () => {
    expect(
      toEvidence({
        kind: 'table',
        title: 't',
        columns: ['a', 'b'],
        rows: [
          ['x', 1],
          [null, true],
        ],
      }),
    ).toEqual({
      kind: 'table',
      title: 't',
      columns: ['a', 'b'],
      rows: [
        ['x', 1],
        [null, true],
      ],
    });
    expect(toEvidence({ kind: 'log', title: 'l', lines: ['one', 'two'] })).toEqual({
      kind: 'log',
      title: 'l',
      lines: ['one', 'two'],
    });
    expect(toEvidence({ kind: 'text', title: 'n', text: 'hello' })).toEqual({
      kind: 'text',
      title: 'n',
      text: 'hello',
    });
    expect(toEvidence({ kind: 'link', title: 'd', url: 'https://grafana.example/d/x' })).toEqual({
      kind: 'link',
      title: 'd',
      url: 'https://grafana.example/d/x',
    });
  });

  it('sorts a series by time and keeps its unit', () => {
    const e = toEvidence({
      kind: 'series',
      title: 's',
      unit: 'ms',
      points: [
        [T0 + 60_000, 2],
        [T0, 1],
      ],
    });
    expect(e).toEqual({
      kind: 'series',
      title: 's',
      unit: 'ms',
      points: [
        [T0, 1],
        [T0 + 60_000, 2],
      ],
    });
  });

  it('keeps unknown or malformed evidence as JSON instead of dropping it', () => {
    expect(toEvidence({ kind: 'heatmap', title: 'h', cells: [] })).toEqual({
      kind: 'json',
      title: 'h',
      value: { kind: 'heatmap', title: 'h', cells: [] },
    });
    expect(toEvidence({ kind: 'table', title: 't', columns: ['a'], rows: [[{ nested: 1 }]] }).kind).toBe(
      'json',
    );
    expect(toEvidence({ kind: 'series', title: 's', points: [[1, 'x']] }).kind).toBe('json');
    expect(toEvidence({ kind: 'log', lines: 'not a list' })).toMatchObject({
      kind: 'json',
      title: 'Evidence',
    });
    expect(toEvidence('a string')).toEqual({ kind: 'json', title: 'Evidence', value: 'a string' });
  });

  it('never turns a script URL into a link', () => {
    for (const url of ['javascript:alert(1)', 'data:text/html,<b>x</b>', 'not a url', '//evil.example']) {
      expect(toEvidence({ kind: 'link', title: 'x', url }).kind).toBe('json');
      expect(isWebUrl(url)).toBe(false);
    }
  });
});

describe('series summary and graph', () => {
  const points: Array<[number, number]> = [120, 135, 180, 420, 650, 610].map((v, i) => [T0 + i * 60_000, v]);

  it('says what the series shows in words', () => {
    const s = summarizeSeries(points, 'ms');
    expect(s).toMatchObject({ count: 6, min: 120, max: 650, first: 120, last: 610 });
    expect(s?.text).toBe('6 points from 03:00:00 to 03:05:00 UTC: min 120 ms, max 650 ms, last 610 ms');
    expect(summarizeSeries([])).toBeNull();
  });

  it('lays the points out inside the plot area, max at the top and min at the bottom', () => {
    const g = sparkline(points, 480, 140, 'ms');
    const xy = g.points.split(' ').map((p) => p.split(',').map(Number));
    expect(xy).toHaveLength(6);
    expect(xy[0]).toEqual([g.plot.left, g.plot.bottom]); // first point, the minimum
    expect(xy[4]?.[1]).toBe(g.plot.top); // the maximum
    expect(xy[5]?.[0]).toBe(g.plot.right); // last time at the right edge
    expect(g.yTicks.map((t) => t.label)).toEqual(['650 ms', '120 ms']);
    expect(g.xTicks.map((t) => t.label)).toEqual(['03:00:00', '03:05:00']);
  });

  it('draws a flat series or a single point without dividing by zero', () => {
    const flat = sparkline(
      [
        [T0, 5],
        [T0 + 1000, 5],
      ],
      200,
      100,
    );
    expect(flat.points).not.toContain('NaN');
    expect(flat.yTicks).toHaveLength(1);
    const one = sparkline([[T0, 5]], 200, 100);
    expect(one.points).not.toContain('NaN');
    expect(one.xTicks).toHaveLength(1);
  });
});

describe('formatting', () => {
  it('formats numbers readably', () => {
    expect(formatNumber(610, 'ms')).toBe('610 ms');
    expect(formatNumber(0.123456)).toBe('0.123');
    expect(formatNumber(12345.6)).toBe('12,346');
  });

  it('formats JSON values', () => {
    expect(formatJson('db-a')).toBe('db-a');
    expect(formatJson(3)).toBe('3');
    expect(formatJson(null)).toBe('null');
    expect(formatJson(undefined)).toBe('—');
    expect(formatJson({ a: 1 })).toBe('{\n  "a": 1\n}');
  });
});
