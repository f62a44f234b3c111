/**
 * Runbook 8 of the operations manual, "API high latency (p95 > 2s)", on the AI-Web-Test platform.
 *
 * Decisions where the manual leaves room:
 * - Diagnosis 1 and 5 are the manual's PromQL when Prometheus is configured; without it the runbook reads the
 *   same histograms from the backend's `/metrics` (cumulative since the backend started, so an old spike
 *   weighs less) and the backend's own `http_request_duration_p95` gauge (the last 60 s, the alert's metric).
 * - Diagnosis 2 (Jaeger): the platform has no tracing backend. The step says so and ranks the routes by their
 *   p95 from the latency histogram instead: the slowest route is where a trace would have pointed.
 * - Diagnosis 4 (`pg_stat_statements`): the SDK's `slowQueries` reports when the extension is missing; the
 *   runbook then looks at the queries running longer than `dbSlowAfter` right now (`activeQueries`).
 * - Recovery step 2 (database slow) hands over to Runbook 5 (`database-performance`) as a finding: that runbook
 *   owns indexes, vacuum and blocking queries. Step 5 (network) is a finding from the backend's own database
 *   round trip, the nearest thing to the manual's `ping` from a backend pod. "Agent processing slow" has no
 *   number in the manual: `agentSlowAfter` (average decision time over 10 minutes) is ours.
 * - Step 6 (monitor): the p95 gauge covers 60 s, so right after a change it still holds the slow requests
 *   that caused the alert. The runbook waits `monitorAfter` and reports the gauge; whether the change worked is
 *   decided by a request made after it (with caching: the second of two identical requests).
 */
import {
  type Check,
  Duration,
  defineCheck,
  defineRunbook,
  finding,
  onAlert,
  toMillis,
} from '@aiwebtest/runbooks';
import { z } from 'zod';
// The agent list is a fact about the platform's schema, held once with it; schema.ts is constants only.
import { AGENT_TYPES } from '../lab/database/schema';
import { connectionOf, type PackRunbookOptions, PlatformNamespace } from './environment';
import {
  backendHealth,
  backendMetrics,
  hasMetric,
  histogramQuantile,
  type MetricSample,
  metricSum,
  sampleRequest,
} from './platform-checks';
import { prometheusQuery } from './prometheus-query';

/** The manual's agent-processing query (diagnosis 3), unchanged. */
export const AGENT_PROCESSING_SQL =
  "SELECT agent_type, AVG(execution_time_ms), MAX(execution_time_ms) FROM agent_decisions WHERE created_at > NOW() - INTERVAL '10 minutes' GROUP BY agent_type";

/** Input of `api-high-latency`. */
export const ApiHighLatencyInput = z.object({
  /** The platform's namespace. @default "aiwebtest" */
  namespace: PlatformNamespace,
  /** The alert's threshold on the API's p95, in milliseconds. @default 2000 */
  p95AboveMs: z.number().int().positive().default(2000),
  /** Step 6's goal: the p95 should drop below this, in milliseconds. @default 500 */
  healthyBelowMs: z.number().int().positive().default(500),
  /** Step 2: the database is slow when queries take longer than this. @default "1s" */
  dbSlowAfter: Duration.default('1s'),
  /** Step 3: OpenRouter is slow when its p95 exceeds this. @default "10s" */
  openRouterSlowAfter: Duration.default('10s'),
  /** Step 4: agent processing is slow when an agent type's average decision time exceeds this (not in the manual). @default "10s" */
  agentSlowAfter: Duration.default('10s'),
  /** Step 4: the slow agent's replica count after scaling. @default 3 */
  agentReplicas: z.number().int().min(1).max(50).default(3),
  /** Step 5: the backend's database round trip above this counts as high network latency (not in the manual). @default 100 */
  networkSlowAfterMs: z.number().int().positive().default(100),
  /** Step 6: how long to wait before reading the p95 again (the gauge's window is 60 s). @default "1m" */
  monitorAfter: Duration.default('1m'),
});
/** Input of `api-high-latency`, as written. */
export type ApiHighLatencyInput = z.input<typeof ApiHighLatencyInput>;

const ms = (seconds: number) => Math.round(seconds * 1000);

/** Per route, the p95 in ms from the backend's histogram, slowest first (`/metrics` itself left out). */
function routeP95(samples: MetricSample[]): { route: string; p95Ms: number; count: number }[] {
  return [...histogramQuantile(samples, 'http_request_duration_seconds', 0.95, 'route')]
    .filter(([route, q]) => route !== '/metrics' && q.count > 0)
    .map(([route, q]) => ({ route, p95Ms: ms(q.quantile), count: q.count }))
    .sort((a, b) => b.p95Ms - a.p95Ms);
}

