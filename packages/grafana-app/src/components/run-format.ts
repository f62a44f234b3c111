/**
 * Words and colours for runs, steps and events. Pure, so it is tested without rendering.
 */
import type { RunDetailView, RunStatus } from '../api/types';
import type { RunEvent } from './run-polling';

/** The colours of Grafana's `Badge`. */
export type StatusColor = 'blue' | 'red' | 'green' | 'orange' | 'purple' | 'darkgrey';

/** A run's status as a badge colour. */
export const RUN_STATUS_COLOR: Record<RunStatus, StatusColor> = {
  queued: 'blue',
  running: 'blue',
  waiting_approval: 'orange',
  succeeded: 'green',
  failed: 'red',
  escalated: 'purple',
  cancelled: 'darkgrey',
};

/** A check's finding (`ok`, `warn`, `fail`, `unknown`) as a badge colour. */
export const FINDING_COLOR: Record<RunDetailView['findings'][number]['status'], StatusColor> = {
  ok: 'green',
  warn: 'orange',
  fail: 'red',
  unknown: 'darkgrey',
};

/** Statuses a run never leaves. */
export const FINAL_STATUSES: readonly RunStatus[] = ['succeeded', 'failed', 'escalated', 'cancelled'];

/** A step's status as a badge colour. */
export function stepStatusColor(status: RunDetailView['steps'][number]['status']): StatusColor {
  switch (status) {
    case 'succeeded':
      return 'green';
    case 'failed':
      return 'red';
    case 'waiting_approval':
      return 'orange';
    case 'skipped':
      return 'darkgrey';
    default:
      return 'blue';
  }
}

/** A status in words: `waiting_approval` → `waiting for approval`. */
export const statusText = (status: string): string =>
  status === 'waiting_approval' ? 'waiting for approval' : status.replace(/_/g, ' ');

/** An ISO time as local date and time; `—` for none. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** The time between two ISO times, e.g. `450 ms`, `12.3 s`, `4 min 5 s`; null when unfinished. */
export function formatDuration(from: string | null, to: string | null): string | null {
  if (!from || !to) return null;
  const ms = new Date(to).getTime() - new Date(from).getTime();
  if (!Number.isFinite(ms) || ms < 0) return null;
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** One line saying what an event did, from the fields its data usually has. */
export function eventSummary(event: RunEvent): string {
  const data = isRecord(event.data) ? event.data : {};
  const parts = [
    str(data.summary),
    str(data.status) && !str(data.summary) ? `status ${str(data.status)}` : undefined,
    str(data.reason) ? `reason: ${str(data.reason)}` : undefined,
    isRecord(data.error) ? str(data.error.message) : str(data.error),
    data.breakGlass === true ? 'break-glass' : undefined,
  ].filter((p): p is string => p !== undefined);
  return parts.join(' · ');
}

/** One fact of where a run came from, for the header. */
export interface ContextFact {
  label: string;
  text: string;
  /** A web link, when the fact has one (only http(s) URLs, never a script). */
  href?: string;
}

/** Whether a relative URL resolves to the page's own origin (not `//host/…`, which is another host). */
const sameOrigin = (s: string): boolean => {
  const origin = typeof location !== 'undefined' ? location.origin : 'http://grafana.invalid';
  try {
    return new URL(s, origin).origin === origin;
  } catch {
    return false;
  }
};

const webUrl = (v: unknown): string | undefined => {
  const s = str(v);
  if (!s) return undefined;
  // Browsers read a backslash as a slash (`/\evil.com` is `//evil.com`, another host): never a link.
  if (s.includes('\\')) return undefined;
  // Grafana gives dashboard URLs relative to its root; those are kept as they are, if they stay on this origin.
  if (s.startsWith('/')) return sameOrigin(s) ? s : undefined;
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:' ? s : undefined;
  } catch {
    return undefined;
  }
};

const labelsText = (labels: unknown): string | undefined =>
  isRecord(labels)
    ? Object.entries(labels)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(', ') || undefined
    : undefined;

/** The facts of a run's context (source, dashboard, panel, alert, time range, labels) that are present. */
export function contextFacts(context: Record<string, unknown> | null): ContextFact[] {
  if (!context) return [];
  const facts: ContextFact[] = [];
  const source = str(context.source);
  if (source) facts.push({ label: 'Source', text: source });
  if (isRecord(context.dashboard)) {
    const d = context.dashboard;
    const href = webUrl(d.url);
    facts.push({ label: 'Dashboard', text: str(d.title) ?? str(d.uid) ?? '?', ...(href ? { href } : {}) });
  }
  if (isRecord(context.panel)) {
    const p = context.panel;
    facts.push({ label: 'Panel', text: str(p.title) ?? String(p.id ?? '?') });
  }
  if (isRecord(context.alert)) {
    const a = context.alert;
    const labels = isRecord(a.labels) ? a.labels : {};
    const { alertname, ...others } = labels;
    const href = webUrl(a.generatorURL);
    const text =
      [str(alertname), labelsText(others), str(a.status)].filter(Boolean).join(' · ') ||
      str(a.fingerprint) ||
      'alert';
    facts.push({ label: 'Alert', text, ...(href ? { href } : {}) });
  }
  if (isRecord(context.timeRange)) {
    const t = context.timeRange;
    facts.push({ label: 'Time range', text: `${String(t.from)} → ${String(t.to)}` });
  }
  const labels = labelsText(context.labels);
  if (labels) facts.push({ label: 'Labels', text: labels });
  return facts;
}
