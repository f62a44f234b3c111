/**
 * Checks of the AI-Web-Test services' own endpoints, as the manual reads them with curl: the backend's
 * health (`curl http://backend:8000/api/v1/health | jq '.circuit_breakers.openrouter'`), a sample request
 * to an agent through the backend, and the Selenium Grid's `/status`. None of them throws for a service
 * that is down: saying so is their job.
 */
import {
  type Check,
  defineCheck,
  type Evidence,
  type Finding,
  finding,
  type ReplayableCheck,
} from '@aiwebtest/runbooks';
import { z } from 'zod';

const TIMEOUT_MS = 10_000;

/** Why a fetch failed, in words (the cause of Node's "fetch failed" is the useful part). */
function reason(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } })?.cause;
  if (cause?.code) return cause.code;
  return e instanceof Error ? e.message : String(e);
}

async function fetchJson(url: URL, signal: AbortSignal, init: RequestInit = {}) {
  const response = await fetch(url, {
    ...init,
    signal: AbortSignal.any([signal, AbortSignal.timeout(TIMEOUT_MS)]),
    headers: { accept: 'application/json', ...(init.body ? { 'content-type': 'application/json' } : {}) },
  });
  const text = await response.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  return { status: response.status, body };
}

const BreakerHealth = z.looseObject({
  state: z.string(),
  forced: z.string(),
  up: z.boolean(),
  lastFailure: z.looseObject({ reason: z.string(), at: z.string(), message: z.string() }).optional(),
});
const BackendHealthBody = z.looseObject({
  status: z.enum(['ok', 'degraded', 'down']),
  database: z.looseObject({ up: z.boolean() }),
  redis: z.looseObject({ up: z.boolean() }),
  circuit_breakers: z.record(z.string(), BreakerHealth),
  provider_current: z.string().nullable(),
  queue: z.looseObject({ enabled: z.boolean(), length: z.number().nullable(), max: z.number() }),
  config: z.record(z.string(), z.unknown()),
});
/** The backend's `/api/v1/health` answer, as the checks read it. */
export type BackendHealthBody = z.infer<typeof BackendHealthBody>;

/** What {@link backendHealth} found. */
export interface BackendHealthData {
  reachable: boolean;
  httpStatus: number | null;
  health: BackendHealthBody | null;
  error: string | null;
}

/**
 * `GET /api/v1/health` of the backend: `ok` when it says ok, `warn` when degraded (a provider's breaker open,
 * traffic on the fallback), `fail` when down or unreachable. The breakers are a table; the data carries the
 * whole answer for the runbook's decisions (`health.circuit_breakers.openrouter`, `health.queue`).
 */
export function backendHealth(backendUrl: string): Check<BackendHealthData> {
  return defineCheck<BackendHealthData>({
    kind: 'aiwebtest.backend-health',
    description: 'GET /api/v1/health of the backend (circuit breakers, provider, queue)',
    async run(ctx) {
      try {
        const { status, body } = await fetchJson(new URL('/api/v1/health', backendUrl), ctx.signal);
        const parsed = BackendHealthBody.safeParse(body);
        if (!parsed.success) {
          return finding('fail', `the backend answered ${status} without a health document`, {
            reachable: true,
            httpStatus: status,
            health: null,
            error: 'unexpected answer',
          });
        }
        const h = parsed.data;
        const evidence: Evidence[] = [
          {
            kind: 'table',
            title: 'circuit breakers',
            columns: ['provider', 'state', 'forced', 'up', 'last failure'],
            rows: Object.entries(h.circuit_breakers).map(([name, b]) => [
              name,
              b.state,
              b.forced,
              b.up,
              b.lastFailure ? `${b.lastFailure.reason} at ${b.lastFailure.at}: ${b.lastFailure.message}` : '',
            ]),
          },
        ];
        const open = Object.entries(h.circuit_breakers)
          .filter(([, b]) => b.state !== 'closed')
          .map(([name, b]) => `${name} ${b.state}${b.forced === 'auto' ? '' : ` (forced ${b.forced})`}`);
        const summary =
          `backend ${h.status}: provider ${h.provider_current ?? 'none'}` +
          (open.length ? `, breakers ${open.join(', ')}` : ', every breaker closed') +
          (h.database.up ? '' : ', database unreachable') +
          (h.queue.enabled ? `, queue ${h.queue.length ?? '?'} of ${h.queue.max}` : '');
        const status2 = h.status === 'ok' ? 'ok' : h.status === 'degraded' ? 'warn' : 'fail';
        return finding(
          status2,
          summary,
          { reachable: true, httpStatus: status, health: h, error: null },
          evidence,
        );
      } catch (e) {
        ctx.signal.throwIfAborted();
        return finding('fail', `backend unreachable: ${reason(e)}`, {
          reachable: false,
          httpStatus: null,
          health: null,
          error: reason(e),
        });
      }
    },
  });
}

