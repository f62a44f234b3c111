/**
 * The manual's `curl http://prometheus:9090/api/v1/query?query=…` diagnosis steps as a check: an instant
 * query, its samples as a table, the last 15 minutes of each series as a graph, and a status from the
 * manual's threshold.
 */
import { defineCheck, type Evidence, type FindingStatus, finding } from '@aiwebtest/runbooks';
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

/** An instant PromQL query judged by the runbook's threshold. Never throws for an unreachable Prometheus. */
export function prometheusQuery(options: PrometheusQueryOptions) {
  return defineCheck<PrometheusQueryData>({
    kind: 'prometheus.query',
    description: `PromQL: ${options.query}`,
    async run(ctx) {
      if (!options.url) {
        return finding('unknown', 'no Prometheus configured (PROMETHEUS_URL)', {
          query: options.query,
          samples: [],
          error: 'no Prometheus URL',
        });
      }
      const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(10_000)]);
      try {
        const instant = new URL('/api/v1/query', options.url);
        instant.searchParams.set('query', options.query);
        const answer = VectorAnswer.parse(await getJson(instant, signal));
        const samples = answer.data.result.map((r) => ({ labels: r.metric, value: Number(r.value[1]) }));
        const evidence: Evidence[] = [
          {
            kind: 'table',
            title: options.query,
            columns: ['series', 'value'],
            rows: samples.map((s) => [seriesName(s.labels), s.value]),
          },
        ];
        if (options.graph !== false) evidence.push(...(await graph(options, signal)));
        const { status, summary } = options.judge(samples);
        return finding(status, summary, { query: options.query, samples, error: null }, evidence);
      } catch (e) {
        ctx.signal.throwIfAborted();
        const error = e instanceof Error ? e.message : String(e);
        return finding('unknown', `Prometheus could not be asked: ${error}`, {
          query: options.query,
          samples: [],
          error,
        });
      }
    },
  });
}

async function graph(options: PrometheusQueryOptions, signal: AbortSignal): Promise<Evidence[]> {
  const end = Date.now() / 1000;
  const range = new URL('/api/v1/query_range', options.url);
  range.searchParams.set('query', options.query);
  range.searchParams.set('start', String(end - 15 * 60));
  range.searchParams.set('end', String(end));
  range.searchParams.set('step', '15');
  const answer = MatrixAnswer.parse(await getJson(range, signal));
  return answer.data.result.map((series) => ({
    kind: 'series' as const,
    title: seriesName(series.metric),
    ...(options.unit ? { unit: options.unit } : {}),
    points: series.values.map(([t, v]) => [t * 1000, Number(v)] as [number, number]),
  }));
}
