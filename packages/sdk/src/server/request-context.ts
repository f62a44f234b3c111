import type { FastifyRequest } from 'fastify';
import type { Identity } from './identity';
import type { Role } from './options';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who sent the request; set by the /api/v1 authentication hook, `null` on public routes. */
    identity: Identity | null;
  }
  interface FastifyContextConfig {
    /** The least role a route needs. @default "viewer" under /api/v1 */
    role?: Role;
  }
}

/** The identity of an authenticated request; a route outside the authenticated scope calling it is a bug. */
export function identityOf(request: FastifyRequest): Identity {
  if (!request.identity) throw new Error(`${request.url} is not behind authentication but needs an identity`);
  return request.identity;
}
