import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { AuthenticationError, HttpError } from './errors';
import { GRAFANA_CONTEXT_HEADER, parseGrafanaContext, ROLE_OF_ORG_ROLE } from './grafana-identity';
import type { Role } from './options';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The kind of token the route takes: `alertmanager` for Alertmanager's webhook, which takes nothing else.
     * @default "personal" (personal tokens and Grafana users; never an Alertmanager token)
     */
    tokenKind?: 'personal' | 'alertmanager';
  }
}

/**
 * Who made a request, and how the service knows.
 *
 * Token names and Grafana logins are one namespace of people: `ada` holding a token and `ada` signed in to
 * Grafana are the same actor, so the four-eyes rule (no approving your own plan) holds across both ways in.
 */
export interface Identity {
  /** The actor recorded on runs, decisions and audit entries: the token's holder, or the Grafana login. */
  name: string;
  role: Role;
  /**
   * `token`: a personal bearer token; `grafana`: a Grafana user, through the Grafana app's token;
   * `alertmanager`: Alertmanager's webhook token, valid on the webhook only (elsewhere: 403 `FORBIDDEN`).
   */
  via: 'token' | 'grafana' | 'alertmanager';
  /** For `via: 'grafana'`: the Grafana user as Grafana's plugin proxy described it, for the audit. */
  grafana?: { login: string; orgId: number; userId: number };
}

/** A token grant after validation: the hash as bytes, ready for constant-time comparison. */
export interface TokenEntry {
  name: string;
  role: Role;
  sha256: Buffer;
  /** The Grafana app's token: valid only with `X-Grafana-Context`. */
  grafana: boolean;
  /** Alertmanager's webhook token: valid only on `POST /api/v1/alerts/alertmanager`. */
  alertmanager: boolean;
}

const RANK: Record<Role, number> = { viewer: 1, editor: 2, admin: 3 };

/** True when `role` includes everything `needed` may do. */
export function hasRole(role: Role, needed: Role): boolean {
  return RANK[role] >= RANK[needed];
}

/** The lesser of two roles. */
export function lowerRole(a: Role, b: Role): Role {
  return RANK[a] <= RANK[b] ? a : b;
}

/** SHA-256 of a token as hex: what the service's `tokens` option stores. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

const UNTRUSTED =
  'X-Grafana-Context is trusted only together with the Grafana app\'s token (a token granted with "grafana": true)';

/**
 * Establishes who sent `request`: from `Authorization: Bearer <token>`, and for the Grafana app's token
 * from the `X-Grafana-Context` header Grafana's plugin proxy adds: the Grafana user (its `Login`), with the
 * lower of its org role and the token's role, so an app token granted `editor` caps Grafana admins too.
 *
 * Throws 401 `UNAUTHENTICATED` when the token is missing, malformed or unknown; 401
 * `UNTRUSTED_GRAFANA_CONTEXT` when `X-Grafana-Context` comes without the Grafana app's token (anyone can
 * send the header, only Grafana holds the token); 401 `GRAFANA_CONTEXT_REQUIRED` when the Grafana app's
 * token comes without the header; 401 `INVALID_GRAFANA_CONTEXT` for a malformed header; 403 `FORBIDDEN`
 * for a Grafana user without an org role. No message ever repeats the token. An Alertmanager token gives
 * an identity `via: 'alertmanager'`, which {@link requireTokenKind} lets through only on the webhook.
 */
export function authenticate(request: FastifyRequest, tokens: readonly TokenEntry[]): Identity {
  const context = request.headers[GRAFANA_CONTEXT_HEADER];
  const token = findToken(request.headers.authorization, tokens, context !== undefined);
  if (context === undefined) {
    if (token.grafana) {
      throw new AuthenticationError(
        401,
        'GRAFANA_CONTEXT_REQUIRED',
        `This is the Grafana app's token: it is only valid through Grafana's plugin proxy, which adds the signed-in user in ${GRAFANA_CONTEXT_HEADER}. Call the service through Grafana, or use a personal token.`,
        { actor: { name: token.name, via: 'token' } },
      );
    }
    return { name: token.name, role: token.role, via: token.alertmanager ? 'alertmanager' : 'token' };
  }
  if (!token.grafana) {
    throw new AuthenticationError(
      401,
      'UNTRUSTED_GRAFANA_CONTEXT',
      `${UNTRUSTED}, and this request's token is ${token.alertmanager ? "Alertmanager's webhook token" : 'a personal one'}. Send the request without ${GRAFANA_CONTEXT_HEADER} to act as the token's holder.`,
      { actor: { name: token.name, via: 'token' } },
    );
  }
  // Each line of the header as sent: Node's `headers` joins repeated lines into one invalid JSON string.
  const user = parseGrafanaContext(
    request.raw.headersDistinct[GRAFANA_CONTEXT_HEADER] ?? context,
    token.name,
  );
  const orgRole = ROLE_OF_ORG_ROLE[user.OrgRole];
  if (!orgRole) {
    throw new AuthenticationError(
      403,
      'FORBIDDEN',
      `Grafana user ${user.Login} has no role in Grafana org ${user.OrgID} (OrgRole ${user.OrgRole || 'empty'}): ask a Grafana administrator for Viewer or above. Nothing was changed.`,
      { actor: { name: user.Login, via: 'grafana' }, details: { needed: 'viewer', orgRole: user.OrgRole } },
    );
  }
  return {
    name: user.Login,
    role: lowerRole(orgRole, token.role),
    via: 'grafana',
    grafana: { login: user.Login, orgId: user.OrgID, userId: user.UserID },
  };
}