/** What {@link sampleRequest} found. */
export interface SampleRequestData {
  httpStatus: number | null;
  provider: string | null;
  latencyMs: number;
  error: string | null;
}

/**
 * What {@link sampleRequest} saw: as its data, where `error` is the failure's words (no answer, or the
 * answer's error for a status other than 200). A replay judges it with the check's `slowAfterMs` and
 * `expectedProvider` as they are now.
 */
export type SampleRequestObservation = SampleRequestData;

/**
 * The manual's "test agent with sample request": `POST /api/v1/generate` through the backend on behalf of an
 * agent. `ok` when it answers in time, `warn` when it answers slower than `slowAfterMs` or from a fallback
 * provider, `fail` otherwise. Replayable ({@link SampleRequestObservation}).
 */
export function sampleRequest(options: {
  backendUrl: string;
  agent: string;
  prompt: string;
  slowAfterMs?: number;
  /** The provider a healthy platform answers from. @default "openrouter" */
  expectedProvider?: string;
}): ReplayableCheck<SampleRequestData, SampleRequestObservation> {
  const slowAfterMs = options.slowAfterMs ?? 60_000;
  const expected = options.expectedProvider ?? 'openrouter';
  return defineCheck({
    kind: 'aiwebtest.sample-request',
    description: `POST /api/v1/generate as ${options.agent}`,
    async read(ctx): Promise<SampleRequestObservation> {
      const started = performance.now();
      try {
        const { status, body } = await fetchJson(
          new URL('/api/v1/generate', options.backendUrl),
          ctx.signal,
          {
            method: 'POST',
            body: JSON.stringify({ prompt: options.prompt, agent: options.agent }),
          },
        );
        const latencyMs = Math.round(performance.now() - started);
        const provider = (body as { provider?: string } | null)?.provider ?? null;
        const error =
          status === 200
            ? null
            : ((body as { error?: { message?: string } } | null)?.error?.message ?? `HTTP ${status}`);
        return { httpStatus: status, provider, latencyMs, error };
      } catch (e) {
        ctx.signal.throwIfAborted();
        return {
          httpStatus: null,
          provider: null,
          latencyMs: Math.round(performance.now() - started),
          error: reason(e),
        };
      }
    },
    judge(data) {
      const { httpStatus, provider, latencyMs } = data;
      if (httpStatus === null) return finding('fail', `sample request got no answer: ${data.error}`, data);
      if (httpStatus !== 200) return finding('fail', `sample request failed: ${data.error}`, data);
      if (latencyMs > slowAfterMs)
        return finding('warn', `sample request answered by ${provider} but took ${latencyMs} ms`, data);
      if (provider !== expected)
        return finding('warn', `sample request answered by ${provider} (fallback), ${latencyMs} ms`, data);
      return finding('ok', `sample request answered by ${provider} in ${latencyMs} ms`, data);
    },
  });
}

const GridStatus = z.looseObject({
  value: z.looseObject({
    ready: z.boolean(),
    message: z.string(),
    nodes: z.array(
      z.looseObject({
        id: z.string(),
        availability: z.string(),
        maxSessions: z.number(),
        slots: z.array(
          z.looseObject({
            session: z.unknown().nullable(),
            stereotype: z.looseObject({ browserName: z.string() }),
          }),
        ),
      }),
    ),
  }),
});

/** What {@link seleniumGridStatus} found. */
export interface GridStatusData {
  reachable: boolean;
  ready: boolean;
  message: string | null;
  nodes: number;
  slots: number;
  sessions: number;
  /** `sessions / slots` (0 with no slot). */
  utilization: number;
  byBrowser: Record<string, { nodes: number; slots: number; sessions: number }>;
}

