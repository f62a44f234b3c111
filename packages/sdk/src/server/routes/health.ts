import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Engine } from '../../engine/engine';
import { HttpError } from '../errors';
import { ErrorView } from '../views';

/**
 * `/healthz` (the process answers) and `/readyz` (its store answers too), unauthenticated for probes.
 * Liveness deliberately ignores the database: restarting replicas does not fix an unreachable PostgreSQL.
 */
export function healthRoutes(app: FastifyInstance, engine: Engine, readyTimeoutMs: number): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const Status = z.object({ status: z.literal('ok') });
  api.get(
    '/healthz',
    { schema: { summary: 'Liveness: the process answers', tags: ['health'], response: { 200: Status } } },
    async () => ({ status: 'ok' as const }),
  );
  api.get(
    '/readyz',
    {
      schema: {
        summary: 'Readiness: the run store answers a trivial query',
        tags: ['health'],
        response: { 200: Status, 503: ErrorView },
      },
    },
    async (request) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${readyTimeoutMs}ms`)), readyTimeoutMs);
      });
      try {
        await Promise.race([engine.store.driver.query('SELECT 1'), timeout]);
      } catch (e) {
        request.log.warn({ err: e }, 'readiness check failed');
        throw new HttpError(
          503,
          'NOT_READY',
          'The run store (PostgreSQL) does not answer; this replica cannot serve requests yet.',
        );
      } finally {
        clearTimeout(timer);
      }
      return { status: 'ok' as const };
    },
  );
}
