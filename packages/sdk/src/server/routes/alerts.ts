import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context';

/** To be completed. */
export function alertRoutes(_app: FastifyInstance, _ctx: ServerContext): void {}
