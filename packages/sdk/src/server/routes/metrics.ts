import type { FastifyInstance } from 'fastify';
import { Registry, type RegistryContentType } from 'prom-client';
import type { Engine } from '../../engine/engine';
import { type ServiceMetricsOptions, serviceMetrics } from '../metrics';

/** Options of {@link metricsRoutes}. */
export interface MetricsRouteOptions extends Omit<ServiceMetricsOptions, 'onError'> {
  /**
   * The registry to register on and expose, in its own format (Prometheus text, or OpenMetrics).
   * @default a new Prometheus-text registry of its own
   */
  registry?: Registry<RegistryContentType>;
}

/**
 * `GET /metrics`: the service's metrics ({@link serviceMetrics}) in the Prometheus text format,
 * unauthenticated like `/healthz` so a Prometheus scrape needs no token. It shows counts and durations by
 * runbook id only, nothing a bearer token protects. The engine listeners are removed when the app closes.
 */
export function metricsRoutes(app: FastifyInstance, engine: Engine, options: MetricsRouteOptions = {}): void {
  const registry = options.registry ?? new Registry();
  const metrics = serviceMetrics(engine, registry, {
    ...options,
    // A scrape must answer even when the store does not; the failure goes to the log instead.
    onError: (error, what) => app.log.warn({ err: error }, `metrics: ${what} failed`),
  });
  app.addHook('onClose', async () => metrics.dispose());
  app.get(
    '/metrics',
    { schema: { summary: 'Prometheus metrics (text exposition format)', tags: ['health'] } },
    async (_request, reply) => {
      const text = await registry.metrics();
      return reply.type(registry.contentType).send(text);
    },
  );
}