/** OpenRouter's p95 in ms from the backend's histogram (every outcome), or null before the first call. */
function openRouterP95Of(samples: MetricSample[]): number | null {
  if (!hasMetric(samples, 'openrouter_api_duration_seconds_bucket')) return null;
  const q = histogramQuantile(samples, 'openrouter_api_duration_seconds', 0.95).get('');
  return q && q.count > 0 ? ms(q.quantile) : null;
}

/** Recovery step 1: what the diagnosis points at, as a finding of its own. */
function bottleneck(found: { name: string; slow: boolean; why: string }[]) {
  return defineCheck<{ bottlenecks: string[] }>({
    kind: 'aiwebtest.latency-bottleneck',
    description: 'the slow part of the request path',
    async run() {
      const slow = found.filter((f) => f.slow);
      const evidence = [
        {
          kind: 'table' as const,
          title: 'latency by component',
          columns: ['component', 'slow', 'measure'],
          rows: found.map((f) => [f.name, f.slow, f.why]),
        },
      ];
      if (slow.length === 0)
        return finding(
          'warn',
          'no bottleneck found among database, OpenRouter, agents and network',
          { bottlenecks: [] },
          evidence,
        );
      return finding(
        'fail',
        `bottleneck: ${slow.map((f) => `${f.name} (${f.why})`).join('; ')}`,
        { bottlenecks: slow.map((f) => f.name) },
        evidence,
      );
    },
  });
}

/** A finding that only says what to do next (no change of its own). */
function advice(kind: string, status: 'ok' | 'warn' | 'fail', summary: string) {
  return defineCheck<{ advice: string }>({
    kind,
    async run() {
      return finding(status, summary, { advice: summary });
    },
  });
}

/**
 * Runbook 8, "API high latency": break the API's p95 down by route, rank the slowest routes, read agent
 * processing times, slow database queries and OpenRouter's latency; then act on the bottleneck (database:
 * Runbook 5; OpenRouter: enable the response cache; agents: scale up), check the network, and watch the p95.
 */
