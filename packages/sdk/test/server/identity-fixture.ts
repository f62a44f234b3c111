import { hashToken } from '../../src/server/identity';
import type { ServerOptions, TokenGrant } from '../../src/server/options';
import { personalGrants, serverFixture } from './server-fixture';

/** Bearer tokens of the identity tests: personal ones and two Grafana app tokens. */
export const TOKENS = {
  vera: 'viewer-token-vera-0a1b2c',
  erin: 'editor-token-erin-3d4e5f',
  ada: 'admin-token-ada-6a7b8c',
  abe: 'admin-token-abe-9d0e1f',
  /** The Grafana app's token, granted admin: Grafana users keep their own org role. */
  grafana: 'grafana-app-token-5f5f5f',
  /** A Grafana app token granted only editor: it caps every Grafana user at editor. */
  grafanaCapped: 'grafana-capped-token-7e7e7e',
} as const;

const GRANTS: TokenGrant[] = [
  ...personalGrants(TOKENS),
  { name: 'grafana-app', sha256: hashToken(TOKENS.grafana), role: 'admin', grafana: true },
  { name: 'grafana-capped', sha256: hashToken(TOKENS.grafanaCapped), role: 'editor', grafana: true },
];

/** The `X-Grafana-Context` header Grafana's plugin proxy would send for a user, with Grafana's extra keys. */
export function grafanaContext(login: string, orgRole: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    UserID: 42,
    UserUID: 'u-42',
    Login: login,
    Name: login.toUpperCase(),
    Email: `${login}@example.org`,
    OrgID: 1,
    OrgName: 'Main Org.',
    OrgRole: orgRole,
    IsServiceAccount: false,
    IsAnonymous: false,
    ...extra,
  });
}

/** {@link serverFixture} with this file's {@link TOKENS} (Grafana app tokens too) and `server` for createServer. */
export function identityFixture(server: Omit<ServerOptions, 'engine' | 'tokens' | 'logger'> = {}) {
  return serverFixture({ schema: 'ident', tokens: GRANTS, server });
}
