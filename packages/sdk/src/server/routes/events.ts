import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context';

/** To be completed. */
export function eventRoutes(_app: FastifyInstance, _ctx: ServerContext): void {}