/**
 * What {@link seleniumGridStatus} read: the grid's figures as in its data, and how the hub answered. A replay
 * judges them with the check's `maxUtilization` as it is now.
 */
export interface GridStatusObservation {
  /** `null` when the hub did not answer. */
  httpStatus: number | null;
  /** The answer was a Grid 4 status document. */
  statusDocument: boolean;
  grid: GridStatusData;
}

/**
 * `GET <hub>/status` (Selenium Grid 4): `fail` when unreachable or not ready, `warn` above `maxUtilization`
 * (the manual alerts at 80%), else `ok`; the nodes and their slots as a table. Replayable
 * ({@link GridStatusObservation}).
 */
export function seleniumGridStatus(
  hubUrl: string,
  maxUtilization = 0.8,
): ReplayableCheck<GridStatusData, GridStatusObservation> {
  return defineCheck({
    kind: 'aiwebtest.selenium-grid-status',
    description: 'GET /status of the Selenium Grid hub',
    async read(ctx): Promise<GridStatusObservation> {
      const empty = { nodes: 0, slots: 0, sessions: 0, utilization: 0, byBrowser: {} };
      try {
        const { status, body } = await fetchJson(new URL('/status', hubUrl), ctx.signal);
        const parsed = GridStatus.safeParse(body);
        if (!parsed.success) {
          return {
            httpStatus: status,
            statusDocument: false,
            grid: { reachable: true, ready: false, message: null, ...empty },
          };
        }
        const { ready, message, nodes } = parsed.data.value;
        const byBrowser: GridStatusData['byBrowser'] = {};
        let slots = 0;
        let sessions = 0;
        for (const node of nodes) {
          const browser = node.slots[0]?.stereotype.browserName ?? 'unknown';
          // A free slot has `session: null`; a slot without the field is free too, not busy.
          const used = node.slots.filter((s) => s.session !== null && s.session !== undefined).length;
          const entry = byBrowser[browser] ?? { nodes: 0, slots: 0, sessions: 0 };
          byBrowser[browser] = entry;
          entry.nodes += 1;
          entry.slots += node.slots.length;
          entry.sessions += used;
          slots += node.slots.length;
          sessions += used;
        }
        const utilization = slots === 0 ? 0 : sessions / slots;
        return {
          httpStatus: status,
          statusDocument: true,
          grid: {
            reachable: true,
            ready,
            message,
            nodes: nodes.length,
            slots,
            sessions,
            utilization,
            byBrowser,
          },
        };
      } catch (e) {
        ctx.signal.throwIfAborted();
        return {
          httpStatus: null,
          statusDocument: false,
          grid: { reachable: false, ready: false, message: reason(e), ...empty },
        };
      }
    },
    judge({ httpStatus, statusDocument, grid: data }) {
      if (!data.reachable) return finding('fail', `Selenium hub unreachable: ${data.message}`, data);
      if (!statusDocument)
        return finding('fail', `the Selenium hub answered ${httpStatus} without a status document`, data);
      const { ready, message, nodes, slots, sessions, utilization, byBrowser } = data;
      const evidence: Evidence[] = [
        {
          kind: 'table',
          title: 'Selenium Grid nodes',
          columns: ['browser', 'nodes', 'slots', 'sessions'],
          rows: Object.entries(byBrowser).map(([b, e]) => [b, e.nodes, e.slots, e.sessions]),
        },
      ];
      const usage = `${sessions}/${slots} slots busy (${Math.round(utilization * 100)}%) on ${nodes} nodes`;
      // A Grid with every slot taken reports ready:false too; that is saturation, not an outage.
      if (!ready && !(slots > 0 && sessions >= slots))
        return finding('fail', `Selenium Grid not ready: ${message}`, data, evidence);
      if (utilization > maxUtilization)
        return finding('warn', `Selenium Grid saturated: ${usage}`, data, evidence);
      return finding('ok', `Selenium Grid ready: ${usage}`, data, evidence);
    },
  });
}

