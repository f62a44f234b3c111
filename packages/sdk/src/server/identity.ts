import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { HttpError } from './errors';
import type { Role } from './options';

/** Who made a request, and how the service knows. */
export interface Identity {
  /** The actor recorded on runs, decisions and audit entries. */
  name: string;
  role: Role;
  /** How the identity was established; Grafana's proxy identity (`grafana`) comes next to bearer tokens. */
  via: 'token';
}

/** A token grant after validation: the hash as bytes, ready for constant-time comparison. */
export interface TokenEntry {
  name: string;
  role: Role;
  sha256: Buffer;
}

const RANK: Record<Role, number> = { viewer: 1, editor: 2, admin: 3 };

/** True when `role` includes everything `needed` may do. */
export function hasRole(role: Role, needed: Role): boolean {
  return RANK[role] >= RANK[needed];
}

/** SHA-256 of a token as hex: what the service's `tokens` option stores. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * Establishes who sent `request`, from `Authorization: Bearer <token>`. Throws 401 `UNAUTHENTICATED` when the
 * header is missing, malformed or names no known token. The one place identities come from: Grafana's
 * `X-Grafana-Context` (trusted only with the app's shared token) is to be added here.
 */
export function authenticate(request: FastifyRequest, tokens: readonly TokenEntry[]): Identity {
  const header = request.headers.authorization;
  if (!header) {
    throw new HttpError(
      401,
      'UNAUTHENTICATED',
      'No credentials: send `Authorization: Bearer <token>` with a token the service was configured with.',
    );
  }
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match?.[1]) {
    throw new HttpError(401, 'UNAUTHENTICATED', 'Malformed Authorization header: expected `Bearer <token>`.');
  }
  const presented = createHash('sha256').update(match[1], 'utf8').digest();
  // Every entry is compared, and each comparison takes the same time, so timing tells nothing about
  // which token (or how much of one) matched.
  let found: TokenEntry | undefined;
  for (const entry of tokens) {
    if (timingSafeEqual(presented, entry.sha256) && !found) found = entry;
  }
  if (!found) {
    throw new HttpError(
      401,
      'UNAUTHENTICATED',
      'Unknown bearer token: check the token, or ask an administrator to add its SHA-256 to the service.',
    );
  }
  return { name: found.name, role: found.role, via: 'token' };
}

/** Throws 403 `FORBIDDEN`, naming the role needed, when `identity` may not do `what`. */
export function requireRole(identity: Identity, needed: Role, what: string): void {
  if (!hasRole(identity.role, needed)) {
    throw new HttpError(
      403,
      'FORBIDDEN',
      `${what} needs the ${needed} role; ${identity.name} has ${identity.role}. Ask an administrator for access. Nothing was changed.`,
      { needed, role: identity.role },
    );
  }
}