export function createApiHighLatencyRunbook(options: PackRunbookOptions = {}) {
  const connect = connectionOf(options);
  return defineRunbook({
    id: 'api-high-latency',
    title: 'API high latency (p95 > 2s)',
    description:
      'Breaks the API p95 down by route and component (agents, database, OpenRouter, network); enables the OpenRouter response cache, scales a slow agent or hands over to database-performance, and watches the p95.',
    severity: 'P2',
    input: ApiHighLatencyInput,
    triggers: [onAlert({ alertname: 'ApiHighLatency' })],
    tags: ['component: api', 'runbook: 8'],
    async run({ input, step, mode }) {
      const platform = connect();
      const { env } = platform;
      const openRouterSlowMs = toMillis(input.openRouterSlowAfter);

      // Diagnosis 1: endpoint latency breakdown, judged on the alert's metric.
      const metrics = await step.check(
        'endpoint-latency',
        backendMetrics(
          env.backendUrl,
          (samples) => {
            const p95 = metricSum(samples, 'http_request_duration_p95');
            const slowest = routeP95(samples)[0];
            const where = slowest ? `; slowest route ${slowest.route} (p95 ≈ ${slowest.p95Ms} ms)` : '';
            return p95 > input.p95AboveMs
              ? {
                  status: 'fail',
                  summary: `API p95 ${Math.round(p95)} ms over the last minute (above ${input.p95AboveMs} ms)${where}`,
                }
              : {
                  status: 'ok',
                  summary: `API p95 ${Math.round(p95)} ms over the last minute (limit ${input.p95AboveMs} ms)${where}`,
                };
          },
          ['http_request_duration_p95'],
        ),
      );
      if (env.prometheusUrl)
        await step.check(
          'endpoint-latency-promql',
          prometheusQuery({
            url: env.prometheusUrl,
            query:
              'histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket[5m])))',
            unit: 's',
            judge: (samples) => {
              const worst = samples
                .filter((s) => Number.isFinite(s.value))
                .sort((a, b) => b.value - a.value)[0];
              if (!worst) return { status: 'unknown', summary: 'no requests in the last 5 minutes' };
              const p95 = ms(worst.value);
              return {
                status: p95 > input.p95AboveMs ? 'fail' : 'ok',
                summary: `slowest route ${worst.labels.route ?? '?'}: p95 ${p95} ms over 5 minutes`,
              };
            },
          }),
        );

      // Diagnosis 2: no tracing backend; the slowest routes stand in for the slow spans.
      const samples = metrics.data.samples;
      const routes = routeP95(samples);
      await step.check(
        'slowest-routes',
        defineCheck<{ routes: typeof routes }>({
          kind: 'aiwebtest.slowest-routes',
          async run() {
            const top = routes.slice(0, 5);
            return finding(
              top[0] && top[0].p95Ms > input.p95AboveMs ? 'warn' : 'ok',
              `no tracing backend (Jaeger) on this platform; slowest routes by p95: ${top.map((r) => `${r.route} ≈ ${r.p95Ms} ms`).join(', ') || 'none yet'}`,
              { routes: top },
              [
                {
                  kind: 'table',
                  title: 'routes by p95 (since the backend started)',
                  columns: ['route', 'p95 ms', 'requests'],
                  rows: top.map((r) => [r.route, r.p95Ms, r.count]),
                },
              ],
            );
          },
        }),
      );

      // Diagnosis 3: agent processing times (the manual's SQL, unchanged).
      const agents = await step.check(
        'agent-processing',
        platform.db.sqlCheck({
          name: 'Agent processing times over 10 minutes',
          sql: AGENT_PROCESSING_SQL,
          measure: 'rows',
        }),
      );
      const agentRows = (agents.data.rows ?? []).map((r) => ({
        agent: String(r.agent_type),
        avgMs: Number(r.avg),
        maxMs: Number(r.max),
      }));
      const slowestAgent = agentRows
        .filter((r) => (AGENT_TYPES as readonly string[]).includes(r.agent))
        .sort((a, b) => b.avgMs - a.avgMs)[0];
      const agentSlow = slowestAgent !== undefined && slowestAgent.avgMs > toMillis(input.agentSlowAfter);

      // Diagnosis 4: database query times.
      const statements = await step.check(
        'database-queries',
        platform.db.slowQueries({
          limit: 5,
          minMeanTime: input.dbSlowAfter,
          failMeanTime: input.dbSlowAfter,
        }),
      );
      let dbSlow = statements.status === 'fail';
      let dbWhy = statements.summary;
      if (!statements.data.available) {
        const active = await step.check(
          'database-active-queries',
          platform.db.activeQueries({ minDuration: input.dbSlowAfter, failAfter: input.dbSlowAfter }),
        );
        dbSlow = active.data.longRunning > 0;
        dbWhy = active.summary;
      }

      // Diagnosis 5: OpenRouter latency.
      const openRouter = await step.check<unknown>(
        'openrouter-latency',
        env.prometheusUrl
          ? (prometheusQuery({
              url: env.prometheusUrl,
              query:
                'histogram_quantile(0.95, sum by (le) (rate(openrouter_api_duration_seconds_bucket[5m])))',
              unit: 's',
              judge: (s) => {
                const p95 = ms(s[0]?.value ?? Number.NaN);
                return Number.isNaN(p95)
                  ? { status: 'unknown', summary: 'no OpenRouter calls in the last 5 minutes' }
                  : {
                      status: p95 > openRouterSlowMs ? 'fail' : 'ok',
                      summary: `OpenRouter p95 ${p95} ms (slow above ${openRouterSlowMs} ms)`,
                    };
              },
            }) as Check<unknown>)
          : (backendMetrics(env.backendUrl, (s) => {
              const p95 = openRouterP95Of(s);
              return p95 === null
                ? { status: 'unknown', summary: 'no OpenRouter calls measured by the backend yet' }
                : {
                    status: p95 > openRouterSlowMs ? 'fail' : 'ok',
                    summary: `OpenRouter p95 ${p95} ms since the backend started (slow above ${openRouterSlowMs} ms)`,
                  };
            }) as Check<unknown>),
      );
      let openRouterP95: number | null = null;
      if (env.prometheusUrl) {
        const data = openRouter.data as { samples?: { value: number }[] };
        const v = data.samples?.[0]?.value;
        openRouterP95 = v === undefined || Number.isNaN(v) ? null : ms(v);
      } else {
        openRouterP95 = openRouterP95Of((openRouter.data as { samples?: MetricSample[] }).samples ?? []);
      }
      const openRouterSlow = openRouterP95 !== null && openRouterP95 > openRouterSlowMs;

      const health = await step.check('network-latency', backendHealth(env.backendUrl));
      const dbRoundTrip =
        (health.data.health?.database as { latency_ms?: number | null } | undefined)?.latency_ms ?? null;
      const networkSlow = dbRoundTrip !== null && dbRoundTrip > input.networkSlowAfterMs;

      const apiSlow = metrics.status === 'fail';
      const found = await step.check(
        'identify-bottleneck',
        bottleneck([
          { name: 'database', slow: dbSlow, why: dbWhy },
          {
            name: 'openrouter',
            slow: openRouterSlow,
            why:
              openRouterP95 === null
                ? 'no calls measured'
                : `p95 ${openRouterP95} ms (slow above ${openRouterSlowMs} ms)`,
          },
          {
            name: 'agents',
            slow: agentSlow,
            why: slowestAgent
              ? `${slowestAgent.agent} avg ${Math.round(slowestAgent.avgMs)} ms (slow above ${toMillis(input.agentSlowAfter)} ms)`
              : 'no decisions in 10 minutes',
          },
          {
            name: 'network',
            slow: networkSlow,
            why:
              dbRoundTrip === null
                ? 'backend database round trip unknown'
                : `backend → database ${dbRoundTrip} ms (high above ${input.networkSlowAfterMs} ms)`,
          },
        ]),
      );
      if (!apiSlow)
        return step.done(`API latency is healthy: ${metrics.summary}; ${found.summary}; no change needed`);
      if (found.data.bottlenecks.length === 0)
        return step.escalate(
          `latency persists with no bottleneck found (${metrics.summary}): review application code for inefficiencies`,
        );

      // Recovery, by bottleneck, in the manual's order.
      const done: string[] = [];
      if (dbSlow) {
        await step.check(
          'database-slow',
          advice(
            'aiwebtest.handover',
            'fail',
            `database slow (${dbWhy}): run database-performance (Runbook 5)`,
          ),
        );
        done.push('database slow: run database-performance (Runbook 5)');
      }
      let cacheApplied = false;
      if (openRouterSlow) {
        const cache = await step.act(
          'enable-caching',
          platform.k8s.setEnv({
            namespace: input.namespace,
            name: 'backend',
            env: { OPENROUTER_CACHE_ENABLED: 'true', OPENROUTER_CACHE_TTL: '300' },
          }),
          { onGiveUp: step.escalate('the backend did not take the cache settings: enable them manually') },
        );
        cacheApplied = cache.status === 'applied' || cache.status === 'noop';
        done.push(
          cache.status === 'planned'
            ? `would ${cache.plan.summary}`
            : cacheApplied
              ? 'OpenRouter response cache enabled (TTL 300 s)'
              : 'enable the OpenRouter response cache',
        );
      }
      if (agentSlow && slowestAgent) {
        const scaled = await step.act(
          'scale-agent',
          platform.k8s.scale({
            namespace: input.namespace,
            name: `${slowestAgent.agent}-agent`,
            replicas: input.agentReplicas,
          }),
          { onGiveUp: step.escalate('infrastructure issue: scale up resources (CPU, memory, network)') },
        );
        done.push(
          scaled.status === 'planned'
            ? `would ${scaled.plan.summary}`
            : scaled.status === 'skipped'
              ? `scale ${slowestAgent.agent}-agent to ${input.agentReplicas}`
              : `${slowestAgent.agent}-agent scaled to ${input.agentReplicas}`,
        );
      }
      if (networkSlow) {
        await step.check(
          'network-slow',
          advice(
            'aiwebtest.network',
            'fail',
            `network latency high: backend → database ${dbRoundTrip} ms; check inter-service network (infrastructure issue: scale up resources)`,
          ),
        );
        done.push('network latency high');
      }
      if (mode !== 'execute') return step.done(`${found.summary}; ${done.join('; ')}`);

      // Step 6: monitor.
      if (cacheApplied) {
        await step.check(
          'warm-cache',
          sampleRequest({
            backendUrl: env.backendUrl,
            agent: 'generation_agent',
            prompt: 'runbook 8: latency check',
          }),
        );
        const after = await step.check(
          'latency-after-change',
          sampleRequest({
            backendUrl: env.backendUrl,
            agent: 'generation_agent',
            prompt: 'runbook 8: latency check',
            slowAfterMs: input.healthyBelowMs,
          }),
        );
        if (after.data.httpStatus !== 200 || after.data.latencyMs > input.healthyBelowMs)
          return step.escalate(
            `latency persists after enabling the cache (${after.summary}): if external dependency, contact provider support`,
          );
      }
      await step.sleep('monitor-wait', input.monitorAfter);
      const monitored = await step.check(
        'monitor-latency',
        backendMetrics(env.backendUrl, (s) => {
          const p95 = Math.round(metricSum(s, 'http_request_duration_p95'));
          return p95 < input.healthyBelowMs
            ? { status: 'ok', summary: `API p95 ${p95} ms (below ${input.healthyBelowMs} ms)` }
            : {
                status: 'warn',
                summary: `API p95 still ${p95} ms over the last minute (goal < ${input.healthyBelowMs} ms)`,
              };
        }),
      );
      return step.done(`${found.summary}; ${done.join('; ')}; ${monitored.summary}`);
    },
  });
}

/** `api-high-latency` on the platform the environment describes. */
export const apiHighLatency = createApiHighLatencyRunbook();
