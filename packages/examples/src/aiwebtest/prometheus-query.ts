/**
 * The manual's `curl http://prometheus:9090/api/v1/query?query=…` diagnosis steps as a check: an instant
 * query, its samples as a table, the last 15 minutes of each series as a graph, and a status from the
 * manual's threshold.
 */
import {
  defineCheck,
  type Evidence,
  type FindingStatus,
  finding,
  type ReplayableCheck,
} from '@aiwebtest/runbooks';
import { z } from 'zod';

/** One series of an instant query's answer. */
export interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** What {@link prometheusQuery} found. */
export interface PrometheusQueryData {
  query: string;
  samples: Sample[];
  /** Why Prometheus could not be asked, when it could not. */
  error: string | null;
}

const VectorAnswer = z.object({
  status: z.literal('success'),
  data: z.object({
    resultType: z.literal('vector'),
    result: z.array(
      z.object({ metric: z.record(z.string(), z.string()), value: z.tuple([z.number(), z.string()]) }),
    ),
  }),
});
const MatrixAnswer = z.object({
  status: z.literal('success'),
  data: z.object({
    resultType: z.literal('matrix'),
    result: z.array(
      z.object({
        metric: z.record(z.string(), z.string()),
        values: z.array(z.tuple([z.number(), z.string()])),
      }),
    ),
  }),
});

export interface PrometheusQueryOptions {
  /** Prometheus's base URL; without one the check reports `unknown` (nothing to ask). */
  url: string | undefined;
  /** The PromQL expression, as in the manual. */
  query: string;
  /** How the samples are judged, with the summary to show. */
  judge(samples: Sample[]): { status: FindingStatus; summary: string };
  /** Graph the last 15 minutes of the query. @default true */
  graph?: boolean;
  /** The graph's unit, e.g. `s`. */
  unit?: string;
}

const seriesName = (labels: Record<string, string>) =>
  Object.entries(labels)
    .filter(([k]) => k !== '__name__')
    .map(([k, v]) => `${k}="${v}"`)
    .join(', ') || 'value';

async function getJson(url: URL, signal: AbortSignal): Promise<unknown> {
  const response = await fetch(url, { signal, headers: { accept: 'application/json' } });
  if (!response.ok) throw new Error(`Prometheus answered ${response.status} ${response.statusText}`);
  return response.json();
}

/** One series of an instant query's answer as Prometheus wrote it (`"NaN"` and `"+Inf"` survive JSON). */
export interface RawSample {
  labels: Record<string, string>;
  value: string;
}

/** One series of the graph: its name and its points (`[ms since the epoch, value as written]`). */
export interface GraphSeries {
  title: string;
  points: [number, string][];
}

/**
 * What {@link prometheusQuery} read: the instant query's samples and the graph's series, or why
 * Prometheus could not be asked. A replay gives the samples to the runbook's `judge` as it is now.
 */
export interface PrometheusQueryObservation {
  samples: RawSample[];
  /** `null` without a graph (`graph: false`, or Prometheus not asked). */
  graph: GraphSeries[] | null;
  /** Why Prometheus could not be asked (no URL, unreachable, a bad answer); `null` when it answered. */
  error: string | null;
  /** `false` when no Prometheus URL was given. */
  configured: boolean;
}

/**
 * An instant PromQL query judged by the runbook's threshold. Never throws for an unreachable Prometheus.
 * Replayable: `read` asks Prometheus ({@link PrometheusQueryObservation}), `judge` is the runbook's `judge`.
 */
export function prometheusQuery(
  options: PrometheusQueryOptions,
): ReplayableCheck<PrometheusQueryData, PrometheusQueryObservation> {
  const failed = (error: string) =>
    finding<PrometheusQueryData>('unknown', `Prometheus could not be asked: ${error}`, {
      query: options.query,
      samples: [],
      error,
    });
  return defineCheck({
    kind: 'prometheus.query',
    description: `PromQL: ${options.query}`,
    async read(ctx): Promise<PrometheusQueryObservation> {
      if (!options.url) return { samples: [], graph: null, error: 'no Prometheus URL', configured: false };
      const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(10_000)]);
      try {
        const instant = new URL('/api/v1/query', options.url);
        instant.searchParams.set('query', options.query);
        const answer = VectorAnswer.parse(await getJson(instant, signal));
        const samples = answer.data.result.map((r) => ({ labels: r.metric, value: r.value[1] }));
        const series = options.graph !== false ? await graph(options, signal) : null;
        return { samples, graph: series, error: null, configured: true };
      } catch (e) {
        ctx.signal.throwIfAborted();
        return {
          samples: [],
          graph: null,
          error: e instanceof Error ? e.message : String(e),
          configured: true,
        };
      }
    },
    judge(seen) {
      if (!seen.configured) {
        return finding('unknown', 'no Prometheus configured (PROMETHEUS_URL)', {
          query: options.query,
          samples: [],
          error: 'no Prometheus URL',
        });
      }
      if (seen.error !== null) return failed(seen.error);
      const samples = seen.samples.map((s) => ({ labels: s.labels, value: Number(s.value) }));
      const evidence: Evidence[] = [
        {
          kind: 'table',
          title: options.query,
          columns: ['series', 'value'],
          rows: samples.map((s) => [seriesName(s.labels), s.value]),
        },
      ];
      for (const series of seen.graph ?? []) {
        evidence.push({
          kind: 'series',
          title: series.title,
          ...(options.unit ? { unit: options.unit } : {}),
          points: series.points.map(([t, v]): [number, number] => [t, Number(v)]),
        });
      }
      let judged: { status: FindingStatus; summary: string };
      try {
        judged = options.judge(samples);
      } catch (e) {
        // As before the split: a judge that throws is reported like an answer that could not be read.
        return failed(e instanceof Error ? e.message : String(e));
      }
      return finding(judged.status, judged.summary, { query: options.query, samples, error: null }, evidence);
    },
  });
}

async function graph(options: PrometheusQueryOptions, signal: AbortSignal): Promise<GraphSeries[]> {
  const end = Date.now() / 1000;
  const range = new URL('/api/v1/query_range', options.url);
  range.searchParams.set('query', options.query);
  range.searchParams.set('start', String(end - 15 * 60));
  range.searchParams.set('end', String(end));
  range.searchParams.set('step', '15');
  const answer = MatrixAnswer.parse(await getJson(range, signal));
  return answer.data.result.map((series) => ({
    title: seriesName(series.metric),
    points: series.values.map(([t, v]): [number, string] => [t * 1000, v]),
  }));
}