/** One sample of a Prometheus text exposition: `name{labels} value`. */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_LINE = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
const LABEL_PAIR = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses the Prometheus text format (what prom-client's `/metrics` serves); comments and bad lines are skipped. */
export function parseMetrics(text: string): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = SAMPLE_LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(LABEL_PAIR)) {
      labels[pair[1] as string] = (pair[2] as string)
        .replace(/\\n/g, '\n')
        .replace(/\\"/g, '"')
        .replace(/\\\\/g, '\\');
    }
    const value = m[3] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[3]);
    if (!Number.isNaN(value)) samples.push({ name: m[1] as string, labels, value });
  }
  return samples;
}

/** The sum of every series of `name` whose labels include `match` (0 when none). */
export function metricSum(
  samples: readonly MetricSample[],
  name: string,
  match: Record<string, string> = {},
): number {
  return samples
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** Whether any series of `name` is present. */
export function hasMetric(samples: readonly MetricSample[], name: string): boolean {
  return samples.some((s) => s.name === name);
}

/**
 * `histogram_quantile(q, …)` over the cumulative `<histogram>_bucket` counts since the process started (a
 * `/metrics` page has no rate window), grouped by `by` (e.g. `route`); `Number.NaN` for a group with no
 * observation. Linear interpolation inside the bucket, as Prometheus does; the +Inf bucket yields the highest
 * finite bound.
 */
export function histogramQuantile(
  samples: readonly MetricSample[],
  histogram: string,
  q: number,
  by?: string,
): Map<string, { quantile: number; count: number }> {
  const groups = new Map<string, Map<number, number>>();
  for (const s of samples) {
    if (s.name !== `${histogram}_bucket`) continue;
    const le = s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le);
    if (Number.isNaN(le)) continue;
    const key = by ? (s.labels[by] ?? '') : '';
    const buckets = groups.get(key) ?? new Map<number, number>();
    // Other labels (status code, outcome) are summed, as `sum by (le, <by>)` would.
    buckets.set(le, (buckets.get(le) ?? 0) + s.value);
    groups.set(key, buckets);
  }
  const result = new Map<string, { quantile: number; count: number }>();
  for (const [key, buckets] of groups) {
    const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
    const count = sorted.at(-1)?.[1] ?? 0;
    if (count === 0) {
      result.set(key, { quantile: Number.NaN, count: 0 });
      continue;
    }
    const rank = q * count;
    let previousBound = 0;
    let previousCount = 0;
    let quantile = Number.NaN;
    for (const [bound, cumulative] of sorted) {
      if (cumulative >= rank) {
        if (bound === Number.POSITIVE_INFINITY) {
          quantile = previousBound;
        } else {
          const inBucket = cumulative - previousCount;
          quantile =
            inBucket === 0
              ? bound
              : previousBound + ((bound - previousBound) * (rank - previousCount)) / inBucket;
        }
        break;
      }
      previousBound = bound;
      previousCount = cumulative;
    }
    result.set(key, { quantile, count });
  }
  return result;
}

/** What {@link backendMetrics} found. */
export interface BackendMetricsData {
  reachable: boolean;
  samples: MetricSample[];
  error: string | null;
}

/**
 * What {@link backendMetrics} read: the `/metrics` samples (an infinite value written `"+Inf"`, which JSON
 * cannot hold), or why they could not be read. A replay gives the samples to the runbook's `judge` as it is
 * now.
 */
export interface BackendMetricsObservation {
  reachable: boolean;
  /** The HTTP status of `/metrics`; `null` without an answer. */
  httpStatus: number | null;
  samples: { name: string; labels: Record<string, string>; value: number | '+Inf' }[];
  error: string | null;
}

/**
 * `GET /metrics` of the backend (its prom-client registry): what a runbook decides from when no Prometheus is
 * configured. The samples are the data; `judge` turns them into the status and summary (the runbook's threshold).
 * Replayable ({@link BackendMetricsObservation}).
 */