/** Why no grant matched: what the request had, and the message without `X-Grafana-Context`. */
const NO_TOKEN = {
  missing: {
    had: 'no bearer token',
    message:
      'No credentials: send `Authorization: Bearer <token>` with a token the service was configured with.',
  },
  malformed: {
    had: 'a malformed Authorization header',
    message: 'Malformed Authorization header: expected `Bearer <token>`.',
  },
  unknown: {
    had: 'an unknown bearer token',
    message:
      'Unknown bearer token: check the token, or ask an administrator to add its SHA-256 to the service.',
  },
} as const;

/** The grant matching the bearer token of `authorization`; 401 when there is none. */
function findToken(
  authorization: string | undefined,
  tokens: readonly TokenEntry[],
  withGrafanaContext: boolean,
): TokenEntry {
  const refuse = (why: keyof typeof NO_TOKEN): never => {
    // With the Grafana header, a missing app token is the header's problem: say so, so that a forged
    // header is named as such in the response and in the audit.
    if (withGrafanaContext) {
      throw new AuthenticationError(
        401,
        'UNTRUSTED_GRAFANA_CONTEXT',
        `${UNTRUSTED}; this request has ${NO_TOKEN[why].had}. Nothing was changed.`,
      );
    }
    throw new AuthenticationError(401, 'UNAUTHENTICATED', NO_TOKEN[why].message);
  };
  if (!authorization) return refuse('missing');
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!match?.[1]) return refuse('malformed');
  const presented = createHash('sha256').update(match[1], 'utf8').digest();
  // Every entry is compared, and each comparison takes the same time, so timing tells nothing about
  // which token (or how much of one) matched.
  let found: TokenEntry | undefined;
  for (const entry of tokens) {
    if (timingSafeEqual(presented, entry.sha256) && !found) found = entry;
  }
  return found ?? refuse('unknown');
}

/**
 * The one check of token kinds, run by the /api/v1 authentication hook before the role check: an
 * Alertmanager token (`"alertmanager": true`) is valid only on routes declaring `tokenKind: 'alertmanager'`
 * (the webhook), and those routes take nothing else. So a leaked or over-privileged Alertmanager token
 * (it needs `editor` for `ask`/`execute` routes) cannot read or change anything through the rest of the
 * API, and no person or Grafana user can post forged notifications (resolve real alerts, add fake
 * records, start runs that look as if Alertmanager started them).
 *
 * Throws 403 `FORBIDDEN` with `details: { token, routeTakes }`; audited like every refusal.
 */
export function requireTokenKind(
  identity: Identity,
  routeTakes: 'personal' | 'alertmanager',
  route: string,
): void {
  const isAlertmanager = identity.via === 'alertmanager';
  if (isAlertmanager === (routeTakes === 'alertmanager')) return;
  const token = isAlertmanager ? 'alertmanager' : identity.via === 'grafana' ? 'grafana' : 'personal';
  if (isAlertmanager) {
    throw new HttpError(
      403,
      'FORBIDDEN',
      `${identity.name} is Alertmanager's webhook token: it is valid only on POST /api/v1/alerts/alertmanager, not on ${route}. Use a personal token. Nothing was changed.`,
      { token, routeTakes },
    );
  }
  const whose =
    identity.via === 'grafana' ? `Grafana user ${identity.name}` : `${identity.name}'s personal token`;
  throw new HttpError(
    403,
    'FORBIDDEN',
    `The webhook takes only an Alertmanager token (a token granted with "alertmanager": true); ${whose} is not one. Nothing was changed.`,
    { token, routeTakes },
  );
}

/** Throws 403 `FORBIDDEN`, naming the role needed, when `identity` may not do `what`. */
export function requireRole(identity: Identity, needed: Role, what: string): void {
  if (!hasRole(identity.role, needed)) {
    const whose = identity.via === 'grafana' ? `Grafana user ${identity.name}` : identity.name;
    throw new HttpError(
      403,
      'FORBIDDEN',
      `${what} needs the ${needed} role; ${whose} has ${identity.role}. Ask an administrator for access. Nothing was changed.`,
      { needed, role: identity.role },
    );
  }
}
