/**
 * The evidence of a finding, read from the service's JSON (where it is `unknown`) into the shapes the SDK's
 * `Evidence` type describes, plus the arithmetic of the series graph. Pure: no React, no Grafana, so it is
 * tested on its own. Anything that does not match a known shape is kept as `json`, so nothing a check
 * collected is ever hidden from the person reading the run.
 */

/** A cell in a table of evidence (the SDK's `Cell`). */
export type Cell = string | number | boolean | null;

/** One piece of evidence, ready to render. */
export type EvidenceItem =
  | { kind: 'table'; title: string; columns: string[]; rows: Cell[][] }
  | { kind: 'log'; title: string; lines: string[] }
  | { kind: 'series'; title: string; unit?: string; points: Array<[number, number]> }
  | { kind: 'text'; title: string; text: string }
  | { kind: 'link'; title: string; url: string }
  /** Not a shape this app knows (a newer SDK, or a malformed entry): shown as formatted JSON. */
  | { kind: 'json'; title: string; value: unknown };

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isCell = (v: unknown): v is Cell =>
  v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
const isPoint = (v: unknown): v is [number, number] =>
  Array.isArray(v) && v.length === 2 && Number.isFinite(v[0]) && Number.isFinite(v[1]);

/** Reads one evidence entry; unknown or malformed entries become `json`. */
export function toEvidence(value: unknown): EvidenceItem {
  if (!isRecord(value)) return { kind: 'json', title: 'Evidence', value };
  const title = typeof value.title === 'string' && value.title !== '' ? value.title : 'Evidence';
  const asJson: EvidenceItem = { kind: 'json', title, value };
  switch (value.kind) {
    case 'table': {
      const { columns, rows } = value;
      if (!Array.isArray(columns) || !columns.every((c) => typeof c === 'string')) return asJson;
      if (!Array.isArray(rows) || !rows.every((r) => Array.isArray(r) && r.every(isCell))) return asJson;
      return { kind: 'table', title, columns, rows: rows as Cell[][] };
    }
    case 'log': {
      const { lines } = value;
      if (!Array.isArray(lines) || !lines.every((l) => typeof l === 'string')) return asJson;
      return { kind: 'log', title, lines };
    }
    case 'series': {
      const { points, unit } = value;
      if (!Array.isArray(points) || !points.every(isPoint)) return asJson;
      const sorted = [...points].sort((a, b) => a[0] - b[0]);
      return { kind: 'series', title, points: sorted, ...(typeof unit === 'string' ? { unit } : {}) };
    }
    case 'text':
      return typeof value.text === 'string' ? { kind: 'text', title, text: value.text } : asJson;
    case 'link':
      // Only web links become anchors: a `javascript:` or `data:` URL from a check must never be clickable.
      return typeof value.url === 'string' && isWebUrl(value.url)
        ? { kind: 'link', title, url: value.url }
        : asJson;
    default:
      return asJson;
  }
}

/** True for absolute http(s) URLs. */
export function isWebUrl(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:';
  } catch {
    return false;
  }
}

/** A number as people read it: at most 3 significant decimals, with the unit when there is one. */
export function formatNumber(value: number, unit?: string): string {
  const text =
    Number.isInteger(value) || Math.abs(value) >= 1000
      ? Math.round(value).toLocaleString('en-US')
      : String(Number(value.toPrecision(3)));
  return unit ? `${text} ${unit}` : text;
}

/** The time of day (UTC) of a timestamp in ms, e.g. `14:05:09`. */
export const clockTime = (ms: number): string => new Date(ms).toISOString().slice(11, 19);

/** What a series says, in words: the accessible summary of its graph. */
export interface SeriesSummary {
  count: number;
  min: number;
  max: number;
  first: number;
  last: number;
  from: number;
  to: number;
  /** e.g. `12 points from 14:00:00 to 14:11:00 UTC: min 0.2 %, max 9.5 %, last 9.5 %` */
  text: string;
}

/** The summary of a series; `null` for a series without points. */
export function summarizeSeries(
  points: ReadonlyArray<readonly [number, number]>,
  unit?: string,
): SeriesSummary | null {
  if (points.length === 0) return null;
  const values = points.map((p) => p[1]);
  const min = Math.min(...values);
  const max = Math.max(...values);
  const first = values[0] as number;
  const last = values[values.length - 1] as number;
  const from = (points[0] as readonly [number, number])[0];
  const to = (points[points.length - 1] as readonly [number, number])[0];
  const n = points.length;
  const text =
    `${n} ${n === 1 ? 'point' : 'points'} from ${clockTime(from)} to ${clockTime(to)} UTC: ` +
    `min ${formatNumber(min, unit)}, max ${formatNumber(max, unit)}, last ${formatNumber(last, unit)}`;
  return { count: n, min, max, first, last, from, to, text };
}

/** Where a series is drawn inside an SVG of the given size. */
export interface SparklineGeometry {
  /** The polyline's `points` attribute. */
  points: string;
  /** The plot area: axes are drawn along its left and bottom edges. */
  plot: { left: number; top: number; right: number; bottom: number };
  /** Labels of the y axis (max at the top, min at the bottom). */
  yTicks: Array<{ y: number; label: string }>;
  /** Labels of the x axis (first and last time). */
  xTicks: Array<{ x: number; label: string }>;
}

/**
 * Lays a series out in a `width` × `height` box, leaving room on the left and bottom for the axis labels.
 * A flat series (or a single point) is drawn as a level line in the middle, not divided by zero.
 */
export function sparkline(
  points: ReadonlyArray<readonly [number, number]>,
  width: number,
  height: number,
  unit?: string,
): SparklineGeometry {
  const plot = { left: 56, top: 8, right: width - 8, bottom: height - 20 };
  const summary = summarizeSeries(points, unit);
  if (!summary) return { points: '', plot, yTicks: [], xTicks: [] };
  const spanX = summary.to - summary.from;
  const spanY = summary.max - summary.min;
  const x = (t: number) =>
    spanX === 0
      ? (plot.left + plot.right) / 2
      : plot.left + ((t - summary.from) / spanX) * (plot.right - plot.left);
  const y = (v: number) =>
    spanY === 0
      ? (plot.top + plot.bottom) / 2
      : plot.bottom - ((v - summary.min) / spanY) * (plot.bottom - plot.top);
  const round = (n: number) => Math.round(n * 10) / 10;
  return {
    points: points.map(([t, v]) => `${round(x(t))},${round(y(v))}`).join(' '),
    plot,
    yTicks:
      spanY === 0
        ? [{ y: round(y(summary.min)), label: formatNumber(summary.min, unit) }]
        : [
            { y: plot.top, label: formatNumber(summary.max, unit) },
            { y: plot.bottom, label: formatNumber(summary.min, unit) },
          ],
    xTicks:
      spanX === 0
        ? [{ x: round(x(summary.from)), label: clockTime(summary.from) }]
        : [
            { x: plot.left, label: clockTime(summary.from) },
            { x: plot.right, label: clockTime(summary.to) },
          ],
  };
}

/** Any JSON value as readable text: strings as they are, the rest pretty-printed; `undefined` as `—`. */
export function formatJson(value: unknown): string {
  if (value === undefined) return '—';
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}