export function backendMetrics(
  backendUrl: string,
  judge: (samples: MetricSample[]) => { status: 'ok' | 'warn' | 'fail' | 'unknown'; summary: string },
  show: readonly string[] = [],
): ReplayableCheck<BackendMetricsData, BackendMetricsObservation> {
  const decide = judge;
  return defineCheck({
    kind: 'aiwebtest.backend-metrics',
    description: 'GET /metrics of the backend',
    async read(ctx): Promise<BackendMetricsObservation> {
      try {
        const response = await fetch(new URL('/metrics', backendUrl), {
          signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(TIMEOUT_MS)]),
        });
        const text = await response.text();
        if (!response.ok)
          return {
            reachable: true,
            httpStatus: response.status,
            samples: [],
            error: `HTTP ${response.status}`,
          };
        const samples = parseMetrics(text).map((s) => ({
          ...s,
          value: s.value === Number.POSITIVE_INFINITY ? ('+Inf' as const) : s.value,
        }));
        return { reachable: true, httpStatus: response.status, samples, error: null };
      } catch (e) {
        ctx.signal.throwIfAborted();
        return { reachable: false, httpStatus: null, samples: [], error: reason(e) };
      }
    },
    judge(seen): Finding<BackendMetricsData> {
      if (!seen.reachable) {
        return finding('fail', `backend /metrics unreachable: ${seen.error}`, {
          reachable: false,
          samples: [],
          error: seen.error,
        });
      }
      if (seen.error !== null) {
        return finding('fail', `the backend's /metrics answered ${seen.httpStatus}`, {
          reachable: true,
          samples: [],
          error: seen.error,
        });
      }
      const samples: MetricSample[] = seen.samples.map((s) => ({
        ...s,
        value: s.value === '+Inf' ? Number.POSITIVE_INFINITY : s.value,
      }));
      const shown = samples.filter((s) => show.some((prefix) => s.name.startsWith(prefix)));
      const evidence: Evidence[] = shown.length
        ? [
            {
              kind: 'table',
              title: 'backend /metrics',
              columns: ['metric', 'labels', 'value'],
              rows: shown.map((s) => [
                s.name,
                Object.entries(s.labels)
                  .map(([k, v]) => `${k}="${v}"`)
                  .join(', '),
                s.value,
              ]),
            },
          ]
        : [];
      let judged: { status: 'ok' | 'warn' | 'fail' | 'unknown'; summary: string };
      try {
        judged = decide(samples);
      } catch (e) {
        // As before the split: a judge that throws is reported like a /metrics that could not be read.
        return finding('fail', `backend /metrics unreachable: ${reason(e)}`, {
          reachable: false,
          samples: [],
          error: reason(e),
        });
      }
      return finding(judged.status, judged.summary, { reachable: true, samples, error: null }, evidence);
    },
  });
}

/** What {@link httpProbe} found. */
export interface HttpProbeData {
  url: string;
  reachable: boolean;
  httpStatus: number | null;
  latencyMs: number;
  error: string | null;
}

/**
 * The manual's `curl -I <url>`: a GET of a status endpoint. `ok` on a 2xx, `fail` on anything else or no
 * answer (the reason named: `ECONNREFUSED`, `ECONNRESET`, a timeout). Credentials in the URL are sent as Basic
 * auth and never shown.
 */
export function httpProbe(url: string, what: string): Check<HttpProbeData> {
  // fetch refuses URLs with credentials (and would name them in its error): they travel as Basic auth instead.
  const parsed = new URL(url);
  const headers: Record<string, string> = {};
  if (parsed.username || parsed.password) {
    const pair = `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`;
    headers.authorization = `Basic ${Buffer.from(pair).toString('base64')}`;
  }
  parsed.username = '';
  parsed.password = '';
  const shown = parsed.toString();
  return defineCheck<HttpProbeData>({
    kind: 'aiwebtest.http-probe',
    description: `GET ${shown} (${what})`,
    async run(ctx) {
      const started = performance.now();
      try {
        const response = await fetch(shown, {
          headers,
          signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(TIMEOUT_MS)]),
        });
        await response.arrayBuffer();
        const latencyMs = Math.round(performance.now() - started);
        const data = { url: shown, reachable: true, httpStatus: response.status, latencyMs, error: null };
        if (response.ok)
          return finding('ok', `${what} reachable: ${response.status} in ${latencyMs} ms`, data);
        return finding('fail', `${what} answers ${response.status}`, data);
      } catch (e) {
        ctx.signal.throwIfAborted();
        return finding('fail', `${what} unreachable: ${reason(e)}`, {
          url: shown,
          reachable: false,
          httpStatus: null,
          latencyMs: Math.round(performance.now() - started),
          error: reason(e),
        });
      }
    },
  });
}
