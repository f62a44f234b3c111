import type { FastifyInstance } from 'fastify';
import { Gauge, Histogram, type Registry } from 'prom-client';
import { LatencyWindow } from './latency-window';

/** The route label of a request no route matched: never the raw URL, which would make one series per scan. */
const UNMATCHED = 'unmatched';

/**
 * The backend's HTTP metrics in `registry`: the `http_request_duration_seconds` histogram by method, route
 * pattern and status, and the `http_request_duration_p95` gauge (ms, last 60 s) of Runbook 8's alert.
 * Scrapes of `/metrics` are left out of the p95: a fast scrape every few seconds would dilute a real slowdown.
 */
export function instrumentHttp(app: FastifyInstance, registry: Registry): { window: LatencyWindow } {
  const window = new LatencyWindow({ windowMs: 60_000 });
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Duration of HTTP requests in seconds, by method, route pattern and status code.',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    registers: [registry],
  });
  new Gauge({
    name: 'http_request_duration_p95',
    help: '95th percentile of HTTP request durations over the last 60 seconds, in milliseconds (0 when none).',
    registers: [registry],
    collect() {
      this.set(window.p95());
    },
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? UNMATCHED;
    const ms = reply.elapsedTime;
    duration.observe({ method: request.method, route, status_code: String(reply.statusCode) }, ms / 1000);
    if (route !== '/metrics') window.record(ms);
  });
  return { window };
}
